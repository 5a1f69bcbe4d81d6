"""Question answering over the knowledge base: retrieve passages, read them, pick one span.

    answerer = load_answerer("models/knowledge")
    answer = answerer.answer("Can I bring my dog?")   # Answer(text="...", sentence=..., ...)

Pipeline per question: embed -> FAISS (+ BM25 when the index is hybrid) top-k passages ->
reader over each passage -> the best non-null span across passages.

Confidence. For read passage i let s_i be its best span score (start + end logit), g_i =
s_i - null_i its gap over the no-answer score, m the reader's calibrated margin and c_i the
retrieval cosine (the dense score; for a passage only BM25 found, the lowest dense score seen).
The retrieval prior is w_i = softmax_i(c_i / T) (T = `retrieval_temperature`), the share of
passage i is p_i = softmax_i(s_i + log w_i) (span softmax weighted by the retrieval prior) and
its confidence is p_i * sigmoid(g_i - m) (the reader's belief that the span, not "no answer",
is right). Passages whose best spans are the same text (overlapping chunks) add up. A passage
answers only when g_i > m; `Answer.text` is None when none does or the best confidence is
below `min_confidence`. The answer is always `passage.text[span[0]:span[1]]`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.errors import RetrievalConfigError, RetrievalError
from retrieval.follow import follows
from retrieval.qa_metrics import normalize_answer
from retrieval.reader import Reader, ReaderResult
from retrieval.reranker import Reranker
from retrieval.sentence_ranker import (Calibration, Candidate, SentenceRanker, answer_features,
                                       choose, reorder)
from retrieval.sentences import Sentence, SentenceTable
from retrieval.span_choice import choose_span
from retrieval.types import Embedder, SearchHit

logger = logging.getLogger(__name__)

KNOWLEDGE_FILE = "knowledge.json"
INDEX_DIR, READER_DIR, ENCODER_DIR = "index", "reader", "sentence_encoder"
RERANKER_DIR = "reranker"
GRAPHS_DIR = "onnx"  # the models' ONNX graphs (retrieval.onnx_pass), exported from the folders
RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")  # what runs the models; "auto": ONNX
# Runtime on the CPU (faster than PyTorch under bfloat16 autocast too, session 19), with
# INT8_MODELS quantised where the CPU has int8 dot products (session 20); PyTorch on a GPU
INT8_MODELS = ("reranker",)  # the costliest pass (three pairs); the reader's logits mark
# the span (int8 cost 0.01-0.015 span F1 on three of four sets, session 20) and the question
# encoders' vectors meet sentence and passage vectors encoded in float32
SENTENCE_VECTORS = "sentences.npy"
KNOWLEDGE_FORMAT = 2  # 2: sentence answers (encoder, vectors, calibration)
_BULLET = "-*+>#|"


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to one question. `span` and `sentence_span` are (start, end) character
    offsets in `passage` (the passage text); `text` is None when the knowledge base does not
    answer (then `confidence` is that of the best rejected candidate, 0.0 when none)."""

    text: str | None
    score: float
    no_answer_score: float
    doc_id: str | None
    passage_id: str | None
    title: str | None
    span: tuple[int, int] | None
    sentence: str | None
    sentence_span: tuple[int, int] | None
    confidence: float
    passage: str | None = None
    question: str = ""
    lead: str = ""
    follow: str = ""

    @property
    def span_in_sentence(self) -> tuple[int, int] | None:
        """Where `text` sits inside `sentence`."""
        if self.span is None or self.sentence_span is None:
            return None
        return self.span[0] - self.sentence_span[0], self.span[1] - self.sentence_span[0]

    @property
    def reply(self) -> str | None:
        """What the guest reads: the sentence, after the sentence it refers back to when it
        does ("Bikes can be rented at reception. It costs 15 EUR per day."), and before the
        sentence after it when that answers as well (`follow`, retrieval.follow)."""
        if self.sentence is None:
            return self.text
        return " ".join(t for t in (self.lead, self.sentence, self.follow) if t)

    @property
    def span_in_reply(self) -> tuple[int, int] | None:
        """Where `text` sits inside `reply`."""
        inside = self.span_in_sentence
        if inside is None or not self.lead:
            return inside
        shift = len(self.lead) + 1
        return inside[0] + shift, inside[1] + shift

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AnswererConfig:
    """`top_k` passages retrieved, the first `read_k` of them read (None: all);
    `min_confidence` in [0, 1]; `retrieval_temperature` > 0 (see the module docstring)."""

    top_k: int = 5
    min_confidence: float = 0.1
    retrieval_temperature: float = 0.05
    read_k: int | None = None
    follow: bool = True  # an answer may go on with the sentence after it (retrieval.follow)

    def __post_init__(self) -> None:
        if self.top_k < 1 or (self.read_k is not None and self.read_k < 1):
            raise RetrievalConfigError("top_k and read_k must be >= 1")
        if not 0.0 <= self.min_confidence <= 1.0 or self.retrieval_temperature <= 0:
            raise RetrievalConfigError("min_confidence must be in [0, 1] and "
                                       "retrieval_temperature > 0")


@dataclass(frozen=True, slots=True)
class AnswerTrace:
    """Everything behind one answer: all hits, the readings (of the first len(results) hits,
    or of the chosen sentence), their confidences, the per-question share of the batch's
    timings, and with sentence answers the scored candidates and `best`, the answer before
    the threshold (what a declined question would have been answered)."""

    question: str
    hits: tuple[SearchHit, ...]
    results: tuple[ReaderResult, ...]
    answer: Answer
    confidences: tuple[float, ...] = ()
    retrieve_ms: float = 0.0
    read_ms: float = 0.0
    candidates: tuple[Candidate, ...] = ()
    best: Answer | None = None
    features: dict[str, float] | None = None


class Answerer:
    """Retriever + reader. `embedder=None` (or the index's own) searches with the index's text
    search (hybrid when the index is); another embedder's vectors search the dense index.
    With a `ranker` the answer is a sentence (retrieval.sentence_ranker), read by the reader
    for its span, and `calibration` gives its confidence and threshold; without one the
    reader reads the passages (the module docstring). A `reranker` (retrieval.reranker)
    reorders the first `calibration.cross_k` selected sentences before the reader reads.
    `precision` "auto" runs the models (question encoders, reranker, reader) under bfloat16
    autocast where the CPU computes bfloat16 (the reranker's own setting aside): an answer
    in 35 ms instead of 45 on a quiet machine, the same best sentence for 316 of 316 dev
    questions and one confidence crossing the threshold (session 16); "float32" or
    "bfloat16" to choose."""

    def __init__(self, index: Any, embedder: Embedder | None, reader: Reader,
                 top_k: int = 5, min_confidence: float = 0.1, *,
                 config: AnswererConfig | None = None, ranker: SentenceRanker | None = None,
                 calibration: Calibration | None = None,
                 reranker: Reranker | None = None, precision: str = "auto",
                 runtime: str = "torch", graphs: Path | None = None) -> None:
        if precision not in ("auto", "float32", "bfloat16"):
            raise RetrievalConfigError(f"answerer: precision must be auto, float32 or "
                                       f"bfloat16, got {precision!r}")
        if runtime not in RUNTIMES:
            raise RetrievalConfigError(f"answerer: runtime must be one of {RUNTIMES}, got "
                                       f"{runtime!r}")
        from nlu.cpu import cpu_has_bf16, cpu_has_int8_dot

        self.precision = precision
        self._bf16 = precision == "bfloat16" or (precision == "auto" and cpu_has_bf16())
        # ONNX Runtime runs on the CPU: "auto" takes it there (a model on a GPU keeps
        # PyTorch: its use_onnx declines), int8 where the CPU has int8 dot products
        self.onnx = graphs is not None and runtime != "torch"
        self.int8 = self.onnx and (runtime == "onnx-int8" or
                                   (runtime == "auto" and cpu_has_int8_dot()))
        self.graphs = graphs
        self._onnx_ready = False
        self.index = index
        self.embedder = embedder
        self.reader = reader
        self.config = config or AnswererConfig(top_k=top_k, min_confidence=min_confidence)
        self.ranker = ranker
        self.calibration = calibration or Calibration()
        self.reranker = reranker
        if ranker is not None and self.calibration.cross_k > 1 and reranker is None:
            raise RetrievalConfigError("this calibration was fitted with a reranker (its "
                                       "confidence reads the reranker's score); pass it as "
                                       "reranker=, or use load_answerer()")

    @property
    def threshold(self) -> float:
        """The confidence at or above which an answer is given."""
        return self.calibration.threshold if self.ranker is not None else \
            self.config.min_confidence

    def __repr__(self) -> str:
        return (f"Answerer(passages={len(self.index)}, reader={self.reader!r}, "
                f"top_k={self.config.top_k}, min_confidence={self.config.min_confidence})")

    def load(self) -> Answerer:
        self.reader.load()
        if self.reranker is not None:
            self.reranker.load()
        if self.embedder is not None and hasattr(self.embedder, "load"):
            self.embedder.load()
        if self.onnx and not self._onnx_ready:
            self.use_onnx()
            self._onnx_ready = True
        return self

    def use_onnx(self) -> dict[str, bool]:
        """Run each model's forward pass in ONNX Runtime (retrieval.onnx_pass), the graphs
        kept in `graphs` (exported there when missing or stale; INT8_MODELS' quantised in
        NAME.int8.onnx when `int8`); per model, whether it does (False: PyTorch, logged)."""
        import torch

        assert self.graphs is not None
        threads = torch.get_num_threads()
        models = {"reader": self.reader, "reranker": self.reranker,
                  "embedder": self.embedder or getattr(self.index, "embedder", None),
                  "sentence_encoder": getattr(self.ranker, "encoder", None)}
        done = {}
        for name, model in models.items():
            if not hasattr(model, "use_onnx"):
                continue
            if self.int8 and name in INT8_MODELS:
                done[name] = model.use_onnx(self.graphs / f"{name}.int8.onnx", threads,
                                            int8=True)
            else:
                done[name] = model.use_onnx(self.graphs / f"{name}.onnx", threads)
        logger.info("retrieval.answerer.onnx %s", done)
        return done

    def answer(self, question: str) -> Answer:
        return self.answer_batch([question])[0]

    def answer_batch(self, questions: Sequence[str]) -> list[Answer]:
        return [t.answer for t in self.trace_batch(questions)]

    def retrieve(self, questions: Sequence[str]) -> list[list[SearchHit]]:
        own = getattr(self.index, "embedder", None)
        if self.embedder is None or self.embedder is own:
            return self.index.search(list(questions), top_k=self.config.top_k)
        vectors = self.embedder.encode(list(questions), query=True)  # (n, dim)
        return self.index.search(vectors, top_k=self.config.top_k)

    def trace_batch(self, questions: Sequence[str]) -> list[AnswerTrace]:
        """Retrieve for all questions at once, then read every (question, hit) pair at once."""
        if isinstance(questions, str):
            raise TypeError("answer_batch takes a sequence of questions, not one string")
        if not questions:
            return []
        if self.onnx and not self._onnx_ready:
            self.load()
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._bf16):
            return self._traces(questions)

    def _traces(self, questions: Sequence[str]) -> list[AnswerTrace]:
        t0 = time.perf_counter()
        hits = self.retrieve(questions)
        if self.ranker is not None:
            return self._sentence_traces(self.ranker, list(questions), hits, t0)
        t1 = time.perf_counter()
        k = self.config.read_k or self.config.top_k
        pairs = [(q, h.passage) for q, hs in zip(questions, hits) for h in hs[:k]]
        read = self.reader.read_pairs([q for q, _ in pairs], [p for _, p in pairs])
        t2 = time.perf_counter()
        traces, at = [], 0
        share = ((t1 - t0) * 1000 / len(questions), (t2 - t1) * 1000 / len(questions))
        for question, hs in zip(questions, hits):
            results = tuple(read[at:at + len(hs[:k])])
            at += len(results)
            answer, confidences = self.combine(question, hs, results)
            traces.append(AnswerTrace(question, tuple(hs), results, answer, confidences,
                                      *share))
        return traces

    def _sentence_traces(self, ranker: SentenceRanker, questions: list[str],
                         hits: list[list[SearchHit]], t0: float) -> list[AnswerTrace]:
        """Select sentences, read the first `rerank_k` of each question, re-rank, decide."""
        cal = self.calibration
        candidates = ranker.candidates(questions, hits, cal.selection)
        if self.reranker is not None and cal.cross_k > 1:
            scores = rerank_scores(self.reranker, ranker, questions, candidates, cal.cross_k)
            candidates = [reorder(c, s, cal.cross) for c, s in zip(candidates, scores)]
        t1 = time.perf_counter()
        readings = read_candidates(self.reader, ranker, questions, candidates, cal.rerank_k)
        t2 = time.perf_counter()
        share = ((t1 - t0) * 1000 / len(questions), (t2 - t1) * 1000 / len(questions))
        traces = []
        given: list[Candidate | None] = [None] * len(questions)  # the answers given
        for i, question in enumerate(questions):
            if not candidates[i]:
                answer = Answer(None, 0.0, 0.0, None, None, None, None, None, None, 0.0, None,
                                question)
                traces.append(AnswerTrace(question, tuple(hits[i]), (), answer, (), *share))
                continue
            results = readings[i]
            choice = choose(candidates[i], [r.gap for r in results], cal.rerank)
            candidate, result = candidates[i][choice.index], results[choice.index]
            features = answer_features(ranker, question, candidates[i], choice)
            confidence = round(cal.confidence.prob(features), 6)
            best = sentence_answer(ranker, question, hits[i],
                                   ranker.table.sentences[candidate.sentence], result,
                                   confidence)
            if confidence >= cal.threshold:
                answer, given[i] = best, candidate
            else:
                answer = replace(best, text=None, span=None, sentence=None, sentence_span=None,
                                 doc_id=None, passage_id=None, title=None, passage=None,
                                 lead="")
            traces.append(AnswerTrace(question, tuple(hits[i]), tuple(results), answer,
                                      (confidence,), *share, tuple(candidates[i]), best,
                                      features))
        if self.config.follow and self.reranker is not None and any(given):
            for i, text in enumerate(follows(self.reranker, ranker, questions, given)):
                if text:
                    answer = replace(traces[i].answer, follow=text)
                    traces[i] = replace(traces[i], answer=answer, best=answer)
        return traces

    def combine(self, question: str, hits: Sequence[SearchHit],
                results: Sequence[ReaderResult]) -> tuple[Answer, tuple[float, ...]]:
        """The answer from the readings of `hits` (see the module docstring)."""
        confidences = passage_confidences(hits, results, self.config.retrieval_temperature)
        totals: dict[str, float] = {}
        for r, conf in zip(results, confidences):
            if r.has_answer and r.best is not None:
                key = normalize_answer(r.best.text) or r.best.text
                totals[key] = totals.get(key, 0.0) + conf
        ranked = sorted(((totals[normalize_answer(r.best.text) or r.best.text], confidences[i], i)
                         for i, r in enumerate(results) if r.has_answer and r.best is not None),
                        reverse=True)
        if not ranked or ranked[0][0] < self.config.min_confidence:
            return self._no_answer(question, results, ranked[0][0] if ranked else 0.0), \
                confidences
        total, _, i = ranked[0]
        hit, span = hits[i], results[i].best
        assert span is not None
        text = hit.passage.text
        s0, s1 = sentence_bounds(text, span.start, span.end)
        return Answer(span.text, span.score, results[i].null_score, hit.passage.doc_id,
                      hit.passage.id, hit.passage.title, (span.start, span.end), text[s0:s1],
                      (s0, s1), round(min(1.0, total), 6), text, question), confidences

    def _no_answer(self, question: str, results: Sequence[ReaderResult],
                   confidence: float) -> Answer:
        best = max(results, key=lambda r: r.gap, default=None)
        score = best.best.score if best is not None and best.best is not None else 0.0
        null = best.null_score if best is not None else 0.0
        return Answer(None, score, null, None, None, None, None, None, None,
                      round(confidence, 6), None, question)


def read_candidates(reader: Reader, ranker: SentenceRanker, questions: Sequence[str],
                    candidates: Sequence[Sequence[Candidate]], k: int
                    ) -> list[list[ReaderResult]]:
    """The reader's results on the first `k` candidate sentences of each question (one batch)."""
    pairs = [(i, c.sentence) for i, cands in enumerate(candidates) for c in cands[:k]]
    read = reader.read_pairs([questions[i] for i, _ in pairs],
                             [ranker.table.sentences[sid].text for _, sid in pairs])
    out: list[list[ReaderResult]] = [[] for _ in questions]
    for (i, _), result in zip(pairs, read):
        out[i].append(result)
    return out


def rerank_scores(reranker: Reranker, ranker: SentenceRanker, questions: Sequence[str],
                  candidates: Sequence[Sequence[Candidate]], k: int) -> list[list[float]]:
    """The reranker's scores of the first `k` candidate sentences of each question (one
    batch; a sentence as the sentence encoder reads it, with its title)."""
    pairs = [(i, c.sentence) for i, cands in enumerate(candidates) for c in cands[:k]]
    scores = reranker.score([questions[i] for i, _ in pairs],
                            [ranker.table.sentences[sid].search_text for _, sid in pairs])
    out: list[list[float]] = [[] for _ in questions]
    for (i, _), score in zip(pairs, scores):
        out[i].append(float(score))
    return out


def sentence_answer(ranker: SentenceRanker, question: str, hits: Sequence[SearchHit],
                    sentence: Sentence, result: ReaderResult, confidence: float) -> Answer:
    """`sentence` as an answer inside the best-ranked passage that holds it; the span is
    the one retrieval.span_choice picks among the reader's n-best in the sentence (the
    answer kind the question asks for, a price with its unit; the whole sentence when no
    span fits)."""
    slot_of = ranker.slot_of
    slots = [slot_of[h.passage.id] for h in hits if slot_of.get(h.passage.id) in
             sentence.passages]
    slot = slots[0] if slots else min(sentence.passages)
    passage = ranker.passages[slot]
    at = sentence.passages[slot]
    chosen = choose_span(question, sentence.text, result.spans)
    s0, s1 = chosen if chosen is not None else (0, len(sentence.text))
    text = sentence.text[s0:s1]
    score = result.best.score if result.best is not None else 0.0
    return Answer(text, score, result.null_score, passage.doc_id, passage.id,
                  passage.title, (at + s0, at + s1), sentence.text,
                  (at, at + len(sentence.text)), confidence, passage.text, question,
                  sentence.lead)


def passage_confidences(hits: Sequence[SearchHit], results: Sequence[ReaderResult],
                        temperature: float) -> tuple[float, ...]:
    """Per read passage: softmax(span score + log retrieval prior) * sigmoid(gap - margin)."""
    if not results:
        return ()
    hits = hits[:len(results)]
    known = [h.dense_score for h in hits if h.dense_score is not None]
    floor = min(known) if known else 0.0
    cos = [h.dense_score if h.dense_score is not None else (floor if known else h.score)
           for h in hits]
    prior = _softmax([c / temperature for c in cos])
    logits = [(r.best.score if r.best is not None else -1e4) + math.log(max(p, 1e-12))
              for r, p in zip(results, prior)]
    share = _softmax(logits)
    return tuple(s * _sigmoid(r.gap - r.margin) for s, r in zip(share, results))


def sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) of the sentence (or Markdown line) around text[start:end], without
    surrounding whitespace and list/heading/table markers; always covers the span."""
    s = start
    while s > 0:
        ch = text[s - 1]
        if ch == "\n" or (s >= 2 and text[s - 2] in ".!?" and ch.isspace()):
            break
        s -= 1
    while s < start and (text[s].isspace() or text[s] in _BULLET):
        s += 1
    e = end
    while e < len(text):
        ch = text[e]
        if ch == "\n":
            break
        if ch in ".!?" and (e + 1 == len(text) or text[e + 1].isspace()):
            e += 1
            break
        e += 1
    while e > end and (text[e - 1].isspace() or text[e - 1] == "|"):
        e -= 1
    return s, e


def _softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [x / total for x in exps]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# ------------------------------------------------------------------ the knowledge directory

@dataclass(frozen=True, slots=True)
class KnowledgeSettings:
    """knowledge.json: how the knowledge directory was built and how to answer with it.
    `sentence_encoder` (a folder in the directory) and `calibration` (Calibration.to_dict)
    make the answers sentences; without them the reader reads passages (format 1)."""

    embedder: str
    top_k: int = 5
    min_confidence: float = 0.1
    read_k: int | None = None
    reader_margin: float | None = None
    built_at: str = ""
    fingerprint: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    format_version: int = KNOWLEDGE_FORMAT
    sentence_encoder: str | None = None
    sentences_hash: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)
    reader_fingerprint: str = ""
    encoder_fingerprint: str = ""
    reranker: str | None = None
    reranker_fingerprint: str = ""
    reranker_pretrained: str | None = None  # its twin (retrieval.reranker.Reranker.twin)
    runtime: str = "auto"  # what runs the models (RUNTIMES), config.yml knowledge.runtime
    follow: bool = True  # config.yml knowledge.follow (retrieval.follow)


def read_settings(knowledge_dir: str | Path) -> KnowledgeSettings:
    path = Path(knowledge_dir) / KNOWLEDGE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RetrievalError(f"No knowledge model at {path.parent} ({KNOWLEDGE_FILE} missing). "
                             "Fix: build it with build_knowledge() / `xingkong train`.") from exc
    names = set(KnowledgeSettings.__dataclass_fields__)
    return KnowledgeSettings(**{k: v for k, v in data.items() if k in names})


def load_answerer(knowledge_dir: str | Path = "models/knowledge", *,
                  embedder: Embedder | None = None, device: str | None = None,
                  quantize: bool | None = None, precision: str = "auto",
                  runtime: str | None = None, **config: Any) -> Answerer:
    """The Answerer of a knowledge directory (layout: knowledge.json, index/, reader/).
    Loads lazily: the models load on the first answer (or `.load()`). `config` overrides
    AnswererConfig fields (top_k, min_confidence, read_k, retrieval_temperature, follow);
    `precision` and `runtime` are the Answerer's (None: as built, config.yml's
    knowledge.runtime; its ONNX graphs in GRAPHS_DIR)."""
    from retrieval.embedder import get_embedder
    from retrieval.index import KnowledgeIndex

    root = Path(knowledge_dir)
    settings = read_settings(root)
    embedder = embedder or get_embedder(settings.embedder, device=device or "cpu")
    index = KnowledgeIndex.load(root / INDEX_DIR, embedder)
    overrides: dict[str, Any] = {}
    if device is not None:
        overrides["device"] = device
    if quantize is not None:
        overrides["quantize"] = quantize
    if settings.reader_margin is not None:
        overrides["no_answer_margin"] = settings.reader_margin
    reader = Reader.from_dir(root / READER_DIR, **overrides)
    values = {"top_k": settings.top_k, "min_confidence": settings.min_confidence,
              "read_k": settings.read_k, "follow": settings.follow, **config}
    ranker = sentence_ranker(root, index, settings, device=device or "cpu") \
        if settings.sentence_encoder else None
    reranker = load_reranker(root, settings) if ranker else None
    return Answerer(index, None, reader, config=AnswererConfig(**values), ranker=ranker,
                    calibration=Calibration.from_dict(settings.calibration), reranker=reranker,
                    precision=precision, runtime=runtime or settings.runtime,
                    graphs=root / GRAPHS_DIR)


def load_reranker(root: Path, settings: KnowledgeSettings) -> Reranker | None:
    """The reranker of a knowledge directory (None without one), with its twin when the
    settings name one."""
    if not settings.reranker:
        return None
    twin = root / settings.reranker_pretrained if settings.reranker_pretrained else None
    return Reranker(root / settings.reranker, twin=twin)


def sentences_hash(table: SentenceTable) -> str:
    """Changes when any sentence (or its title) changes: saved vectors are then stale."""
    digest = hashlib.sha256()
    for s in table.sentences:
        digest.update(f"{s.doc_id}\0{s.search_text}\n".encode("utf-8"))
    return digest.hexdigest()[:16]


def sentence_ranker(root: Path, index: Any, settings: KnowledgeSettings, *,
                    device: str = "cpu") -> SentenceRanker:
    """The SentenceRanker of a knowledge directory: the sentences of the index, the fine-tuned
    encoder, and the saved sentence vectors (encoded again when the KB changed since)."""
    from retrieval.embedder import SentenceTransformerEmbedder

    table = SentenceTable.from_passages(index.passages)
    encoder = SentenceTransformerEmbedder(str(root / (settings.sentence_encoder or ENCODER_DIR)),
                                          device=device)
    path = root / SENTENCE_VECTORS
    vectors = np.load(path) if path.is_file() else None
    if vectors is None or settings.sentences_hash != sentences_hash(table) or \
            vectors.shape[0] != len(table):
        logger.warning("retrieval.answerer.sentences_stale dir=%s: encoding %d sentences "
                       "(run `xingkong train knowledge` to save them)", root, len(table))
        vectors = encoder.encode([s.search_text for s in table.sentences])
    return SentenceRanker(table, index.passages, encoder, vectors)
