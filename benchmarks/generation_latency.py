"""Latency of a generated small-talk turn on this CPU.

    python benchmarks/generation_latency.py                  # the trained models/generation
    python benchmarks/generation_latency.py --synthetic      # a random GPT-2 of the default size

Per number of candidates N (sampled together as one batch): time to first token (the prompt's
forward pass and one sampling step) and tokens/s over 40 new tokens (N x 40 tokens, no early
stop). Then p50/p95 of a whole turn as the action runs it - sample N candidates stopping at the
turn boundary, filter, score MMI and MiniLM relevance, choose - over a set of small-talk
messages, one at a time after a warm-up; the target is p50 <= 300 ms. `--synthetic` trains a
tokenizer on a few lines and builds an untrained GPT-2 of generation's default ModelConfig
(same size and cost, meaningless text); `--exemplars` adds an exemplar index of random
vectors of the real one's size, so that a turn pays for its search; `--retrieval` a
retrieve-only index instead (12k rows, plain prompts, the retrieved replies among the
candidates, as `retrieval_index: true` trains it). Prints ONE JSON line and
appends it to benchmarks/results/generation_latency.jsonl.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import (add_machine_args, add_timing_args, emit,  # noqa: E402
                               environment, sampling_setting, script_parser, set_threads)
from generation import Generator, ModelConfig, SamplingConfig, from_mapping  # noqa: E402
from generation.config import to_dict  # noqa: E402
from generation.model import parameter_count  # noqa: E402
from generation.sampler import build_prompt, sample  # noqa: E402
from retrieval.qa_metrics import percentile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "generation_latency.jsonl"
TARGET_P50_MS = 300.0
MESSAGES = (
    "do you ever get tired of talking to people all day?",
    "what kind of music puts you in a good mood?",
    "i just got back from a long walk by the river",
    "are you a morning person or a night owl?",
    "my flight was so bumpy i thought i'd never land",
    "what would you do with a free afternoon?",
    "i can never decide what to eat for dinner",
    "do you think dogs are better than cats?",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser(__doc__)
    p.add_argument("--model-dir", type=Path, default=ROOT / "models" / "generation")
    p.add_argument("--synthetic", action="store_true", help="untrained default-size GPT-2")
    p.add_argument("--exemplars", action="store_true",
                   help="with --synthetic: an exemplar index of the real one's size too")
    p.add_argument("--retrieval", action="store_true",
                   help="with --synthetic: a retrieve-only index (retrieval_index) instead")
    add_timing_args(p, iterations=24, warmup=3, timed="timed whole turns")
    p.add_argument("--candidates", default="1,4,8", help="comma list of N for the raw timing")
    p.add_argument("--new-tokens", type=int, default=40)
    p.add_argument("--sampling", action="append", default=[], metavar="KEY=VALUE",
                   help="override a sampling setting of the model's manifest (a JSON value: "
                        "--sampling pair_min_score=9 times sampled turns only)")
    add_machine_args(p, RESULTS)
    return p.parse_args(argv)


def synthetic_model(out: Path, exemplars: bool = False, retrieval: bool = False) -> Path:
    """An untrained GPT-2 of generation's default size, saved as training lays it out (with
    `retrieval`, a retrieve-only index whose replies join the candidates)."""
    from generation.corpus import render
    from generation.generator import write_manifest
    from generation.model import build_gpt2, save_model
    from generation.tokenizer import train_tokenizer

    texts = [render([m, m[::-1]]) for m in MESSAGES] * 20
    config = ModelConfig()
    tokenizer = train_tokenizer(texts, config.vocab_size)
    lm = build_gpt2(config, tokenizer)
    lm.resize_token_embeddings(config.vocab_size)  # the output layer costs as in the real one
    save_model(lm, tokenizer, out)
    if retrieval:
        write_manifest(out, model=".", sampling=SamplingConfig(exemplar_candidates=True),
                       report={"exemplar_prompts": False})
        synthetic_exemplars(out, rows=12_000)
        return out
    write_manifest(out, model=".", sampling=SamplingConfig())
    if exemplars:
        synthetic_exemplars(out)
    return out


def synthetic_exemplars(out: Path, rows: int = 40_000, dimension: int = 384) -> None:
    """An exemplar index of the real one's size (random unit vectors of MiniLM's width), so
    that a turn pays for its search."""
    import numpy as np

    from generation.exemplars import ExemplarIndex

    vectors = np.random.default_rng(0).standard_normal((rows, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    replies = tuple(MESSAGES[i % len(MESSAGES)] for i in range(rows))
    ExemplarIndex(vectors, replies, tuple(str(i) for i in range(rows))).save(out)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def raw_timing(generator: Generator, n: int, new_tokens: int, device: str,
               iterations: int) -> dict[str, float]:
    """Time to first token and tokens/s for `n` candidates of exactly `new_tokens` tokens
    (generation's sampler with no turn-ending token, so nothing stops early)."""
    lm, tokenizer = generator._lm, generator._tokenizer
    prompt = build_prompt(tokenizer, MESSAGES[0], [], 128 - new_tokens)

    def run(tokens: int) -> float:
        config = replace(generator.sampling, n_candidates=n, max_new_tokens=tokens)
        _sync(device)
        started = time.perf_counter()
        sample(lm, tokenizer, prompt, config, stop_ids=[], seed=0)
        _sync(device)
        return time.perf_counter() - started

    run(new_tokens)  # warm-up
    first = percentile([run(1) for _ in range(iterations)], 50)
    whole = percentile([run(new_tokens) for _ in range(iterations)], 50)
    return {"ttft_ms": round(first * 1000, 1), "total_ms": round(whole * 1000, 1),
            "tokens_per_s": round(n * new_tokens / whole, 1)}


def turn_timing(generator: Generator, iterations: int, warmup: int) -> dict[str, Any]:
    for i in range(warmup):
        generator.reply(MESSAGES[i % len(MESSAGES)], seed=i)
    times, kept, declined, written = [], 0, 0, 0
    for i in range(iterations):
        reply = generator.reply(MESSAGES[i % len(MESSAGES)], seed=i)
        times.append(reply.seconds * 1000)
        kept += sum(c.kept for c in reply.candidates)
        declined += reply.text is None
        written += bool(reply.text is not None and reply.metadata()["generation"]["written"])
    return {"p50_ms": round(percentile(times, 50), 1), "p95_ms": round(percentile(times, 95), 1),
            "candidates_kept_per_turn": round(kept / iterations, 2),
            "declined_turns": declined, "written_turns": written, "turns": iterations}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    set_threads(args.threads, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = (synthetic_model(Path(tmp) / "gen", args.exemplars, args.retrieval)
                     if args.synthetic
                     else args.model_dir)
        started = time.perf_counter()
        generator = Generator(model_dir, device=args.device).load()
        load_s = time.perf_counter() - started
        if args.sampling:
            generator._sampling = from_mapping(SamplingConfig, {
                **to_dict(generator.sampling), **dict(sampling_setting(s) for s in args.sampling)},
                "--sampling")
        sampling = generator.sampling
        lm = generator._lm  # None: written pairs only (language_model: false)
        raw = {str(n): raw_timing(generator, n, args.new_tokens, args.device,
                                  max(1, args.iterations // 4))
               for n in (int(x) for x in args.candidates.split(","))} if lm is not None else {}
        turn = turn_timing(generator, args.iterations, args.warmup)
        generator._sampling = replace(sampling, n_candidates=1)
        single = (turn_timing(generator, max(1, args.iterations // 2), 1)
                  if lm is not None else None)
        parameters = parameter_count(lm) if lm is not None else 0
    report = {
        "benchmark": "generation_latency", "synthetic": args.synthetic,
        "index": "retrieval" if args.retrieval else "exemplars" if args.exemplars else None,
        "model_dir": None if args.synthetic else str(args.model_dir),
        "parameters": parameters, "device": args.device, "new_tokens": args.new_tokens,
        "raw_by_candidates": raw,
        "turn": {**turn, "n_candidates": sampling.n_candidates,
                 "max_new_tokens": sampling.max_new_tokens},
        "turn_one_candidate": single,
        "target_p50_ms": TARGET_P50_MS, "meets_target": turn["p50_ms"] <= TARGET_P50_MS,
        "load_s": round(load_s, 2), **environment()}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
