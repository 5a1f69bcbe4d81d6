"""Choose the answer sentence, and say how sure we are, from retrieval evidence.

Per question the candidates are the sentences of the retrieved passages plus the `extra` best
sentences of the whole knowledge base by the fine-tuned sentence encoder. Each candidate gets
FEATURES: the encoder cosine, its gap to the best cosine, BM25 over sentences (relative to the
best, and raw), and the reciprocal rank of the best retrieved passage that holds it. A
logistic regression over them (the selection model, fitted on held-out questions: is this the
gold sentence?) scores the candidates; the best one is the answer sentence.

The answer's CONFIDENCE is a second logistic regression (`Calibration`) over the evidence of
the whole answer (CONFIDENCE_FEATURES: the selection probability of the best candidate and its
lead over the runner-up, the encoder cosine, BM25, and the reader's span-minus-null gap inside
the sentence), fitted on held-out questions and generated unanswerable ones with the label
"the sentence holds the gold answer". Its output is a probability; `threshold`, chosen on the
same held-out slice, decides answer or decline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from retrieval.bm25 import BM25
from retrieval.errors import RetrievalConfigError
from retrieval.sentences import SentenceTable
from retrieval.types import Embedder, Passage, SearchHit

FEATURES = ("cosine", "cosine_gap", "bm25_rel", "bm25", "passage_rr")
CONFIDENCE_FEATURES = ("select_p", "select_lead", "cosine", "bm25_rel", "reader_gap")
READER_GAP_CLIP = 10.0  # the reader's logit gap, clipped: beyond it nothing changes


@dataclass(frozen=True, slots=True)
class Logistic:
    """A fitted logistic regression: p = sigmoid(w . x + b) over named features."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def __post_init__(self) -> None:
        if len(self.features) != len(self.weights):
            raise RetrievalConfigError(f"{len(self.weights)} weights for features "
                                       f"{self.features}")

    def logit(self, values: Mapping[str, float]) -> float:
        return self.bias + sum(w * values[f] for f, w in zip(self.features, self.weights))

    def prob(self, values: Mapping[str, float]) -> float:
        z = self.logit(values)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Logistic:
        return cls(tuple(data["features"]), tuple(float(w) for w in data["weights"]),
                   float(data["bias"]))

    @classmethod
    def fit(cls, rows: Sequence[Mapping[str, float]], labels: Sequence[int],
            features: Sequence[str], *, c: float = 1.0,
            balanced: bool = False) -> Logistic:
        from sklearn.linear_model import LogisticRegression

        if len(set(labels)) < 2:
            raise RetrievalConfigError("cannot fit a logistic regression on one class; "
                                       "the held-out slice needs right and wrong answers")
        x = np.array([[r[f] for f in features] for r in rows], dtype=np.float64)
        model = LogisticRegression(C=c, class_weight="balanced" if balanced else None,
                                   max_iter=1000).fit(x, np.array(labels))
        return cls(tuple(features), tuple(float(w) for w in model.coef_[0]),
                   float(model.intercept_[0]))


# Untrained defaults: encoder cosine dominates, BM25 and the passage rank break ties.
DEFAULT_SELECTION = Logistic(FEATURES, (12.0, 0.0, 1.0, 0.0, 1.0), -8.0)
DEFAULT_CONFIDENCE = Logistic(CONFIDENCE_FEATURES, (4.0, 2.0, 4.0, 0.0, 0.2), -4.0)


@dataclass(frozen=True, slots=True)
class Calibration:
    """The models of knowledge.json: `selection` and `confidence` regressions, and the
    confidence `threshold` in [0, 1] at or above which the knowledge base answers."""

    selection: Logistic = DEFAULT_SELECTION
    confidence: Logistic = DEFAULT_CONFIDENCE
    threshold: float = 0.5
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise RetrievalConfigError(f"confidence threshold must be in [0, 1], got "
                                       f"{self.threshold}")

    def to_dict(self) -> dict[str, Any]:
        return {"selection": self.selection.to_dict(), "confidence": self.confidence.to_dict(),
                "threshold": self.threshold, "report": self.report}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Calibration:
        if not data:
            return cls()
        return cls(Logistic.from_dict(data["selection"]), Logistic.from_dict(data["confidence"]),
                   float(data["threshold"]), dict(data.get("report") or {}))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A sentence scored for one question: `features` (FEATURES) and selection `prob`."""

    sentence: int
    features: dict[str, float]
    prob: float = 0.0


class SentenceRanker:
    """Sentence candidates and their selection scores (see the module docstring)."""

    def __init__(self, table: SentenceTable, passages: Mapping[int, Passage],
                 encoder: Embedder, vectors: np.ndarray, *, extra: int = 10) -> None:
        if vectors.shape[0] != len(table):
            raise RetrievalConfigError(f"{vectors.shape[0]} sentence vectors for "
                                       f"{len(table)} sentences")
        self.table, self.encoder, self.vectors, self.extra = table, encoder, vectors, extra
        self.passages = passages
        self.slot_of = {p.id: slot for slot, p in passages.items()}
        self.bm25 = BM25()
        self.bm25.add(list(range(len(table))), [s.search_text for s in table.sentences])

    def candidates(self, questions: Sequence[str], hits: Sequence[Sequence[SearchHit]],
                   selection: Logistic) -> list[list[Candidate]]:
        """Per question its candidates, best selection probability first."""
        q = self.encoder.encode(list(questions), query=True)  # (n, dim)
        cos = q @ self.vectors.T  # (n, sentences)
        sparse = self.bm25.search(list(questions), 3 * self.extra)
        out = []
        for i, question_hits in enumerate(hits):
            rr: dict[int, float] = {}
            for h in question_hits:
                for sid in self._sentences_of(h):
                    rr[sid] = max(rr.get(sid, 0.0), 1.0 / h.rank)
            ids = set(rr) | {int(j) for j in np.argsort(-cos[i])[:self.extra]}
            ids |= {k for k, _ in sparse[i][:self.extra]}
            bm = dict(sparse[i])
            top_bm = max(bm.values(), default=0.0) or 1.0
            top_cos = float(cos[i].max()) if cos.shape[1] else 0.0
            rows = []
            for sid in ids:
                c = float(cos[i, sid])
                f = {"cosine": c, "cosine_gap": top_cos - c, "bm25_rel": bm.get(sid, 0.0) / top_bm,
                     "bm25": bm.get(sid, 0.0) / 10.0, "passage_rr": rr.get(sid, 0.0)}
                rows.append(Candidate(sid, f, selection.prob(f)))
            out.append(sorted(rows, key=lambda c: (-c.prob, c.sentence)))
        return out

    def _sentences_of(self, hit: SearchHit) -> list[int]:
        slot = self.slot_of.get(hit.passage.id)
        return self.table.by_passage.get(slot, []) if slot is not None else []


def confidence_features(candidates: Sequence[Candidate], reader_gap: float) -> dict[str, float]:
    """CONFIDENCE_FEATURES of an answer whose sentence is candidates[0]."""
    best = candidates[0]
    runner = candidates[1].prob if len(candidates) > 1 else 0.0
    gap = max(-READER_GAP_CLIP, min(READER_GAP_CLIP, reader_gap)) / READER_GAP_CLIP
    return {"select_p": best.prob, "select_lead": best.prob - runner,
            "cosine": best.features["cosine"], "bm25_rel": best.features["bm25_rel"],
            "reader_gap": gap}
