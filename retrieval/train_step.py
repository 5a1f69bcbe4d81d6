"""One optimizer step, the loss a training report shows and the report itself, shared by the
knowledge models' training loops (the reader's, the sentence encoder's and the reranker's)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# how many torch threads the steps of this process use, asked again every `every_s` seconds
# (adapt_threads); no source: the threads stay as they are set
_THREADS: dict[str, Any] = {"source": None, "every_s": 30.0, "due": 0.0}


def adapt_threads(source: Callable[[], int] | None, every_s: float = 30.0) -> None:
    """From now on this process's training steps ask `source()` every `every_s` seconds how
    many torch threads to use (None: stop asking). The knowledge build beside the NLU starts
    on one core and takes the second once the NLU is done (bot.training.parallel)."""
    _THREADS.update(source=source, every_s=every_s, due=0.0)


def _adapt() -> None:
    source = _THREADS["source"]
    if source is None or time.monotonic() < _THREADS["due"]:
        return
    import torch

    wanted = max(1, int(source()))
    if wanted != torch.get_num_threads():
        logger.info("retrieval.train_step.threads %d -> %d", torch.get_num_threads(), wanted)
        torch.set_num_threads(wanted)  # here, in the training thread: OpenMP's count is per
    _THREADS["due"] = time.monotonic() + _THREADS["every_s"]  # thread



def apply_step(loss: Any, params: Iterable[Any], optimizer: Any, schedule: Any) -> float:
    """Backpropagate `loss`, clip the gradients' norm to 1, step the optimizer and its
    learning-rate schedule, clear the gradients; the loss as a float."""
    import torch

    _adapt()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def final_loss(losses: Sequence[float], last: int = 20) -> float | None:
    """The mean of the last `last` losses, rounded for a report (None before any step)."""
    return round(float(np.mean(losses[-last:])), 4) if losses else None


def training_report(name: str, counts: Mapping[str, int], steps: int, started: float,
                    losses: Sequence[float], config: Any) -> dict[str, Any]:
    """What a finished training loop reports (`counts` of its data, steps, seconds since
    `started`, final_loss, config.to_dict()), logged as retrieval.<name>.trained."""
    report = {**counts, "steps": steps, "seconds": round(time.perf_counter() - started, 1),
              "final_loss": final_loss(losses), "config": config.to_dict()}
    logger.info("retrieval.%s.trained %s steps=%d seconds=%.1f loss=%s", name,
                " ".join(f"{k}={v}" for k, v in counts.items()), steps, report["seconds"],
                report["final_loss"])
    return report
