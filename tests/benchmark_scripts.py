"""Load a benchmarks/ script as a module for its smoke test (benchmarks/ is not a package; each
script puts the repository root on sys.path itself)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py, loaded by path and registered as `benchmarks.<name>`."""
    spec = importlib.util.spec_from_file_location(f"benchmarks.{name}",
                                                  REPO_ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
