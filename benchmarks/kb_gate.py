"""Where the answer confidence stands: per test set, how many right answers it lets through
for each share of unanswerable questions it declines; the answerer alone, no NLU.

    python benchmarks/kb_gate.py                                   # models/knowledge
    python benchmarks/kb_gate.py --tests tests/kb_dev.json,/path/dev.json --label mine

Per test set: `ceiling` (the share of answerable questions whose best sentence, before the
threshold, holds a gold answer: what the gate can let through at most), `auc` (the
confidence orders right answers above the rest: wrong sentences and unanswerable
questions), `right` and `declined` at the knowledge directory's threshold, and `right_at`:
the share answered right at the lowest confidence threshold that declines at least 0.8,
0.85 and 0.9 of the unanswerable questions. Compare confidences by `right_at`, not by
`right` and `declined` alone: a new confidence comes with a new threshold, and a threshold
that moves trades one for the other (session 9: features that lifted `right` by 4 points
cost as much `declined`). Prints ONE JSON line, appended to benchmarks/results/kb_gate.jsonl.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import (add_knowledge_args, add_machine_args, emit,  # noqa: E402
                               environment, script_parser, set_threads)
from retrieval.answerer import RUNTIMES, load_answerer  # noqa: E402
from retrieval.kb_eval import contains_answer, roc_auc  # noqa: E402
from retrieval.qa_metrics import load_qa  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "kb_gate.jsonl"
TEST_SETS = "tests/kb_dev.json,tests/kb_test.json"  # never tune on the blind sets
DECLINED_TARGETS = (0.8, 0.85, 0.9)


def parse_args(argv: list[str] | None = None) -> Any:
    p = script_parser(__doc__)
    add_knowledge_args(p)
    p.add_argument("--tests", default=TEST_SETS, help="comma-separated SQuAD-format files")
    p.add_argument("--label", default="", help="a name for this run in the result line")
    p.add_argument("--runtime", choices=RUNTIMES, default=None,
                   help="what runs the models (default: as the knowledge dir was built)")
    p.add_argument("--gold-only", action="store_true",
                   help="score the gold answers only, not the test files' `alternatives` "
                        "(the figures before session 17)")
    add_machine_args(p, RESULTS, device=False)
    return p.parse_args(argv)


def gate_rows(answerer: Any, path: Path, alternatives: bool = True
              ) -> list[tuple[float, bool, bool]]:
    """Per question of `path`: (confidence, answerable, its best sentence holds a gold
    answer, or with `alternatives` one the knowledge base states elsewhere)."""
    examples = load_qa(path)
    traces = answerer.trace_batch([e.question for e in examples])
    rows = []
    for e, trace in zip(examples, traces):
        best = trace.best
        right = (not e.is_impossible and best is not None
                 and contains_answer(best.sentence or best.text, e.accepted_texts(alternatives)))
        rows.append((float(trace.answer.confidence), not e.is_impossible, bool(right)))
    return rows


def tradeoff(rows: Sequence[tuple[float, bool, bool]], threshold: float) -> dict[str, Any]:
    """The gate's figures (module docstring) over `rows` of gate_rows."""
    answerable = [(c, r) for c, a, r in rows if a]
    unanswerable = [c for c, a, _ in rows if not a]

    def right_at(t: float) -> float:
        return sum(r and c >= t for c, r in answerable) / max(1, len(answerable))

    def declined_at(t: float) -> float:
        return sum(c < t for c in unanswerable) / len(unanswerable) if unanswerable else 1.0

    # the candidate thresholds: just above each unanswerable confidence (and 0)
    cuts = sorted({0.0, *(c + 1e-9 for c in unanswerable)})
    at = {}
    for target in DECLINED_TARGETS:
        t = next((t for t in cuts if declined_at(t) >= target), None)
        at[str(target)] = round(right_at(t), 4) if t is not None else 0.0
    return {"answerable": len(answerable), "unanswerable": len(unanswerable),
            "ceiling": round(sum(r for _, r in answerable) / max(1, len(answerable)), 4),
            "auc": roc_auc([c for c, _, _ in rows], [r for _, _, r in rows]),
            "threshold": threshold, "right": round(right_at(threshold), 4),
            "declined": round(declined_at(threshold), 4), "right_at": at}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    answerer = load_answerer(args.knowledge_dir, runtime=args.runtime).load()
    if answerer.ranker is None:
        raise SystemExit(f"{args.knowledge_dir} has no sentence encoder (knowledge format 1)")
    started = time.perf_counter()
    sets = {}
    for p in (p for p in args.tests.split(",") if p):
        path = Path(p) if Path(p).is_absolute() else ROOT / p
        sets[path.stem] = tradeoff(gate_rows(answerer, path, not args.gold_only),
                                   answerer.threshold)
    report = {"benchmark": "kb_gate", "label": args.label,
              "knowledge_dir": str(args.knowledge_dir), "sets": sets,
              "seconds": round(time.perf_counter() - started, 1), **environment()}
    emit(report, Path(args.out))


if __name__ == "__main__":
    main()
