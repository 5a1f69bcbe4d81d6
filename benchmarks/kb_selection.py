"""How often the sentence selection puts a sentence that holds the answer first (and in the
first three), on each test set, from a trained knowledge directory; no reader runs.

    python benchmarks/kb_selection.py                          # models/knowledge
    python benchmarks/kb_selection.py --encoder /tmp/enc       # another sentence encoder

Per test set, over the answerable questions: `top1` (the best-ranked sentence holds a gold
answer: what caps the right-answer rate), `top3`, `candidates` (any candidate does), and the
top-1 misses by kind:

* `split`: no single sentence of the gold document holds the answer (it runs over two
  sentences, or over a table row and its header);
* `wrong_doc`: the best sentence is from another document;
* `right_doc`: the best sentence is from the gold document, but another sentence of it holds
  the answer.

The selection is the knowledge directory's own (knowledge.json's calibration). Prints ONE JSON
line and appends it to benchmarks/results/kb_selection.jsonl.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import (add_knowledge_args, add_machine_args, emit,  # noqa: E402
                               environment, script_parser, set_threads)
from retrieval.answerer import load_answerer  # noqa: E402
from retrieval.kb_eval import contains_answer, doc_key  # noqa: E402
from retrieval.qa_metrics import load_qa  # noqa: E402
from retrieval.sentence_ranker import Calibration, SentenceRanker  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "kb_selection.jsonl"
TEST_SETS = "tests/kb_dev.json,tests/kb_test.json,tests/kb_blind.json"


def parse_args(argv: list[str] | None = None) -> Any:
    p = script_parser(__doc__)
    add_knowledge_args(p)
    p.add_argument("--tests", default=TEST_SETS)
    p.add_argument("--encoder", type=Path, default=None,
                   help="another sentence encoder folder (its sentence vectors are encoded)")
    p.add_argument("--label", default="", help="a name for this run in the result line")
    add_machine_args(p, RESULTS, device=False)
    return p.parse_args(argv)


def selection_scores(ranker: SentenceRanker, answerer: Any, path: Path,
                     calibration: Calibration) -> dict[str, Any]:
    examples = [e for e in load_qa(path) if not e.is_impossible]
    questions = [e.question for e in examples]
    hits = answerer.retrieve(questions)
    candidates = ranker.candidates(questions, hits, calibration.selection)
    sentences = ranker.table.sentences
    top1 = top3 = found = 0
    misses = {"split": 0, "wrong_doc": 0, "right_doc": 0}
    for e, cands in zip(examples, candidates):
        holds = [contains_answer(sentences[c.sentence].text, e.answer_texts) for c in cands]
        top1 += bool(holds[:1] and holds[0])
        top3 += any(holds[:3])
        found += any(holds)
        if holds[:1] and holds[0]:
            continue
        gold_doc = doc_key(e.title)
        in_doc = any(contains_answer(s.text, e.answer_texts) for s in sentences
                     if doc_key(s.doc_id) == gold_doc)
        if not in_doc:
            misses["split"] += 1
        elif cands and doc_key(cands[0].doc_id) != gold_doc:
            misses["wrong_doc"] += 1
        else:
            misses["right_doc"] += 1
    n = max(1, len(examples))
    return {"answerable": len(examples), "top1": round(top1 / n, 4), "top3": round(top3 / n, 4),
            "candidates": round(found / n, 4), "top1_misses": misses}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    from retrieval.embedder import SentenceTransformerEmbedder

    answerer = load_answerer(args.knowledge_dir)
    ranker = answerer.ranker
    if ranker is None:
        raise SystemExit(f"{args.knowledge_dir} has no sentence encoder (knowledge format 1)")
    if args.encoder is not None:
        encoder = SentenceTransformerEmbedder(str(args.encoder))
        vectors = encoder.encode([s.search_text for s in ranker.table.sentences])
        ranker = SentenceRanker(ranker.table, ranker.passages, encoder, vectors)
    started = time.perf_counter()
    sets = {Path(p).stem: selection_scores(ranker, answerer, ROOT / p, answerer.calibration)
            for p in args.tests.split(",") if p}
    report = {"benchmark": "kb_selection", "label": args.label,
              "knowledge_dir": str(args.knowledge_dir),
              "encoder": str(args.encoder) if args.encoder else "built", "sets": sets,
              "seconds": round(time.perf_counter() - started, 1), **environment()}
    emit(report, Path(args.out))


if __name__ == "__main__":
    main()
