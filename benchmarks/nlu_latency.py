"""Latency and throughput of the NLU parse (intent + entities), on this CPU.

    python benchmarks/nlu_latency.py                          # the trained models/nlu
    python benchmarks/nlu_latency.py --n-samples 0            # deterministic intents, no MC
    python benchmarks/nlu_latency.py --synthetic              # no trained model needed

Hotel messages of 5, 15 and 40 words (cities, hotels, dates, guest counts, booking ids), parsed
one at a time after a warm-up: p50/p95/p99 per length of the full interpreter parse (intent with
its MC-dropout samples, entity spans, regexes, synonyms, fallback, Rasa dict). At 15 words also
the intent classifier alone (with and without MC dropout) and the entity extractor alone. Then
throughput: parses/s of `parse_batch` at each batch size, and of N concurrent `parse_async`
callers (the server's dynamic batching; the mean batch it formed is reported). `--synthetic`
trains a throwaway model (the backbone, 1 epoch on generated data) in a temp dir: the same cost
per parse, meaningless predictions. Prints ONE JSON line and appends it to
benchmarks/results/nlu_latency.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
                               environment, percentile, script_parser, set_threads)
from benchmarks.nlu_public import synthetic_data  # noqa: E402
from nlu.interpreter import NLUInterpreter, load_interpreter  # noqa: E402
from nlu.training import TrainingSet, train_pipeline  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "nlu_latency.jsonl"
TARGET_P50_MS = 20.0  # single message of 15 words (issue 13)
TARGET_PARSES_PER_S = 150.0  # batched
TARGET_DUCKLING_MS = 5.0  # what the Duckling step adds to one parse, p50
MESSAGES = {
    5: [
        "book Lisbon for two guests",
        "cancel my booking SL-482913 please",
        "a room in Paris tomorrow",
        "is breakfast included in Rome?",
        "double room for 3 tonight",
        "check booking SL-100245 for Ana",
    ],
    15: [
        "book a double room in Lisbon from March 3 to March 7 for two guests",
        "hi, I need a twin room at Starlight Rome for 3 people next Friday please",
        "hello, can you please change my booking SL-482913 so that we arrive on 2027-01-15 "
        "instead?",
        "we are four adults looking for a big family room in Berlin this weekend please",
        "I want to stay in Prague from 15/01/2027 until 19/01/2027, it will be just me",
        "please reserve a suite at the Nova Grand Hotel for Kenji Sato from tomorrow night",
    ],
    40: [
        "hello, my name is Ana Ruiz and I would like to book a double room at the Starlight "
        "Lisbon for two adults, arriving on March 3 and leaving on March 7, and could you tell "
        "me whether breakfast is included?",
        "we are planning a family trip to Barcelona next month, so please find us a family room "
        "for four guests from 2027-07-10 to 2027-07-17, preferably at the Starlight Barcelona, "
        "and then send the confirmation to ana.ruiz@example.com when it is done",
        "I booked a twin room in Berlin under booking SL-482913 for three nights from next "
        "Friday, but my colleague Kenji cannot come anymore, so can you change it to a single "
        "room and move the checkout to Sunday morning instead?",
        "could you check whether the Aurora Riverside in Lisbon has a suite free from "
        "15/01/2027 until 19/01/2027 for two people, and if it does not, please book a double "
        "room at the Starlight Lisbon for exactly the same dates instead?",
        "good evening, I am travelling to Vienna with my wife and two children this weekend and "
        "we need one family room or two twin rooms near the old town, arriving on Friday "
        "evening and leaving early on Monday morning, thanks",
        "my flight to Madrid was cancelled so I need to cancel booking SL-100245 at Starlight "
        "Madrid for tonight and instead reserve a single room in Rome for tomorrow until the "
        "day after, under the name of Maria Rossi, thank you",
    ],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser(__doc__)
    p.add_argument("--model", type=Path, default=ROOT / "models" / "nlu",
                   help="trained NLU directory (pipeline.json, intent/, entities/)")
    p.add_argument("--synthetic", action="store_true",
                   help="train a throwaway model on generated data instead of --model")
    p.add_argument("--backbone", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="with --synthetic: the encoder of the throwaway model")
    p.add_argument("--pipeline", choices=("joint", "separate"), default="joint",
                   help="with --synthetic: JointIntentEntity, or IntentClassifier + "
                        "LukeSpanExtractor")
    add_timing_args(p, iterations=200, warmup=10, timed="timed parses per measurement")
    p.add_argument("--n-samples", type=int, default=None,
                   help="MC-dropout samples of the intent classifier (default: the saved "
                        "config's; 0 or 1: deterministic)")
    p.add_argument("--batch-sizes", default="8,32", help="comma list for parse_batch")
    p.add_argument("--concurrency", default="1,64", help="comma list of parse_async callers")
    p.add_argument("--runtime", choices=("onnx", "torch"), default=None,
                   help="the joint model's CPU runtime (default: the saved config's)")
    p.add_argument("--quantize", action="store_true", help="load with int8 Linear layers")
    p.add_argument("--mc-precision", choices=("auto", "float32", "bfloat16"), default=None,
                   help="the MC-dropout samples' matrix products (default: the saved config's)")
    add_machine_args(p, RESULTS)
    return p.parse_args(argv)


def rss_mb() -> dict[str, float]:
    """Resident and peak resident memory of this process, from /proc (Linux)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = round(
                    int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def load(args: argparse.Namespace, tmp: Path) -> NLUInterpreter:
    model = args.model
    if args.synthetic:
        model = tmp / "model"
        train, _ = synthetic_data(0)
        components = [{"name": "IntentClassifier", "model": args.backbone, "epochs": 1},
                      {"name": "LukeSpanExtractor", "model": args.backbone, "epochs": 1}]
        if args.pipeline == "joint":
            components = [{"name": "JointIntentEntity", "model": args.backbone, "epochs": 1}]
        train_pipeline(TrainingSet(train), components, model, progress=False)
    interpreter = load_interpreter(model, duckling_pipeline())
    joint = interpreter.joint_model
    if joint is not None:
        if args.device != "cpu" or args.runtime or args.quantize or args.mc_precision:
            joint = type(joint).load_from(model / "joint", device=args.device,
                                          runtime=args.runtime, quantize=args.quantize or None,
                                          mc_precision=args.mc_precision)
        if args.n_samples is not None:
            joint.config = replace(joint.config, n_samples=args.n_samples)
        interpreter.joint_model = joint
        return interpreter
    intent, entity = interpreter.intent_model, interpreter.entity_model
    if args.device != "cpu":  # the saved configs say cpu: load the weights again onto the device
        from nlu.intent import IntentClassifier

        if intent is not None:
            intent = IntentClassifier.load_from(model / "intent", device=args.device)
        if entity is not None:
            entity = type(entity).load_from(model / "entities", device=args.device)
    if intent is not None and args.n_samples is not None:
        intent.config = replace(intent.config, n_samples=args.n_samples)
    interpreter.intent_model, interpreter.entity_model = intent, entity
    return interpreter


def duckling_pipeline() -> list[dict[str, Any]]:
    """The DucklingEntityExtractor of the project's config.yml (the demo's), if it has one:
    it is not trained, so it is timed with whichever model is loaded."""
    from bot.project.config import load_config

    config = load_config(ROOT / "config.yml")
    return [c for c in config.pipeline_dicts() if c["name"] == "DucklingEntityExtractor"]


def timed(call: Any, texts: list[str], iterations: int, warmup: int) -> list[float]:
    for n in range(warmup):
        call(texts[n % len(texts)])
    latencies = []
    for n in range(iterations):
        started = time.perf_counter()
        call(texts[n % len(texts)])
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(percentile(latencies, q), 2) for q in (50, 95, 99)}


def batch_throughput(interpreter: NLUInterpreter, texts: list[str], batch_size: int,
                     iterations: int) -> float:
    """parses/s of parse_batch over at least `iterations` messages (and 3 batches); batch k
    takes the next `batch_size` texts, cycling through `texts`."""
    batches = max(3, -(-iterations // batch_size))
    pools = [[texts[(k * batch_size + i) % len(texts)] for i in range(batch_size)]
             for k in range(batches)]
    interpreter.parse_batch(pools[0])  # warm-up at this size
    started = time.perf_counter()
    for pool in pools:
        interpreter.parse_batch(pool)
    return batches * batch_size / (time.perf_counter() - started)


async def concurrent_throughput(interpreter: NLUInterpreter, texts: list[str], callers: int,
                                iterations: int) -> dict[str, float]:
    """`callers` coroutines each awaiting parse_async in turn; parses/s and the mean batch the
    interpreter's worker formed (counted by wrapping its parse_batch)."""
    sizes: list[int] = []
    plain = interpreter.parse_batch

    def counting(batch: list[str], *rest: Any) -> list[Any]:
        sizes.append(len(batch))
        return plain(batch, *rest)

    rounds = max(2, -(-iterations // callers))

    async def caller(k: int, n_rounds: int) -> None:
        for r in range(n_rounds):
            await interpreter.parse_async(texts[(k + r) % len(texts)])

    await asyncio.gather(*(caller(k, 1) for k in range(callers)))  # warm-up, starts the worker
    interpreter.parse_batch = counting  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(caller(k, rounds) for k in range(callers)))
        seconds = time.perf_counter() - started
    finally:
        del interpreter.parse_batch  # back to the class method
    return {"callers": callers, "parses_per_s": round(callers * rounds / seconds, 1),
            "mean_batch": round(sum(sizes) / max(len(sizes), 1), 1), "batches": len(sizes)}


def components(interpreter: NLUInterpreter, args: argparse.Namespace) -> dict[str, Any]:
    """Intent alone (MC and deterministic) and entities alone, 15 words, p50."""
    texts, out = MESSAGES[15], {}
    iterations = max(1, args.iterations // 2)
    warmup = min(args.warmup, 3)
    if interpreter.joint_model is not None:
        joint = interpreter.joint_model
        out["joint_deterministic_p50_ms_15w"] = summary(timed(
            lambda t: joint.parse_batch([t], n_samples=0), texts, iterations, warmup))["p50_ms"]
    if interpreter.intent_model is not None:
        intent = interpreter.intent_model
        out["intent_p50_ms_15w"] = summary(timed(lambda t: intent.predict_batch([t]), texts,
                                                 iterations, warmup))["p50_ms"]
        out["intent_deterministic_p50_ms_15w"] = summary(timed(
            lambda t: intent.predict_batch([t], n_samples=0), texts, iterations, warmup))["p50_ms"]
    if interpreter.duckling is not None:  # the Duckling step alone: what it adds per parse
        duckling = interpreter.duckling
        for words in (15, 40):
            out[f"duckling_p50_ms_{words}w"] = summary(timed(
                lambda t: duckling.extract(t), MESSAGES[words], iterations, warmup))["p50_ms"]
        out["duckling_target_p50_ms"] = TARGET_DUCKLING_MS
    if interpreter.entity_model is not None:
        entity = interpreter.entity_model
        out["entities_p50_ms_15w"] = summary(timed(lambda t: entity.extract_batch([t]), texts,
                                                   iterations, warmup))["p50_ms"]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if not args.synthetic and not (args.model / "pipeline.json").is_file():
        print(f"No trained NLU model at {args.model} (no pipeline.json). Run `xingkong train "
              "nlu` first, or pass --model DIR, or --synthetic.", file=sys.stderr)
        raise SystemExit(2)
    set_threads(args.threads, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        interpreter = load(args, Path(tmp))
        load_seconds = time.perf_counter() - started
    single = {}
    for words, texts in MESSAGES.items():
        single[f"{words}w"] = summary(timed(interpreter.parse, texts, args.iterations,
                                            args.warmup))
        print(json.dumps({"words": words, **single[f"{words}w"]}), file=sys.stderr)
    parts = components(interpreter, args)
    mixed = [t for row in zip(*MESSAGES.values()) for t in row]  # 5, 15, 40, 5, 15, 40 words...
    batched = []
    for size in [int(x) for x in args.batch_sizes.split(",") if x.strip()]:
        batched.append({"batch_size": size,
                        "parses_per_s_15w": round(batch_throughput(
                            interpreter, MESSAGES[15], size, args.iterations), 1),
                        "parses_per_s_mixed": round(batch_throughput(
                            interpreter, mixed, size, args.iterations), 1)})
        print(json.dumps(batched[-1]), file=sys.stderr)
    concurrent = [asyncio.run(concurrent_throughput(interpreter, MESSAGES[15], int(c),
                                                    args.iterations))
                  for c in args.concurrency.split(",") if c.strip()]
    intent, entity = interpreter.intent_model, interpreter.entity_model
    if interpreter.joint_model is not None:
        intent = entity = interpreter.joint_model
    best = max([b["parses_per_s_15w"] for b in batched] +
               [c["parses_per_s"] for c in concurrent], default=0.0)
    p50_15 = single["15w"]["p50_ms"]
    report = {
        "benchmark": "nlu_latency", "model": "synthetic" if args.synthetic else str(args.model),
        "intent_model": intent.config.model if intent is not None else None,
        "entity_extractor": type(entity).__name__ if entity is not None else None,
        "entity_model": entity.config.model if entity is not None else None,
        "mc_samples": intent.config.n_samples if intent is not None else None,
        "mc_layers": getattr(intent.config, "mc_layers", None) if intent is not None else None,
        "runtime": getattr(getattr(interpreter.joint_model, "config", None), "runtime", None),
        "mc_precision": getattr(getattr(interpreter.joint_model, "config", None),
                                "mc_precision", None),
        "quantize": args.quantize,
        "device": args.device, "iterations": args.iterations, "warmup": args.warmup,
        "load_seconds": round(load_seconds, 2),
        "single": single, "components": parts, "batched": batched, "concurrent": concurrent,
        "targets": {"p50_ms_15w": TARGET_P50_MS, "parses_per_s": TARGET_PARSES_PER_S},
        "meets_p50_target": p50_15 <= TARGET_P50_MS,
        "meets_throughput_target": best >= TARGET_PARSES_PER_S,
        **rss_mb(), **environment(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
