"""What every benchmark script records and how it writes its result line.

The scripts run as `python benchmarks/<name>.py` and put the repository root on sys.path
before importing this module as `benchmarks.common`.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Reported by version when installed (None when not): the libraries whose speed the figures show.
LIBRARIES = ("numpy", "torch", "transformers", "sentence_transformers", "faiss")


def git_commit() -> str | None:
    """The short hash of the checked-out commit, None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment() -> dict[str, Any]:
    """Library versions, commit, CPUs, torch and FAISS threads, machine and 1-minute load."""
    modules: dict[str, Any] = {}
    for name in LIBRARIES:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:
            modules[name] = None
    torch, faiss = modules["torch"], modules["faiss"]
    versions = {"python": platform.python_version()}
    versions.update({name: getattr(module, "__version__", None) if module else None
                     for name, module in modules.items()})
    return {"versions": versions, "commit": git_commit(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads() if torch else None,
            "faiss_threads": faiss.omp_get_max_threads() if faiss else None,
            "machine": platform.machine(),
            "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def emit(report: dict[str, Any], out_path: Path, *, compact: bool = False) -> str:
    """Print `report` as one JSON line and append that line to `out_path` (creating its
    folder). `compact` drops the spaces after separators. Returns the line."""
    line = json.dumps(report, separators=(",", ":") if compact else None)
    print(line)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return line
