"""Intent and entities from one encoder pass: `JointIntentEntity`.

One LUKE encoder built from the BERT backbone (nlu/luke_build.py) reads the message as words and
every candidate span (nlu/span_pruning.py) as a [MASK] entity token. The intent head mean-pools
the word stream; the span head classifies [start word; end word; entity] states as LUKE does.
One loss (intent soft cross-entropy + weighted span cross-entropy), one set of weights, one
training run (the shared loop of nlu/fitting.py).

    [CLS] context [SEP] message [SEP]  + [MASK] x candidate spans of the message
      word stream   --attends to words only-->     mean pool -> intent (MC dropout, T scaling)
      entity stream --attends to words + entities-> span head -> entities

Words do not attend to the entity tokens (entities attend to both, with LUKE's entity-aware
queries). So the word stream, and the intent, do not depend on which spans were kept, and the
MC-dropout samples (top `mc_layers` layers and the intent head, nlu/mc_dropout.py's idea) run
on the word tokens only (beside ONNX Runtime: nlu/mc_sampler.py). With `use_context: true` the
message is the second segment of a text pair whose first segment is the dialogue context (empty
when there is none); entity offsets stay on the message.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_model
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from nlu.calibration import apply_temperature, expected_calibration_error, fit_temperature, \
    predictive_summary
from nlu.fitting import (
    entity_scores,
    fit,
    linear_schedule,
    optimizer_step,
    raised_epochs,
)
from nlu.components import JointConfig
from nlu.errors import NLUModelError, NLUTrainingError
# the intent classifier's data helpers: the same split, noise negatives and checks
from nlu.intent import IntentPrediction
from nlu.intent import _noise_texts as noise_texts
from nlu.intent import _stratified_split as stratified_split
from nlu.intent import _usable as usable_examples
from nlu.luke_build import ENTITY_MASK_ID
from nlu.luke_spans import decode_spans
from nlu.mc_sampler import DropoutSampler, matmul_dtype
from nlu.onnx_encoder import OnnxJointPass
from nlu.onnx_encoder import export as export_onnx
from nlu.quantize import quantize_linear, wants_quantization
from nlu.span_pruning import SpanPruner
from nlu.types import Entity, Example, IntentScore
from nlu.typos import typo_examples
from nlu.words import EncodedText, SpanLabel, encode_texts, gold_word_spans, label_name
from resolver import ModelNotFoundError, resolve_model

if TYPE_CHECKING:  # transformers' model classes are imported where a PyTorch encoder is built
    from transformers import LukeModel

logger = logging.getLogger(__name__)

COMPONENT_NAME = "JointIntentEntity"
FORMAT_VERSION = 1
_STATE, _WEIGHTS, _ENCODER_DIR, _ONNX = ("joint.json", "model.safetensors", "encoder",
                                         "joint.onnx")
_MAX_MENTION_TOKENS = 30  # LUKE's entity position ids per span
_IGNORE = -100


@dataclass(frozen=True, slots=True)
class _Input:
    """One message ready for the encoder; spans in words of the message, token_spans in
    positions of input_ids."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    token_spans: tuple[tuple[int, int], ...]
    labels: tuple[int, ...] = ()  # gold per span (0: "O"); empty: ignored (inference, noise)


_State = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]  # word, entity, mask


class JointNet(nn.Module):
    """LUKE encoder + intent head over the word stream + span head over the entity stream.
    Entity tokens join at layer `entity_start` (0: from the embeddings on, as in LUKE)."""

    def __init__(self, luke: LukeModel, n_intents: int, n_span_labels: int, dropout: float,
                 words_see_entities: bool = False, entity_layers: int = 0) -> None:
        super().__init__()
        hidden, n_layers = luke.config.hidden_size, luke.config.num_hidden_layers
        self.luke = luke
        self.words_see_entities = words_see_entities
        self.entity_start = n_layers - min(entity_layers, n_layers) if entity_layers else 0
        self.dropout = nn.Dropout(dropout)
        self.intent_head = nn.Linear(hidden, n_intents)
        self.span_head = nn.Linear(3 * hidden, n_span_labels)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C) intent logits and (B, E, L) span logits."""
        word, entity, _ = self.run_layers(self.embed(batch), batch, 0,
                                          len(self.luke.encoder.layer))
        return self.intent_logits(word, batch["attention_mask"]), \
            self.span_logits(word, entity, batch)

    def embed(self, batch: dict[str, torch.Tensor]) -> _State:
        """Word embeddings (B, T, H), no entities yet, the words' mask (B, 1, T, T)."""
        word = self.luke.embeddings(input_ids=batch["input_ids"],
                                    token_type_ids=batch["token_type_ids"],
                                    position_ids=batch["position_ids"])
        return word, None, _attention_mask(batch["attention_mask"], None, word.dtype)

    def run_layers(self, state: _State, batch: dict[str, torch.Tensor], start: int,
                   stop: int) -> _State:
        """Layers [start, stop); the [MASK] entity tokens (B, E, H) join at `entity_start`,
        and the mask grows to (B, 1, T+E, T+E)."""
        word, entity, mask = state
        for index in range(start, stop):
            if index == self.entity_start and entity is None and batch["entity_ids"].shape[1]:
                entity = self.luke.entity_embeddings(batch["entity_ids"],
                                                     batch["entity_position_ids"],
                                                     batch["entity_token_type_ids"])
                mask = _attention_mask(batch["attention_mask"], batch["entity_attention_mask"],
                                       word.dtype, self.words_see_entities)
            word, entity = self.luke.encoder.layer[index](word, entity, mask)[:2]
        return word, entity, mask

    def intent_logits(self, word: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = attention_mask.unsqueeze(-1).to(word.dtype)  # (B, T, 1)
        pooled = (word * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)
        return self.intent_head(self.dropout(pooled))  # (B, C)

    def span_logits(self, word: torch.Tensor, entity: torch.Tensor | None,
                    batch: dict[str, torch.Tensor]) -> torch.Tensor:
        b, e = batch["entity_ids"].shape
        if entity is None:
            return word.new_zeros(b, 0, self.span_head.out_features)  # (B, 0, L)
        size = word.shape[-1]
        starts = word.gather(1, batch["entity_start_positions"].unsqueeze(-1).expand(b, e, size))
        ends = word.gather(1, batch["entity_end_positions"].unsqueeze(-1).expand(b, e, size))
        features = torch.cat([starts, ends, entity], dim=-1)  # (B, E, 3H)
        return self.span_head(self.dropout(features))  # (B, E, L)

    def predict(self, batch: dict[str, torch.Tensor], n_samples: int, mc_layers: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, B, C) intent logits (S = 1 without sampling) and (B, E, L) span logits. The
        lower layers run once; with S > 1 the top `mc_layers` layers run again, S times with
        dropout on (`sample_intents`)."""
        self.eval()
        n_layers = len(self.luke.encoder.layer)
        split = self.mc_split(n_samples, mc_layers)
        low = self.run_layers(self.embed(batch), batch, 0, split)
        word, entity, _ = self.run_layers(low, batch, split, n_layers)
        spans = self.span_logits(word, entity, batch)
        if n_samples <= 1:
            return self.intent_logits(word, batch["attention_mask"]).unsqueeze(0), spans
        return self.sample_intents(low, batch, n_samples, split), spans

    def mc_split(self, n_samples: int, mc_layers: int) -> int:
        """The first layer MC dropout samples (the layer count when there is no sampling)."""
        n_layers = len(self.luke.encoder.layer)
        return n_layers - (min(max(mc_layers, 1), n_layers) if n_samples > 1 else 0)

    def sample_intents(self, low: _State, batch: dict[str, torch.Tensor], n_samples: int,
                       split: int) -> torch.Tensor:
        """(S, B, C): layers [split, end) and the intent head S times with dropout on, from the
        state below them: on the word tokens alone (exact, as words do not attend to
        entities), or on words and entities with `words_see_entities`."""
        low_word, low_entity, low_mask = low
        if self.words_see_entities:
            repeated = {k: v.repeat(n_samples, *([1] * (v.dim() - 1))) for k, v in batch.items()}
            sampled: _State = (low_word.repeat(n_samples, 1, 1),
                               None if low_entity is None else low_entity.repeat(n_samples, 1, 1),
                               low_mask.repeat(n_samples, 1, 1, 1))
        else:  # words only: no entity tokens join, the mask is the words' part
            t = low_word.shape[1]
            repeated = {"attention_mask": batch["attention_mask"].repeat(n_samples, 1),
                        "entity_ids": batch["entity_ids"][:, :0].repeat(n_samples, 1)}
            sampled = (low_word.repeat(n_samples, 1, 1), None,
                       low_mask[:, :, :t, :t].repeat(n_samples, 1, 1, 1))
        try:
            for layer in self.luke.encoder.layer[split:]:
                layer.train(True)
            self.dropout.train(True)
            word = self.run_layers(sampled, repeated, split, len(self.luke.encoder.layer))[0]
            logits = self.intent_logits(word, repeated["attention_mask"])  # (S*B, C)
        finally:
            self.eval()
        return logits.view(n_samples, -1, logits.shape[-1])


def _attention_mask(words: torch.Tensor, entities: torch.Tensor | None,
                    dtype: torch.dtype, words_see_entities: bool = False) -> torch.Tensor:
    """(B, 1, T+E, T+E) additive mask: word rows see valid words (and entities with
    `words_see_entities`, LUKE's own way), entity rows valid words and entities."""
    keys = words.bool() if entities is None else torch.cat([words, entities], 1).bool()
    n_words, n = words.shape[1], keys.shape[1]
    allowed = keys[:, None, :].expand(-1, n, -1).clone()  # (B, T+E, T+E)
    if not words_see_entities:
        allowed[:, :n_words, n_words:] = False
    return (~allowed).to(dtype)[:, None] * torch.finfo(dtype).min


class JointIntentEntity:
    """Intent + entities in one pass. `train` or `load_from`, then `parse_batch`; `save`."""

    def __init__(self, config: JointConfig | None = None) -> None:
        self.config = config or JointConfig()
        self.intents: tuple[str, ...] = ()
        self.span_labels: list[SpanLabel] = []
        self.pruner = SpanPruner(self.config.max_span_length, self.config.prune_spans)
        self.temperatures = {"deterministic": 1.0, "mc": 1.0}
        self._net: JointNet | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._onnx: OnnxJointPass | None = None  # set by load_from with runtime onnx
        self._sampler: DropoutSampler | None = None  # MC samples beside the ONNX pass

    @property
    def is_trained(self) -> bool:
        return self._net is not None or self._onnx is not None

    @property
    def uses_context(self) -> bool:
        """Whether parse_batch reads `contexts` (config `use_context`)."""
        return self.config.use_context

    # -- saving and loading --------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """model.safetensors (encoder + heads), encoder/ (LUKE config, tokenizer), joint.json."""
        net, tokenizer = self._require()
        if net is None:
            raise NLUModelError(f"This {COMPONENT_NAME} was loaded for ONNX inference only and "
                                "cannot be saved. Fix: load it with runtime='torch' to save it.")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_model(net, str(directory / _WEIGHTS))
        net.luke.config.save_pretrained(directory / _ENCODER_DIR)
        tokenizer.save_pretrained(directory / _ENCODER_DIR)
        state = {"format_version": FORMAT_VERSION, "component": COMPONENT_NAME,
                 "config": asdict(self.config), "intents": list(self.intents),
                 "span_labels": [list(label) for label in self.span_labels],
                 "pruner": self.pruner.to_dict(), "temperatures": self.temperatures}
        (directory / _STATE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        if self._wants_onnx():
            self._export_onnx(directory / _ONNX)
        logger.info("nlu.joint.saved path=%s", directory)
        return directory

    @classmethod
    def load_from(cls, directory: str | Path, *, device: str | None = None,
                  n_samples: int | None = None, quantize: bool | None = None,
                  runtime: str | None = None, mc_precision: str | None = None
                  ) -> JointIntentEntity:
        """Load what `save` wrote; `device`/`n_samples`/`quantize`/`runtime`/`mc_precision`
        override the saved config."""
        directory = Path(directory)
        needed = (_STATE, _WEIGHTS, f"{_ENCODER_DIR}/config.json")
        missing = [name for name in needed if not (directory / name).is_file()]
        if missing:
            raise NLUModelError(f"No {COMPONENT_NAME} in '{directory}': missing "
                                f"{', '.join(missing)}. Fix: run `xingkong train nlu`.")
        try:
            state = json.loads((directory / _STATE).read_text(encoding="utf-8"))
            known = {f.name for f in fields(JointConfig)}
            values = {k: v for k, v in state["config"].items() if k in known}
            overrides = {"device": device, "n_samples": n_samples, "quantize": quantize,
                         "runtime": runtime, "mc_precision": mc_precision}
            values |= {k: v for k, v in overrides.items() if v is not None}
            model = cls(JointConfig(**values))
            model.intents = tuple(state["intents"])
            model.span_labels = [(e, r, g) for e, r, g in state["span_labels"]]
            model.pruner = SpanPruner.from_dict(state["pruner"])
            model.temperatures = {k: float(v) for k, v in state["temperatures"].items()}
            version = state.get("format_version")
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise NLUModelError(f"Unreadable {directory / _STATE}: {exc!r}. Fix: retrain.") from exc
        if version != FORMAT_VERSION:
            raise NLUModelError(f"{directory / _STATE} has format {version!r}, this code reads "
                                f"{FORMAT_VERSION}. Fix: retrain with `xingkong train nlu`.")
        # with the ONNX graph on disk, ONNX Runtime runs the encoder and PyTorch holds only
        # the layers MC dropout samples (nlu/mc_sampler.py): no second copy of the weights
        graph = directory / _ONNX
        onnx_only = model._wants_onnx() and graph.is_file()
        try:
            encoder = json.loads((directory / _ENCODER_DIR / "config.json").read_text("utf-8"))
            with safe_open(str(directory / _WEIGHTS), framework="pt") as weights:
                wanted = model._sampler_weights(encoder) if onnx_only else None
                state = {k: weights.get_tensor(k) for k in weights.keys()
                         if wanted is None or k.startswith(wanted)}
            tokenizer = AutoTokenizer.from_pretrained(directory / _ENCODER_DIR)
            if onnx_only:
                model._sampler = model._make_sampler(state, encoder)
            else:
                model._net = model._load_net(directory, state).to(model.config.device).eval()
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise NLUModelError(f"{COMPONENT_NAME} in '{directory}' is incomplete or "
                                f"incompatible: {exc}. Fix: retrain.") from exc
        if model._net is not None and wants_quantization(model.config.quantize,
                                                         model.config.device):
            model._net = quantize_linear(model._net)
        model._tokenizer = tokenizer
        if model._wants_onnx():
            if not graph.is_file():  # saved with runtime torch: export now, in memory
                logger.info("nlu.joint.onnx_export path=%s", directory)
                model._sampler = model._make_sampler(state, encoder)
            model._onnx = OnnxJointPass(graph if graph.is_file() else model._export_onnx(),
                                        torch.get_num_threads())
        return model

    def _load_net(self, directory: Path, state: dict[str, torch.Tensor]) -> JointNet:
        """The full PyTorch model, built on the meta device and given the saved tensors (no
        random initialisation, one copy of the weights)."""
        from transformers import LukeConfig, LukeModel

        cfg = self.config
        with torch.device("meta"):
            luke = LukeModel(LukeConfig.from_pretrained(directory / _ENCODER_DIR))
            net = JointNet(luke, len(self.intents), 1 + len(self.span_labels), cfg.dropout,
                           cfg.words_see_entities, cfg.entity_layers)
        missing, unexpected = net.load_state_dict(state, strict=False, assign=True)
        if missing or unexpected:
            raise ValueError(f"the weights do not match the model (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
        return net

    def _sampler_layers(self, encoder: Mapping[str, Any]) -> range:
        """The encoder layers MC dropout samples (the top `mc_layers`, at least one)."""
        n_layers = int(encoder["num_hidden_layers"])
        return range(n_layers - min(max(self.config.mc_layers, 1), n_layers), n_layers)

    def _sampler_weights(self, encoder: Mapping[str, Any]) -> tuple[str, ...]:
        """Name prefixes of the weights the DropoutSampler reads."""
        return (*(f"luke.encoder.layer.{i}." for i in self._sampler_layers(encoder)),
                "intent_head.")

    def _make_sampler(self, state: Mapping[str, torch.Tensor],
                      encoder: Mapping[str, Any]) -> DropoutSampler:
        if encoder.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"the MC-dropout sampler runs GELU layers, the encoder uses "
                             f"{encoder['hidden_act']!r} (set runtime: torch)")
        layers = self._sampler_layers(encoder)
        return DropoutSampler.from_state(
            state, layers.start, layers.stop, heads=int(encoder["num_attention_heads"]),
            eps=float(encoder.get("layer_norm_eps", 1e-12)),
            attention_dropout=float(encoder["attention_probs_dropout_prob"]),
            hidden_dropout=float(encoder["hidden_dropout_prob"]), head_dropout=self.config.dropout,
            dtype=matmul_dtype(self.config.mc_precision))

    def _wants_onnx(self) -> bool:
        cfg = self.config
        return cfg.runtime == "onnx" and cfg.device == "cpu" and not cfg.quantize \
            and not cfg.words_see_entities

    def _export_onnx(self, path: Path | None = None) -> bytes:
        """The deterministic pass as an ONNX graph, split where MC dropout samples."""
        net, tokenizer = self._require()
        ids = (tokenizer.cls_token_id, tokenizer.unk_token_id, tokenizer.sep_token_id)
        example, _ = self._collate([_Input(ids, (0, 0, 0), ((0, 0),), ((1, 1),))])
        return export_onnx(net, example, net.mc_split(2, self.config.mc_layers), path)

    # -- training ------------------------------------------------------------------------------

    def train(self, examples: list[Example], progress: bool = True,
              contexts: Mapping[str, Sequence[Any]] | None = None,
              threads: Callable[[], int] | None = None,
              retargets: Mapping[str, Sequence[tuple[Any, str]]] | None = None,
              answers: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
        """Fine-tune on `examples`; return the learning curve, calibration and pruning figures;
        keeps the best epoch. `contexts` ({intent: the dialogue contexts it follows in the
        stories}, DialogueContext or text) is read only with `use_context`: every example
        trains context-free, and a `context_fraction` of them also as a copy paired with one
        of its intent's contexts. `retargets` ({text: [(context, intent), ...]}, nlu/context.py
        restated_tasks) gives a text the intent it means in each of those contexts (another
        intent in some): it is copied into every one of them. `answers` ({text: [context, ...]},
        nlu/context.py answer_contexts): also copied into each of these, beside the random
        draw, for the intent only (with their spans, a form asking for the hotel would teach
        the span model that nothing else is named there: "make that Amsterdam" lost its
        city). `threads()`, when given, sets the torch threads at each quarter of an epoch."""
        cfg, began = self.config, time.perf_counter()
        n_spans = None  # train[n_spans:] (answer copies) trains the intent only
        pairs: list[tuple[Example, str]] = [(e, "") for e in examples
                                            if e.intent and e.text.strip()]
        usable_examples(examples)  # a clear error when there is nothing to learn
        intents = tuple(sorted({e.intent for e, _ in pairs if e.intent}))
        if len(intents) < 2:
            raise NLUTrainingError(f"{COMPONENT_NAME} needs at least 2 distinct intents, got "
                                   f"{list(intents)}. Fix: add examples of another intent.")
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.intents = intents
        self.span_labels = sorted({(a.entity, a.role, a.group) for e, _ in pairs
                                   for a in e.entities}, key=lambda x: (x[0], x[1] or "", x[2] or ""))
        net, tokenizer = self._build()
        y = np.array([intents.index(e.intent) for e, _ in pairs])
        train_idx, val_idx = stratified_split(y, cfg.val_fraction, rng)
        train = [pairs[i] for i in train_idx]
        val = [pairs[i] for i in val_idx]
        if cfg.use_context and contexts:
            train += _context_copies(train, contexts, cfg.context_fraction, rng, retargets or {})
            n_spans = len(train)
            train += _answer_copies(train, answers or {})
            y_train = np.array([intents.index(e.intent) for e, _ in train])
        else:
            y_train = y[train_idx]
        encoded = encode_texts(tokenizer, [e.text for e, _ in train])  # tokenised once
        self.pruner = SpanPruner.from_training([e for e, _ in train], encoded,
                                               cfg.max_span_length, cfg.prune_spans)
        index = {label: i + 1 for i, label in enumerate(self.span_labels)}
        inputs = [self._input(text, context, _gold(example, text, index)
                              if n_spans is None or i < n_spans else None)
                  for i, ((example, context), text) in enumerate(zip(train, encoded, strict=True))]
        # misspelt copies (nlu/typos.py), their entities moved with the edits: intent + spans
        typos = typo_examples([e for e, _ in train[:n_spans]], cfg.typo_fraction, rng) \
            if cfg.typo_fraction > 0 else []
        typo_texts = encode_texts(tokenizer, [copy.text for _, copy in typos])
        inputs += [self._input(text, train[i][1], _gold(copy, text, index))
                   for (i, copy), text in zip(typos, typo_texts, strict=True)]
        y_labelled = np.concatenate([y_train, y_train[[i for i, _ in typos]]]).astype(int)
        noise = noise_texts([e.text for e, _ in train], round(cfg.noise_fraction * len(train)),
                            rng)
        inputs += [self._input(text, None, None) for text in encode_texts(tokenizer, noise)]
        n_real, n_intents = len(train), len(intents)
        n_labelled = len(y_labelled)
        targets = torch.full((len(inputs), n_intents), 1.0 / n_intents)  # (N, C) noise: uniform
        targets[:n_labelled] = cfg.label_smoothing / n_intents
        targets[torch.arange(n_labelled), torch.as_tensor(y_labelled)] += 1.0 - cfg.label_smoothing
        # fused: one kernel for all the weights (a step 45 -> 8 ms on one CPU core), same update
        optimizer = torch.optim.AdamW(self._parameter_groups(net), weight_decay=cfg.weight_decay,
                                      fused=True)
        steps_per_epoch = math.ceil(len(inputs) / cfg.batch_size)
        epochs = raised_epochs(cfg.epochs, steps_per_epoch, cfg.min_steps, COMPONENT_NAME)
        steps = steps_per_epoch * epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, linear_schedule(int(cfg.warmup_fraction * steps), steps))
        weight = torch.ones(1 + len(self.span_labels), device=cfg.device)  # (L,)
        weight[0] = cfg.negative_weight
        logger.info("nlu.joint.train.start train=%d validation=%d typos=%d noise=%d intents=%d "
                    "labels=%d spans_per_message=%.1f", n_real, len(val), len(typos), len(noise),
                    n_intents,
                    len(self.span_labels), sum(len(i.spans) for i in inputs) / len(inputs))

        def run_epoch() -> float:
            return self._train_epoch(inputs, targets, optimizer, scheduler, weight, rng,
                                     threads)

        prepared = time.perf_counter()
        fitted = fit(net, run_epoch, self._validation(val), epochs=epochs,
                     patience=cfg.early_stopping_patience, name=COMPONENT_NAME,
                     progress=progress, score="val_score")
        fitted_at = time.perf_counter()
        calibration = self._calibrate(val)
        report = {"component": COMPONENT_NAME, "intents": list(intents),
                  "entity_labels": [label_name(label) for label in self.span_labels],
                  "n_train": n_real, "n_val": len(val), "n_typos": len(typos),
                  "n_noise": len(noise),
                  "n_context_pairs": n_real - len(train_idx),
                  "epochs_planned": epochs, "steps_per_epoch": steps_per_epoch,
                  "pruner": self.pruner.to_dict(),
                  "spans_per_message": sum(len(i.spans) for i in inputs[:n_real]) / max(1, n_real),
                  **fitted, **calibration}
        done = time.perf_counter()
        report["seconds"] = round(done - began, 2)
        report["stage_seconds"] = {"prepare": round(prepared - began, 2),
                                   "fit": round(fitted_at - prepared, 2),
                                   "calibrate": round(done - fitted_at, 2)}
        logger.info("nlu.joint.train.done seconds=%.1f best_epoch=%d", report["seconds"],
                    report["best_epoch"])
        return report

    def _build(self) -> tuple[JointNet, PreTrainedTokenizerBase]:
        cfg = self.config
        try:
            path = resolve_model(cfg.model)
        except ModelNotFoundError as exc:
            raise NLUModelError(f"{COMPONENT_NAME}: {exc}") from exc
        from nlu.luke_build import build_luke_encoder

        luke, tokenizer = build_luke_encoder(path, cfg.dropout)
        if cfg.max_length > luke.config.max_position_embeddings:
            raise NLUTrainingError(f"{COMPONENT_NAME}: max_length={cfg.max_length} exceeds the "
                                   f"{luke.config.max_position_embeddings} positions of "
                                   f"'{cfg.model}'. Lower it in config.yml.")
        net = JointNet(luke, len(self.intents), 1 + len(self.span_labels), cfg.dropout,
                       cfg.words_see_entities, cfg.entity_layers)
        self._net, self._tokenizer = net.to(cfg.device), tokenizer
        return self._net, tokenizer

    def _parameter_groups(self, net: JointNet) -> list[dict[str, Any]]:
        """New weights (heads, entity embeddings) learn at head_learning_rate; the copied
        encoder at learning_rate, minus the frozen lower layers and word embeddings."""
        cfg = self.config
        frozen = [net.luke.encoder.layer[i] for i in range(cfg.freeze_layers)]
        if cfg.freeze_layers:
            frozen.append(net.luke.embeddings)
        for module in frozen:
            module.requires_grad_(False)
        if cfg.freeze_word_embeddings:
            net.luke.embeddings.word_embeddings.weight.requires_grad_(False)
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, param in net.named_parameters():
            if param.requires_grad:
                new = name.startswith(("luke.entity_embeddings.", "intent_head.", "span_head."))
                groups.setdefault((new, param.dim() >= 2), []).append(param)
        return [{"params": params, "lr": cfg.head_learning_rate if new else cfg.learning_rate,
                 "weight_decay": cfg.weight_decay if matrix else 0.0}
                for (new, matrix), params in groups.items()]

    def _train_epoch(self, inputs: list[_Input], targets: torch.Tensor,
                     optimizer: torch.optim.Optimizer, scheduler: Any, weight: torch.Tensor,
                     rng: np.random.Generator, threads: Callable[[], int] | None = None
                     ) -> float:
        """One epoch; the mean loss. `threads()` is asked at each quarter of it how many torch
        threads to train with."""
        net, _ = self._require()
        net.train()
        size, losses = self.config.batch_size, []
        batches = _length_batches(inputs, size, rng)
        quarter = max(1, math.ceil(len(batches) / 4))
        for step, idx in enumerate(batches):
            if threads is not None and step % quarter == 0:
                _use_threads(threads())
            batch, labels = self._collate([inputs[i] for i in idx])
            intent_logits, span_logits = net(batch)
            target = targets[torch.as_tensor(idx)].to(intent_logits.device)  # (B, C)
            loss = -(target * torch.log_softmax(intent_logits, -1)).sum(-1).mean()
            if (labels != _IGNORE).any():
                loss = loss + self.config.entity_loss_weight * nn.functional.cross_entropy(
                    span_logits.flatten(0, 1), labels.flatten(), weight=weight,
                    ignore_index=_IGNORE)
            losses.append(optimizer_step(net, loss, optimizer, scheduler))
        return sum(losses) / max(1, len(losses))

    def _validation(self, val: list[tuple[Example, str | None]]) -> Any:
        """Score = mean of intent accuracy and entity F1 (intent alone without entities)."""
        if not val:
            return None
        examples = [e for e, _ in val]
        contexts = [c for _, c in val]
        y = [self.intents.index(e.intent) for e in examples]
        cache: dict[str, Any] = {}

        def predict_entities(texts: list[str]) -> list[list[Entity]]:
            logits, entities = self._run(texts, contexts, 0)
            cache["accuracy"] = float((logits[0].argmax(-1) == torch.as_tensor(y)).float().mean())
            return entities

        entity_eval = entity_scores(predict_entities, examples)

        def evaluate() -> dict[str, float]:
            scores = entity_eval() if entity_eval and self.span_labels else {}
            if not scores:
                predict_entities([e.text for e in examples])
            out = {"val_intent_accuracy": cache["accuracy"], **scores}
            parts = [cache["accuracy"]] + ([scores["val_f1"]] if scores else [])
            return out | {"val_score": sum(parts) / len(parts)}

        return evaluate

    def _calibrate(self, val: list[tuple[Example, str | None]]) -> dict[str, Any]:
        """One temperature per inference mode on the validation slice (as IntentClassifier)."""
        self.temperatures = {"deterministic": 1.0, "mc": 1.0}
        if not val:
            return {"temperatures": dict(self.temperatures)}
        texts, contexts = [e.text for e, _ in val], [c for _, c in val]
        y = torch.as_tensor([self.intents.index(e.intent) for e, _ in val])
        prior = self.config.temperature_prior_std or None
        logits = self._run(texts, contexts, 0)[0]  # (1, N, C)
        self.temperatures["deterministic"] = fit_temperature(logits, y, prior_std=prior)
        key = "deterministic"
        if self.config.n_samples > 1:
            logits, key = self._run(texts, contexts, self.config.n_samples)[0], "mc"
            self.temperatures["mc"] = fit_temperature(logits, y, prior_std=prior)
        return {"temperatures": dict(self.temperatures),
                "val_ece_before": expected_calibration_error(apply_temperature(logits, 1), y),
                "val_ece_after": expected_calibration_error(
                    apply_temperature(logits, self.temperatures[key]), y)}

    # -- inference -----------------------------------------------------------------------------

    def parse_batch(self, texts: list[str], contexts: Sequence[Any] | None = None,
                    n_samples: int | None = None
                    ) -> tuple[list[IntentPrediction], list[list[Entity]]]:
        """Intent ranking with its uncertainty, and entities, for each text. `contexts`: one
        DialogueContext (nlu/context.py), text or None per text; read only with use_context."""
        if not texts:
            return [], []
        n = self.config.n_samples if n_samples is None else n_samples
        with torch.inference_mode():
            logits, entities = self._run(list(texts), contexts, n)
        s = logits.shape[0]
        summary = predictive_summary(logits, self.temperatures["mc" if s > 1 else "deterministic"])
        out = []
        for i, row in enumerate(summary.mean.tolist()):
            order = sorted(range(len(row)), key=lambda j: -row[j])
            out.append(IntentPrediction(
                ranking=tuple(IntentScore(self.intents[j], row[j]) for j in order),
                entropy=float(summary.entropy[i]), std=float(summary.std[i]), n_samples=s,
                mutual_information=float(summary.mutual_information[i])))
        return out, entities

    def _run(self, texts: list[str], contexts: Sequence[Any] | None, n_samples: int
             ) -> tuple[torch.Tensor, list[list[Entity]]]:
        """(S, N, C) intent logits and the decoded entities, in batches of batch_size."""
        net, tokenizer = self._require()
        cfg = self.config
        rendered = [_context_text(c) for c in contexts] if contexts else [""] * len(texts)
        encoded = encode_texts(tokenizer, texts)
        inputs = [self._input(text, c, None) for text, c in zip(encoded, rendered, strict=True)]
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i].input_ids) +
                       len(inputs[i].spans))  # less padding
        chunks: list[torch.Tensor] = [torch.empty(0)] * len(texts)
        entities: list[list[Entity]] = [[] for _ in texts]
        devices = [torch.device(cfg.device).index or 0] if cfg.device.startswith("cuda") else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            # reproducible MC samples, global RNG untouched
            if devices:
                torch.manual_seed(cfg.seed)
            else:  # the CPU's generator alone (torch.manual_seed also queues the lazy
                # CUDA and MTIA seeding, a stack trace each: 0.08 ms a parse)
                torch.default_generator.manual_seed(cfg.seed)
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                batch, _ = self._collate([inputs[i] for i in idx])
                intent_logits, span_logits = self._pass(net, batch, n_samples)
                probs = span_logits.float().softmax(-1).cpu()  # (B, E, L)
                for row, i in enumerate(idx):
                    chunks[i] = intent_logits[:, row].float().cpu()  # (S, C)
                    words = encoded[i].words
                    char_spans = [(words[a].start, words[b].end) for a, b in inputs[i].spans]
                    entities[i] = decode_spans(texts[i], char_spans,
                                               probs[row, :len(char_spans)], self.span_labels,
                                               COMPONENT_NAME)
        return torch.stack(chunks, dim=1), entities  # (S, N, C)

    def _pass(self, net: JointNet | None, batch: dict[str, torch.Tensor], n_samples: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, B, C) intent logits and (B, E, L) span logits, by ONNX Runtime plus PyTorch's
        MC samples when loaded so, else by PyTorch alone."""
        if self._onnx is None or self._sampler is None:
            if net is None:
                raise NLUModelError(f"{COMPONENT_NAME} has no PyTorch model loaded.")
            return net.predict(batch, n_samples, self.config.mc_layers)
        low_word, intent_logits, span_logits = self._onnx.run(batch)
        if n_samples <= 1:
            return intent_logits.unsqueeze(0), span_logits
        return self._sampler.sample(low_word, batch["attention_mask"], n_samples), span_logits

    def _input(self, text: EncodedText, context: str | None,
               gold: dict[tuple[int, int], int] | None) -> _Input:
        """[CLS] message [SEP], or [CLS] context [SEP] message [SEP] with use_context (the
        context's end kept, the message's start kept); candidate spans of the kept words."""
        _, tokenizer = self._require()
        cfg = self.config
        cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        prefix: list[int] = [cls_id]
        if cfg.use_context:
            # no context (most parses): no tokenizer call, 0.15 ms of a parse
            ctx = tokenizer(context, add_special_tokens=False)["input_ids"] if context else []
            prefix += [*ctx[max(0, len(ctx) - cfg.max_context_length):], sep_id]
        room = max(1, cfg.max_length - len(prefix) - 1)
        pieces = text.token_ids[:room]
        n_words = sum(1 for w in text.words if w.last_token < len(pieces))
        spans = tuple(self.pruner.candidates(text, n_words)) if self.span_labels else ()
        offset = len(prefix)
        token_spans = tuple((offset + text.words[i].first_token, offset + text.words[j].last_token)
                            for i, j in spans)
        types = (0,) * len(prefix) + (int(cfg.use_context),) * (len(pieces) + 1)
        labels = tuple(gold.get(span, 0) for span in spans) if gold is not None else ()
        return _Input((*prefix, *pieces, sep_id), types, spans, token_spans, labels)

    def _collate(self, items: list[_Input]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        _, tokenizer = self._require()
        b = len(items)
        t = max(len(item.input_ids) for item in items)
        e = max(1, *(len(item.spans) for item in items))  # >= 1: one graph shape for ONNX
        widths = [end - start + 1 for item in items for start, end in item.token_spans]
        m = min(_MAX_MENTION_TOKENS, max(widths, default=1))
        input_ids = torch.full((b, t), tokenizer.pad_token_id or 0, dtype=torch.long)  # (B, T)
        token_type_ids = torch.zeros(b, t, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros(b, t, dtype=torch.long)  # (B, T)
        entity_ids = torch.zeros(b, e, dtype=torch.long)  # (B, E): [PAD] entities
        entity_types = torch.zeros(b, e, dtype=torch.long)  # (B, E)
        positions = torch.full((b, e, m), -1, dtype=torch.long)  # (B, E, M)
        starts = torch.zeros(b, e, dtype=torch.long)  # (B, E)
        ends = torch.zeros(b, e, dtype=torch.long)  # (B, E)
        labels = torch.full((b, e), _IGNORE, dtype=torch.long)  # (B, E)
        for row, item in enumerate(items):
            n = len(item.input_ids)
            input_ids[row, :n] = torch.tensor(item.input_ids)
            token_type_ids[row, :n] = torch.tensor(item.token_type_ids)
            attention_mask[row, :n] = 1
            k = len(item.spans)
            if not k:
                continue
            entity_ids[row, :k] = ENTITY_MASK_ID
            entity_types[row, :k] = item.token_type_ids[-1]
            spans = torch.tensor(item.token_spans)  # (k, 2)
            starts[row, :k], ends[row, :k] = spans[:, 0], spans[:, 1]
            offsets = torch.arange(m)  # (M,)
            pos = spans[:, :1] + offsets  # (k, M)
            positions[row, :k] = torch.where(pos <= spans[:, 1:], pos, -1)
            if item.labels:
                labels[row, :k] = torch.tensor(item.labels)
        batch = {"input_ids": input_ids, "token_type_ids": token_type_ids,
                 "attention_mask": attention_mask,
                 "position_ids": torch.arange(t).expand(b, t),  # BERT positions from 0
                 "entity_ids": entity_ids, "entity_attention_mask": (entity_ids != 0).long(),
                 "entity_token_type_ids": entity_types, "entity_position_ids": positions,
                 "entity_start_positions": starts, "entity_end_positions": ends}
        device = self.config.device
        return {k: v.to(device) for k, v in batch.items()}, labels.to(device)

    def _require(self) -> tuple[JointNet | None, PreTrainedTokenizerBase]:
        """The PyTorch model (None when loaded for ONNX inference only) and the tokenizer."""
        if not self.is_trained or self._tokenizer is None:
            raise NLUModelError(f"{COMPONENT_NAME} is not trained. Fix: call train(examples) or "
                                f"{COMPONENT_NAME}.load_from(directory) first.")
        return self._net, self._tokenizer


def _use_threads(wanted: int) -> None:
    if wanted != torch.get_num_threads():
        torch.set_num_threads(wanted)
        logger.info("nlu.joint.threads threads=%d", wanted)


def _length_batches(inputs: list[_Input], size: int, rng: np.random.Generator,
                    pool_batches: int = 64) -> list[np.ndarray]:
    """Shuffled batches of similar shapes within pools of `pool_batches` batches: sorted by
    word pieces, then by candidate spans (a batch pads both to its longest; sorting by their
    sum mixed long messages with few spans and short ones with many: 26 % of the demo's
    tokens were padding, 20 % now, 15 % with entity_layers 3); the batches come in random
    order. The same seed gives the same batches. (Pools of 256, the demo's whole epoch, pad
    the spans 27 % instead of 56 %, 8 % less work; one training of it lost 2 held-out
    entities, 3 OOD messages and a test story: branch trainspeed-pool.)"""
    order, pool = rng.permutation(len(inputs)), pool_batches * size
    batches = []
    for start in range(0, len(order), pool):
        part = sorted(order[start:start + pool],
                      key=lambda i: (len(inputs[i].input_ids), len(inputs[i].spans)))
        batches += [np.array(part[k:k + size]) for k in range(0, len(part), size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def _context_text(context: Any) -> str:
    """The text the encoder reads as the first segment: a string as it is, "" for None, a
    DialogueContext rendered by the `render_context` of the module that defines it
    (nlu/context.py, already imported by whoever built the context)."""
    if context is None or isinstance(context, str):
        return context or ""
    render = getattr(sys.modules.get(type(context).__module__), "render_context", None)
    if render is None:
        raise NLUModelError(f"{COMPONENT_NAME} cannot read a dialogue context of type "
                            f"{type(context).__name__}; give a DialogueContext or a text.")
    return str(render(context))


def _context_copies(train: list[tuple[Example, str]], contexts: Mapping[str, Sequence[Any]],
                    fraction: float, rng: np.random.Generator,
                    retargets: Mapping[str, Sequence[tuple[Any, str]]]
                    ) -> list[tuple[Example, str]]:
    """(example, context text) copies: about `fraction` of the examples whose intent follows
    some context in the stories, each with one of those contexts drawn at random; an example
    with `retargets` is copied instead into each of its contexts with the intent given there."""
    options = {intent: [t for t in (_context_text(c) for c in found) if t]
               for intent, found in contexts.items()}
    out = []
    for example, _ in train:
        if example.text in retargets:
            out += [(replace(example, intent=intent), text) for c, intent
                    in retargets[example.text] if (text := _context_text(c))]
            continue
        texts = options.get(example.intent or "", [])
        if texts and rng.random() < fraction:
            out.append((example, texts[int(rng.integers(len(texts)))]))
    return out


def _answer_copies(train: list[tuple[Example, str]], answers: Mapping[str, Sequence[Any]]
                   ) -> list[tuple[Example, str]]:
    """(example, context text) for each context-free training example with `answers`, once
    in each of its contexts."""
    return [(example, text) for example, context in train if not context
            for c in answers.get(example.text, ()) if (text := _context_text(c))]


def _gold(example: Example, text: EncodedText,
          index: dict[SpanLabel, int]) -> dict[tuple[int, int], int]:
    return {(first, last): index[label] for first, last, label in gold_word_spans(example, text.words)}
