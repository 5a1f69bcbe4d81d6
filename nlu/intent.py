"""Intent classification: a fine-tuned Transformer encoder with honest confidences.

The whole encoder (default all-MiniLM-L6-v2) is fine-tuned with a linear head on mean-pooled
(or CLS) token states. Honesty comes from label smoothing; generated noise negatives (word salad
across intents, random letter strings) trained towards the uniform distribution; MC dropout
(`n_samples` stochastic passes over the top `mc_layers` encoder layers and the head, the lower
layers run once (nlu/mc_dropout.py): predictive mean, entropy, mutual information, std of the
top class; `n_samples` 0/1 = deterministic); and
temperature scaling fitted on a stratified held-out slice, one T per inference mode, with a
log-normal prior on T so a small, perfectly separated slice cannot sharpen T towards 0.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer

from nlu.components import IntentClassifierConfig
from nlu.context import DialogueContext, render_context
from nlu.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    predictive_summary,
)
from nlu.fitting import fit, linear_schedule, raised_epochs
from nlu.errors import NLUModelError, NLUTrainingError
from nlu.mc_dropout import sampled_states
from nlu.quantize import quantize_linear, wants_quantization
from nlu.types import Example, IntentScore
from resolver import ModelNotFoundError, resolve_model

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_WEIGHTS, _CONFIG, _LABELS = "model.safetensors", "config.json", "labels.json"
_ENCODER_DIR = "encoder"
# Encoder config attributes `dropout` overrides when the architecture has them.
_DROPOUT_ATTRS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout",
                  "attention_dropout")


@dataclass(frozen=True, slots=True)
class IntentPrediction:
    """Calibrated predictive-mean ranking (descending) and its uncertainty.

    `entropy`: of the predictive mean, in nats (0 = certain, ln C = uniform). `std`: std of the
    top intent's probability across the MC samples. `mutual_information`: predictive entropy
    minus the mean per-sample entropy (model uncertainty). Both are 0 in deterministic mode.
    """

    ranking: tuple[IntentScore, ...]
    entropy: float
    std: float
    n_samples: int
    mutual_information: float = 0.0

    @property
    def intent(self) -> IntentScore:
        return self.ranking[0]

    @property
    def uncertainty(self) -> dict[str, float]:
        """In ParseResult.uncertainty's shape."""
        return {"entropy": self.entropy, "std": self.std, "samples": float(self.n_samples),
                "mutual_information": self.mutual_information}


class _IntentNet(nn.Module):
    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float, pooling: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_labels)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._classify(self.encoder(**batch).last_hidden_state, batch["attention_mask"])

    def sample(self, batch: dict[str, torch.Tensor], n_samples: int,
               mc_layers: int) -> torch.Tensor:
        """(S*B, C) logits, sample-major: dropout on in the top `mc_layers` layers and the head."""
        states = sampled_states(self.encoder, batch, n_samples, mc_layers)  # (S*B, T, H)
        self.dropout.train(True)
        return self._classify(states, batch["attention_mask"].repeat(n_samples, 1))

    def _classify(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            pooled = states[:, 0]  # (B, H)
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
        return self.head(self.dropout(pooled))  # (B, C)


class IntentClassifier:
    """Fine-tuned Transformer intent classifier. Lifecycle: __init__ stores the config;
    `load()` (idempotent) loads tokenizer and encoder; `train()` or `load_from()` make it ready
    for `predict`/`predict_batch`; `save()` writes a directory `load_from` reads offline."""

    def __init__(self, config: IntentClassifierConfig | None = None) -> None:
        self.config = config or IntentClassifierConfig()
        self._source: Path | None = None  # a saved classifier directory (set by load_from)
        self._tokenizer: Any = None
        self._encoder: nn.Module | None = None
        self._net: _IntentNet | None = None
        self._labels: tuple[str, ...] = ()
        self._temperatures = {"deterministic": 1.0, "mc": 1.0}

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def is_trained(self) -> bool:
        return self._net is not None

    @property
    def uses_context(self) -> bool:
        """Whether predict_batch reads `contexts` (config `use_context`)."""
        return self.config.use_context

    @property
    def temperatures(self) -> dict[str, float]:
        return dict(self._temperatures)

    # ------------------------------------------------------------------ loading
    def load(self) -> IntentClassifier:
        if self._tokenizer is not None:
            return self
        if self._source is not None:
            self._load_saved(self._source)
            return self
        try:
            path = resolve_model(self.config.model)
        except ModelNotFoundError as exc:
            raise NLUModelError(f"Cannot load intent encoder: {exc}") from exc
        try:
            enc_config = AutoConfig.from_pretrained(path)
            for attr in _DROPOUT_ATTRS:
                if isinstance(getattr(enc_config, attr, None), float):
                    setattr(enc_config, attr, self.config.dropout)
            self._encoder = AutoModel.from_pretrained(path, config=enc_config)
            self._tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError, KeyError) as exc:
            raise NLUModelError(
                f"Cannot load encoder '{self.config.model}' from {path}: {exc}. Fix: point "
                "`model` at a directory with a Hugging Face encoder (config.json, weights, "
                "tokenizer files)."
            ) from exc
        self._encoder.to(self.config.device)
        logger.info("intent.load model=%s path=%s", self.config.model, path)
        return self

    @classmethod
    def load_from(
        cls, directory: Path, *, device: str | None = None, n_samples: int | None = None,
        quantize: bool | None = None,
    ) -> IntentClassifier:
        """Load a classifier written by `save`; `device`/`n_samples`/`quantize` override the
        saved config."""
        directory = Path(directory)
        needed = (_CONFIG, _LABELS, _WEIGHTS, f"{_ENCODER_DIR}/config.json")
        missing = [name for name in needed if not (directory / name).is_file()]
        if missing:
            raise NLUModelError(
                f"No intent classifier in '{directory}': missing {', '.join(missing)}. "
                "Fix: train one and call IntentClassifier.save(directory) first."
            )
        try:
            meta = json.loads((directory / _CONFIG).read_text(encoding="utf-8"))
            version, saved, temperatures = (
                meta.get("format_version"), meta["classifier"], meta["temperatures"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NLUModelError(
                f"Unreadable {directory / _CONFIG}: {exc!r}. Fix: retrain and save it again."
            ) from exc
        if version != FORMAT_VERSION:
            raise NLUModelError(
                f"Intent classifier in '{directory}' has format {version!r}, this code reads "
                f"{FORMAT_VERSION}. Fix: retrain and save it again."
            )
        known = {f.name for f in fields(IntentClassifierConfig)}
        saved = {k: v for k, v in saved.items() if k in known}
        overrides = {"device": device, "n_samples": n_samples, "quantize": quantize}
        config = IntentClassifierConfig(
            **saved | {k: v for k, v in overrides.items() if v is not None})
        clf = cls(config)
        clf._source = directory
        clf._temperatures = {k: float(v) for k, v in temperatures.items()}
        return clf.load()

    def _load_saved(self, directory: Path) -> None:
        try:
            labels = json.loads((directory / _LABELS).read_text(encoding="utf-8"))
            tokenizer = AutoTokenizer.from_pretrained(directory / _ENCODER_DIR)
            encoder = AutoModel.from_config(AutoConfig.from_pretrained(directory / _ENCODER_DIR))
            net = _IntentNet(encoder, len(labels), self.config.dropout, self.config.pooling)
            load_model(net, directory / _WEIGHTS, strict=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise NLUModelError(
                f"Intent classifier in '{directory}' is incomplete or incompatible: {exc}. "
                "Fix: retrain and save it again."
            ) from exc
        net = net.to(self.config.device).eval()
        if wants_quantization(self.config.quantize, self.config.device):
            net = quantize_linear(net)
        self._tokenizer, self._encoder, self._labels = tokenizer, net.encoder, tuple(labels)
        self._net = net

    def save(self, directory: Path) -> Path:
        """Write model.safetensors (encoder + head), config.json (classifier config and
        temperatures), labels.json, and encoder/ (the encoder's HF config and tokenizer files)."""
        net = self._require_net()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_model(net, str(directory / _WEIGHTS))
        net.encoder.config.save_pretrained(directory / _ENCODER_DIR)
        self._tokenizer.save_pretrained(directory / _ENCODER_DIR)
        meta = {"format_version": FORMAT_VERSION, "classifier": asdict(self.config),
                "temperatures": self._temperatures}
        (directory / _CONFIG).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        (directory / _LABELS).write_text(json.dumps(list(self._labels)), encoding="utf-8")
        logger.info("intent.save dir=%s labels=%d", directory, len(self._labels))
        return directory

    # ------------------------------------------------------------------ training
    def train(self, examples: list[Example], progress: bool = True,
              contexts: dict[str, list[DialogueContext]] | None = None) -> dict[str, Any]:
        """Fine-tune encoder + head on `examples`; return the training report. `contexts`
        ({intent: contexts it follows}, nlu/context.py) is read only with `use_context`."""
        cfg, started = self.config, time.perf_counter()
        texts, intents = _usable(examples)
        labels = tuple(sorted(set(intents)))
        if len(labels) < 2:
            raise NLUTrainingError(
                f"Intent training needs at least 2 distinct intents, got {list(labels)}. "
                "Fix: add examples of another intent (e.g. out_of_scope)."
            )
        if self._net is not None:  # retraining starts again from the pretrained encoder
            self._tokenizer = self._encoder = self._net = self._source = None
        self.load()
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        y = np.array([labels.index(i) for i in intents])
        train_idx, val_idx = _stratified_split(y, cfg.val_fraction, rng)
        train_texts = [texts[i] for i in train_idx]
        noise = _noise_texts(train_texts, round(cfg.noise_fraction * len(train_idx)), rng)
        train_y = y[train_idx].tolist()
        train_ctx = [""] * len(train_texts)
        if cfg.use_context and contexts:
            paired = _context_pairs(train_texts, [labels[k] for k in train_y], contexts,
                                    cfg.context_fraction, rng)
            train_texts += [t for t, _, _ in paired]
            train_ctx += [c for _, c, _ in paired]
            train_y += [labels.index(i) for _, _, i in paired]
        all_texts = train_texts + noise
        all_ctx = train_ctx + [""] * len(noise)
        n_real, n_labels = len(train_texts), len(labels)
        targets = torch.full((len(all_texts), n_labels), 1.0 / n_labels)  # (N, C) noise: uniform
        targets[:n_real] = cfg.label_smoothing / n_labels
        targets[torch.arange(n_real), torch.as_tensor(train_y)] += 1.0 - cfg.label_smoothing
        val_texts, val_y = [texts[i] for i in val_idx], torch.as_tensor(y[val_idx])

        self._labels = labels
        net = _IntentNet(self._encoder, n_labels, cfg.dropout, cfg.pooling).to(cfg.device)
        self._net = net
        steps_per_epoch = -(-len(all_texts) // cfg.batch_size)
        epochs = raised_epochs(cfg.epochs, steps_per_epoch, cfg.min_steps, "intent")
        optimizer, scheduler = _optimizer(net, cfg, epochs * steps_per_epoch)
        accuracies: list[float] = []

        def run_epoch() -> float:
            epoch = len(accuracies) + 1
            loss, acc = self._train_epoch(all_texts, all_ctx, targets, n_real, optimizer,
                                          scheduler, rng, f"intent epoch {epoch}/{epochs}",
                                          progress)
            accuracies.append(acc)
            return loss

        def evaluate() -> dict[str, float]:
            val_logits = self._logits(val_texts, 0)[0]  # (N, C)
            val_loss = float(nn.functional.cross_entropy(val_logits, val_y))
            return {"val_loss": val_loss, "val_score": -val_loss,
                    "val_accuracy": float((val_logits.argmax(-1) == val_y).float().mean())}

        fitted = fit(net, run_epoch, evaluate if val_texts else None, epochs=epochs,
                     patience=cfg.early_stopping_patience, name="intent", progress=progress,
                     score="val_score", learned_above=float("-inf"), min_delta=1e-4)
        curve = fitted["epochs"]
        report: dict[str, Any] = {
            "train_loss": [p["train_loss"] for p in curve], "train_accuracy": accuracies,
            "val_loss": [p["val_loss"] for p in curve if "val_loss" in p],
            "val_accuracy": [p["val_accuracy"] for p in curve if "val_accuracy" in p]}
        best_epoch = fitted["best_epoch"]
        net.eval()
        report |= self._calibrate(val_texts, val_y)
        report |= {"epochs_run": len(report["train_loss"]), "epochs_planned": epochs,
                   "steps_per_epoch": steps_per_epoch, "best_epoch": best_epoch,
                   "labels": list(labels), "n_train": n_real, "n_val": len(val_texts),
                   "n_context_pairs": n_real - len(train_idx),
                   "n_noise": len(noise), "seconds": time.perf_counter() - started}
        logger.info("intent.train done epochs=%d T=%.3f ece %.4f -> %.4f in %.1fs",
                    report["epochs_run"], report["temperature"], report["val_ece_before"],
                    report["val_ece_after"], report["seconds"])
        return report

    def _train_epoch(self, texts: list[str], contexts: list[str], targets: torch.Tensor,
                     n_real: int,
                     optimizer: torch.optim.Optimizer, scheduler: Any,
                     rng: np.random.Generator, desc: str, progress: bool) -> tuple[float, float]:
        net, bs = self._require_net(), self.config.batch_size
        net.train()
        order = rng.permutation(len(texts))
        total_loss, correct, seen = 0.0, 0, 0
        with tqdm(total=len(texts), desc=desc, disable=not progress, leave=False) as bar:
            for start in range(0, len(texts), bs):
                idx = torch.as_tensor(order[start:start + bs])
                logits = net(self._encode([texts[i] for i in idx],
                                          [contexts[i] for i in idx]))  # (B, C)
                log_probs = torch.log_softmax(logits, dim=-1)  # (B, C)
                target = targets[idx].to(logits.device)  # (B, C)
                loss = -(target * log_probs).sum(-1).mean()  # soft-target cross-entropy
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                real = idx < n_real  # (B,) accuracy on real examples only, not noise
                hits = logits.detach().argmax(-1).cpu() == target.argmax(-1).cpu()  # (B,)
                correct, seen = correct + int(hits[real].sum()), seen + int(real.sum())
                total_loss += loss.item() * len(idx)
                bar.update(len(idx))
                bar.set_postfix(loss=f"{loss.item():.3f}")
        return total_loss / len(texts), correct / max(seen, 1)

    def _calibrate(self, val_texts: list[str], val_y: torch.Tensor) -> dict[str, Any]:
        """Fit one temperature per inference mode on the held-out slice (MAP with a
        log-normal prior on T); report the held-out ECE before and after scaling."""
        mc, prior = self.config.n_samples > 1, self.config.temperature_prior_std or None
        self._temperatures = {"deterministic": 1.0, "mc": 1.0}
        if not val_texts:
            logger.warning("intent.calibrate skipped: no validation slice (too few examples)")
            nan = float("nan")
            return {"temperature": 1.0, "temperatures": self.temperatures,
                    "val_ece_before": nan, "val_ece_after": nan}
        logits = self._logits(val_texts, 0)  # (1, N, C)
        self._temperatures["deterministic"] = fit_temperature(logits, val_y, prior_std=prior)
        if mc:
            logits = self._logits(val_texts, self.config.n_samples)  # (S, N, C)
            self._temperatures["mc"] = fit_temperature(logits, val_y, prior_std=prior)
        temperature = self._temperatures["mc" if mc else "deterministic"]
        return {"temperature": temperature, "temperatures": self.temperatures,
                "val_ece_before": expected_calibration_error(apply_temperature(logits, 1), val_y),
                "val_ece_after": expected_calibration_error(
                    apply_temperature(logits, temperature), val_y)}

    # ------------------------------------------------------------------ inference
    def predict(self, text: str, n_samples: int | None = None,
                context: DialogueContext | None = None) -> IntentPrediction:
        return self.predict_batch([text], n_samples, [context])[0]

    def predict_batch(
        self, texts: list[str], n_samples: int | None = None,
        contexts: list[DialogueContext | None] | None = None,
    ) -> list[IntentPrediction]:
        """Rank intents for each text; `n_samples` overrides the config (0/1: deterministic);
        `contexts` (one per text, or None) is read only with `use_context`."""
        self._require_net()
        if not texts:
            return []
        n = self.config.n_samples if n_samples is None else n_samples
        rendered = [render_context(c) for c in (contexts or [None] * len(texts))]
        logits = self._logits(list(texts), n, rendered)  # (S, N, C)
        s = logits.shape[0]
        summary = predictive_summary(logits, self._temperatures["mc" if s > 1 else "deterministic"])
        out = []
        for i, row in enumerate(summary.mean.tolist()):
            order = sorted(range(len(row)), key=lambda j: -row[j])
            out.append(IntentPrediction(
                ranking=tuple(IntentScore(self._labels[j], row[j]) for j in order),
                entropy=float(summary.entropy[i]), std=float(summary.std[i]), n_samples=s,
                mutual_information=float(summary.mutual_information[i])))
        return out

    def _logits(self, texts: list[str], n_samples: int,
                contexts: list[str] | None = None) -> torch.Tensor:
        """(S, N, C) logits; S = n_samples passes with dropout on, or 1 pass with it off."""
        net, cfg = self._require_net(), self.config
        s = n_samples if n_samples > 1 else 1
        net.eval()
        chunks = []
        devices = [torch.device(cfg.device).index or 0] if cfg.device.startswith("cuda") else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            # reproducible MC samples, global RNG untouched
            if devices:
                torch.manual_seed(cfg.seed)
            else:  # the CPU's generator alone (torch.manual_seed also queues the lazy
                # CUDA and MTIA seeding, a stack trace each: 0.08 ms a parse)
                torch.default_generator.manual_seed(cfg.seed)
            for start in range(0, len(texts), cfg.batch_size):
                batch = self._encode(texts[start:start + cfg.batch_size],
                                     contexts[start:start + cfg.batch_size] if contexts else None)
                b = batch["input_ids"].shape[0]
                logits = net.sample(batch, s, cfg.mc_layers) if s > 1 else net(batch)
                chunks.append(logits.float().view(s, b, -1).cpu())  # (S, B, C)
        net.eval()
        return torch.cat(chunks, dim=1)  # (S, N, C)

    def _encode(self, texts: list[str], contexts: list[str] | None = None) -> dict[str, torch.Tensor]:
        if self.config.use_context:  # (context, message) pairs; "" is the context-free case
            enc = self._tokenizer(contexts or [""] * len(texts), texts, padding=True,
                                  truncation=True, max_length=self.config.max_length,
                                  return_tensors="pt")
        else:
            enc = self._tokenizer(texts, padding=True, truncation=True,
                                  max_length=self.config.max_length, return_tensors="pt")
        return {k: v.to(self.config.device) for k, v in enc.items()}

    def _require_net(self) -> _IntentNet:
        if self._net is None:
            raise NLUModelError(
                "Intent classifier is not trained. Fix: call train(examples) or "
                "IntentClassifier.load_from(directory) first."
            )
        return self._net


def _usable(examples: list[Example]) -> tuple[list[str], list[str]]:
    pairs = [(e.text.strip(), e.intent) for e in examples if e.intent and e.text.strip()]
    if not pairs:
        raise NLUTrainingError(
            f"No usable intent examples (got {len(examples)} examples; each needs a non-empty "
            "text and an intent). Fix: add intent examples to the training data."
        )
    return [t for t, _ in pairs], [i for _, i in pairs]


def _context_pairs(texts: list[str], intents: list[str],
                   contexts: dict[str, list[DialogueContext]], fraction: float,
                   rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(text, context text, intent) copies: a `fraction` of each intent's examples, each paired
    with one of the contexts that intent follows in the stories, drawn in turn."""
    out = []
    for text, intent in zip(texts, intents):
        options = [render_context(c) for c in contexts.get(intent, [])]
        options = [o for o in options if o]
        if options and rng.random() < fraction:
            out.append((text, options[int(rng.integers(len(options)))], intent))
    return out


def _stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per intent, hold out round(n * fraction) examples, always keeping one for training."""
    train, val = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_val = min(round(len(idx) * fraction), len(idx) - 1)
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return np.array(sorted(train), dtype=int), np.array(sorted(val), dtype=int)


def _noise_texts(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """Negatives unlike any intent: alternately word salad drawn from the whole training
    vocabulary (across intents, so no intent's phrasing survives) and random letter strings."""
    vocab = sorted({w for t in texts for w in t.lower().split()})
    letters = list("abcdefghijklmnopqrstuvwxyz")
    out = []
    for i in range(n):
        k = int(rng.integers(2, 7))
        if i % 2 == 0 and len(vocab) >= k:
            words = [str(w) for w in rng.choice(vocab, size=k, replace=False)]
        else:
            words = ["".join(rng.choice(letters, size=int(rng.integers(3, 9)))) for _ in range(k)]
        out.append(" ".join(words))
    return out


def _optimizer(
    net: _IntentNet, cfg: IntentClassifierConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW: encoder at `learning_rate`, head at `head_learning_rate`, no decay on biases and
    norms; linear warmup over `warmup_fraction` of the `total_steps`, then linear decay to 0."""
    enc = [p for p in net.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": [p for p in enc if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in enc if p.dim() < 2], "weight_decay": 0.0},
        {"params": list(net.head.parameters()), "lr": cfg.head_learning_rate,
         "weight_decay": cfg.weight_decay},
    ], lr=cfg.learning_rate)
    total = max(total_steps, 1)
    schedule = linear_schedule(int(cfg.warmup_fraction * total), total)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
