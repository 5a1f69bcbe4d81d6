"""Latency of one dialogue-policy prediction: TEDPolicy alone, and the whole ensemble.

    python benchmarks/policy_latency.py [--project .] [--stories tests/test_stories.yml]
                                        [--iterations 500] [--threads 1] [--retrain]

Uses the trained policies in <project>/models/core when they include TEDPolicy (run
`xingkong train core` first), else trains the project's policies in-process and reports the
training time too. The trackers are the stories' conversations cut before each of their
actions (real lengths, forms included); each timed call predicts for the next one, after
--warmup untimed calls. Reports p50/p95 in ms of TEDPolicy.predict and of
PolicyEnsemble.predict (every policy votes, then the pick). Prints one JSON line and appends
it to benchmarks/results/policy_latency.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT))
    parser.add_argument("--stories", default="tests/test_stories.yml",
                        help="Stories whose conversations are replayed, relative to the project.")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--retrain", action="store_true",
                        help="Train in-process even when models/core exists.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                             "policy_latency.jsonl"))
    args = parser.parse_args()

    import numpy as np
    import torch

    from bot.project.project import Project
    from bot.training.core import load_policies
    from bot.policies import PolicyEnsemble, build_policies
    from bot.policies.story_graph import story_trajectories
    from bot.project.config import ProjectPaths
    from bot.project.training_data import load_training_data
    from bot.state.events import ActionExecuted, UserUttered
    from bot.state.tracker import DialogueStateTracker

    torch.set_num_threads(args.threads)
    project = Project.load(ProjectPaths.at(Path(args.project)))
    saved = project.paths.models / "core" / "policies.json"
    train_seconds = None
    if not args.retrain and saved.exists() and "TEDPolicy" in json.loads(saved.read_text()):
        ensemble = load_policies(project)
        source = str(saved)
    else:
        ensemble = PolicyEnsemble(build_policies(project.config.policies))
        began = time.perf_counter()
        ensemble.train(project.domain, project.data)
        train_seconds = round(time.perf_counter() - began, 1)
        source = "trained in-process"
    ted = next((p for p in ensemble.policies if p.name == "TEDPolicy"), None)
    if ted is None:
        sys.exit("config.yml has no TEDPolicy: nothing to measure.")

    trackers = []
    defaults = project.domain.slot_defaults()
    for story in story_trajectories(load_training_data([project.paths.root / args.stories])
                                    .stories):
        tracker = DialogueStateTracker("bench", defaults)
        seen_user = False
        for event in story.events:
            if isinstance(event, ActionExecuted) and seen_user:
                trackers.append(tracker.copy())
            seen_user = seen_user or isinstance(event, UserUttered)
            tracker.update(event)

    def timed(call: object) -> list[float]:
        times = []
        for i in range(args.warmup + args.iterations):
            tracker = trackers[i % len(trackers)]
            began = time.perf_counter()
            call(tracker, project.domain)  # type: ignore[operator]
            if i >= args.warmup:
                times.append((time.perf_counter() - began) * 1000)
        return times

    ted_ms, ensemble_ms = timed(ted.predict), timed(ensemble.predict)

    def stats(ms: list[float]) -> dict[str, float]:
        return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
                "p95_ms": round(float(np.percentile(ms, 95)), 3)}

    emit({"benchmark": "policy_latency", "model": source, "train_seconds": train_seconds,
          "trackers": len(trackers), "mean_events": round(
              sum(len(t.events) for t in trackers) / len(trackers), 1),
          "iterations": args.iterations, "ted": stats(ted_ms), "ensemble": stats(ensemble_ms),
          "policies": [p.name for p in ensemble.policies], "environment": environment()},
         Path(args.out))


if __name__ == "__main__":
    main()
