"""End-to-end test stories with the NLU in the loop: pass rate and turn accuracy.

    python benchmarks/story_pass.py                                   # tests/test_stories_blind.yml
    python benchmarks/story_pass.py --stories tests/test_stories.yml
    python benchmarks/story_pass.py --no-context                     # the parse without context
    python benchmarks/story_pass.py --intents-given                  # payloads: no NLU, the ceiling
    python benchmarks/story_pass.py --fallback-chain                 # with config.yml's fallback:

Every user step's text goes through the trained NLU (models/nlu, with the config's Duckling)
and the dialogue manager (the project's policies, trained here; the demo actions in-process,
action_answer_question with models/knowledge when it exists). Each story gets a fresh bookings
store holding the booking numbers it mentions. bot/story_pass.py does the replay and the
scoring. Prints ONE JSON line (pass rate, turn intent and action accuracy, per category) and
appends it to benchmarks/results/story_pass.jsonl; the per-story detail goes to
results/story_pass.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import emit, environment  # noqa: E402
from bot.project.project import Project  # noqa: E402
from bot.project.config import ProjectPaths  # noqa: E402
from bot.runtime.executors import InProcessExecutor  # noqa: E402
from bot.manager import DialogueManager  # noqa: E402
from bot.policies import PolicyEnsemble, build_policies  # noqa: E402
from bot.wiring import load_fallback, load_parser  # noqa: E402
from bot.story_pass import booking_ids, replay_story, summary  # noqa: E402
from bot.project.training_data import Story, load_training_data  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "story_pass.jsonl"
TARGET_PASS_RATE = 0.90


def seed_bookings(story: Story) -> None:
    """A fresh bookings store (XINGKONG_BOOKINGS_DB) with an active booking, a month ahead,
    under each booking number the story mentions."""
    from actions.bookings import open_store

    store = open_store()
    start = date.today() + timedelta(days=30)
    for booking_id in booking_ids(story):
        made = store.create(hotel="Starlight Lisbon", checkin=start,
                            checkout=start + timedelta(days=3), guests=2, room_type="double",
                            guest_name="Ana Ruiz", email="ana.ruiz@example.com")
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE bookings SET booking_id = ? WHERE booking_id = ?",
                         [booking_id, made.booking_id])


def category(story: Story) -> str:
    """The story's category: the part of its name before ' - ' or ':' (else 'other')."""
    for mark in (":", " - "):
        if mark in story.name:
            return story.name.split(mark)[0].strip().removeprefix("test").strip() or "other"
    return "other"


async def run(project: Project, stories: list[Story], use_context: bool,
              intents_given: bool = False, chain: Any = None) -> list[Any]:
    policies = PolicyEnsemble(build_policies(project.config.policies))
    policies.train(project.domain, project.data)
    parser = load_parser(project)
    if parser is None:
        raise SystemExit(f"No NLU model in {project.paths.models / 'nlu'}: run "
                         "`xingkong train nlu` (or copy the trained models) first.")
    if not use_context:
        context_parser = parser

        async def parser(text: str) -> dict[str, Any]:  # type: ignore[no-redef]
            return await context_parser(text, None)

    executor = InProcessExecutor("actions")
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, story in enumerate(stories):
            os.environ["XINGKONG_BOOKINGS_DB"] = str(Path(tmp) / f"bookings_{number}.sqlite")
            seed_bookings(story)
            manager = DialogueManager(project.domain, policies, parser=parser,
                                      executor=executor, fallback=chain)
            outcomes.append(await replay_story(story, manager, sender=f"story-{number}",
                                               intents_given=intents_given))
    await executor.close()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stories", default="tests/test_stories_blind.yml")
    parser.add_argument("--project", default=str(ROOT))
    parser.add_argument("--models", default=None, help="models folder (default: the project's)")
    parser.add_argument("--no-context", action="store_true")
    parser.add_argument("--intents-given", action="store_true",
                        help="send /intent payloads instead of the text: the engine's ceiling")
    parser.add_argument("--fallback-chain", action="store_true",
                        help="run config.yml's fallback chain too, as the assistant does")
    parser.add_argument("--out", default="results/story_pass.json")
    args = parser.parse_args()
    project = Project.load(ProjectPaths.at(
        Path(args.project), models=Path(args.models).resolve() if args.models else None))
    os.environ.setdefault("XINGKONG_HOTELS", str(Path(args.project) / "data" / "hotels.yml"))
    stories = load_training_data([Path(args.project) / args.stories]).stories
    started = time.perf_counter()
    chain = load_fallback(project) if args.fallback_chain else None
    outcomes = asyncio.run(run(project, stories, not args.no_context, args.intents_given,
                               chain))
    report = summary(outcomes)
    per_category: dict[str, list[bool]] = defaultdict(list)
    for story, outcome in zip(stories, outcomes):
        per_category[category(story)].append(outcome.passed)
    out = Path(args.project) / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "stories_detail": [o.to_dict() for o in outcomes]},
                              indent=1))
    emit({"benchmark": "story_pass", "stories_file": args.stories,
          "context": not args.no_context, "intents_given": args.intents_given,
          "fallback_chain": args.fallback_chain,
          **{k: v for k, v in report.items() if k != "failed"},
          "per_category": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(per_category.items())},
          "failed_stories": [f["story"] for f in report["failed"]],
          "target_pass_rate": TARGET_PASS_RATE, "seconds": round(time.perf_counter() - started, 1),
          "detail": str(out), "environment": environment()}, RESULTS)


if __name__ == "__main__":
    main()
