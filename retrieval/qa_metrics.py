"""Extractive QA data and metrics: SQuAD-format loading, the official SQuAD answer
normalisation, exact match and token F1 (SQuAD 2.0: an unanswerable question is right only when
the prediction is empty), and retrieval recall@k / MRR.

Loads SQuAD JSON (`{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}`, v1.1 or
v2.0) and the flat JSONL of /work/shared-style benchmark data (`{"id", "title", "context",
"question", "answers": [{"text", "answer_start"}], "is_impossible"}` a line).
"""

from __future__ import annotations

import collections
import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.errors import CorpusError

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


@dataclass(frozen=True, slots=True)
class QAExample:
    """One question over one context. `answers` holds (text, char start) pairs with
    `context[start:start + len(text)] == text`; empty for an unanswerable question.
    `alternatives` are answers the knowledge base states elsewhere, in other documents'
    words (a test file's optional `alternatives`: [{"text", "doc"}], written by an auditor
    who saw the documents and the questions, never a model's answers): a reply holding one
    is right too (`accepted_texts`)."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    title: str = ""
    alternatives: tuple[str, ...] = ()

    @property
    def is_impossible(self) -> bool:
        return not self.answers

    @property
    def answer_texts(self) -> list[str]:
        return [text for text, _ in self.answers]

    def accepted_texts(self, alternatives: bool = True) -> list[str]:
        """The gold answers, and with `alternatives` the ones stated elsewhere."""
        return self.answer_texts + (list(self.alternatives) if alternatives else [])


def load_qa(path: str | Path, *, limit: int | None = None) -> list[QAExample]:
    """Examples of a SQuAD JSON file or a QA JSONL file; `limit` keeps the first n."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{source}: cannot read QA data ({exc})") from exc
    try:
        if source.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            examples = [_from_row(r, source) for r in rows]
        else:
            examples = list(examples_from_squad(json.loads(text), source=str(source)))
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{source}: invalid JSON ({exc.msg}, line {exc.lineno})") from exc
    return examples[:limit] if limit is not None else examples


def examples_from_squad(data: Mapping[str, Any], *, source: str = "<squad>") -> Iterable[QAExample]:
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), list):
        raise CorpusError(f"{source}: not SQuAD-format QA data (no 'data' list)")
    for article in data["data"]:
        title = str(article.get("title", ""))
        for paragraph in article.get("paragraphs", []):
            context = paragraph["context"]
            for qa in paragraph.get("qas", []):
                yield _from_row({**qa, "context": context, "title": title}, source)


def _from_row(row: Mapping[str, Any], source: Path | str) -> QAExample:
    try:
        context, question = str(row["context"]), str(row["question"])
        impossible = bool(row.get("is_impossible", False))
        answers = [] if impossible else list(row.get("answers") or [])
        pairs = tuple((str(a["text"]), int(a["answer_start"])) for a in answers)
        others = [] if impossible else list(row.get("alternatives") or [])
        alternatives = tuple(str(a["text"] if isinstance(a, Mapping) else a) for a in others)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorpusError(f"{source}: bad QA record {row.get('id', '?')} ({exc})") from exc
    for text, start in pairs:
        if context[start:start + len(text)] != text:
            raise CorpusError(f"{source}: answer {text!r} of {row.get('id')} is not at "
                              f"{start} in its context")
    return QAExample(str(row.get("id", "")), question, context, pairs, str(row.get("title", "")),
                     alternatives)


# ------------------------------------------------------------------ answer metrics

def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and English articles, squeeze whitespace (SQuAD)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str | None, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer; with no gold
    answers (unanswerable) 1.0 only for an empty prediction."""
    pred = normalize_answer(prediction or "")
    if not golds:
        return float(pred == "")
    return max(float(pred == normalize_answer(g)) for g in golds)


def f1(prediction: str | None, golds: Sequence[str]) -> float:
    """Token-overlap F1 against the best gold answer (SQuAD); unanswerable as exact_match."""
    if not golds:
        return exact_match(prediction, golds)
    return max(_f1(normalize_answer(prediction or "").split(), normalize_answer(g).split())
               for g in golds)


def _f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Mapping[str, str | None],
                 examples: Sequence[QAExample]) -> dict[str, float]:
    """EM/F1 over all, answerable ("has_ans") and unanswerable ("no_ans", = no-answer
    accuracy) examples, in percent-free fractions, with counts; against the gold answers
    and the alternatives (`accepted_texts`), as every test-set score is."""
    groups: dict[str, list[tuple[float, float]]] = {"all": [], "has_ans": [], "no_ans": []}
    for ex in examples:
        pred = predictions.get(ex.id)
        golds = ex.accepted_texts()
        pair = (exact_match(pred, golds), f1(pred, golds))
        groups["all"].append(pair)
        groups["no_ans" if ex.is_impossible else "has_ans"].append(pair)
    out: dict[str, float] = {}
    for name, pairs in groups.items():
        out[f"{name}_count"] = len(pairs)
        out[f"{name}_exact"] = _mean([p[0] for p in pairs])
        out[f"{name}_f1"] = _mean([p[1] for p in pairs])
    return out


# ------------------------------------------------------------------ retrieval metrics

def first_hit_rank(hits: Sequence[bool]) -> int | None:
    """1-based rank of the first relevant result, None when none is relevant."""
    return next((rank for rank, hit in enumerate(hits, 1) if hit), None)


def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of queries whose first relevant result is within the top k."""
    return _mean([1.0 if r is not None and r <= k else 0.0 for r in ranks])


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float:
    return _mean([1.0 / r if r else 0.0 for r in ranks])


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
