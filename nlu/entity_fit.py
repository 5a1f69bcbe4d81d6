"""The training loop the entity extractors share (LUKE spans and the BIO baseline).

Each extractor brings its own epoch (`run_epoch`, returning the mean loss) and its own
`predict`; this module runs the epochs, scores the validation slice with exact span + type
P/R/F1 after each one, stops after `patience` epochs without a better F1 (counted once
something was learned), keeps the best epoch's weights, and writes the report both extractors
return from `train`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from nlu.entity_metrics import entity_prf
from nlu.types import Entity, Example

logger = logging.getLogger(__name__)


def optimizer_step(model: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler) -> float:
    """Backward, clip the gradient norm at 1, step the optimizer and the schedule."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    return loss.item()


def fit(model: nn.Module, run_epoch: Callable[[], float],
        predict: Callable[[list[str]], list[list[Entity]]], val_set: list[Example], *,
        epochs: int, patience: int, name: str, progress: bool) -> dict[str, Any]:
    """Train for up to `epochs`; {"epochs": learning curve, "best_epoch", "best_val_f1"}."""
    curve: list[dict[str, Any]] = []
    best_f1, best_epoch, stale = -1.0, 0, 0
    best_state: dict[str, torch.Tensor] | None = None
    bar = tqdm(range(1, epochs + 1), desc=name, disable=not progress)
    for epoch in bar:
        began = time.perf_counter()
        point: dict[str, Any] = {"epoch": epoch, "train_loss": run_epoch()}
        if val_set:
            with torch.inference_mode():
                predicted = predict([e.text for e in val_set])
            scores = entity_prf([list(e.entities) for e in val_set], predicted)
            point.update({f"val_{k}": scores[k] for k in ("precision", "recall", "f1")})
        point["seconds"] = round(time.perf_counter() - began, 2)
        curve.append(point)
        bar.set_postfix(loss=f"{point['train_loss']:.4f}", val_f1=point.get("val_f1"))
        logger.info("nlu.entities.epoch extractor=%s epoch=%d train_loss=%.4f val_f1=%s "
                    "seconds=%.1f", name, epoch, point["train_loss"], point.get("val_f1"),
                    point["seconds"])
        if not val_set:
            continue
        if point["val_f1"] > best_f1:
            best_f1, best_epoch, stale = point["val_f1"], epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif best_f1 > 0:  # patience starts once something was learned
            stale += 1
            if stale >= patience > 0:
                logger.info("nlu.entities.early_stop extractor=%s epoch=%d best_epoch=%d",
                            name, epoch, best_epoch)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"epochs": curve, "best_epoch": best_epoch if val_set else len(curve),
            "best_val_f1": best_f1 if val_set else None}
