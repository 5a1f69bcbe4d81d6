"""Where the highlighted span loses F1: in the right sentence, or because the sentence is wrong.

    python benchmarks/kb_span.py                                  # models/knowledge
    python benchmarks/kb_span.py --knowledge-dir models_span/knowledge

Per test set (tests/kb_test.json and the blind tests/kb_blind.json by default), over the
answerable questions, with the sentence the answerer chose before its confidence threshold:

* `sentence_right`: the share whose chosen sentence holds a gold answer;
* `in_right_sentence`: span EM/F1 on those (the reader's part);
* `in_wrong_sentence`: span EM/F1 on the others (the sentence choice's part);
* `all`: span EM/F1 over all answerable questions (pre-threshold);
* `gold_sentence`: span EM/F1 when the reader reads the KB sentence that holds the gold
  answer (the reader alone, sentence choice taken out).

Prints ONE JSON line and appends it to benchmarks/results/kb_span.jsonl.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import (KB_TEST_SETS, add_knowledge_args,  # noqa: E402
                               add_machine_args, emit, environment, script_parser, set_threads)
from retrieval.answerer import Answerer, load_answerer  # noqa: E402
from retrieval.kb_eval import contains_answer, doc_key  # noqa: E402
from retrieval.qa_metrics import QAExample, exact_match, f1, load_qa  # noqa: E402
from retrieval.sentences import answer_sentences  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "kb_span.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser(__doc__)
    add_knowledge_args(p)
    p.add_argument("--tests", default=KB_TEST_SETS)
    p.add_argument("--limit", type=int, default=None)
    add_machine_args(p, RESULTS, device=False)
    return p.parse_args(argv)


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def _scores(pairs: list[tuple[str | None, list[str]]]) -> dict[str, Any]:
    return {"n": len(pairs), "exact": _mean([exact_match(p, g) for p, g in pairs]),
            "f1": _mean([f1(p, g) for p, g in pairs])}


def gold_sentence_texts(answerer: Answerer, kb: Path,
                        examples: list[QAExample]) -> list[str | None]:
    """The text of the KB sentence holding each example's first gold answer (None: not found)."""
    from retrieval.passages import load_documents

    table = answerer.ranker.table if answerer.ranker is not None else None
    if table is None:
        return [None] * len(examples)
    texts = {d.id: d.text for d in load_documents(kb)}
    by_key = {doc_key(d): d for d in texts}
    out: list[str | None] = []
    for e in examples:
        ids = answer_sentences(table, texts, by_key.get(doc_key(e.title)), e.context, e.answers)
        out.append(table.sentences[ids[0]].text if ids else None)
    return out


def span_split(answerer: Answerer, kb: Path, examples: list[QAExample]) -> dict[str, Any]:
    answerable = [e for e in examples if not e.is_impossible]
    traces = []
    for b in range(0, len(answerable), 16):
        traces += answerer.trace_batch([e.question for e in answerable[b:b + 16]])
    right, wrong, every = [], [], []
    for e, t in zip(answerable, traces):
        best = t.best if t.best is not None else t.answer
        pair = (best.text, e.answer_texts)
        every.append(pair)
        (right if contains_answer(best.sentence, e.answer_texts) else wrong).append(pair)
    gold = gold_sentence_texts(answerer, kb, answerable)
    found = [(e, s) for e, s in zip(answerable, gold) if s is not None]
    read = answerer.reader.read_pairs([e.question for e, _ in found], [s for _, s in found])
    return {"answerable": len(answerable),
            "sentence_right": round(len(right) / max(1, len(answerable)), 4),
            "in_right_sentence": _scores(right), "in_wrong_sentence": _scores(wrong),
            "all": _scores(every),
            "gold_sentence": _scores([(r.best.text if r.best else None, e.answer_texts)
                                      for (e, _), r in zip(found, read)])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    set_threads(args.threads)
    answerer = load_answerer(args.knowledge_dir).load()
    sets = {}
    for name in args.tests.split(","):
        path = ROOT / name if not Path(name).is_absolute() else Path(name)
        if path.is_file():
            sets[path.stem] = span_split(answerer, args.kb, load_qa(path, limit=args.limit))
    report = {"benchmark": "kb_span", "knowledge_dir": str(args.knowledge_dir), "sets": sets,
              **environment(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
