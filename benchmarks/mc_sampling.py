"""CPU cost of the joint model's MC-dropout samples, old way and new, in one process.

    python benchmarks/mc_sampling.py [--model models/nlu/joint] [--iterations 150]

Hotel messages of 15 words (benchmarks/nlu_latency.py's), one at a time, one thread. For each
message, interleaved so that both see the same load: the ONNX deterministic pass; the samples
by the full PyTorch top layer (`JointNet.sample_intents`, what the ONNX runtime used before
nlu/mc_sampler.py); by `DropoutSampler` with 8 and with 4 samples; a whole joint parse with 8
and with 4. Figures are the median thread CPU time (`time.thread_time`: less sensitive than the
wall clock to other jobs on a shared machine). Checks that both samplers give the same logits.
Prints ONE JSON line and appends it to benchmarks/results/mc_sampling.jsonl (or --out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import emit, environment  # noqa: E402
from benchmarks.nlu_latency import MESSAGES  # noqa: E402


def cpu_ms(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.thread_time()
    out = call()
    return (time.thread_time() - started) * 1000, out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "nlu" / "joint")
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "mc_sampling.jsonl")
    args = parser.parse_args(argv)
    if not (args.model / "joint.onnx").is_file():
        print(f"No joint model with an ONNX graph at {args.model}. Run `xingkong train nlu`, "
              "or pass --model DIR.", file=sys.stderr)
        raise SystemExit(2)
    import torch

    from nlu.joint import JointIntentEntity, _attention_mask
    from nlu.words import encode_texts

    torch.set_num_threads(1)
    full = JointIntentEntity.load_from(args.model, runtime="torch")  # for the old sampling
    served = JointIntentEntity.load_from(args.model, runtime="onnx")
    net, onnx, sampler = full._net, served._onnx, served._sampler
    times: dict[str, list[float]] = {k: [] for k in (
        "onnx_pass", "old_samples_8", "samples_8", "samples_4", "parse_8", "parse_4")}
    context = "" if served.uses_context else None
    with torch.inference_mode():
        for n in range(args.warmup + args.iterations):
            text = MESSAGES[15][n % len(MESSAGES[15])]
            (encoded,) = encode_texts(served._tokenizer, [text])
            batch, _ = served._collate([served._input(encoded, context, None)])
            t_onnx, (low_word, _, _) = cpu_ms(lambda: onnx.run(batch))
            low = (low_word, None, _attention_mask(batch["attention_mask"], None, low_word.dtype))
            torch.manual_seed(n)
            t_old, old = cpu_ms(lambda: net.sample_intents(low, batch, 8, net.mc_split(8, 1)))
            torch.manual_seed(n)
            t_new, new = cpu_ms(lambda: sampler.sample(low_word, batch["attention_mask"], 8))
            t_new4, _ = cpu_ms(lambda: sampler.sample(low_word, batch["attention_mask"], 4))
            t_parse8, _ = cpu_ms(lambda: served.parse_batch([text], [context], n_samples=8))
            t_parse4, _ = cpu_ms(lambda: served.parse_batch([text], [context], n_samples=4))
            if not torch.allclose(old, new, atol=1e-4):
                raise SystemExit(f"the samplers disagree on {text!r}: max difference "
                                 f"{(old - new).abs().max():.2e}")
            if n >= args.warmup:
                for key, value in zip(times, (t_onnx, t_old, t_new, t_new4, t_parse8, t_parse4),
                                      strict=True):
                    times[key].append(value)
    report = {"benchmark": "mc_sampling", "model": str(args.model), "words": 15,
              "iterations": args.iterations,
              "cpu_ms_p50": {k: round(statistics.median(v), 2) for k, v in times.items()},
              **environment(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
