"""How long `xingkong train` takes from nothing, stage by stage: one JSON line.

    python benchmarks/train_time.py                      # the demo, every part, a fresh folder
    python benchmarks/train_time.py --parts nlu --out /tmp/m

Records the wall time, the CPU seconds of this process and of its spawned jobs (user + sys),
each stage's start, wall and CPU seconds (TrainReport.stages: which stages overlapped, the
critical path), the NLU's own split (prepare, epochs, calibration, save with the ONNX export)
and the knowledge build's reader and encoder seconds, with the 1-minute load average before and
after: figures from a busy machine are not comparable with a quiet one's. Appends the line to
benchmarks/results/train_time.jsonl.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, emit, environment  # noqa: E402

PARTS = ("core", "nlu", "knowledge", "generation")


def cpu_seconds() -> tuple[float, float]:
    """(this process, its finished children): user + sys seconds."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="the Rasa project to train")
    parser.add_argument("--out", type=Path, default=None,
                        help="model folder (default: a fresh temporary one)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to train (default: everything the project has)")
    parser.add_argument("--results", type=Path,
                        default=ROOT / "benchmarks" / "results" / "train_time.jsonl")
    args = parser.parse_args(argv)

    from bot.project.project import Project
    from bot.training.train import train
    from bot.project.config import ProjectPaths

    with tempfile.TemporaryDirectory(prefix="train_time_") as scratch:
        out = (args.out if args.out is not None else Path(scratch) / "models").resolve()
        project = Project.load(ProjectPaths.at(args.project.resolve(), models=out))
        load_before = os.getloadavg()[0]
        began, (own_before, children_before) = time.perf_counter(), cpu_seconds()
        trained = train(project, force=True, progress=False,
                        **{part: part in args.parts for part in PARTS})
        wall = time.perf_counter() - began
        own_after, children_after = cpu_seconds()
    joint = trained.nlu_report.get("joint", {}) if trained.nlu_report else {}
    knowledge = trained.knowledge_report
    report = {
        "benchmark": "train_time", "project": str(args.project), "parts": args.parts,
        "wall_s": round(wall, 1),
        "cpu_s": round(own_after - own_before + children_after - children_before, 1),
        "cpu_children_s": round(children_after - children_before, 1),
        "stages": {name: asdict(stage) for name, stage in trained.stages.items()},
        "nlu_stage_seconds": joint.get("stage_seconds"),
        "nlu_epochs": len(joint.get("epochs", [])), "nlu_best_epoch": joint.get("best_epoch"),
        "nlu_epoch_seconds": [point.get("seconds") for point in joint.get("epochs", [])],
        "knowledge_reader_s": None if knowledge is None else knowledge.reader.get("seconds"),
        "knowledge_encoder_s": None if knowledge is None else knowledge.encoder.get("seconds"),
        "knowledge_s": None if knowledge is None else knowledge.seconds,
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        **environment(),
    }
    emit(report, args.results)
    return report


if __name__ == "__main__":
    main()
