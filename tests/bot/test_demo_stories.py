"""The demo's tests/test_stories.yml through bot.story_eval, the engine of `xingkong test`.

Default run: the stories' intents and entities are given (no NLU), in both of Rasa's modes:
replay (the policies predict every action, the story's events are applied) and execute
(actions and forms run in-process against a fresh bookings database seeded by
actions/story_setup.py). action_answer_question answers with utter_cannot_answer here so the
default run loads no knowledge model. The text-through-NLU run on the trained demo models is
`@pytest.mark.slow` (tests/bot/test_story_eval_slow.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.project.project import Project
from bot.manager import DialogueManager
from bot.policies import PolicyEnsemble
from bot.project.training_data import Story, load_training_data
from bot.runtime.executors import InProcessExecutor
from bot.story_eval import StoryResult, run_stories, unsupported_steps
from bot.story_runner import story_setup

REPO = Path(__file__).resolve().parents[2]
TEST_STORIES = REPO / "tests" / "test_stories.yml"
STORIES: list[Story] = load_training_data([TEST_STORIES]).stories


class KnowledgeStandIn:
    """InProcessExecutor("actions") with action_answer_question answering 'cannot answer'."""

    def __init__(self) -> None:
        self.inner = InProcessExecutor("actions")

    def names(self) -> set[str] | None:
        return self.inner.names()

    async def run(self, action_call: dict[str, Any]) -> dict[str, Any]:
        if action_call["next_action"] == "action_answer_question":
            return {"events": [], "responses": [{"response": "utter_cannot_answer"}]}
        return await self.inner.run(action_call)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XINGKONG_BOOKINGS_DB", str(tmp_path / "bookings.sqlite"))
    monkeypatch.setenv("XINGKONG_TODAY", "2030-01-01")
    monkeypatch.setenv("XINGKONG_HOTELS", str(REPO / "data" / "hotels.yml"))


def explain(result: StoryResult) -> str:
    wrong = [f"{result.story.steps[c.step].source} {c.kind}: expected {c.expected!r}, "
             f"got {c.predicted!r}" for c in result.checks if not c.ok]
    return f"story '{result.story.name}':\n" + "\n".join(wrong or [str(result.error)])


def test_the_test_stories_are_all_collected_and_testable() -> None:
    assert len(STORIES) >= 30
    assert len({s.name for s in STORIES}) == len(STORIES)
    for story in STORIES:
        assert unsupported_steps(story) == []


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_demo_story_in_rasa_replay_mode(story: Story, demo: Project,
                                        ensemble: PolicyEnsemble) -> None:
    run = asyncio.run(run_stories([story], lambda: DialogueManager(demo.domain, ensemble),
                                  use_text=False))
    result = run.results[0]
    assert result.passed, explain(result)
    assert [c.expected for c in result.checks if c.kind == "action"
            and c.expected != "action_listen"] == [s.name for s in story.steps
                                                   if s.kind == "action"]


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_demo_story_with_actions_executed(story: Story, demo: Project, ensemble: PolicyEnsemble,
                                          demo_env: None) -> None:
    executor = KnowledgeStandIn()
    setup = story_setup("actions")
    assert setup is not None  # actions/story_setup.py seeds the bookings of the story

    run = asyncio.run(run_stories(
        [story], lambda: DialogueManager(demo.domain, ensemble, executor=executor),
        use_text=False, execute_actions=True, setup=setup))
    result = run.results[0]
    assert result.passed, explain(result)
    assert sum(c.kind == "action" for c in result.checks) >= sum(
        s.kind == "action" for s in story.steps)
