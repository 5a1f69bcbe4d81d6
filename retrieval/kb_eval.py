"""Evaluate the knowledge-base question answering on a SQuAD-format test set.

    answerer = load_answerer("models/knowledge")
    result = evaluate_kb(answerer, "tests/kb_test.json", out_path="kb_report.json",
                         reliability_png="kb_reliability.png")

Evaluation: retrieval recall@1/@5 and MRR on answerable questions (a hit is a retrieved
passage of the gold document - the SQuAD title is the document path without suffix - that
contains a gold answer text); what the guest reads (`sentence`): the share of answerable
questions whose reply (the answer sentence, with the sentence before or after it that it
shows) contains a gold answer or one of the test file's `alternatives` (answered and right;
`answered_right_gold_only` without the alternatives, `answered_right_sentence` in the
answer sentence alone), the same before the confidence threshold (the best sentence), the
share answered, and the share of unanswerable ones declined; span EM/F1 on answerable
questions through the whole pipeline and with the gold context (reader alone); the
reliability of the confidence (10 bins, expected calibration error, ROC AUC; a PNG diagram
when asked); latency per question; the wrong answers.
"""

from __future__ import annotations

import bisect
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from retrieval.answerer import Answer, Answerer, AnswerTrace
from retrieval.qa_metrics import (QAExample, exact_match, f1, first_hit_rank, load_qa,
                                  mean_reciprocal_rank, normalize_answer, percentile, recall_at_k,
                                  squad_scores)

logger = logging.getLogger(__name__)

_SUFFIXES = (".md", ".markdown", ".txt", ".json", ".jsonl")


def doc_key(doc_id: str) -> str:
    """A document id without its file suffix ("policies/pets.md" -> "policies/pets")."""
    path = PurePosixPath(doc_id)
    return str(path.with_suffix("")) if path.suffix in _SUFFIXES else doc_id


def is_hit(hit_doc_id: str, passage_text: str, example: QAExample) -> bool:
    return doc_key(hit_doc_id) == doc_key(example.title) and any(
        a and a in passage_text for a in example.answer_texts)


def contains_answer(sentence: str | None, golds: Sequence[str]) -> bool:
    """Whether `sentence` holds one of the gold answers (SQuAD-normalised)."""
    if not sentence:
        return False
    norm = normalize_answer(sentence)
    return any(normalize_answer(g) and normalize_answer(g) in norm for g in golds)


def reliability(confidences: Sequence[float], correct: Sequence[bool],
                bins: int = 10) -> dict[str, Any]:
    """Per confidence bin: count, mean confidence, accuracy; and the expected calibration
    error (the count-weighted mean |accuracy - confidence|)."""
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(confidences) if lo <= c < hi or (b == bins - 1
                                                                          and c == 1.0)]
        if idx:
            rows.append({"bin": [round(lo, 2), round(hi, 2)], "count": len(idx),
                         "confidence": round(sum(confidences[i] for i in idx) / len(idx), 4),
                         "accuracy": round(sum(correct[i] for i in idx) / len(idx), 4)})
    n = max(1, len(confidences))
    ece = sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / n
    return {"bins": rows, "ece": round(ece, 4), "auc": roc_auc(confidences, correct),
            "questions": len(confidences)}


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """The probability that a right answer scores above a wrong one (ties count half): how
    well the confidence orders answers, whatever the threshold; None without both kinds."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return None
    ranked = sorted(neg)
    wins = 0.0
    for s in pos:
        below = bisect.bisect_left(ranked, s)
        wins += below + 0.5 * (bisect.bisect_right(ranked, s) - below)
    return round(wins / (len(pos) * len(neg)), 4)


def plot_reliability(table: Mapping[str, Any], path: str | Path, title: str = "") -> Path:
    """The reliability diagram of `reliability()` as a PNG (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    rows = table["bins"]
    centres = [(r["bin"][0] + r["bin"][1]) / 2 for r in rows]
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    top.bar(centres, [r["accuracy"] for r in rows], width=0.09, alpha=0.7, label="accuracy")
    top.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o-",
             color="black", label="share right at the bin's mean confidence")
    top.set_ylabel("share right (sentence holds the answer)")
    top.set_title(f"{title}  ECE {table['ece']:.3f}".strip())
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, [r["count"] for r in rows], width=0.09, color="grey")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("questions")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def evaluate_kb(answerer: Answerer, test_path: str | Path | Sequence[QAExample], *,
                batch_size: int = 1, limit: int | None = None, gold_context: bool = True,
                out_path: str | Path | None = None, max_errors: int = 500,
                reliability_png: str | Path | None = None) -> dict[str, Any]:
    """The evaluation report (a JSON-able dict; also written to `out_path`). `batch_size=1`
    times each question alone, as a user would see it."""
    examples = (load_qa(test_path) if isinstance(test_path, (str, Path))
                else list(test_path))[:limit]
    answerer.load()
    traces: list[AnswerTrace] = []
    started = time.perf_counter()
    for b in range(0, len(examples), batch_size):
        traces += answerer.trace_batch([e.question for e in examples[b:b + batch_size]])
    seconds = time.perf_counter() - started
    answerable = [(e, t) for e, t in zip(examples, traces) if not e.is_impossible]
    ranks = [first_hit_rank([is_hit(h.passage.doc_id, h.passage.text, e) for h in t.hits])
             for e, t in answerable]
    predictions = {e.id: t.answer.text for e, t in zip(examples, traces)}
    pipeline = _summary(squad_scores(predictions, examples))
    report: dict[str, Any] = {
        "test_path": str(test_path) if isinstance(test_path, (str, Path)) else "<examples>",
        "questions": len(examples), "answerable": len(answerable),
        "unanswerable": len(examples) - len(answerable),
        "retrieval": {"recall@1": round(recall_at_k(ranks, 1), 4),
                      "recall@5": round(recall_at_k(ranks, 5), 4),
                      "mrr": round(mean_reciprocal_rank(ranks), 4),
                      "top_k": answerer.config.top_k},
        "pipeline": pipeline,
        "sentence": sentence_scores(examples, traces),
    }
    best = [_best(t) for t in traces]
    right = [not e.is_impossible and b.text is not None and contains_answer(
        b.sentence, e.accepted_texts()) for e, b in zip(examples, best)]
    report["reliability"] = reliability([b.confidence for b in best], right)
    report["reliability"]["threshold"] = answerer.threshold
    if reliability_png is not None:
        name = (Path(str(test_path)).name if isinstance(test_path, (str, Path))
                else Path(reliability_png).stem)
        report["reliability"]["png"] = str(plot_reliability(report["reliability"],
                                                             reliability_png, name))
    if gold_context:
        read = answerer.reader.read_pairs([e.question for e in examples],
                                          [e.context for e in examples])
        report["gold_context"] = _summary(squad_scores(
            {e.id: r.text for e, r in zip(examples, read)}, examples))
    per_q = [t.retrieve_ms + t.read_ms for t in traces]
    report["latency_ms"] = {
        "batch_size": batch_size, "mean": round(seconds * 1000 / max(1, len(examples)), 2),
        "p50": round(percentile(per_q, 50), 2), "p95": round(percentile(per_q, 95), 2),
        "retrieve_p50": round(percentile([t.retrieve_ms for t in traces], 50), 2),
        "read_p50": round(percentile([t.read_ms for t in traces], 50), 2)}
    report["settings"] = {"reader": answerer.reader.config.to_dict(),
                          "mode": "sentence" if answerer.ranker is not None else "passage",
                          "answerer": {"top_k": answerer.config.top_k,
                                       "read_k": answerer.config.read_k,
                                       "min_confidence": answerer.config.min_confidence,
                                       "retrieval_temperature":
                                           answerer.config.retrieval_temperature}}
    rank_of = {e.id: r for (e, _), r in zip(answerable, ranks)}
    errors = [err for e, t in zip(examples, traces)
              if (err := _error(e, t, rank_of.get(e.id))) is not None]
    report["error_counts"] = _count(err["kind"] for err in errors)
    report["errors"] = errors[:max_errors]
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                  encoding="utf-8")
    logger.info("retrieval.kb_eval recall@5=%.3f answered_right=%.3f f1=%.3f no_answer=%.3f",
                report["retrieval"]["recall@5"], report["sentence"]["answered_right"],
                pipeline["f1"], pipeline["no_answer_accuracy"])
    return report


def sentence_scores(examples: Sequence[QAExample],
                    traces: Sequence[AnswerTrace]) -> dict[str, float]:
    """What the guest reads: see the module docstring."""
    pairs = [(e, t) for e, t in zip(examples, traces) if not e.is_impossible]
    none = [t for e, t in zip(examples, traces) if e.is_impossible]
    n = max(1, len(pairs))
    return {
        "answered_right": round(sum(contains_answer(t.answer.reply, e.accepted_texts())
                                    for e, t in pairs) / n, 4),
        "answered_right_gold_only": round(sum(contains_answer(t.answer.reply,
                                                              e.answer_texts)
                                              for e, t in pairs) / n, 4),
        "answered_right_sentence": round(sum(contains_answer(t.answer.sentence,
                                                             e.accepted_texts())
                                             for e, t in pairs) / n, 4),
        "best_sentence_right": round(sum(contains_answer(_best(t).sentence,
                                                         e.accepted_texts())
                                         for e, t in pairs) / n, 4),
        "answered": round(sum(t.answer.text is not None for _, t in pairs) / n, 4),
        "declined_unanswerable": round(sum(t.answer.text is None for t in none)
                                       / max(1, len(none)), 4)}


def _best(trace: AnswerTrace) -> Answer:
    """The answer before the confidence threshold (the answer itself in passage mode)."""
    return trace.best if trace.best is not None else trace.answer


def _summary(scores: Mapping[str, float]) -> dict[str, float]:
    return {"exact": round(scores["has_ans_exact"], 4), "f1": round(scores["has_ans_f1"], 4),
            "no_answer_accuracy": round(scores["no_ans_exact"], 4),
            "overall_exact": round(scores["all_exact"], 4),
            "overall_f1": round(scores["all_f1"], 4)}


def _error(example: QAExample, trace: AnswerTrace, rank: int | None) -> dict[str, Any] | None:
    answer = trace.answer
    golds = example.accepted_texts()
    if exact_match(answer.text, golds) == 1.0:
        return None
    if example.is_impossible:
        kind = "false_answer"
    elif rank is None:
        kind = "retrieval_miss"
    elif answer.text is None:
        kind = "missed_answer"
    else:
        kind = "wrong_span"
    top = trace.hits[0].passage.doc_id if trace.hits else None
    return {"id": example.id, "kind": kind, "question": example.question, "expected": golds,
            "predicted": answer.text, "f1": round(f1(answer.text, golds), 3),
            "confidence": answer.confidence, "answer_doc": answer.doc_id, "gold_doc":
            example.title, "gold_rank": rank, "top_doc": top}


def _count(kinds: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in kinds:
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))
