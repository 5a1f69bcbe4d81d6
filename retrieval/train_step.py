"""One optimizer step and the loss a training report shows, shared by the knowledge models'
training loops (the reader's, the sentence encoder's and the reranker's)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def apply_step(loss: Any, params: Iterable[Any], optimizer: Any, schedule: Any) -> float:
    """Backpropagate `loss`, clip the gradients' norm to 1, step the optimizer and its
    learning-rate schedule, clear the gradients; the loss as a float."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def final_loss(losses: Sequence[float], last: int = 20) -> float | None:
    """The mean of the last `last` losses, rounded for a report (None before any step)."""
    return round(float(np.mean(losses[-last:])), 4) if losses else None
