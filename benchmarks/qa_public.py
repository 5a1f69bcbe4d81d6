"""The QA stack on public extractive-QA data (SQuAD 2.0 dev half, XQuAD English).

    python benchmarks/qa_public.py /work/shared/data/squad2 --limit 300
    python benchmarks/qa_public.py /work/shared/data/xquad --limit 300
    python benchmarks/qa_public.py --synthetic                    # no data needed (smoke run)
    python benchmarks/qa_public.py /work/shared/data/squad2 --limit 300 \
        --extra-qa /work/shared/data/xquad/qa.jsonl --extra-limit 800 --epochs 2

PATH holds qa.jsonl and passages.jsonl (see /work/shared/data/README.md; never a dependency of
the project). Every passage is indexed with the real embedder; for the first `--limit`
questions it reports retrieval recall@1/@5 and MRR (a hit is the gold passage), the reader
alone on the gold passage (EM/F1 on answerable, no-answer accuracy on unanswerable) and the
whole pipeline. The readers are `--reader DIR...` (default: models/knowledge/reader).

`--extra-qa FILE...` also trains a second reader on data/kb/qa.json plus those files (SQuAD
JSON or QA JSONL; questions whose title is among the evaluated ones are dropped, so nothing
evaluated is trained on) and reports both readers on this data and on tests/kb_test.json
(gold contexts), i.e. how the KB reader does with and without the extra data. Prints ONE JSON
line and appends it to benchmarks/results/qa_public.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import (add_machine_args, emit, environment,  # noqa: E402
                               script_parser, set_threads)
from retrieval.answerer import Answerer, AnswererConfig  # noqa: E402
from retrieval.qa_metrics import (QAExample, first_hit_rank, load_qa,  # noqa: E402
                                  mean_reciprocal_rank, recall_at_k, squad_scores)
from retrieval.reader import Reader, ReaderConfig  # noqa: E402
from retrieval.types import Document, IndexConfig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "qa_public.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser(__doc__)
    p.add_argument("path", nargs="?", type=Path, help="folder with qa.jsonl + passages.jsonl")
    p.add_argument("--synthetic", action="store_true", help="generated passages and questions")
    p.add_argument("--limit", type=int, default=300, help="questions evaluated")
    p.add_argument("--iterations", type=int, default=1, help="passes (timing only)")
    p.add_argument("--reader", type=Path, nargs="+",
                   default=[ROOT / "models" / "knowledge" / "reader"],
                   help="trained reader dir(s), each evaluated on the same index")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--no-pipeline", action="store_true", help="skip the full pipeline run")
    p.add_argument("--extra-qa", nargs="*", type=Path, default=[])
    p.add_argument("--extra-limit", type=int, default=800)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--kb-test", type=Path, default=ROOT / "tests" / "kb_test.json")
    p.add_argument("--seed", type=int, default=0)
    add_machine_args(p, RESULTS)
    return p.parse_args(argv)


def synthetic_data(seed: int) -> tuple[list[Document], list[QAExample]]:
    rng = random.Random(seed)
    things = ["lamp", "kettle", "safe", "desk", "iron", "fan", "minibar", "balcony"]
    colours = ["red", "blue", "green", "white", "black", "grey"]
    docs, examples = [], []
    for n in range(40):
        thing, colour, floor = rng.choice(things), rng.choice(colours), rng.randint(1, 9)
        text = (f"Room {n} has a {colour} {thing} and is on floor {floor}. "
                f"Guests of room {n} may order breakfast until {rng.randint(9, 11)}:00.")
        docs.append(Document(f"p{n}", f"Room {n}", text, {}, "text"))
        examples.append(QAExample(f"q{n}", f"What colour is the {thing} in room {n}?", text,
                                  ((colour, text.index(colour)),), f"p{n}"))
        examples.append(QAExample(f"u{n}", f"Is there a pool in room {n}?", text, (), f"p{n}"))
    return docs, examples


def load_public(path: Path) -> tuple[list[Document], list[QAExample], dict[str, str]]:
    """Documents (one per passage), examples, and question id -> gold passage id."""
    docs = []
    with open(path / "passages.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            docs.append(Document(str(row["id"]), str(row.get("title") or row["id"]),
                                 str(row["text"]), {}, "text"))
    gold = {}
    with open(path / "qa.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            gold[str(row["id"])] = str(row["passage_id"])
    return docs, load_qa(path / "qa.jsonl"), gold


def reader_scores(reader: Reader, examples: list[QAExample]) -> dict[str, Any]:
    started = time.perf_counter()
    results = reader.read_pairs([e.question for e in examples], [e.context for e in examples])
    s = squad_scores({e.id: r.text for e, r in zip(examples, results)}, examples)
    return {"exact": round(s["has_ans_exact"], 4), "f1": round(s["has_ans_f1"], 4),
            "no_answer_accuracy": round(s["no_ans_exact"], 4),
            "overall_f1": round(s["all_f1"], 4), "answerable": int(s["has_ans_count"]),
            "unanswerable": int(s["no_ans_count"]),
            "seconds": round(time.perf_counter() - started, 1)}


def evaluate(reader: Reader, index: Any, examples: list[QAExample], gold: dict[str, str],
             args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"reader_gold_context": reader_scores(reader, examples)}
    answerer = Answerer(index, None, reader, config=AnswererConfig(top_k=args.top_k,
                                                                   min_confidence=0.0))
    started = time.perf_counter()
    traces = answerer.trace_batch([e.question for e in examples])
    ranks = [first_hit_rank([h.passage.doc_id == gold[e.id] for h in t.hits])
             for e, t in zip(examples, traces) if not e.is_impossible]
    out["retrieval"] = {"recall@1": round(recall_at_k(ranks, 1), 4),
                        "recall@5": round(recall_at_k(ranks, 5), 4),
                        "mrr": round(mean_reciprocal_rank(ranks), 4)}
    if not args.no_pipeline:
        s = squad_scores({e.id: t.answer.text for e, t in zip(examples, traces)}, examples)
        out["pipeline"] = {"exact": round(s["has_ans_exact"], 4),
                           "f1": round(s["has_ans_f1"], 4),
                           "no_answer_accuracy": round(s["no_ans_exact"], 4),
                           "seconds": round(time.perf_counter() - started, 1)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from retrieval.embedder import get_embedder
    from retrieval.index import KnowledgeIndex

    set_threads(args.threads)
    if args.path is None or args.synthetic:
        docs, examples = synthetic_data(args.seed)
        gold, name = {e.id: e.title for e in examples}, "synthetic"
    else:
        docs, examples, gold = load_public(args.path)
        name = args.path.name
    examples = examples[:args.limit]
    used = {gold[e.id] for e in examples}
    started = time.perf_counter()
    index = KnowledgeIndex.build(docs, get_embedder(device=args.device), IndexConfig())
    index_seconds = round(time.perf_counter() - started, 1)
    readers = {str(path): Reader.from_dir(path, device=args.device) for path in args.reader
               if (path / "reader_config.json").exists()}
    if not readers:
        readers["untrained_head"] = Reader(ReaderConfig(device=args.device))
    training = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.extra_qa:
            from retrieval.reader_training import train_reader

            titles = {e.title for e in examples}
            extra = [x for path in args.extra_qa for x in load_qa(path)
                     if x.title not in titles][:args.extra_limit]
            kb = load_qa(ROOT / "data" / "kb" / "qa.json")
            report = train_reader([*kb, *extra], out_dir=Path(tmp) / "extra", epochs=args.epochs,
                                  lr=args.lr, device=args.device, num_threads=args.threads)
            training = {"extra_examples": len(extra), "seconds": report.seconds,
                        "margin": report.margin, "holdout": {k: v for k, v in
                                                             report.holdout.items() if k != "ids"}}
            readers["kb_plus_extra_reader"] = Reader.from_dir(Path(tmp) / "extra",
                                                              device=args.device)
        results: dict[str, Any] = {}
        kb_test = load_qa(args.kb_test) if args.kb_test.exists() else []
        for label, reader in readers.items():
            results[label] = {name: evaluate(reader, index, examples, gold, args)}
            if kb_test and args.extra_qa:
                results[label]["kb_test_gold_context"] = reader_scores(reader, kb_test)
    report = {"benchmark": "qa_public", "data": name, "questions": len(examples),
              "passages": len(docs), "gold_passages": len(used), "index_seconds": index_seconds,
              "iterations": args.iterations, "device": args.device, "readers": results,
              "extra_training": training, **environment(),
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
