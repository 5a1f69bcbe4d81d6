"""The reranker: a cross-encoder that reads a question and a candidate sentence together and
scores how well the sentence answers it. It reorders the first candidates of the sentence
selection, whose bi-encoder reads the two apart ("how much is the premium wifi" came nearer
to the free Wi-Fi's sentence than to "Premium Wi-Fi ... costs 9 EUR per room per day").

Training is listwise: per question a group of its answer sentence and up to `negatives`
wrong ones (the selection's best wrong candidates for the knowledge base's questions,
the sentences of the same passage sharing the most words for reading-comprehension data),
and the loss is the softmax cross-entropy of the answer within its group, beside a "no
answer" slot whose logit is 0: an unanswerable question's group (tempting sentences only)
learns that slot, so a score above 0 reads "answers it" across questions, not only within
one. A plain torch
loop over a transformers sequence-classification model with one output, as
sentence-transformers' CrossEncoder is, without the `datasets` and `accelerate` packages
its trainer needs. The word embeddings stay frozen and batches hold groups of similar
length (less padding), as the reader's training does.

    fit_reranker(groups, "models/knowledge/reranker", RerankerConfig())
    reranker = Reranker("models/knowledge/reranker").load()
    scores = reranker.score(["pet fee?"] * 2, ["Dogs stay for 20 EUR a night.", "..."])
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.errors import RetrievalConfigError, RetrievalError


ANSWER_TIME = ("with_pretrained",)  # RerankerConfig settings its training does not read
Group = tuple[str, str | None, tuple[str, ...]]  # question, answer sentence (None: the
# question has no answer among them), wrong sentences


@dataclass(frozen=True, slots=True)
class RerankerConfig:
    """`base_model` to start from ("reader": the knowledge base's own reader, which
    retrieval.knowledge_build trains first); `epochs` over the groups, `groups` questions
    per batch, each with at most `negatives` wrong sentences; AdamW `lr` with linear warm-up
    over `warmup_ratio` of the steps, then decay; `max_length` word pieces of question and
    sentence together; `top_k` candidates of the selection it reads per question at answer
    time; `pretrain_epochs` over the reading-comprehension groups it may learn first
    (retrieval.knowledge_build's `reranker_pretrain_qa`); `layers`: keep only the base
    model's first `layers` transformer layers (None: all), a smaller and faster reranker;
    `with_pretrained`: with `epochs` > 0 over the knowledge base's questions and a pretrained
    reranker, answers read the mean of the two rerankers' scores (`Reranker.twin`)."""

    base_model: str = "reader"
    epochs: float = 1.0
    pretrain_epochs: float = 1.0
    layers: int | None = None
    lr: float = 3e-5
    groups: int = 8
    negatives: int = 3
    max_length: int = 128
    warmup_ratio: float = 0.1
    freeze_embeddings: bool = True
    precision: str = "auto"  # the training passes under bfloat16 autocast: "auto" where the
    # CPU has bfloat16 instructions (as the reader's training: retrieval.reader_training)
    top_k: int = 5
    seed: int = 13
    num_threads: int | None = 1
    with_pretrained: bool = False

    def __post_init__(self) -> None:
        if self.pretrain_epochs < 0 or (self.layers is not None and self.layers < 1):
            raise RetrievalConfigError("reranker: pretrain_epochs must be >= 0 and layers "
                                       f">= 1 (got {self.pretrain_epochs}, {self.layers})")
        if self.epochs < 0 or self.lr <= 0 or self.groups < 1 or self.negatives < 1:
            raise RetrievalConfigError("reranker: epochs must be >= 0, lr > 0, groups >= 1 and "
                                       f"negatives >= 1 (got {self.epochs}, {self.lr}, "
                                       f"{self.groups}, {self.negatives})")
        if not 0.0 <= self.warmup_ratio < 1.0 or self.max_length < 16 or self.top_k < 2:
            raise RetrievalConfigError("reranker: warmup_ratio must be in [0, 1), max_length "
                                       ">= 16 and top_k >= 2")
        if self.precision not in ("auto", "float32", "bfloat16"):
            raise RetrievalConfigError(f"reranker: precision must be auto, float32 or "
                                       f"bfloat16, got {self.precision!r}")
        if self.with_pretrained and self.epochs == 0:
            raise RetrievalConfigError("reranker: with_pretrained needs epochs > 0 (with "
                                       "epochs 0 the reranker is the pretrained one)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def training_dict(self) -> dict[str, Any]:
        """to_dict without ANSWER_TIME settings: what a trained reranker depends on."""
        return {k: v for k, v in asdict(self).items() if k not in ANSWER_TIME}


def fit_reranker(groups: Sequence[Group], out_dir: str | Path,
                 config: RerankerConfig = RerankerConfig()) -> dict[str, Any]:
    """Fine-tune `config.base_model` (a BERT-like encoder, or a reranker trained before) on
    `groups` and save it with its tokenizer to `out_dir`. Returns a small report."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from transformers import get_linear_schedule_with_warmup

    from nlu.cpu import cpu_has_bf16
    from resolver import resolve_model
    from retrieval.reader_training import length_batches
    from retrieval.train_step import apply_step, training_report

    usable = [g for g in groups if g[2] or g[1] is not None]
    if not usable:
        raise RetrievalConfigError("reranker: no question has a wrong sentence to rank below "
                                   "its answer")
    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    path = str(resolve_model(config.base_model))
    tokenizer = AutoTokenizer.from_pretrained(path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a reader's QA head dropped, a new score head: expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    if config.layers is not None:
        keep_layers(model, config.layers)
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    rows = [(q, [*([p] if p is not None else []), *negatives[:config.negatives]],
             p is not None) for q, p, negatives in usable]
    lengths = [len(q) + max(len(t) for t in texts) for q, texts, _ in rows]
    plan = [b for _ in range(max(1, math.ceil(config.epochs)))
            for b in length_batches(lengths, config.groups, rng)]
    plan = plan[:max(0, round(len(plan) * config.epochs / max(1, math.ceil(config.epochs))))]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01, fused=True)
    schedule = get_linear_schedule_with_warmup(optimizer, int(len(plan) * config.warmup_ratio),
                                               len(plan))
    bf16 = config.precision == "bfloat16" or (config.precision == "auto" and cpu_has_bf16())
    losses: list[float] = []
    model.train()
    # a bar as the reader's: `make run` pretrains it for minutes
    bar = tqdm(total=len(plan), desc="reranker", unit="step", disable=not plan)
    for batch in plan:
        questions = [rows[i][0] for i in batch for _ in rows[i][1]]
        texts = [t for i in batch for t in rows[i][1]]
        encoded = tokenizer(questions, texts, truncation=True, max_length=config.max_length,
                            padding=True, return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(**encoded).logits[:, 0].float()  # (pairs,)
        loss, at, null = logits.new_zeros(()), 0, logits.new_zeros(1)
        for i in batch:  # slot 0 is "no answer"; the answer, when there is one, is slot 1
            size = len(rows[i][1])
            slots = torch.log_softmax(torch.cat([null, logits[at:at + size]]), 0)
            loss = loss - slots[1 if rows[i][2] else 0]
            at += size
        losses.append(apply_step(loss / len(batch), params, optimizer, schedule))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return training_report("reranker", {"groups": len(rows)}, len(plan), started, losses,
                           config)


PAD_SLACK = 4  # word pieces a pair may be padded by in its batch, in ONNX Runtime


def padded_batches(lengths: Sequence[int], size: int,
                   slack: int | None = PAD_SLACK) -> list[list[int]]:
    """Indices in batches of at most `size` whose lengths differ by at most `slack` (None:
    in order, `size` at a time). A pass costs about its word pieces, padding included: in
    ONNX Runtime an answer's three pairs took 120 ms padded together and 106-110 one by one
    on session 18's CPU. Not in PyTorch, whose every pass costs several ms more: there the
    three pairs took 148-150 ms together and 159-162 one by one."""
    if slack is None:
        return [list(range(at, min(at + size, len(lengths))))
                for at in range(0, len(lengths), size)]
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batches and len(batches[-1]) < size and \
                lengths[i] - lengths[batches[-1][0]] <= slack:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def keep_layers(model: Any, layers: int) -> None:
    """Cut a BERT-like `model` to its first `layers` transformer layers (no-op when it has
    no more): each layer costs the same, so half the layers score in about half the time."""
    encoder = getattr(model.base_model, "encoder", None)
    stack = getattr(encoder, "layer", None)
    if stack is None:
        raise RetrievalConfigError(f"reranker: layers needs a BERT-like model with "
                                   f"encoder.layer; {type(model.base_model).__name__} has none")
    if layers < len(stack):
        encoder.layer = stack[:layers]
        model.config.num_hidden_layers = layers


class Reranker:
    """A trained reranker. Construction is cheap; `load()` (idempotent, also on first use)
    loads the tokenizer and model. With a `twin` (another reranker's folder) a score is the
    mean of both models' scores: the knowledge base's fine-tuned reranker beside the
    pretrained one it started from (RerankerConfig.with_pretrained), which learnt from other
    writers than the knowledge base's questions."""

    def __init__(self, path: str | Path, *, max_length: int = 128,
                 num_threads: int | None = None, precision: str = "auto",
                 twin: str | Path | None = None) -> None:
        if precision not in ("auto", "float32", "bfloat16"):
            raise RetrievalConfigError(f"reranker: precision must be auto, float32 or "
                                       f"bfloat16, got {precision!r}")
        self.path, self.max_length, self.num_threads = Path(path), max_length, num_threads
        self.precision = precision
        self._bf16 = False
        self.tokenizer: Any = None
        self.model: Any = None
        self._lock = threading.Lock()
        self.onnx: Any = None  # an OnnxPass of the model (retrieval.onnx_pass), or None
        self.twin = None if twin is None else Reranker(
            twin, max_length=max_length, num_threads=num_threads, precision=precision)

    def __repr__(self) -> str:
        twin = f", twin={str(self.twin.path)!r}" if self.twin is not None else ""
        return (f"Reranker(path={str(self.path)!r}{twin}, "
                f"loaded={self.model is not None or self.onnx is not None})")

    def load(self) -> Reranker:
        if self.twin is not None:
            self.twin.load()
        with self._lock:
            if self.model is not None or self.onnx is not None:
                return self
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            if not (self.path / "config.json").is_file():
                raise RetrievalError(f"No reranker at {self.path} (config.json missing). Fix: "
                                     "train one with `xingkong train knowledge`.")
            from nlu.cpu import cpu_has_bf16

            if self.num_threads:
                torch.set_num_threads(self.num_threads)
            self._bf16 = self.precision == "bfloat16" or (self.precision == "auto"
                                                          and cpu_has_bf16())
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
            self.model = AutoModelForSequenceClassification.from_pretrained(
                str(self.path)).eval()
        return self

    def score(self, questions: Sequence[str], texts: Sequence[str], *,
              batch_size: int = 64) -> np.ndarray:
        """(n,) scores of the (question, text) pairs: higher is a better answer. Under
        bfloat16 autocast where the CPU has it ("auto"): 1.6x faster than float32 for five
        sentences, the same best sentence for 59 of 60 dev questions (session 15; int8
        weights were 2.6x faster but changed it for 18). In ONNX Runtime the pairs are read
        in batches of nearly one length (`padded_batches`)."""
        import torch

        if len(questions) != len(texts):
            raise ValueError(f"{len(questions)} questions for {len(texts)} texts")
        if not texts:
            return np.zeros(0, dtype=np.float32)
        self.load()
        encoded = self.tokenizer(list(questions), list(texts), truncation=True,
                                 max_length=self.max_length)
        scores = np.zeros(len(texts), dtype=np.float32)
        with torch.inference_mode():
            slack = PAD_SLACK if self.onnx is not None else None
            for batch in padded_batches([len(ids) for ids in encoded["input_ids"]],
                                        batch_size, slack):
                padded = self.tokenizer.pad({k: [v[i] for i in batch] for k, v in
                                             encoded.items()}, return_tensors="pt")
                if self.onnx is not None:
                    scores[batch] = self.onnx(padded)[0][:, 0]
                    continue
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._bf16):
                    scores[batch] = self.model(**padded).logits[:, 0].float().numpy()
        if self.twin is not None:
            scores = (scores + self.twin.score(questions, texts, batch_size=batch_size)) / 2
        return scores

    def use_onnx(self, graph: Path, threads: int = 1, int8: bool = False) -> bool:
        """Score with the model's ONNX graph at `graph` (exported there when missing or
        stale: retrieval.onnx_pass; `int8`: quantised); False, PyTorch kept, when ONNX
        Runtime cannot run it."""
        from retrieval.onnx_pass import cached_pass

        self.load()
        self.onnx = cached_pass(self.model, ("logits",), graph, self.path, threads, int8)
        if self.onnx is not None:
            self.model = None  # its weights live in the session now
        if self.twin is not None:  # its graph beside: reranker_pretrained.int8.onnx
            twin = graph.with_name(self.twin.path.name + "".join(graph.suffixes))
            return self.twin.use_onnx(twin, threads, int8) and self.onnx is not None
        return self.onnx is not None
