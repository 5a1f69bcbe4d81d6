"""LUKE entity-span extractor (Yamada et al., 2020).

Every word span of up to `max_span_length` words is a candidate entity. LUKE reads it as a [MASK]
entity over the word pieces it covers, and `LukeForEntitySpanClassification` classifies the
concatenation of its start-piece, end-piece and entity hidden states. Labels are entity types,
with Rasa roles and groups folded in ("date#checkin"), plus "O" for "no entity".

    text -> words (pre-tokens with char offsets) <-> word pieces (through char offsets)
         -> windows of <= max_length pieces -> candidate spans, <= max_entities per forward
         -> softmax per span -> non-overlapping spans, highest score first -> Entity

About 95% of the candidates are "O": trained on all of them with plain cross-entropy the model
learns to say "O" everywhere. By default training sees every span (as inference does: each span
attends to all the other [MASK] entities) with the "O" loss down-weighted (`negative_weight`
0.25), and the new entity-side parameters and head learn at `entity_learning_rate`, faster than
the copied encoder. The faster alternative, `negative_ratio` > 0, keeps every gold span plus that
many "O" spans per gold span (half of them overlapping the gold span: the boundary mistakes):
about 3x cheaper to train, ~3-5 F1 points lower on the demo data (0.894 vs 0.921-0.947).
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from nlu.components import LukeSpanConfig
from nlu.fitting import (
    entity_scores,
    fit,
    linear_schedule,
    optimizer_step,
    raised_epochs,
)
from nlu.errors import NLUModelError, NLUTrainingError
from nlu.luke_build import ENTITY_MASK_ID, build_luke_from_bert, load_pretrained_luke
from nlu.quantize import quantize_linear, wants_quantization
from nlu.saved_state import load_saved, read_state, write_state
from nlu.types import Entity, Example
from nlu.words import (
    EncodedText,
    SpanLabel,
    collect_labels,
    encode_texts,
    enumerate_spans,
    gold_word_spans,
    label_name,
    split_validation,
    word_windows,
)
from resolver import ModelNotFoundError, resolve_model

if TYPE_CHECKING:  # transformers' modelling code is imported when a model is loaded
    from transformers import LukeForEntitySpanClassification

logger = logging.getLogger(__name__)

EXTRACTOR_NAME = "LukeSpanExtractor"
_STATE_FILE = "luke_spans.json"
_FORMAT_VERSION = 1
_MAX_MENTION_TOKENS = 30  # LUKE's max_mention_length: entity position ids per span
_IGNORE = -100


@dataclass(frozen=True, slots=True)
class _Window:
    text_index: int
    input_ids: tuple[int, ...]  # [CLS] pieces [SEP]
    spans: tuple[tuple[int, int], ...]  # candidates as (first word, last word), inclusive
    token_spans: tuple[tuple[int, int], ...]  # their (start, end) positions in input_ids
    labels: tuple[int, ...]  # gold label per candidate (0 = "O"); empty at inference


# -- words, word pieces, spans -----------------------------------------------------------------


def decode_spans(
    text: str, char_spans: list[tuple[int, int]], probs: torch.Tensor, labels: list[SpanLabel],
    extractor: str = EXTRACTOR_NAME,
) -> list[Entity]:
    """Keep the spans whose best label is not "O" (index 0); then, highest probability first,
    every span that overlaps no span kept so far. `probs` is (n_spans, 1 + len(labels))."""
    scores, best = probs.max(dim=-1)  # (n_spans,), (n_spans,)
    candidates = [k for k in range(len(char_spans)) if int(best[k]) != 0]
    candidates.sort(key=lambda k: (-float(scores[k]), char_spans[k]))
    kept: list[int] = []
    for k in candidates:
        start, end = char_spans[k]
        if all(end <= char_spans[o][0] or char_spans[o][1] <= start for o in kept):
            kept.append(k)
    entities = []
    for k in sorted(kept, key=lambda k: char_spans[k]):
        (start, end), (entity, role, group) = char_spans[k], labels[int(best[k]) - 1]
        value, score = text[start:end], float(scores[k])
        entities.append(Entity(start, end, value, entity, role, group, score, extractor))
    return entities


def sample_spans(
    spans: tuple[tuple[int, int], ...], labels: tuple[int, ...], ratio: float, rng: random.Random
) -> list[int]:
    """The spans to train on: every gold span (label > 0) plus ceil(ratio * max(1, n_gold)) "O"
    spans, half of them overlapping a gold span where there are enough. ratio <= 0: all spans."""
    if ratio <= 0:
        return list(range(len(labels)))
    positives = [k for k, label in enumerate(labels) if label]
    negatives = [k for k, label in enumerate(labels) if not label]
    wanted = min(len(negatives), math.ceil(ratio * max(1, len(positives))))
    gold = [spans[k] for k in positives]
    hard = [k for k in negatives if any(spans[k][0] <= j and i <= spans[k][1] for i, j in gold)]
    easy = sorted(set(negatives) - set(hard))
    chosen = rng.sample(hard, min(len(hard), wanted // 2))
    chosen += rng.sample(easy, min(len(easy), wanted - len(chosen)))
    if len(chosen) < wanted:
        chosen += rng.sample(sorted(set(hard) - set(chosen)), wanted - len(chosen))
    return sorted(positives + chosen)


# -- the extractor -----------------------------------------------------------------------------


class LukeSpanExtractor:
    """Entity spans from text with LUKE. `train`, then `extract_batch`; `save` and `load_from`."""

    def __init__(self, config: LukeSpanConfig | None = None) -> None:
        self.config = config if config is not None else LukeSpanConfig()
        self.labels: list[SpanLabel] = []
        self._model: LukeForEntitySpanClassification | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._backbone = "bert"  # "bert": built from BERT, positions from 0; "luke": pretrained
        self._source: Path | None = None

    def load(self) -> LukeSpanExtractor:
        """Load the saved model once (after `load_from`); a trained extractor is already loaded.
        Returns the extractor, as IntentClassifier.load does."""
        if self._model is not None:
            return self
        from transformers import LukeForEntitySpanClassification

        model, self._tokenizer = load_saved(self._source, EXTRACTOR_NAME,
                                            LukeForEntitySpanClassification.from_pretrained)
        model = model.to(self.config.device).eval()
        if wants_quantization(self.config.quantize, self.config.device):
            model = quantize_linear(model)
        self._model = model
        logger.info("nlu.luke.loaded path=%s labels=%d quantized=%s", self._source,
                    len(self.labels), self.config.quantize)
        return self

    @classmethod
    def load_from(cls, directory: str | Path, device: str | None = None,
                  quantize: bool | None = None) -> LukeSpanExtractor:
        directory = Path(directory)
        config, labels, state = read_state(directory, _STATE_FILE, EXTRACTOR_NAME, LukeSpanConfig,
                                           _FORMAT_VERSION, device=device, quantize=quantize)
        extractor = cls(config)
        extractor.labels = labels
        extractor._backbone = state.get("backbone", "bert")
        extractor._source = directory
        extractor.load()
        return extractor

    def save(self, directory: str | Path) -> Path:
        """Write model.safetensors + config.json, the tokenizer, and luke_spans.json (config,
        labels): everything `load_from` needs, without the model resolver."""
        model, tokenizer = self._require_model()
        directory = write_state(directory, model, tokenizer, _STATE_FILE, EXTRACTOR_NAME,
                                _FORMAT_VERSION, self.config, self.labels,
                                backbone=self._backbone)
        logger.info("nlu.luke.saved path=%s", directory)
        return directory

    # -- training ------------------------------------------------------------------------------

    def train(self, examples: list[Example], progress: bool = True) -> dict[str, Any]:
        """Fine-tune on `examples`. Returns the learning curve (per-epoch train loss, validation
        span P/R/F1, seconds), the best epoch and the total seconds; keeps the best epoch."""
        began = time.perf_counter()
        cfg = self.config
        self.labels = collect_labels(examples, EXTRACTOR_NAME)
        torch.manual_seed(cfg.seed)
        rng = random.Random(cfg.seed)
        train_set, val_set = split_validation(examples, cfg.val_fraction, cfg.seed)
        model = self._build_model()
        windows = self._training_windows(train_set)
        optimizer = torch.optim.AdamW(self._parameter_groups(model), weight_decay=0.01)
        sizes = [
            len(sample_spans(w.spans, w.labels, cfg.negative_ratio, random.Random(0)))
            for w in windows
        ]
        n_chunks = sum(math.ceil(size / cfg.max_entities) for size in sizes)
        steps_per_epoch = math.ceil(n_chunks / cfg.batch_size)
        epochs = raised_epochs(cfg.epochs, steps_per_epoch, cfg.min_steps, EXTRACTOR_NAME)
        steps = steps_per_epoch * epochs
        schedule = linear_schedule(int(cfg.warmup_ratio * steps), steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        weight = torch.ones(1 + len(self.labels), device=cfg.device)  # (L,)
        weight[0] = cfg.negative_weight
        logger.info(
            "nlu.luke.train.start examples=%d validation=%d labels=%d backbone=%s",
            len(train_set), len(val_set), len(self.labels), self._backbone,
        )  # fmt: skip
        fitted = fit(model, lambda: self._train_epoch(windows, optimizer, scheduler, weight, rng),
                     entity_scores(self._predict, val_set), epochs=epochs,
                     patience=cfg.early_stopping_patience, name=EXTRACTOR_NAME,
                     progress=progress)
        seconds = round(time.perf_counter() - began, 2)
        logger.info("nlu.luke.train.done seconds=%.1f best_epoch=%d", seconds,
                    fitted["best_epoch"])
        return {"extractor": EXTRACTOR_NAME,
                "labels": [label_name(label) for label in self.labels],
                "n_train": len(train_set), "n_validation": len(val_set), **fitted,
                "epochs_planned": epochs, "steps_per_epoch": steps_per_epoch,
                "seconds": seconds}

    def _build_model(self) -> LukeForEntitySpanClassification:
        cfg = self.config
        id2label = {0: "O", **{i + 1: label_name(label) for i, label in enumerate(self.labels)}}
        model_id = cfg.luke_model if cfg.luke_model is not None else cfg.model
        try:
            path = resolve_model(model_id)
        except ModelNotFoundError as exc:
            raise NLUModelError(f"{EXTRACTOR_NAME}: {exc}") from exc
        if cfg.luke_model is not None:
            model, tokenizer = load_pretrained_luke(path, id2label)
            self._backbone, offset = "luke", (model.config.pad_token_id or 0) + 1
        else:
            model, tokenizer = build_luke_from_bert(path, id2label)
            self._backbone, offset = "bert", 0
        if cfg.max_length + offset > model.config.max_position_embeddings:
            raise NLUTrainingError(
                f"LukeSpanConfig.max_length={cfg.max_length} exceeds the "
                f"{model.config.max_position_embeddings} positions of '{model_id}'. Lower it."
            )
        self._model, self._tokenizer, self._source = model.to(cfg.device), tokenizer, None
        return self._model

    def _training_windows(self, examples: list[Example]) -> list[_Window]:
        _, tokenizer = self._require_model()
        index = {label: i + 1 for i, label in enumerate(self.labels)}
        encoded = encode_texts(tokenizer, [e.text for e in examples])
        windows: list[_Window] = []
        too_long = 0
        for i, (example, text) in enumerate(zip(examples, encoded, strict=True)):
            gold: dict[tuple[int, int], int] = {}
            for first, last, label in gold_word_spans(example, text.words):
                if last - first < self.config.max_span_length:
                    gold[(first, last)] = index[label]
                else:
                    too_long += 1
            windows.extend(self._windows(i, text, gold))
        if too_long:
            logger.warning(
                "nlu.luke.entities_too_long count=%d max_span_length=%d",
                too_long, self.config.max_span_length,
            )  # fmt: skip
        if not any(any(w.labels) for w in windows):
            raise NLUTrainingError(
                f"{EXTRACTOR_NAME}: no training entity fits a candidate span (max_span_length="
                f"{self.config.max_span_length} words). Raise it or check the annotations."
            )
        return windows

    def _parameter_groups(self, model: LukeForEntitySpanClassification) -> list[dict[str, Any]]:
        """New entity-side parameters and the head learn faster than the copied encoder."""
        model.luke.embeddings.word_embeddings.weight.requires_grad_(
            not self.config.freeze_word_embeddings
        )
        entity_side: list[nn.Parameter] = []
        encoder: list[nn.Parameter] = []
        for name, param in model.named_parameters():
            if param.requires_grad:
                new = name.startswith(("luke.entity_embeddings.", "classifier."))
                (entity_side if new else encoder).append(param)
        return [
            {"params": encoder, "lr": self.config.learning_rate},
            {"params": entity_side, "lr": self.config.entity_learning_rate},
        ]

    def _train_epoch(
        self,
        windows: list[_Window],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        weight: torch.Tensor,
        rng: random.Random,
    ) -> float:
        model, _ = self._require_model()
        model.train()
        ratio, size = self.config.negative_ratio, self.config.batch_size
        chunks = [
            c for w in windows for c in self._chunks(w, sample_spans(w.spans, w.labels, ratio, rng))
        ]
        rng.shuffle(chunks)
        losses = []
        for i in range(0, len(chunks), size):
            inputs, labels = self._collate(chunks[i : i + size])
            logits = model(**inputs).logits  # (B, E, L)
            loss = nn.functional.cross_entropy(
                logits.flatten(0, 1), labels.flatten(), weight=weight, ignore_index=_IGNORE
            )
            losses.append(optimizer_step(model, loss, optimizer, scheduler))
        return sum(losses) / max(1, len(losses))

    # -- inference -----------------------------------------------------------------------------

    def extract_batch(self, texts: list[str]) -> list[list[Entity]]:
        self.load()
        with torch.inference_mode():
            return self._predict(texts)

    def extract(self, text: str) -> list[Entity]:
        return self.extract_batch([text])[0]

    def _predict(self, texts: list[str]) -> list[list[Entity]]:
        model, tokenizer = self._require_model()
        model.eval()
        encoded = encode_texts(tokenizer, texts)
        windows = [w for i, text in enumerate(encoded) for w in self._windows(i, text, None)]
        chunks = [c for w in windows for c in self._chunks(w, list(range(len(w.spans))))]
        chunks.sort(key=lambda chunk: len(chunk[0].input_ids))  # less padding
        char_spans: list[list[tuple[int, int]]] = [[] for _ in texts]
        probs: list[list[torch.Tensor]] = [[] for _ in texts]
        for i in range(0, len(chunks), self.config.batch_size):
            batch = chunks[i : i + self.config.batch_size]
            inputs, _ = self._collate(batch)
            span_probs = model(**inputs).logits.float().softmax(dim=-1).cpu()  # (B, E, L)
            for row, (window, indices) in enumerate(batch):
                words = encoded[window.text_index].words
                for k in indices:
                    first, last = window.spans[k]
                    char_spans[window.text_index].append((words[first].start, words[last].end))
                probs[window.text_index].append(span_probs[row, : len(indices)])
        empty = torch.zeros(0, 1 + len(self.labels))
        return [
            decode_spans(text, spans, torch.cat(p) if p else empty, self.labels)
            for text, spans, p in zip(texts, char_spans, probs, strict=True)
        ]

    # -- inputs --------------------------------------------------------------------------------

    def _windows(
        self, text_index: int, encoded: EncodedText, gold: dict[tuple[int, int], int] | None
    ) -> list[_Window]:
        _, tokenizer = self._require_model()
        length, max_tokens = self.config.max_span_length, self.config.max_length - 2
        words, out = encoded.words, []
        for w0, w1 in word_windows(words, max_tokens, overlap=length - 1):
            first = words[w0].first_token
            stop = min(words[w1 - 1].last_token + 1, first + max_tokens)
            spans = enumerate_spans(w0, w1, length)
            token_spans = tuple(
                (1 + words[i].first_token - first, 1 + min(words[j].last_token, stop - 1) - first)
                for i, j in spans
            )
            labels = tuple(gold.get(span, 0) for span in spans) if gold is not None else ()
            ids = (tokenizer.cls_token_id, *encoded.token_ids[first:stop], tokenizer.sep_token_id)
            out.append(_Window(text_index, ids, tuple(spans), token_spans, labels))
        return out

    def _chunks(self, window: _Window, indices: list[int]) -> list[tuple[_Window, list[int]]]:
        step = self.config.max_entities
        return [(window, indices[i : i + step]) for i in range(0, len(indices), step)]

    def _collate(
        self, batch: list[tuple[_Window, list[int]]]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        _, tokenizer = self._require_model()
        B = len(batch)
        T = max(len(w.input_ids) for w, _ in batch)
        E = max(1, max(len(indices) for _, indices in batch))
        widths = [w.token_spans[k][1] - w.token_spans[k][0] + 1 for w, ks in batch for k in ks]
        M = min(_MAX_MENTION_TOKENS, max(widths, default=1))
        input_ids = torch.full((B, T), tokenizer.pad_token_id or 0, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros(B, T, dtype=torch.long)  # (B, T)
        entity_ids = torch.zeros(B, E, dtype=torch.long)  # (B, E): [PAD] entities
        entity_position_ids = torch.full((B, E, M), -1, dtype=torch.long)  # (B, E, M)
        starts = torch.zeros(B, E, dtype=torch.long)  # (B, E)
        ends = torch.zeros(B, E, dtype=torch.long)  # (B, E)
        labels = torch.full((B, E), _IGNORE, dtype=torch.long)  # (B, E)
        for b, (window, indices) in enumerate(batch):
            input_ids[b, : len(window.input_ids)] = torch.tensor(window.input_ids)
            attention_mask[b, : len(window.input_ids)] = 1
            for e, k in enumerate(indices):
                start, end = window.token_spans[k]
                width = min(end - start + 1, M)
                entity_ids[b, e] = ENTITY_MASK_ID
                entity_position_ids[b, e, :width] = torch.arange(start, start + width)
                starts[b, e], ends[b, e] = start, end
                if window.labels:
                    labels[b, e] = window.labels[k]
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": torch.zeros_like(input_ids),
            "entity_ids": entity_ids,
            "entity_attention_mask": (entity_ids != 0).long(),
            "entity_position_ids": entity_position_ids,
            "entity_start_positions": starts,
            "entity_end_positions": ends,
        }
        if self._backbone == "bert":  # BERT counts positions from 0, LUKE's default from pad + 1
            inputs["position_ids"] = torch.arange(T).expand(B, T)  # (B, T)
        device = self.config.device
        return {k: v.to(device) for k, v in inputs.items()}, labels.to(device)

    def _require_model(self) -> tuple[LukeForEntitySpanClassification, PreTrainedTokenizerBase]:
        self.load()
        if self._model is None or self._tokenizer is None:
            raise NLUModelError(f"{EXTRACTOR_NAME} failed to load its model from '{self._source}'.")
        return self._model, self._tokenizer
