"""BIO token-classification entity tagger: the sanity baseline for the LUKE span extractor.

Same backbone, same words, same labels (entity#role@group) and the same API as
`LukeSpanExtractor`, but a per-word B-/I-/O tag read from the first word piece of each word
(`AutoModelForTokenClassification`). Tags are decoded into spans with the usual repair: an I- tag
that does not continue a span of its label starts one. Long messages are cut into consecutive
windows of `max_length` pieces.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from nlu.components import BioTaggerConfig
from nlu.fitting import (
    entity_scores,
    fit,
    linear_schedule,
    optimizer_step,
    raised_epochs,
)
from nlu.errors import NLUModelError, NLUTrainingError
from nlu.saved_state import load_saved, read_state, write_state
from nlu.types import Entity, Example
from nlu.words import (
    EncodedText,
    SpanLabel,
    collect_labels,
    encode_texts,
    gold_word_spans,
    label_name,
    split_validation,
    word_windows,
)
from resolver import ModelNotFoundError, resolve_model

logger = logging.getLogger(__name__)

EXTRACTOR_NAME = "BioTagger"
_STATE_FILE = "bio_tagger.json"
_FORMAT_VERSION = 1
_IGNORE = -100


@dataclass(frozen=True, slots=True)
class _Window:
    text_index: int
    input_ids: tuple[int, ...]  # [CLS] pieces [SEP]
    word_positions: tuple[tuple[int, int], ...]  # (word index, position of its first piece)
    tags: tuple[int, ...]  # gold tag per word of word_positions; empty at inference


def tag_names(labels: list[SpanLabel]) -> list[str]:
    """Tag 0 is "O"; label i (0-based) has tags 2i + 1 (B-) and 2i + 2 (I-)."""
    names = ["O"]
    for label in labels:
        names += [f"B-{label_name(label)}", f"I-{label_name(label)}"]
    return names


def decode_tags(
    text: str,
    encoded: EncodedText,
    word_tags: dict[int, tuple[int, float]],
    labels: list[SpanLabel],
) -> list[Entity]:
    """Word tags (tag, probability) -> entities. An I- tag that continues no span of its label
    starts one; confidence is the mean tag probability over the span's words."""
    spans: list[list[Any]] = []  # [label index, first word, last word, probabilities]
    for word in sorted(word_tags):
        tag, prob = word_tags[word]
        if tag == 0:
            continue
        label, inside = (tag - 1) // 2, (tag - 1) % 2 == 1
        current = spans[-1] if spans else None
        if inside and current is not None and current[0] == label and current[2] == word - 1:
            current[2] = word
            current[3].append(prob)
        else:
            spans.append([label, word, word, [prob]])
    entities = []
    for label, first, last, probs in spans:
        start, end = encoded.words[first].start, encoded.words[last].end
        entity, role, group = labels[label]
        entities.append(
            Entity(
                start,
                end,
                text[start:end],
                entity,
                role,
                group,
                sum(probs) / len(probs),
                EXTRACTOR_NAME,
            )
        )
    return entities


class BioTagger:
    """Entity spans from per-word BIO tags: `train`, `extract_batch`, `save`, `load_from`."""

    def __init__(self, config: BioTaggerConfig | None = None) -> None:
        self.config = config if config is not None else BioTaggerConfig()
        self.labels: list[SpanLabel] = []
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._source: Path | None = None

    def load(self) -> BioTagger:
        """Load the saved model once (after `load_from`); returns the tagger."""
        if self._model is not None:
            return self
        model, self._tokenizer = load_saved(self._source, EXTRACTOR_NAME,
                                            AutoModelForTokenClassification.from_pretrained)
        self._model = model.to(self.config.device).eval()
        return self

    @classmethod
    def load_from(cls, directory: str | Path, device: str | None = None) -> BioTagger:
        directory = Path(directory)
        config, labels, _ = read_state(directory, _STATE_FILE, EXTRACTOR_NAME, BioTaggerConfig,
                                       _FORMAT_VERSION, device=device)
        tagger = cls(config)
        tagger.labels = labels
        tagger._source = directory
        tagger.load()
        return tagger

    def save(self, directory: str | Path) -> Path:
        model, tokenizer = self._require_model()
        return write_state(directory, model, tokenizer, _STATE_FILE, EXTRACTOR_NAME,
                           _FORMAT_VERSION, self.config, self.labels)

    def train(self, examples: list[Example], progress: bool = True) -> dict[str, Any]:
        """Fine-tune on `examples`; same report as LukeSpanExtractor.train."""
        began = time.perf_counter()
        cfg = self.config
        self.labels = collect_labels(examples, EXTRACTOR_NAME)
        torch.manual_seed(cfg.seed)
        rng = random.Random(cfg.seed)
        train_set, val_set = split_validation(examples, cfg.val_fraction, cfg.seed)
        model = self._build_model()
        windows = self._training_windows(train_set)
        head = [p for n, p in model.named_parameters() if n.startswith("classifier.")]
        body = [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
        groups = [{"params": body, "lr": cfg.learning_rate}]
        groups.append({"params": head, "lr": cfg.head_learning_rate})
        optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
        steps_per_epoch = math.ceil(len(windows) / cfg.batch_size)
        epochs = raised_epochs(cfg.epochs, steps_per_epoch, cfg.min_steps, EXTRACTOR_NAME)
        steps = steps_per_epoch * epochs
        schedule = linear_schedule(int(cfg.warmup_ratio * steps), steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        fitted = fit(model, lambda: self._train_epoch(windows, optimizer, scheduler, rng),
                     entity_scores(self._predict, val_set), epochs=epochs,
                     patience=cfg.early_stopping_patience, name=EXTRACTOR_NAME,
                     progress=progress)
        return {"extractor": EXTRACTOR_NAME,
                "labels": [label_name(label) for label in self.labels],
                "n_train": len(train_set), "n_validation": len(val_set), **fitted,
                "epochs_planned": epochs, "steps_per_epoch": steps_per_epoch,
                "seconds": round(time.perf_counter() - began, 2)}

    def _train_epoch(
        self,
        windows: list[_Window],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        rng: random.Random,
    ) -> float:
        model, _ = self._require_model()
        model.train()
        rng.shuffle(windows)
        losses = []
        for i in range(0, len(windows), self.config.batch_size):
            inputs, tags = self._collate(windows[i : i + self.config.batch_size])
            logits = model(**inputs).logits  # (B, T, n_tags)
            loss = nn.functional.cross_entropy(
                logits.flatten(0, 1), tags.flatten(), ignore_index=_IGNORE
            )
            losses.append(optimizer_step(model, loss, optimizer, scheduler))
        return sum(losses) / max(1, len(losses))

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
        windows = [w for i, enc in enumerate(encoded) for w in self._windows(i, enc, None)]
        word_tags: list[dict[int, tuple[int, float]]] = [{} for _ in texts]
        for i in range(0, len(windows), self.config.batch_size):
            batch = windows[i : i + self.config.batch_size]
            inputs, _ = self._collate(batch)
            probs = model(**inputs).logits.float().softmax(dim=-1).cpu()  # (B, T, n_tags)
            best_prob, best_tag = probs.max(dim=-1)  # (B, T)
            for row, window in enumerate(batch):
                for word, position in window.word_positions:
                    word_tags[window.text_index][word] = (
                        int(best_tag[row, position]),
                        float(best_prob[row, position]),
                    )
        return [
            decode_tags(t, enc, tags, self.labels)
            for t, enc, tags in zip(texts, encoded, word_tags, strict=True)
        ]

    def _build_model(self) -> PreTrainedModel:
        names = tag_names(self.labels)
        try:
            path = resolve_model(self.config.model)
        except ModelNotFoundError as exc:
            raise NLUModelError(f"{EXTRACTOR_NAME}: {exc}") from exc
        try:
            model = AutoModelForTokenClassification.from_pretrained(
                path,
                num_labels=len(names),
                id2label=dict(enumerate(names)),
                label2id={n: i for i, n in enumerate(names)},
            )
            self._tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise NLUModelError(f"{EXTRACTOR_NAME}: cannot load '{path}': {exc}") from exc
        if not self._tokenizer.is_fast:
            raise NLUModelError(
                f"{EXTRACTOR_NAME} needs a fast tokenizer (char offsets); '{path}' has none."
            )
        self._model, self._source = model.to(self.config.device), None
        return self._model

    def _training_windows(self, examples: list[Example]) -> list[_Window]:
        _, tokenizer = self._require_model()
        index = {label: i for i, label in enumerate(self.labels)}
        windows: list[_Window] = []
        for i, (example, encoded) in enumerate(
            zip(examples, encode_texts(tokenizer, [e.text for e in examples]), strict=True)
        ):
            tags = [0] * len(encoded.words)
            for first, last, label in gold_word_spans(example, encoded.words):
                tags[first] = 2 * index[label] + 1
                for word in range(first + 1, last + 1):
                    tags[word] = 2 * index[label] + 2
            windows.extend(self._windows(i, encoded, tags))
        if not any(any(w.tags) for w in windows):
            raise NLUTrainingError(f"{EXTRACTOR_NAME}: no training entity lines up with a word.")
        return windows

    def _windows(
        self, text_index: int, encoded: EncodedText, tags: list[int] | None
    ) -> list[_Window]:
        _, tokenizer = self._require_model()
        max_tokens = self.config.max_length - 2
        out = []
        for w0, w1 in word_windows(encoded.words, max_tokens, overlap=0):
            first = encoded.words[w0].first_token
            stop = min(encoded.words[w1 - 1].last_token + 1, first + max_tokens)
            positions = tuple((w, 1 + encoded.words[w].first_token - first) for w in range(w0, w1))
            window_tags = tuple(tags[w0:w1]) if tags is not None else ()
            input_ids = (
                tokenizer.cls_token_id,
                *encoded.token_ids[first:stop],
                tokenizer.sep_token_id,
            )
            out.append(_Window(text_index, input_ids, positions, window_tags))
        return out

    def _collate(self, batch: list[_Window]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        _, tokenizer = self._require_model()
        B, T = len(batch), max(len(w.input_ids) for w in batch)
        input_ids = torch.full((B, T), tokenizer.pad_token_id or 0, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros(B, T, dtype=torch.long)  # (B, T)
        tags = torch.full((B, T), _IGNORE, dtype=torch.long)  # (B, T): first piece of each word
        for b, window in enumerate(batch):
            input_ids[b, : len(window.input_ids)] = torch.tensor(window.input_ids)
            attention_mask[b, : len(window.input_ids)] = 1
            for k, (_, position) in enumerate(window.word_positions):
                if window.tags:
                    tags[b, position] = window.tags[k]
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        device = self.config.device
        return {k: v.to(device) for k, v in inputs.items()}, tags.to(device)

    def _require_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        self.load()
        if self._model is None or self._tokenizer is None:
            raise NLUModelError(f"{EXTRACTOR_NAME} failed to load its model from '{self._source}'.")
        return self._model, self._tokenizer
