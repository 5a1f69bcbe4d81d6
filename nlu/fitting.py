"""The training loop every NLU model shares (intent classifier, LUKE spans, the BIO baseline,
the joint model).

Each model brings its own epoch (`run_epoch`, returning the mean loss) and its own validation
(`evaluate`, returning `val_*` figures, one of them the `score` to maximise); this module runs
the epochs, stops after `patience` epochs without a better score (counted once the score passed
`learned_above`: an entity F1 of 0 means nothing was learned yet; a gain under `min_delta` is
no gain), keeps the best epoch's
weights, and writes the learning curve the models return from `train`. `entity_scores` is the
validation of the entity extractors (exact span + type P/R/F1); `linear_schedule` the warm-up
schedule of them all; `raised_epochs` the epochs a small dataset needs to reach `min_steps`
optimizer steps.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from nlu.entity_metrics import entity_prf
from nlu.types import Entity, Example

logger = logging.getLogger(__name__)

Evaluate = Callable[[], dict[str, float]]


def optimizer_step(model: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler) -> float:
    """Backward, clip the gradient norm at 1, step the optimizer and the schedule."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    return loss.item()


def linear_schedule(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LambdaLR factor: linear warm-up over `warmup_steps`, then linear decay to 0."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def raised_epochs(epochs: int, steps_per_epoch: int, min_steps: int, name: str) -> int:
    """The epochs to run: `epochs`, raised to ceil(min_steps / steps_per_epoch) when a small
    dataset would take fewer than `min_steps` optimizer steps (Rasa's starter project has 4
    steps an epoch). Early stopping keeps its patience in epochs: on the starter project a
    patience raised by the same factor (20) kept the same best epoch (16) after 20 more epochs.
    `min_steps` 0 keeps `epochs`."""
    needed = math.ceil(min_steps / max(1, steps_per_epoch))
    if needed <= epochs:
        return epochs
    logger.info("nlu.fit.min_steps model=%s steps_per_epoch=%d epochs=%d->%d",
                name, steps_per_epoch, epochs, needed)
    return needed


def entity_scores(predict: Callable[[list[str]], list[list[Entity]]],
                  val_set: list[Example]) -> Evaluate | None:
    """Validation by exact span + type P/R/F1 (score: F1); None when there is no slice."""
    if not val_set:
        return None

    def evaluate() -> dict[str, float]:
        predicted = predict([e.text for e in val_set])
        scores = entity_prf([list(e.entities) for e in val_set], predicted)
        return {f"val_{k}": scores[k] for k in ("precision", "recall", "f1")}

    return evaluate


def fit(model: nn.Module, run_epoch: Callable[[], float], evaluate: Evaluate | None, *,
        epochs: int, patience: int, name: str, progress: bool, score: str = "val_f1",
        learned_above: float = 0.0, min_delta: float = 0.0) -> dict[str, Any]:
    """Train for up to `epochs`; {"epochs": learning curve, "best_epoch", f"best_{score}"}."""
    curve: list[dict[str, Any]] = []
    best, best_epoch, stale = float("-inf"), 0, 0
    best_state: dict[str, torch.Tensor] | None = None
    bar = tqdm(range(1, epochs + 1), desc=name, disable=not progress)
    for epoch in bar:
        began = time.perf_counter()
        point: dict[str, Any] = {"epoch": epoch, "train_loss": run_epoch()}
        if evaluate is not None:
            model.eval()
            with torch.inference_mode():
                point.update(evaluate())
        point["seconds"] = round(time.perf_counter() - began, 2)
        curve.append(point)
        bar.set_postfix(loss=f"{point['train_loss']:.4f}", score=point.get(score))
        logger.info("nlu.fit.epoch model=%s epoch=%d train_loss=%.4f %s=%s seconds=%.1f",
                    name, epoch, point["train_loss"], score, point.get(score), point["seconds"])
        if evaluate is None:
            continue
        if point[score] > best + min_delta:
            best, best_epoch, stale = point[score], epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif best > learned_above:  # patience starts once something was learned
            stale += 1
            if stale >= patience > 0:
                logger.info("nlu.fit.early_stop model=%s epoch=%d best_epoch=%d",
                            name, epoch, best_epoch)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"epochs": curve, "best_epoch": best_epoch if evaluate else len(curve),
            f"best_{score}": best if evaluate else None}
