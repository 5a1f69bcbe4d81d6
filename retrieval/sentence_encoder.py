"""The sentence encoder: a bi-encoder fine-tuned to bring a guest's question next to the
knowledge-base sentence that answers it.

Training uses sentence-transformers' own model and loss: `MultipleNegativesRankingLoss` on
(question, answer sentence, hard negative) triples, where the other sentences of the batch are
in-batch negatives and the hard negative is another sentence of the same document. The loop is
a plain torch loop: the batch's texts embedded in length-sorted chunks (`embed_by_length`), the
loss computed from the embeddings (`compute_loss_from_embeddings`), because
`SentenceTransformerTrainer` needs the `datasets` and `accelerate` packages, which this project
does not install. A batch never holds the same positive sentence twice (it would be a false
negative for the other question).

    fit_sentence_encoder(triples, "models/knowledge/sentence_encoder", SentenceEncoderConfig())
    encoder = SentenceEncoder("models/knowledge/sentence_encoder").load()
    scores = encoder.encode(["pet fee?"]) @ encoder.encode(texts).T
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retrieval.embedder import DEFAULT_MODEL
from retrieval.errors import RetrievalConfigError


@dataclass(frozen=True, slots=True)
class SentenceEncoderConfig:
    """`epochs` over the triples, AdamW `lr` with linear warm-up over `warmup_ratio` of the
    steps then decay; `scale` is the loss's inverse temperature (sentence-transformers'
    default 20); `max_seq_length` word pieces (KB sentences have at most ~60)."""

    base_model: str = DEFAULT_MODEL
    epochs: float = 1.0
    lr: float = 5e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    scale: float = 20.0
    max_seq_length: int = 96
    seed: int = 13
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 2:
            raise RetrievalConfigError("sentence encoder: epochs must be >= 0, lr > 0 and "
                                       f"batch_size >= 2 (got {self.epochs}, {self.lr}, "
                                       f"{self.batch_size})")
        if not 0.0 <= self.warmup_ratio < 1.0 or self.max_seq_length < 8:
            raise RetrievalConfigError("sentence encoder: warmup_ratio must be in [0, 1) and "
                                       "max_seq_length >= 8")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Triple = tuple[str, str, str | None]  # question, answer sentence, hard negative (or None)


def batches(triples: Sequence[Triple], size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of triple indices in which no positive text repeats."""
    order = list(range(len(triples)))
    rng.shuffle(order)
    out: list[list[int]] = []
    open_batches: list[tuple[list[int], set[str]]] = []
    for i in order:
        positive = triples[i][1]
        for batch, seen in open_batches:
            if positive not in seen and len(batch) < size:
                batch.append(i)
                seen.add(positive)
                break
        else:
            open_batches.append(([i], {positive}))
        full = [b for b in open_batches if len(b[0]) >= size]
        out.extend(b for b, _ in full)
        open_batches = [b for b in open_batches if len(b[0]) < size]
    out.extend(b for b, _ in open_batches if len(b) > 1)
    return out


def embed_by_length(model: Any, texts: list[str], chunk: int = 16) -> Any:
    """(N, D) sentence embeddings of `texts` in their order, with gradients, computed in
    chunks of `chunk` texts of similar length: each chunk is padded to its own longest text.
    sentence-transformers pads the candidate columns together to their longest (the demo's
    questions are ~13 word pieces, its sentences ~35): a third more tokens for the same
    embeddings (mean pooling skips the padding)."""
    import torch

    lengths = [len(ids) for ids in model.tokenizer(texts)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    parts = []
    for start in range(0, len(order), chunk):
        features = model.preprocess([texts[i] for i in order[start:start + chunk]])
        features = {k: v.to(model.device) for k, v in features.items() if hasattr(v, "to")}
        parts.append(model(features)["sentence_embedding"])
    embeddings = torch.cat(parts)  # (N, D) in length order
    return embeddings[torch.as_tensor(order).argsort()]  # (N, D) in the texts' order


def fit_sentence_encoder(triples: Sequence[Triple], out_dir: str | Path,
                         config: SentenceEncoderConfig = SentenceEncoderConfig()
                         ) -> dict[str, Any]:
    """Fine-tune `config.base_model` on `triples` and save it (sentence-transformers format)
    to `out_dir`. Returns a small report (steps, seconds, mean loss of the last 20 steps)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from resolver import resolve_model
    from retrieval.train_step import apply_step, training_report

    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model = SentenceTransformer(str(resolve_model(config.base_model)), device="cpu")
    model.max_seq_length = config.max_seq_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=config.scale)
    plan = [b for e in range(max(1, math.ceil(config.epochs)))
            for b in batches(triples, config.batch_size, rng)]
    plan = plan[:max(0, round(len(plan) * config.epochs / max(1, math.ceil(config.epochs))))]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01, fused=True)
    warmup = max(1, int(len(plan) * config.warmup_ratio))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (len(plan) - s) /
                                                      max(1, len(plan) - warmup))))
    losses: list[float] = []
    model.train()
    for batch in plan:
        rows = [triples[i] for i in batch]
        columns = [[r[0] for r in rows], [r[1] for r in rows]]
        if all(r[2] is not None for r in rows):
            columns.append([str(r[2]) for r in rows])
        embeddings = embed_by_length(model, [t for column in columns for t in column])
        loss = loss_fn.compute_loss_from_embeddings(list(embeddings.split(len(rows))), None)
        losses.append(apply_step(loss, model.parameters(), optimizer, schedule))
    model.eval()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    return training_report("sentence_encoder", {"triples": len(triples)}, len(plan), started,
                           losses, config)
