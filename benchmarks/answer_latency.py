"""Latency of answering one question: retrieve (embed + FAISS/BM25) + read, on this CPU.

    python benchmarks/answer_latency.py                       # the trained models/knowledge
    python benchmarks/answer_latency.py --synthetic           # no trained model needed

Per variant (precision fp32 / bf16 autocast / int8 reader / onnx: ONNX Runtime / onnx-int8:
ONNX Runtime with the reranker quantised x passages
read x max_length;
with sentence answers the reader reads only the chosen sentence, so read_k changes nothing but
the passage mode of old knowledge directories), one question at a time after a warm-up: p50/p95 of the whole answer, of retrieval alone and of
reading alone, and - with a trained knowledge dir - EM/F1/no-answer accuracy on the reader's
held-out training questions (data/kb/qa.json, never the test set), so a faster variant's cost
in quality shows. `--synthetic` indexes data/kb with the real embedder in a temp dir and reads
with the MiniLM backbone under an untrained QA head (same cost, meaningless answers). Prints
ONE JSON line and appends it to benchmarks/results/answer_latency.jsonl.
"""

from __future__ import annotations

import argparse
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

from benchmarks.common import (add_knowledge_args, add_machine_args,  # noqa: E402
                               add_timing_args, emit, environment, script_parser, set_threads)
from retrieval.answerer import Answerer, load_answerer  # noqa: E402
from retrieval.qa_metrics import load_qa, percentile, squad_scores  # noqa: E402
from retrieval.reader import Reader, ReaderConfig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "answer_latency.jsonl"
TARGET_P50_MS = 80.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser(__doc__)
    add_knowledge_args(p)
    p.add_argument("--synthetic", action="store_true", help="untrained reader, temp index")
    add_timing_args(p, iterations=40, warmup=5, timed="timed questions per variant")
    p.add_argument("--read-k", default="5,3,2", help="comma list: passages read per question")
    p.add_argument("--max-length", default="256", help="comma list of reader max_length")
    p.add_argument("--precision", default="fp32,bf16,int8,onnx",
                   help="comma list: fp32, bf16 (the models under bfloat16 autocast: the "
                        "Answerer's default where the CPU has it), int8 (the reader's Linear "
                        "layers, the rest fp32), onnx (every model in ONNX Runtime, float32), "
                        "onnx-int8 (the reranker quantised: the default where "
                        "the CPU has int8 dot products)")
    p.add_argument("--accuracy-questions", type=int, default=60,
                   help="held-out training questions scored per variant (0: none)")
    add_machine_args(p, RESULTS)
    return p.parse_args(argv)


def base_answerer(args: argparse.Namespace, tmp: Path, runtime: str = "torch") -> Answerer:
    """The models in PyTorch, or with `runtime` "onnx" or "onnx-int8" in ONNX Runtime (new
    model objects: the other variants keep PyTorch)."""
    if not args.synthetic:
        return load_answerer(args.knowledge_dir, device=args.device, runtime=runtime)
    from retrieval.embedder import get_embedder
    from retrieval.index import build_or_load

    embedder = get_embedder(device=args.device)
    index = build_or_load(args.kb, tmp / "index", embedder)
    return Answerer(index, None, Reader(ReaderConfig(device=args.device)), runtime=runtime,
                    graphs=tmp / "onnx")


def held_out(args: argparse.Namespace) -> list[Any]:
    """The reader's held-out training questions (ids from its training report)."""
    report = args.knowledge_dir / "reader" / "training_report.json"
    if args.synthetic or args.accuracy_questions <= 0 or not report.exists():
        return []
    ids = set(json.loads(report.read_text())["holdout"].get("ids", []))
    return [e for e in load_qa(args.kb / "qa.json") if e.id in ids][:args.accuracy_questions]


def measure(answerer: Answerer, questions: list[str], args: argparse.Namespace,
            examples: list[Any]) -> dict[str, Any]:
    for q in questions[:args.warmup]:
        answerer.answer(q)
    total, retrieve, read = [], [], []
    for n in range(args.iterations):
        q = questions[n % len(questions)]
        t0 = time.perf_counter()
        trace = answerer.trace_batch([q])[0]
        total.append((time.perf_counter() - t0) * 1000)
        retrieve.append(trace.retrieve_ms)
        read.append(trace.read_ms)
    out: dict[str, Any] = {
        "p50_ms": round(percentile(total, 50), 1), "p95_ms": round(percentile(total, 95), 1),
        "retrieve_p50_ms": round(percentile(retrieve, 50), 1),
        "read_p50_ms": round(percentile(read, 50), 1)}
    if examples:
        answers = answerer.answer_batch([e.question for e in examples])
        scores = squad_scores({e.id: a.text for e, a in zip(examples, answers)}, examples)
        out["holdout"] = {"n": len(examples), "exact": round(scores["has_ans_exact"], 3),
                          "f1": round(scores["has_ans_f1"], 3),
                          "no_answer_accuracy": round(scores["no_ans_exact"], 3)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    set_threads(args.threads)
    examples = held_out(args)
    questions = [e.question for e in load_qa(args.kb / "qa.json")][:200]
    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        base = base_answerer(args, Path(tmp)).load()
        for precision in [x.strip() for x in args.precision.split(",") if x.strip()]:
            # onnx: every model in ONNX Runtime (new model objects, its own base)
            source = base_answerer(args, Path(tmp), precision).load() \
                if precision in ("onnx", "onnx-int8") else base
            reader = source.reader
            if precision == "int8":
                reader = Reader(replace(base.reader.config, quantize=True)).load()
            for max_length in [int(x) for x in args.max_length.split(",") if x.strip()]:
                sized = Reader(replace(reader.config, max_length=max_length))
                sized.model, sized.tokenizer, sized.onnx = reader.model, reader.tokenizer, \
                    reader.onnx
                for read_k in [int(x) for x in args.read_k.split(",") if x.strip()]:
                    config = replace(source.config, top_k=max(source.config.top_k, read_k),
                                     read_k=read_k)
                    answerer = Answerer(source.index, None, sized, config=config,
                                        ranker=source.ranker, calibration=source.calibration,
                                        reranker=source.reranker,
                                        precision="bfloat16" if precision == "bf16"
                                        else "float32")
                    row = {"precision": precision, "max_length": max_length, "read_k": read_k,
                           **measure(answerer, questions, args, examples)}
                    variants.append(row)
                    print(json.dumps(row), file=sys.stderr)
    fast = [v for v in variants if v["p50_ms"] <= TARGET_P50_MS]
    report = {"benchmark": "answer_latency", "synthetic": args.synthetic,
              "device": args.device, "iterations": args.iterations,
              "target_p50_ms": TARGET_P50_MS, "variants": variants,
              "fastest": min(variants, key=lambda v: v["p50_ms"]) if variants else None,
              "meets_target": bool(fast), **environment(),
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
