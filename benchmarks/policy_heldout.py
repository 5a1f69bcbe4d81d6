"""How the dialogue policies generalise: action accuracy on held-out stories, with rules and
memoization alone and with TEDPolicy added.

    python benchmarks/policy_heldout.py [--project .] [--stories tests/policy_heldout_stories.yml]
                                        [--epochs N] [--seed S] [--threads 1]

Trains the project's policies in-process (config.yml as written; --epochs/--seed override
TEDPolicy's), then predicts every action of the stories from the story's own events
(bot/policies/evaluation.py: intents as written, no NLU, Rasa's form-rejection rule). Reports
action accuracy (with and without action_listen), per action and per story, for both
ensembles, and every miss with the policy that won it. A miss that a rule decided at full
confidence is a story that contradicts the project's rules (rules outrank every other policy):
listed under `contradicts_rules`. Prints one JSON line and appends it to
benchmarks/results/policy_heldout.jsonl.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT))
    parser.add_argument("--stories", default="tests/policy_heldout_stories.yml",
                        help="Stories to predict, relative to the project.")
    parser.add_argument("--epochs", type=int, default=None, help="TEDPolicy epochs override.")
    parser.add_argument("--seed", type=int, default=None, help="TEDPolicy random_seed override.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                             "policy_heldout.jsonl"))
    args = parser.parse_args()

    import torch

    from bot.assistant import Project
    from bot.policies import PolicyEnsemble, build_policies
    from bot.policies.evaluation import evaluate_stories
    from bot.project.config import ProjectPaths
    from bot.project.training_data import load_training_data

    torch.set_num_threads(args.threads)
    project = Project.load(ProjectPaths.at(Path(args.project)))
    components = list(project.config.policies)
    for i, component in enumerate(components):
        if component.name == "TEDPolicy":
            params = dict(component.params)
            if args.epochs is not None:
                params["epochs"] = args.epochs
            if args.seed is not None:
                params["random_seed"] = args.seed
            components[i] = replace(component, params=params)
    if not any(c.name == "TEDPolicy" for c in components):
        sys.exit("config.yml has no TEDPolicy: nothing to compare.")
    stories = load_training_data([project.paths.root / args.stories]).stories

    report: dict[str, object] = {"benchmark": "policy_heldout", "stories_file": args.stories}
    for label, chosen in (("rules_memoization", [c for c in components
                                                 if c.name != "TEDPolicy"]),
                          ("with_ted", components)):
        ensemble = PolicyEnsemble(build_policies(tuple(chosen), progress=sys.stderr.isatty()))
        began = time.perf_counter()
        ensemble.train(project.domain, project.data)
        seconds = time.perf_counter() - began
        result = evaluate_stories(ensemble, project.domain, stories)
        per_story: dict[str, list[int]] = {}
        for miss in result.misses:
            per_story.setdefault(miss.story, []).append(1)
        report[label] = {
            **result.summary(), "train_seconds": round(seconds, 1),
            "per_story_misses": {k: len(v) for k, v in sorted(per_story.items())},
            "misses": [asdict(m) for m in result.misses],
            "contradicts_rules": [f"{m.source} expected {m.expected}, rule '{m.reason}' says "
                                  f"{m.predicted}" for m in result.misses
                                  if m.policy == "RulePolicy" and m.confidence >= 1.0
                                  and m.reason not in ("core_fallback", "")],
        }
        ted = next((p for p in ensemble.policies if p.name == "TEDPolicy"), None)
        if ted is not None:
            report[label]["ted_report"] = getattr(ted, "report", {})  # type: ignore[index]
    report["environment"] = environment()
    emit(report, Path(args.out))


if __name__ == "__main__":
    main()
