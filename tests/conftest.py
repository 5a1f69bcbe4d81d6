"""Test-wide settings: the model hub is off (a missing checkpoint fails, never downloads),
seeds are fixed, and tests run from the repository root."""

from __future__ import annotations

import os
from collections.abc import Iterator
import random
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
