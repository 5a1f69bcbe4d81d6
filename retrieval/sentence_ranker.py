"""Choose the answer sentence, and say how sure we are, from retrieval evidence.

Per question the candidates are the sentences of the retrieved passages plus the `extra` best
sentences of the whole knowledge base by the fine-tuned sentence encoder (and by BM25). The
encoder, BM25 and the answer kind read the question with its typos corrected to the KB's own
words (retrieval.spelling: "breakfaast" -> "breakfast"). Each candidate gets
FEATURES: the encoder cosine, BM25 over sentences (relative to the best, and raw), the
reciprocal rank of the best retrieved passage that holds it, and `type_miss`: the question
asks for a kind of answer (a price, a time, a duration, a number) that the sentence does not
hold (retrieval.answer_types), and `place_clash`: the question names a hotel or city and
the sentence's document is about another one or the sentence names only other hotels
(retrieval.question_evidence). The selection model is a conditional logit: a linear score
per candidate, softmax over the question's candidates, fitted on held-out questions by
maximising the probability of the gold sentence (a ranking loss: pooled per-candidate
logistic regression learnt to separate questions, not sentences); the best candidate is the
answer sentence and its softmax share is `prob`.

The answer's CONFIDENCE is a second logistic regression (`Calibration`) over the evidence of
the whole answer (CONFIDENCE_FEATURES: the selection probability of the best candidate and its
re-rank share, the encoder cosine, BM25, the reader's span-minus-null gap inside the sentence,
`type_miss`, the cosine's margin over the best other candidate, and the selection share of
the candidates from the answer's document, and retrieval.question_evidence: how much of the
question's content words the sentence, its document and the KB cover, and whether the question
names another hotel or city), fitted on held-out questions, guest-voice ones and generated
unanswerable ones with the label "the sentence holds the gold answer". Its output is a
probability; `threshold`, chosen on the same held-out slice, decides answer or decline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from retrieval.answer_types import fits, question_kinds, sentence_kinds
from retrieval.bm25 import BM25
from retrieval.errors import RetrievalConfigError
from retrieval.question_evidence import EVIDENCE_FEATURES, QuestionEvidence
from retrieval.sentences import SentenceTable
from retrieval.spelling import TypoCorrector, known_words
from retrieval.types import Embedder, Passage, SearchHit

FEATURES = ("cosine", "bm25_rel", "bm25", "passage_rr", "type_miss", "place_clash")
RERANK_FEATURES = ("select_logp", "reader_gap")
# the reranker (retrieval.reranker) reorders the first `cross_k` candidates by a conditional
# logit over their log selection share and its score; the answer's confidence reads its score
# and its share among them
CROSS_FEATURES = ("select_logp", "cross")
CROSS_CONFIDENCE = ("cross", "cross_p")
# rerank_lead is not among them: nearly a function of rerank_p (three candidates), it took
# weight from it; without it held-out kb_test answered-and-right went 0.536 -> 0.617 at the
# same unanswerable declined (0.905), same calibration slice.
# the question's word and place evidence against the answer (question_evidence) joined in
# session 6: guest-voice dev set (tests/kb_dev.json) AUC 0.733 -> 0.772, and at the same share
# of unanswerable questions declined (0.81) 0.53 instead of 0.49 answered right (same
# calibration slice, guest questions included)
CONFIDENCE_FEATURES = ("select_p", "rerank_p", "cosine", "bm25_rel", "reader_gap", "type_miss",
                       "cos_margin", "doc_share", *EVIDENCE_FEATURES)
READER_GAP_CLIP = 10.0  # the reader's logit gap, clipped: beyond it nothing changes
CROSS_CLIP = 10.0  # the reranker's score, clipped and scaled alike


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


# Untrained defaults: encoder cosine dominates, BM25 and the passage rank break ties; a
# sentence without an answer of the asked kind loses as much as 0.1 of cosine (chosen on
# the guest-voice dev set and qa.json's held-out split: top-1 sentence 0.706 -> 0.735 and
# 0.560 -> 0.575; -1: 0.721, 0.575; -3: 0.735, 0.571).
# A place clash (the question names a hotel or city, the sentence's document is about another
# or the sentence names only other hotels) costs as much as 0.15 of cosine (session 11, dev
# set: best sentence 0.794 -> 0.809 at -1.5, -3 and -6 alike; -3 chosen).
DEFAULT_SELECTION = Logistic(FEATURES, (20.0, 1.0, 0.0, 1.0, -2.0, -3.0), 0.0)
DEFAULT_RERANK = Logistic(RERANK_FEATURES, (1.0, 0.0), 0.0)  # keeps the selection's order
DEFAULT_CROSS = Logistic(CROSS_FEATURES, (1.0, 10.0), 0.0)  # about select_logp + raw score
DEFAULT_CONFIDENCE = Logistic(CONFIDENCE_FEATURES, (2.0, 2.0, 4.0, 0.0, 0.2, -1.0, 0.0, 1.0,
                                                    1.0, 0.0, 0.0, -0.5, 0.0), -5.0)


@dataclass(frozen=True, slots=True)
class Calibration:
    """The models of knowledge.json: the `selection` and `rerank` conditional logits (the
    reader reads the first `rerank_k` selected sentences, and its span-minus-null gap joins
    the selection score), the `confidence` regression, and the confidence `threshold` in
    [0, 1] at or above which the knowledge base answers. With a reranker, `cross` reorders
    the first `cross_k` selected sentences first (0: no reranker)."""

    selection: Logistic = DEFAULT_SELECTION
    confidence: Logistic = DEFAULT_CONFIDENCE
    threshold: float = 0.5
    report: dict[str, Any] = field(default_factory=dict)
    rerank: Logistic = DEFAULT_RERANK
    rerank_k: int = 3
    cross: Logistic = DEFAULT_CROSS
    cross_k: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise RetrievalConfigError(f"confidence threshold must be in [0, 1], got "
                                       f"{self.threshold}")
        if self.rerank_k < 1 or self.cross_k < 0:
            raise RetrievalConfigError(f"rerank_k must be >= 1 and cross_k >= 0, got "
                                       f"{self.rerank_k} and {self.cross_k}")

    def to_dict(self) -> dict[str, Any]:
        return {"selection": self.selection.to_dict(), "rerank": self.rerank.to_dict(),
                "rerank_k": self.rerank_k, "confidence": self.confidence.to_dict(),
                "threshold": self.threshold, "report": self.report,
                "cross": self.cross.to_dict(), "cross_k": self.cross_k}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Calibration:
        if not data:
            return cls()
        rerank = Logistic.from_dict(data["rerank"]) if "rerank" in data else DEFAULT_RERANK
        cross = Logistic.from_dict(data["cross"]) if "cross" in data else DEFAULT_CROSS
        return cls(Logistic.from_dict(data["selection"]), Logistic.from_dict(data["confidence"]),
                   float(data["threshold"]), dict(data.get("report") or {}), rerank,
                   int(data.get("rerank_k", 3)), cross, int(data.get("cross_k", 0)))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A sentence scored for one question: `features` (FEATURES) and selection `prob`;
    `doc_id` is its document's."""

    sentence: int
    features: dict[str, float]
    prob: float = 0.0
    doc_id: str = ""


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
        self.kinds = [sentence_kinds(s.text) for s in table.sentences]
        known = known_words(encoder)
        self.evidence = QuestionEvidence(table, known)
        self.spelling = TypoCorrector([s.search_text for s in table.sentences], known)

    def candidates(self, questions: Sequence[str], hits: Sequence[Sequence[SearchHit]],
                   selection: Logistic) -> list[list[Candidate]]:
        """Per question its candidates, best selection probability first."""
        questions = [self.spelling.correct(q) for q in questions]
        q = self.encoder.encode(questions, query=True)  # (n, dim)
        cos = q @ self.vectors.T  # (n, sentences)
        sparse = self.bm25.search(questions, 3 * self.extra)
        out = []
        for i, question_hits in enumerate(hits):
            expected = question_kinds(questions[i])
            places = self.evidence.named_places(questions[i])
            rr: dict[int, float] = {}
            for h in question_hits:
                for sid in self._sentences_of(h):
                    rr[sid] = max(rr.get(sid, 0.0), 1.0 / h.rank)
            ids = set(rr) | {int(j) for j in np.argsort(-cos[i])[:self.extra]}
            ids |= {k for k, _ in sparse[i][:self.extra]}
            bm = dict(sparse[i])
            top_bm = max(bm.values(), default=0.0) or 1.0
            feats = []
            for sid in sorted(ids):
                c = float(cos[i, sid])
                feats.append((sid, {"cosine": c, "bm25_rel": bm.get(sid, 0.0) / top_bm,
                                    "bm25": bm.get(sid, 0.0) / 10.0,
                                    "passage_rr": rr.get(sid, 0.0),
                                    "type_miss": 1.0 - fits(expected, self.kinds[sid]),
                                    "place_clash": max(
                                        self.evidence.place_clash(
                                            questions[i], self.table.sentences[sid].doc_id,
                                            places),
                                        self.evidence.sentence_clash(sid, places))}))
            shares = softmax_scores([selection.logit(f) for _, f in feats])
            rows = [Candidate(sid, f, p, self.table.sentences[sid].doc_id)
                    for (sid, f), p in zip(feats, shares)]
            out.append(sorted(rows, key=lambda c: (-c.prob, c.sentence)))
        return out

    def _sentences_of(self, hit: SearchHit) -> list[int]:
        slot = self.slot_of.get(hit.passage.id)
        return self.table.by_passage.get(slot, []) if slot is not None else []


def softmax_scores(logits: Sequence[float]) -> list[float]:
    if not logits:
        return []
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [x / total for x in exps]


def fit_selection(groups: Sequence[tuple[Sequence[Mapping[str, float]], Sequence[int]]],
                  features: Sequence[str] = FEATURES, *, l2: float = 1e-4) -> Logistic:
    """The conditional logit over `groups` (per question: candidate feature rows and 0/1 gold
    labels, at least one 1): maximise the mean log softmax share of the gold candidates,
    with an L2 penalty `l2` on the weights. Groups without a gold candidate are skipped."""
    from scipy.optimize import minimize

    data = [(np.array([[r[f] for f in features] for r in rows], dtype=np.float64),
             np.array(labels, dtype=bool)) for rows, labels in groups if any(labels)]
    if not data:
        raise RetrievalConfigError("no held-out question has its gold sentence among the "
                                   "candidates; cannot fit the sentence selection")

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for x, gold in data:
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            share = p[gold].sum()
            total -= math.log(max(share, 1e-300))
            q = np.where(gold, p / max(share, 1e-300), 0.0)  # gold candidates, renormalised
            grad -= q @ x - p @ x
        n = len(data)
        return total / n + l2 * float(w @ w), grad / n + 2 * l2 * w

    start = np.array([DEFAULT_SELECTION.weights[DEFAULT_SELECTION.features.index(f)]
                      if f in DEFAULT_SELECTION.features else 0.0 for f in features])
    result = minimize(loss, start, jac=True, method="L-BFGS-B")
    return Logistic(tuple(features), tuple(float(w) for w in result.x), 0.0)


def clip_gap(gap: float) -> float:
    """The reader's span-minus-null gap scaled to [-1, 1]."""
    return max(-READER_GAP_CLIP, min(READER_GAP_CLIP, gap)) / READER_GAP_CLIP


def cross_features(candidate: Candidate, score: float) -> dict[str, float]:
    return {"select_logp": select_logp(candidate),
            "cross": max(-CROSS_CLIP, min(CROSS_CLIP, score)) / CROSS_CLIP}


def reorder(candidates: Sequence[Candidate], scores: Sequence[float],
            cross: Logistic) -> list[Candidate]:
    """The first len(scores) candidates (scored by the reranker) best `cross` logit first,
    each with its scaled score (`cross`) and its softmax share among them (`cross_p`) in its
    features; the others after them, as they were."""
    head = list(candidates[:len(scores)])
    rows = [cross_features(c, s) for c, s in zip(head, scores)]
    shares = softmax_scores([cross.logit(r) for r in rows])
    scored = [Candidate(c.sentence, {**c.features, "cross": r["cross"], "cross_p": p}, c.prob,
                        c.doc_id) for c, r, p in zip(head, rows, shares)]
    order = sorted(range(len(scored)), key=lambda j: (-shares[j], j))
    return [scored[j] for j in order] + list(candidates[len(scores):])


def rerank_features(candidate: Candidate, reader_gap: float) -> dict[str, float]:
    return {"select_logp": select_logp(candidate), "reader_gap": clip_gap(reader_gap)}


def select_logp(candidate: Candidate) -> float:
    """The log of the candidate's selection share (what the reader's and the reranker's
    re-ranking start from)."""
    return math.log(max(candidate.prob, 1e-12))


@dataclass(frozen=True, slots=True)
class Choice:
    """The answer sentence after re-ranking: `index` into the candidates, its re-rank share
    and lead over the runner-up, and the reader gap inside it."""

    index: int
    share: float
    lead: float
    reader_gap: float


def choose(candidates: Sequence[Candidate], gaps: Sequence[float], rerank: Logistic) -> Choice:
    """The best of the first len(gaps) candidates (read by the reader) by `rerank`."""
    rows = [rerank_features(c, g) for c, g in zip(candidates, gaps)]
    shares = softmax_scores([rerank.logit(r) for r in rows])
    order = sorted(range(len(shares)), key=lambda j: (-shares[j], j))
    best = order[0]
    lead = shares[best] - (shares[order[1]] if len(order) > 1 else 0.0)
    return Choice(best, shares[best], lead, gaps[best])


def confidence_features(candidates: Sequence[Candidate], choice: Choice) -> dict[str, float]:
    """CONFIDENCE_FEATURES of the answer `candidates[choice.index]` (plus rerank_lead, which
    confidences fitted before it was dropped still read): besides its own scores, its
    cosine's margin over the best other candidate's (`cos_margin`) and the selection share of
    all candidates from its document (`doc_share`: the question's document is clear)."""
    candidate = candidates[choice.index]
    others = [c.features["cosine"] for j, c in enumerate(candidates) if j != choice.index]
    return {**{k: candidate.features[k] for k in CROSS_CONFIDENCE if k in candidate.features},
            "select_p": candidate.prob, "rerank_p": choice.share, "rerank_lead": choice.lead,
            "cosine": candidate.features["cosine"], "bm25_rel": candidate.features["bm25_rel"],
            "reader_gap": clip_gap(choice.reader_gap),
            "type_miss": candidate.features.get("type_miss", 0.0),
            "cos_margin": candidate.features["cosine"] - max(others, default=0.0),
            "doc_share": sum(c.prob for c in candidates if c.doc_id == candidate.doc_id)}


def answer_features(ranker: SentenceRanker, question: str, candidates: Sequence[Candidate],
                    choice: Choice) -> dict[str, float]:
    """Everything the confidence may read about the answer: `confidence_features` and the
    question's word and place evidence against the answer sentence
    (retrieval.question_evidence.EVIDENCE_FEATURES)."""
    return {**confidence_features(candidates, choice),
            **ranker.evidence.features(question, candidates[choice.index].sentence)}
