"""Test-wide settings: the model hub is off (a missing checkpoint fails, never downloads),
so is the machine's cache of pretrained models (each test trains what it asks for; the
cache's own tests turn it on in a folder of theirs), seeds are fixed, and tests run from
the repository root."""

from __future__ import annotations

import os
from collections.abc import Iterator
import random
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["XINGKONG_CACHE"] = "off"

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fixed_seeds() -> None:
    random.seed(0)
    try:
        import numpy as np

        np.random.seed(0)
    except ImportError:
        pass


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def restore_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For tests that load another project's `actions` package in this process (the CLI's
    make_executor puts the project first on sys.path and drops a loaded package of that
    name): sys.path and the `actions` modules are put back afterwards."""
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    saved = {name: module for name, module in sys.modules.items()
             if name == "actions" or name.startswith("actions.")}
    yield
    for name in [n for n in sys.modules if n == "actions" or n.startswith("actions.")]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.fixture(scope="session")
def trained_tiny_generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 trained for 150 steps (about 15 s on one core) on the five chat pairs
    of tests/fakes.TINY_CHAT: it has learnt them, so its replies (sampled from seed 0) are
    predictable."""
    import torch

    from generation import ModelConfig, SamplingConfig, TrainingConfig, train_generator
    from generation.corpus import pair_conversations
    from tests.fakes import TINY_CHAT

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("trained_tiny_generator")
    try:
        train_generator(pair_conversations(list(TINY_CHAT) * 40, "tiny"), out,
                        model=ModelConfig(n_layer=2, n_embd=64, n_head=2, n_positions=64,
                                          vocab_size=400),
                        training=TrainingConfig(budget_s=120, max_steps=150, batch_size=8,
                                                lr=3e-3, warmup_steps=10, heldout_fraction=0.1,
                                                eval_blocks=4, pairs=False,
                                                generic_replies=0),  # all five are frequent
                        # the replies the chain tests expect are sampled at 0.8, unboosted
                        sampling=SamplingConfig(n_candidates=4, max_new_tokens=16, seed=0,
                                                temperature=0.8, topic_boost=0.0),
                        progress=False)
    finally:
        torch.set_num_threads(before)
    return out
