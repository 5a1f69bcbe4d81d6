"""The demo's tests/test_stories.yml end to end on the trained demo models (`xingkong train`
first): every user step's text through the real NLU, in Rasa's replay mode and with the
actions run for real, as `xingkong test` does. Slow: the NLU runs on every turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.project.project import Project
from bot.project.config import ProjectPaths
from bot.story_runner import run_core_tests

REPO = Path(__file__).resolve().parents[2]
TEST_STORIES = REPO / "tests" / "test_stories.yml"


@pytest.fixture(scope="module")
def trained_demo() -> Project:
    if not (REPO / "models" / "nlu" / "pipeline.json").exists():
        pytest.skip("needs the trained demo models in models/ (run `xingkong train`)")
    return Project.load(ProjectPaths.at(REPO))


def failures(outcome: object) -> str:
    report = outcome.report["xingkong"]  # type: ignore[attr-defined]
    return "\n".join(f"{f['story']}: {f['wrong'][:2] or f['error']}" for f in report["failed"])


@pytest.mark.slow
@pytest.mark.parametrize("execute", [False, True], ids=["rasa_mode", "execute_actions"])
def test_demo_test_stories_pass_with_the_text_through_the_nlu(
        trained_demo: Project, execute: bool, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # actions/story_setup.py points the actions at a fresh bookings database per story;
    # these make the test restore the environment afterwards
    monkeypatch.setenv("XINGKONG_BOOKINGS_DB", str(tmp_path / "bookings.sqlite"))
    monkeypatch.setenv("XINGKONG_TODAY", "2030-01-01")
    monkeypatch.chdir(REPO)
    outcome = run_core_tests(trained_demo, TEST_STORIES, tmp_path / "results", use_text=True,
                             execute_actions=execute)
    assert outcome.nlu_used
    summary = outcome.report["xingkong"]
    assert summary["stories"]["total"] >= 30
    assert summary["intents"]["total"] > 100
    assert summary["stories"]["passed"] == summary["stories"]["total"], failures(outcome)
    assert {p.name for p in outcome.files} == {
        "failed_test_stories.yml", "story_report.json", "story_confusion_matrix.png"}
    assert summary["turn_latency_ms"]["turns"] >= 100
