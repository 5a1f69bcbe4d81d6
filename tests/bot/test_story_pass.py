"""bot/story_pass.py: test stories replayed as text, scored per story and per turn.

The default run checks the runner with a parser that answers from the stories' own
annotations (so every demo test story must pass, and a wrong intent must fail its story).
The full run with the trained NLU on the blind stories is slow and needs models/
(benchmarks/story_pass.py prints the same figures)."""

from __future__ import annotations

import sqlite3
from datetime import date
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.project.project import Project
from bot.runtime.executors import InProcessExecutor
from bot.manager import DialogueManager
from bot.policies import PolicyEnsemble
from bot.story_pass import booking_ids, message_text, replay_story, summary, turns_of
from bot.project.training_data import Story, load_training_data

REPO = Path(__file__).resolve().parents[2]
DEMO_STORIES = load_training_data([REPO / "tests" / "test_stories.yml"]).stories
BLIND = REPO / "tests" / "test_stories_blind.yml"


@pytest.fixture
def story_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XINGKONG_BOOKINGS_DB", str(tmp_path / "bookings.sqlite"))
    monkeypatch.setenv("XINGKONG_TODAY", "2030-01-01")
    monkeypatch.setenv("XINGKONG_HOTELS", str(REPO / "data" / "hotels.yml"))
    monkeypatch.setenv("XINGKONG_KNOWLEDGE_DIR", str(tmp_path / "no_knowledge"))


def seed(story: Story) -> None:
    from actions.bookings import open_store

    store = open_store()
    for booking_id in booking_ids(story):
        made = store.create(hotel="Starlight Lisbon", checkin=date(2030, 6, 1),
                            checkout=date(2030, 6, 4), guests=2, room_type="double",
                            guest_name="Ana Ruiz", email="ana.ruiz@example.com")
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE bookings SET booking_id = ? WHERE booking_id = ?",
                         [booking_id, made.booking_id])


def oracle(story: Story, wrong_turn: int | None = None) -> Any:
    """A parser answering with the story's annotation; `wrong_turn` (1-based) says deny."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for number, (step, _) in enumerate(turns_of(story), 1):
        intent = "deny" if number == wrong_turn else step.intent
        answers.setdefault(message_text(step), []).append({
            "text": message_text(step), "intent": {"name": intent, "confidence": 1.0},
            "intent_ranking": [{"name": intent, "confidence": 1.0}],
            "entities": [dict(e) for e in step.entities]})

    async def parse(text: str) -> dict[str, Any]:
        return answers[text].pop(0)

    return parse


async def _replay(story: Story, demo: Project, ensemble: PolicyEnsemble,
                  wrong_turn: int | None = None) -> Any:
    seed(story)
    manager = DialogueManager(demo.domain, ensemble, parser=oracle(story, wrong_turn),
                              executor=InProcessExecutor("actions"))
    return await replay_story(story, manager)


@pytest.mark.parametrize("story", DEMO_STORIES[:6], ids=lambda s: s.name)
async def test_demo_stories_pass_with_their_own_annotations(
        story: Story, demo: Project, ensemble: PolicyEnsemble, story_env: None) -> None:
    outcome = await _replay(story, demo, ensemble)
    assert outcome.passed, outcome.to_dict()
    report = summary([outcome])
    assert report["pass_rate"] == report["turn_intent_accuracy"] == 1.0


async def test_a_wrong_intent_fails_the_story_and_is_reported(
        demo: Project, ensemble: PolicyEnsemble, story_env: None) -> None:
    story = DEMO_STORIES[0]
    outcome = await _replay(story, demo, ensemble, wrong_turn=2)
    report = summary([outcome])
    assert not outcome.passed and report["passed"] == 0
    assert report["turn_intent_accuracy"] < 1.0 and report["turn_action_accuracy"] < 1.0
    failure = report["failed"][0]["first_failure"]
    assert failure["turn"] == 2 and failure["predicted_intent"] == "deny"
    assert failure["intent"] == turns_of(story)[1][0].intent


def _cut_after_first_action_of_a_busy_turn(story: Story) -> tuple[Story, int]:
    """The story up to the first action of its first turn with two or more actions, and
    that turn's index among the steps (its user step)."""
    steps = story.steps
    for index, step in enumerate(steps):
        following = []
        for later in steps[index + 1:]:
            if later.kind == "user":
                break
            following.append(later)
        if step.kind == "user" and sum(s.kind == "action" for s in following) >= 2:
            first = index + 1 + next(i for i, s in enumerate(following) if s.kind == "action")
            return replace(story, steps=steps[:first + 1]), index
    raise AssertionError("no turn with two actions")


async def test_nothing_is_checked_after_the_story_ends_but_everything_before(
        demo: Project, ensemble: PolicyEnsemble, story_env: None) -> None:
    # as Rasa and `xingkong test`: a story may stop before the bot has finished its turn
    story = next(s for s in DEMO_STORIES if len(turns_of(s)) >= 3)
    cut, at = _cut_after_first_action_of_a_busy_turn(story)
    assert (await _replay(cut, demo, ensemble)).passed
    # the same missing action inside the story (a later turn follows) fails it
    later = next(i for i, s in enumerate(story.steps) if i > at and s.kind == "user")
    gap = replace(story, steps=cut.steps + story.steps[later:])
    assert not (await _replay(gap, demo, ensemble)).passed


def test_booking_ids_are_found_annotated_or_written() -> None:
    story = load_training_data([REPO / "tests" / "test_stories.yml"]).stories
    mentioned = {i for s in story for i in booking_ids(s)}
    assert mentioned and all(i.startswith("SL-") and len(i) == 9 for i in mentioned)


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / "models" / "nlu" / "pipeline.json").exists()
                    or not BLIND.exists(), reason="needs the trained demo NLU and the blind stories")
async def test_blind_stories_pass_with_the_trained_nlu(
        demo: Project, ensemble: PolicyEnsemble, story_env: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.wiring import load_parser

    monkeypatch.delenv("XINGKONG_TODAY")  # the NLU reads dates on the real today
    parser = load_parser(demo)
    outcomes = []
    for number, story in enumerate(load_training_data([BLIND]).stories):
        monkeypatch.setenv("XINGKONG_BOOKINGS_DB", str(REPO / "results" / f"blind_{number}.db"))
        Path(REPO / "results" / f"blind_{number}.db").unlink(missing_ok=True)
        seed(story)
        manager = DialogueManager(demo.domain, ensemble, parser=parser,
                                  executor=InProcessExecutor("actions"))
        outcomes.append(await replay_story(story, manager, sender=f"blind-{number}"))
    report = summary(outcomes)
    assert report["pass_rate"] >= 0.9, report
