"""retrieval.train_step: the shared optimizer step asks its thread source while it trains."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from retrieval import train_step


@pytest.fixture()
def restored_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    train_step.adapt_threads(None)
    torch.set_num_threads(threads)


def one_step() -> None:
    """One optimizer step of a tiny layer through train_step.apply_step."""
    layer = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    train_step.apply_step(layer(torch.ones(2, 3)).sum(), layer.parameters(), optimizer,
                          schedule)


def test_steps_take_the_threads_their_source_gives(restored_threads: None) -> None:
    asked: list[int] = []

    def source() -> int:
        asked.append(1)
        return 2 if len(asked) > 1 else 1

    torch.set_num_threads(1)
    train_step.adapt_threads(source, every_s=0.0)
    one_step()
    assert torch.get_num_threads() == 1
    one_step()  # the partner is done: the second core
    assert torch.get_num_threads() == 2 and len(asked) == 2


def test_the_source_is_asked_once_per_period(restored_threads: None) -> None:
    asked: list[int] = []
    train_step.adapt_threads(lambda: asked.append(1) or 1, every_s=3600.0)
    for _ in range(3):
        one_step()
    assert len(asked) == 1
    train_step.adapt_threads(None)
    one_step()
    assert len(asked) == 1
