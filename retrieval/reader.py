"""Extractive reader: finds the answer span of a question in passages, or says there is none.

A `transformers` question-answering model (start and end logits per token) reads each
(question, passage) pair. Passages longer than `max_length` word pieces are cut into windows
that overlap by `doc_stride` tokens (the `stride` of a fast tokenizer). Per window:

* a span (i, j) scores start[i] + end[j]; only spans inside the passage part of the window
  with j - i < `max_answer_tokens` count;
* the SQuAD 2.0 null score is start[CLS] + end[CLS].

Per (question, passage) the null score is the minimum over windows (the window that sees the
answer best, after HF's run_qa), spans of all windows are merged (same characters: the best
score is kept), and the decision is `best_span.score - null_score > no_answer_margin`; the
margin is calibrated on held-out questions by `reader_training`. Every result carries the
explicit no-answer candidate and its score. Character offsets come from the tokenizer's offset
mapping, so `passage[span.start:span.end] == span.text` always: the reader never invents text.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from retrieval.errors import RetrievalConfigError, RetrievalError
from retrieval.types import Passage

logger = logging.getLogger(__name__)

DEFAULT_READER_BASE = "sentence-transformers/all-MiniLM-L6-v2"
READER_CONFIG = "reader_config.json"
_NEG = -1e9


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    """Reader settings, saved beside the weights as reader_config.json. `model` is a model id
    or directory (resolved offline first); `doc_stride` is the overlap between windows in
    tokens; `no_answer_margin` is the calibrated threshold on best span score - null score.
    `num_threads`, when set, is applied with torch.set_num_threads at load (process-wide)."""

    model: str = DEFAULT_READER_BASE
    max_length: int = 256
    doc_stride: int = 64
    max_question_tokens: int = 48
    max_answer_tokens: int = 30
    n_best: int = 5
    no_answer_margin: float = 0.0
    batch_size: int = 16
    device: str = "cpu"
    quantize: bool = False
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.max_length < 16:
            raise RetrievalConfigError(f"max_length must be >= 16, got {self.max_length}")
        room = self.max_length - self.max_question_tokens - 3
        if not 0 <= self.doc_stride < room:
            raise RetrievalConfigError(
                f"doc_stride must be in [0, {room}) (max_length - max_question_tokens - 3), "
                f"got {self.doc_stride}")
        if min(self.max_question_tokens, self.max_answer_tokens, self.n_best,
               self.batch_size) < 1:
            raise RetrievalConfigError("max_question_tokens, max_answer_tokens, n_best and "
                                       "batch_size must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, **overrides: Any) -> ReaderConfig:
        values = {**dict(data or {}), **overrides}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            logger.debug("retrieval.reader.config.ignored keys=%s", ",".join(unknown))
        try:
            return cls(**{k: v for k, v in values.items() if k in names})
        except TypeError as exc:
            raise RetrievalConfigError(f"bad reader setting: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Span:
    """A candidate answer: `text == context[start:end]`; `score = start_logit + end_logit`.
    The no-answer candidate has `is_null=True`, empty text and start = end = 0."""

    text: str
    start: int
    end: int
    score: float
    start_logit: float
    end_logit: float
    is_null: bool = False


@dataclass(frozen=True, slots=True)
class ReaderResult:
    """The reading of one (question, context) pair: the n-best spans (best first), the explicit
    no-answer candidate, and the margin the decision used."""

    question: str
    context: str
    spans: tuple[Span, ...]
    no_answer: Span
    margin: float
    windows: int = 1

    @property
    def best(self) -> Span | None:
        return self.spans[0] if self.spans else None

    @property
    def null_score(self) -> float:
        return self.no_answer.score

    @property
    def gap(self) -> float:
        """best span score - null score (very negative when no span fits)."""
        return self.spans[0].score - self.no_answer.score if self.spans else _NEG

    @property
    def has_answer(self) -> bool:
        return bool(self.spans) and self.gap > self.margin

    @property
    def prediction(self) -> Span:
        return self.spans[0] if self.has_answer else self.no_answer

    @property
    def text(self) -> str | None:
        return self.spans[0].text if self.has_answer else None


@dataclass(frozen=True, slots=True)
class Windows:
    """Tokenised windows of (question, context) pairs. Per window: token ids, token types,
    `pair` (the index of its pair) and `offsets` (char span in the context for context tokens,
    None for question and special tokens)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    pair: list[int]
    offsets: list[list[tuple[int, int] | None]]


def truncate_question(tokenizer: Any, question: str, max_tokens: int) -> str:
    """`question` cut to its first `max_tokens` word pieces (on a character boundary)."""
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    return question if len(offsets) <= max_tokens else question[:offsets[max_tokens - 1][1]]


def encode_windows(tokenizer: Any, questions: Sequence[str], contexts: Sequence[str],
                   config: ReaderConfig) -> Windows:
    """Windows of every pair; a context too long for one window spills into overlapping ones."""
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions for {len(contexts)} contexts")
    if not questions:
        return Windows([], [], [], [])
    cut = [truncate_question(tokenizer, q, config.max_question_tokens) for q in questions]
    enc = tokenizer(cut, list(contexts), truncation="only_second", max_length=config.max_length,
                    stride=config.doc_stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding=False)
    n = len(enc["input_ids"])
    types = enc.get("token_type_ids") or [[0] * len(ids) for ids in enc["input_ids"]]
    offsets: list[list[tuple[int, int] | None]] = []
    for w in range(n):
        seq = enc.sequence_ids(w)
        offsets.append([(int(o[0]), int(o[1])) if s == 1 else None
                        for s, o in zip(seq, enc["offset_mapping"][w])])
    return Windows([list(x) for x in enc["input_ids"]], [list(x) for x in types],
                   [int(p) for p in enc["overflow_to_sample_mapping"]], offsets)


def window_spans(start: Any, end: Any, offsets: Sequence[tuple[int, int] | None],
                 max_answer_tokens: int, n_best: int) -> tuple[float, list[tuple[int, int, float,
                                                                                   float, float]]]:
    """(null score, up to `n_best` (char start, char end, score, start logit, end logit)) of one
    window from its logits (1-D tensors of the window's length; CLS at position 0)."""
    import torch

    length = len(offsets)
    start, end = start[:length].float(), end[:length].float()  # (L,), (L,)
    null = float(start[0] + end[0])
    ctx = torch.tensor([o is not None and o[1] > o[0] for o in offsets])  # (L,) bool
    if not bool(ctx.any()):
        return null, []
    idx = torch.nonzero(ctx).squeeze(1)  # (C,) context token positions
    s, e = start[idx], end[idx]  # (C,), (C,)
    scores = s[:, None] + e[None, :]  # (C, C): start i, end j
    pos = idx.float()
    width = pos[None, :] - pos[:, None]  # (C, C) token distance j - i
    valid = (width >= 0) & (width < max_answer_tokens)  # (C, C)
    scores = scores.masked_fill(~valid, float("-inf"))
    k = min(n_best * 3, int(valid.sum()))
    top = torch.topk(scores.flatten(), k)  # (k,)
    out, seen = [], set()
    for value, flat in zip(top.values.tolist(), top.indices.tolist()):
        i, j = divmod(flat, len(idx))
        a, b = offsets[int(idx[i])][0], offsets[int(idx[j])][1]  # type: ignore[index]
        if (a, b) in seen or b <= a:
            continue
        seen.add((a, b))
        out.append((a, b, value, float(s[i]), float(e[j])))
        if len(out) >= n_best:
            break
    return null, out


def snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) widened so that no word is cut: word pieces start and end inside words."""
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    return start, end


class Reader:
    """An extractive QA reader. Construction is cheap; `load()` (idempotent, also on first use)
    loads the tokenizer and model. `logits(batch)` is the one place the model runs."""

    def __init__(self, config: ReaderConfig | None = None, **overrides: Any) -> None:
        base = config or ReaderConfig()
        self.config = replace(base, **overrides) if overrides else base
        self.tokenizer: Any = None
        self.model: Any = None
        self._device: str | None = None
        self._lock = threading.Lock()
        self.onnx: Any = None  # an OnnxPass of the model (retrieval.onnx_pass), or None

    def __repr__(self) -> str:
        return (f"Reader(model={self.config.model!r}, "
                f"loaded={self.model is not None or self.onnx is not None})")

    @classmethod
    def from_dir(cls, path: str | Path, **overrides: Any) -> Reader:
        """The reader saved in `path` (weights, tokenizer, reader_config.json)."""
        folder = Path(path)
        try:
            data = json.loads((folder / READER_CONFIG).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise RetrievalError(f"No reader at {folder} ({READER_CONFIG} missing). Fix: train "
                                 "one with build_knowledge() or `xingkong train`.") from exc
        return cls(ReaderConfig.from_mapping(data, model=str(folder.resolve()), **overrides))

    @property
    def margin(self) -> float:
        return self.config.no_answer_margin

    @property
    def device(self) -> str:
        if self._device is None:
            from retrieval.embedder import resolve_device

            self._device = resolve_device(self.config.device)
        return self._device

    def load(self) -> Reader:
        with self._lock:
            if self.model is not None or self.onnx is not None:
                return self
            import torch
            from transformers import AutoModelForQuestionAnswering, AutoTokenizer

            from resolver import resolve_model

            if self.config.num_threads:
                torch.set_num_threads(self.config.num_threads)
            path = resolve_model(self.config.model)
            logger.info("retrieval.reader.load model=%s path=%s device=%s quantize=%s",
                        self.config.model, path, self.device, self.config.quantize)
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            if not getattr(tokenizer, "is_fast", False):
                raise RetrievalConfigError(f"{self.config.model}: the reader needs a fast "
                                           "tokenizer (offset mappings)")
            model = AutoModelForQuestionAnswering.from_pretrained(str(path)).eval()
            self.set_model(model, tokenizer)
        return self

    def set_model(self, model: Any, tokenizer: Any) -> Reader:
        """Use an in-memory model and tokenizer (training, tests); quantises when asked."""
        if self.config.quantize and self.device == "cpu":
            model = quantize_dynamic(model)
        self.model = model.to(self.device) if hasattr(model, "to") else model
        self.tokenizer = tokenizer
        return self

    def logits(self, batch: Mapping[str, Any]) -> tuple[Any, Any]:
        """(start, end) logits, each (batch, seq_len), for a padded batch of windows."""
        if self.onnx is not None:
            import torch

            start, end = self.onnx(batch)
            return torch.from_numpy(start), torch.from_numpy(end)  # (B, L), (B, L)
        out = self.model(**batch)
        return out.start_logits, out.end_logits  # (B, L), (B, L)

    def use_onnx(self, graph: Path, threads: int = 1, int8: bool = False) -> bool:
        """Read with the model's ONNX graph at `graph` (exported there when missing or
        stale: retrieval.onnx_pass; `int8`: quantised); False, PyTorch kept, when ONNX
        Runtime cannot run it or the model is quantised or not on the CPU."""
        from retrieval.onnx_pass import cached_pass

        self.load()
        if self.config.quantize or self.device != "cpu":
            return False
        from resolver import resolve_model

        self.onnx = cached_pass(self.model, ("start_logits", "end_logits"), graph,
                                Path(resolve_model(self.config.model)), threads, int8)
        if self.onnx is not None:
            self.model = None  # its weights live in the session now (90 MB for MiniLM)
        return self.onnx is not None

    def read_batch(self, question: str, passages: Sequence[str | Passage]) -> list[ReaderResult]:
        """One question over many passages (strings or `Passage`s): a result per passage."""
        return self.read_pairs([question] * len(passages), passages)

    def read(self, question: str, passage: str | Passage) -> ReaderResult:
        return self.read_batch(question, [passage])[0]

    def read_pairs(self, questions: Sequence[str],
                   passages: Sequence[str | Passage]) -> list[ReaderResult]:
        """A result per (question, passage) pair, read in batches of windows."""
        import torch

        if isinstance(questions, str):
            raise TypeError("read_pairs takes a sequence of questions, not one string")
        self.load()
        contexts = [p.text if isinstance(p, Passage) else str(p) for p in passages]
        if len(contexts) != len(questions):
            raise ValueError(f"{len(questions)} questions for {len(contexts)} passages")
        windows = encode_windows(self.tokenizer, questions, contexts, self.config)
        nulls = [float("inf")] * len(contexts)
        merged: list[dict[tuple[int, int], tuple[float, float, float]]] = [{} for _ in contexts]
        nwin = [0] * len(contexts)
        order = sorted(range(len(windows.input_ids)), key=lambda w: len(windows.input_ids[w]))
        with torch.inference_mode():
            for b in range(0, len(order), self.config.batch_size):
                chunk = order[b:b + self.config.batch_size]
                start, end = self.logits(self._pad([windows.input_ids[w] for w in chunk],
                                                   [windows.token_type_ids[w] for w in chunk]))
                start, end = start.float().cpu(), end.float().cpu()  # (B, L), (B, L)
                for row, w in enumerate(chunk):
                    p = windows.pair[w]
                    nwin[p] += 1
                    null, spans = window_spans(start[row], end[row], windows.offsets[w],
                                               self.config.max_answer_tokens, self.config.n_best)
                    nulls[p] = min(nulls[p], null)
                    for a, e, score, sl, el in spans:
                        if score > merged[p].get((a, e), (_NEG,))[0]:
                            merged[p][(a, e)] = (score, sl, el)
        return [self._result(q, c, nulls[i], merged[i], nwin[i])
                for i, (q, c) in enumerate(zip(questions, contexts))]

    def _result(self, question: str, context: str, null: float,
                spans: dict[tuple[int, int], tuple[float, float, float]],
                windows: int) -> ReaderResult:
        whole: dict[tuple[int, int], tuple[float, float, float]] = {}
        for (a, e), scores in spans.items():  # a span ending inside "cutl|ery" takes the word
            key = snap_to_words(context, a, e)
            if scores[0] > whole.get(key, (_NEG,))[0]:
                whole[key] = scores
        ranked = sorted(whole.items(), key=lambda kv: -kv[1][0])[:self.config.n_best]
        best = tuple(Span(context[a:e], a, e, s, sl, el) for (a, e), (s, sl, el) in ranked)
        null = null if windows else 0.0
        return ReaderResult(question, context, best, Span("", 0, 0, null, null / 2, null / 2,
                                                          True), self.margin, windows)

    def _pad(self, ids: list[list[int]], types: list[list[int]]) -> dict[str, Any]:
        import torch

        pad = getattr(self.tokenizer, "pad_token_id", None) or 0
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)  # (B, L)
        token_types = torch.zeros((len(ids), width), dtype=torch.long)  # (B, L)
        mask = torch.zeros((len(ids), width), dtype=torch.long)  # (B, L)
        for r, (x, t) in enumerate(zip(ids, types)):
            input_ids[r, :len(x)] = torch.tensor(x)
            token_types[r, :len(t)] = torch.tensor(t)
            mask[r, :len(x)] = 1
        batch = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_types}
        return {k: v.to(self.device) for k, v in batch.items()}

    def save(self, path: str | Path) -> Path:
        """Write weights (safetensors), tokenizer and reader_config.json to `path`."""
        self.load()
        if self.config.quantize:
            raise RetrievalConfigError("a quantised reader cannot be saved; save the float one")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        config = replace(self.config, model=folder.name)
        (folder / READER_CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n",
                                            encoding="utf-8")
        logger.info("retrieval.reader.saved path=%s margin=%.3f", folder, self.margin)
        return folder

    def with_margin(self, margin: float) -> Reader:
        """The same loaded model with another no-answer margin (shares the weights)."""
        other = Reader(replace(self.config, no_answer_margin=float(margin)))
        other.model, other.tokenizer, other._device = self.model, self.tokenizer, self._device
        other.onnx = self.onnx
        return other


def quantize_dynamic(model: Any) -> Any:
    """int8 dynamic quantisation of the Linear layers (CPU inference only): the NLU's."""
    from nlu.quantize import quantize_linear

    return quantize_linear(model)
