"""What every benchmark script records and how it writes its result line, plus the flags and
the nearest-rank percentile the scripts share.

The scripts run as `python benchmarks/<name>.py` and put the repository root on sys.path
before importing this module as `benchmarks.common`.
"""

from __future__ import annotations

import argparse
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


# flags ----------------------------------------------------------------------------------------
THREADS_HELP = ("torch threads (1: on a shared 2-core box a 2-thread team waits on its "
                "descheduled straggler)")


def script_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's parser, described by the first paragraph of its module docstring."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0])


def add_timing_args(p: argparse.ArgumentParser, *, iterations: int, warmup: int,
                    timed: str) -> None:
    """--iterations (`timed`: what one timed iteration is) and --warmup (untimed first)."""
    p.add_argument("--iterations", type=int, default=iterations, help=timed)
    p.add_argument("--warmup", type=int, default=warmup)


def add_machine_args(p: argparse.ArgumentParser, results: Path, *, device: bool = True) -> None:
    """--device (where the script can use one), --threads (torch's, 1 by default) and --out
    (the JSON lines file)."""
    if device:
        p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    p.add_argument("--out", type=Path, default=results)


KB_TEST_SETS = "tests/kb_test.json,tests/kb_blind.json"  # held-out, then blind


def add_knowledge_args(p: argparse.ArgumentParser) -> None:
    """--knowledge-dir (the trained models/knowledge) and --kb (its documents, data/kb)."""
    p.add_argument("--knowledge-dir", type=Path, default=ROOT / "models" / "knowledge")
    p.add_argument("--kb", type=Path, default=ROOT / "data" / "kb")


def set_threads(threads: int, seed: int | None = None) -> None:
    """torch's thread count, and its seed when given (imports torch: call it in main)."""
    import torch

    torch.set_num_threads(threads)
    if seed is not None:
        torch.manual_seed(seed)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank: always one of the measured values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def sampling_setting(text: str) -> tuple[str, Any]:
    """(key, value) of a `--sampling KEY=VALUE` option; the value read as JSON when it is."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--sampling wants KEY=VALUE, got {text!r}.")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value
