"""Confidence calibration: temperature scaling, expected calibration error, reliability data.

Temperature scaling divides the logits by one scalar T > 0 fitted to minimise the negative
log-likelihood of held-out labels. It never changes the argmax, only how sure the model says it
is. `fit_temperature` also accepts Monte-Carlo logits of shape (S, N, C): the calibrated
prediction is then the mean over the S samples of softmax(z_s / T), the same quantity the intent
classifier ranks by, so the fitted T is the one inference needs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nlu.errors import NLUTrainingError

logger = logging.getLogger(__name__)

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
_GRID_POINTS = 61
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True, slots=True)
class ReliabilityDiagram:
    """Per-bin figures of a reliability diagram over top-class confidence in [0, 1].

    Bin i covers (edges[i], edges[i+1]] (the first bin also holds 0). Empty bins have count 0
    and accuracy/confidence 0.0; plotters should skip them.
    """

    edges: tuple[float, ...]
    accuracies: tuple[float, ...]
    confidences: tuple[float, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def ece(self) -> float:
        if self.total == 0:
            return 0.0
        gaps = (
            c * abs(a - f)
            for a, f, c in zip(self.accuracies, self.confidences, self.counts, strict=True)
        )
        return float(sum(gaps) / self.total)

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "accuracies": list(self.accuracies),
            "confidences": list(self.confidences),
            "counts": list(self.counts),
            "ece": self.ece,
        }


def _as_tensor(values: Any) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64)
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def _as_labels(labels: Any, n: int) -> torch.Tensor:
    out = labels.detach().to("cpu") if isinstance(labels, torch.Tensor) else None
    if out is None:
        out = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    out = out.long().reshape(-1)
    if out.numel() != n:
        raise NLUTrainingError(
            f"Calibration got {n} predictions but {out.numel()} labels; pass one label per row."
        )
    return out


def _as_targets(labels: Any, n: int, c: int) -> torch.Tensor:
    """(N, C) target distributions from (N,) class indices or (N, C) soft targets."""
    raw = labels.detach().cpu() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if len(raw.shape) == 2:
        targets = torch.as_tensor(np.asarray(raw, dtype=np.float64))  # (N, C)
        if targets.shape != (n, c) or bool((targets < 0).any()) or not torch.allclose(
            targets.sum(-1), torch.ones(n, dtype=torch.float64), atol=1e-4
        ):
            raise NLUTrainingError(
                f"Soft labels must be shaped ({n}, {c}) with non-negative rows summing to 1, "
                f"got {tuple(targets.shape)}; or pass class indices."
            )
        return targets
    y = _as_labels(labels, n)  # (N,)
    if n and (int(y.min()) < 0 or int(y.max()) >= c):
        raise NLUTrainingError(
            f"Labels must be class indices in [0, {c - 1}], "
            f"got range [{int(y.min())}, {int(y.max())}]."
        )
    return torch.nn.functional.one_hot(y, c).double()  # (N, C)


def _mean_log_probs(z: torch.Tensor, log_t: float) -> torch.Tensor:
    log_p = torch.log_softmax(z / math.exp(log_t), dim=-1)  # (S, N, C)
    return torch.logsumexp(log_p, dim=0) - math.log(z.shape[0])  # (N, C)


def calibrated_nll(logits: Any, labels: Any, temperature: float) -> float:
    """Mean NLL (cross-entropy for soft labels) under logits / T; (S, N, C) logits average
    the S softmaxes."""
    z = _as_tensor(logits)
    z = z.unsqueeze(0) if z.dim() == 2 else z  # (S, N, C)
    targets = _as_targets(labels, z.shape[1], z.shape[2])  # (N, C)
    return float(-(targets * _mean_log_probs(z, math.log(temperature))).sum(-1).mean())


def fit_temperature(
    logits: Any,
    labels: Any,
    *,
    prior_std: float | None = None,
    min_temperature: float = MIN_TEMPERATURE,
    max_temperature: float = MAX_TEMPERATURE,
) -> float:
    """Return the T in [min, max] minimising the NLL of `labels` under softmax(logits / T).

    `logits`: (N, C) logits or log-probabilities (a per-row constant does not matter), or
    (S, N, C) Monte-Carlo logits. `labels`: (N,) class indices or (N, C) soft targets (e.g. a
    uniform row for an input that belongs to no class). `prior_std`: if given, a MAP fit with a
    log-normal prior on T centred at 1 (log T ~ N(0, prior_std^2)): on a small, perfectly
    separated slice plain NLL drives T towards 0 (everything 100% sure, unseen inputs
    included); the prior keeps T near 1 until enough evidence says otherwise.

    A coarse grid over log T finds the basin, then a golden-section search refines it:
    deterministic, no gradients, and it cannot diverge the way LBFGS can on a flat objective.
    """
    z = _as_tensor(logits)
    if z.dim() not in (2, 3) or z.shape[-1] < 2 or z.shape[-2] == 0:
        raise NLUTrainingError(
            f"fit_temperature needs logits shaped (N, C) or (S, N, C) with N >= 1 and C >= 2, "
            f"got {tuple(z.shape)}; pass the validation logits of a trained classifier."
        )
    z = z.unsqueeze(0) if z.dim() == 2 else z  # (S, N, C)
    targets = _as_targets(labels, z.shape[1], z.shape[2])  # (N, C)
    if not (0.0 < min_temperature < max_temperature):
        raise NLUTrainingError("fit_temperature needs 0 < min_temperature < max_temperature.")
    if prior_std is not None and prior_std <= 0:
        raise NLUTrainingError(f"prior_std must be > 0 or None, got {prior_std}.")
    penalty = 0.0 if prior_std is None else 1.0 / (2.0 * prior_std**2 * z.shape[1])

    def objective(log_t: float) -> float:
        nll = -(targets * _mean_log_probs(z, log_t)).sum(-1).mean()
        return float(nll) + penalty * log_t**2

    grid = np.linspace(math.log(min_temperature), math.log(max_temperature), _GRID_POINTS)
    losses = [objective(g) for g in grid]
    best = int(np.argmin(losses))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, _GRID_POINTS - 1)]
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = objective(c), objective(d)
    for _ in range(40):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = objective(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = objective(d)
    log_t = (a + b) / 2.0
    if losses[best] < objective(log_t):  # a grid end can beat the bracket's middle
        log_t = float(grid[best])
    temperature = float(math.exp(log_t))
    logger.debug(
        "calibration.temperature T=%.4f n=%d samples=%d", temperature, z.shape[1], z.shape[0]
    )
    return temperature


def apply_temperature(logits: Any, temperature: float) -> np.ndarray:
    """Calibrated probabilities: softmax(logits / T), averaged over samples for (S, N, C)."""
    z = _as_tensor(logits)
    z = z.unsqueeze(0) if z.dim() == 2 else z  # (S, N, C)
    return torch.softmax(z / temperature, dim=-1).mean(dim=0).numpy()  # (N, C)


@dataclass(frozen=True, slots=True)
class PredictiveSummary:
    """Bayesian summary of S stochastic predictions for N inputs (all float64 tensors)."""

    mean: torch.Tensor  # (N, C) predictive mean probabilities
    entropy: torch.Tensor  # (N,) entropy of the mean, nats: total uncertainty
    mutual_information: torch.Tensor  # (N,) entropy minus mean per-sample entropy: model part
    std: torch.Tensor  # (N,) std over samples of the probability of the mean's top class


def predictive_summary(logits: Any, temperature: float = 1.0) -> PredictiveSummary:
    """Summarise (S, N, C) MC logits (or (N, C): one sample, zero spread) at temperature T."""
    z = _as_tensor(logits)
    z = z.unsqueeze(0) if z.dim() == 2 else z  # (S, N, C)
    probs = torch.softmax(z / temperature, dim=-1)  # (S, N, C)
    mean = probs.mean(0)  # (N, C)
    entropy = -(mean * mean.clamp_min(1e-12).log()).sum(-1)  # (N,)
    sample_entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean(0)  # (N,)
    top = mean.argmax(-1)  # (N,)
    top_probs = probs.gather(-1, top[None, :, None].expand(z.shape[0], -1, 1))  # (S, N, 1)
    return PredictiveSummary(
        mean=mean,
        entropy=entropy,
        mutual_information=(entropy - sample_entropy).clamp_min(0.0),
        std=top_probs.squeeze(-1).std(0, unbiased=False),
    )


def reliability_diagram(probs: Any, labels: Any, n_bins: int = 15) -> ReliabilityDiagram:
    """Bin the top-class confidence into `n_bins` equal-width bins; per bin: accuracy,
    mean confidence and count. `probs`: (N, C) probabilities; `labels`: (N,) class indices."""
    if n_bins < 1:
        raise NLUTrainingError(f"n_bins must be >= 1, got {n_bins}.")
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, float)
    if p.ndim != 2:
        raise NLUTrainingError(f"probs must be shaped (N, C), got {p.shape}.")
    y = _as_labels(labels, p.shape[0]).numpy()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf = p.max(axis=1) if p.shape[0] else np.zeros(0)  # (N,)
    correct = (p.argmax(axis=1) == y) if p.shape[0] else np.zeros(0, bool)  # (N,)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)  # (N,)
    accs, confs, counts = [], [], []
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        counts.append(n)
        accs.append(float(correct[mask].mean()) if n else 0.0)
        confs.append(float(conf[mask].mean()) if n else 0.0)
    return ReliabilityDiagram(
        edges=tuple(float(e) for e in edges),
        accuracies=tuple(accs),
        confidences=tuple(confs),
        counts=tuple(counts),
    )


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """ECE: count-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    return reliability_diagram(probs, labels, n_bins).ece
