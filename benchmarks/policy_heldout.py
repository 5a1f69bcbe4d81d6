"""How the dialogue policies generalise: action accuracy on held-out stories, with rules and
memoization alone and with TEDPolicy added.

    python benchmarks/policy_heldout.py [--project .] [--stories tests/policy_heldout_stories.yml]
                                        [--epochs N] [--seed S] [--threads 1] [--folds K]

Trains the project's policies in-process (config.yml as written; --epochs/--seed override
TEDPolicy's), then predicts every action of the stories from the story's own events
(bot/policies/evaluation.py: intents as written, no NLU, Rasa's form-rejection rule). Reports
action accuracy (with and without action_listen), per action and per story, for four
ensembles of the same trained policies: memoization alone, TEDPolicy alone, rules +
memoization, and all of them; and every miss with the policy that won it. Then the same
accuracies on the steps where memoization alone is wrong (`where_memoization_fails`: no
stored history matches, so only generalisation can get them right) and on the steps where
rules + memoization are wrong (`where_rules_memoization_fail`). A miss that a rule decided at full
confidence is a story that contradicts the project's rules (rules outrank every other policy):
listed under `contradicts_rules`. With --folds K the project's own stories are the test set
instead: K trainings, each without every K-th story (rules always kept), each scored on the
stories it did not see; the counts are summed over the folds. Prints one JSON line and
appends it to benchmarks/results/policy_heldout.jsonl.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, environment  # noqa: E402

if TYPE_CHECKING:
    from bot.policies.evaluation import StoryEvaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT))
    parser.add_argument("--stories", default="tests/policy_heldout_stories.yml",
                        help="Stories to predict, relative to the project.")
    parser.add_argument("--epochs", type=int, default=None, help="TEDPolicy epochs override.")
    parser.add_argument("--seed", type=int, default=None, help="TEDPolicy random_seed override.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--folds", type=int, default=0,
                        help="Cross-validate on the project's stories instead (K folds).")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                             "policy_heldout.jsonl"))
    args = parser.parse_args()

    import torch

    from bot.project.project import Project
    from bot.policies import PolicyEnsemble, build_policies
    from bot.policies.evaluation import StoryEvaluation, evaluate_stories
    from bot.project.config import ProjectPaths
    from bot.project.training_data import load_training_data

    torch.set_num_threads(args.threads)
    project = Project.load(ProjectPaths.at(Path(args.project)))
    components = list(project.config.policies)
    for i, component in enumerate(components):
        if component.name == "TEDPolicy":
            params = component.params  # the typed TEDConfig
            if args.epochs is not None:
                params = replace(params, epochs=args.epochs)
            if args.seed is not None:
                params = replace(params, random_seed=args.seed)
            components[i] = replace(component, params=params)
    if not any(c.name == "TEDPolicy" for c in components):
        sys.exit("config.yml has no TEDPolicy: nothing to compare.")
    if args.folds:
        splits = [([st for i, st in enumerate(project.data.stories) if i % args.folds != k],
                   [st for i, st in enumerate(project.data.stories) if i % args.folds == k])
                  for k in range(args.folds)]
        name = f"{args.folds}-fold cross-validation on the project's stories"
    else:
        held_out = load_training_data([project.paths.root / args.stories]).stories
        splits = [(project.data.stories, held_out)]
        name = args.stories

    report: dict[str, object] = {"benchmark": "policy_heldout", "stories_file": name}
    # Every policy is trained once per split; the ensembles compared are subsets of them.
    ensembles = {
        "memoization": lambda p: "Memoization" in p.name,
        "ted_alone": lambda p: p.name == "TEDPolicy",
        "rules_memoization": lambda p: p.name != "TEDPolicy",
        "with_ted": lambda p: True,
    }
    totals = {label: StoryEvaluation() for label in ensembles}
    seconds = {label: 0.0 for label in ensembles}
    ted_reports = []
    for train_stories, test_stories in splits:
        trained: list[tuple[Any, float]] = []  # (policy, its training seconds)
        for policy in build_policies(tuple(components), progress=sys.stderr.isatty()):
            began = time.perf_counter()
            policy.train(project.domain, replace(project.data, stories=train_stories))
            trained.append((policy, time.perf_counter() - began))
            if policy.name == "TEDPolicy":
                ted_reports.append(getattr(policy, "report", {}))
        for label, keep in ensembles.items():
            chosen = [p for p, _ in trained if keep(p)]
            seconds[label] += sum(s for p, s in trained if keep(p))
            add(totals[label], evaluate_stories(PolicyEnsemble(chosen), project.domain,
                                                test_stories))
    for label, total in totals.items():
        per_story: dict[str, int] = {}
        for miss in total.misses:
            per_story[miss.story] = per_story.get(miss.story, 0) + 1
        report[label] = {
            **total.summary(), "train_seconds": round(seconds[label], 1),
            "per_story_misses": dict(sorted(per_story.items())),
            "misses": [asdict(m) for m in total.misses],
            "contradicts_rules": [f"{m.source} expected {m.expected}, rule '{m.reason}' says "
                                  f"{m.predicted}" for m in total.misses
                                  if m.policy == "RulePolicy" and m.confidence >= 1.0
                                  and m.reason not in ("core_fallback", "")],
        }
    report["with_ted"]["ted_reports"] = ted_reports  # type: ignore[index]
    # Generalisation proper: the steps the project's memoization alone gets wrong (no stored
    # history matches, or the one that matches says something else), and the steps rules and
    # memoization together get wrong.
    for subset, base in (("where_memoization_fails", "memoization"),
                         ("where_rules_memoization_fail", "rules_memoization")):
        wrong = [i for i, ok in enumerate(totals[base].outcomes) if not ok]
        report[subset] = {"steps": len(wrong), **{
            label: round(sum(totals[label].outcomes[i] for i in wrong) / len(wrong), 4)
            if wrong else None
            for label in ("ted_alone", "rules_memoization", "with_ted")}}
    report["environment"] = environment()
    emit(report, Path(args.out))


def add(total: StoryEvaluation, part: StoryEvaluation) -> None:
    total.actions += part.actions
    total.correct += part.correct
    total.stories += part.stories
    total.stories_correct += part.stories_correct
    total.by_action.update(part.by_action)
    total.by_action_correct.update(part.by_action_correct)
    total.by_policy.update(part.by_policy)
    total.misses += part.misses
    total.outcomes += part.outcomes


if __name__ == "__main__":
    main()
