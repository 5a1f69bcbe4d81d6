"""`xingkong test` / `test core` on the tiny project: Rasa's report files, `# predicted:`
comments, the NLU checks and the exit code of --fail-on-prediction-errors."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from bot.project.project import Project
from bot.cli import main
from bot.manager import DialogueManager
from bot.story_eval import entity_keys, run_stories
from bot.story_report import failed_stories_yaml, write_reports
from bot.project.training_data import load_training_data

TEST_STORIES = """
version: "3.1"
stories:
  - story: greet and leave
    steps:
      - user: |
          hello there
        intent: greet
      - action: utter_greet
      - user: |
          bye
        intent: goodbye
      - action: utter_goodbye
  - story: a wrong expectation
    steps:
      - user: |
          hi
        intent: greet
      - action: utter_goodbye
"""


def write_tests(root: Path) -> Path:
    (root / "tests").mkdir(exist_ok=True)
    path = root / "tests" / "test_stories.yml"
    path.write_text(textwrap.dedent(TEST_STORIES))
    return path


def test_replay_marks_the_wrong_action_and_keeps_going(
        tiny_project: Project, make_tiny_manager: Callable[..., DialogueManager]) -> None:
    stories = load_training_data([write_tests(tiny_project.paths.root)]).stories
    run = asyncio.run(run_stories(stories, make_tiny_manager, use_text=False))
    good, bad = run.results
    assert good.passed
    # greet, listen, goodbye: the action_listen before the second user step is checked too
    assert [c.expected for c in good.checks] == ["utter_greet", "action_listen",
                                                 "utter_goodbye"]
    assert not bad.passed
    assert bad.action_pairs == [("utter_goodbye", "utter_greet")]
    text = failed_stories_yaml(run.failed)
    assert "- action: utter_goodbye  # predicted: utter_greet" in text
    assert "greet and leave" not in text


def test_text_goes_through_the_nlu_and_a_wrong_intent_fails(
        tiny_project: Project, make_tiny_manager: Callable[..., DialogueManager]) -> None:
    async def everything_is_goodbye(text: str) -> dict[str, Any]:
        return {"text": text, "intent": {"name": "goodbye", "confidence": 0.9},
                "entities": [], "intent_ranking": []}

    stories = load_training_data([write_tests(tiny_project.paths.root)]).stories[:1]
    run = asyncio.run(run_stories(stories, lambda: make_tiny_manager(everything_is_goodbye),
                                  use_text=True))
    result = run.results[0]
    intents = [c for c in result.checks if c.kind == "intent"]
    assert [(c.expected, c.predicted) for c in intents] == [("greet", "goodbye"),
                                                           ("goodbye", "goodbye")]
    # Rasa's replay goes on with the story's own intent: the actions still match
    assert all(c.ok for c in result.checks if c.kind == "action")
    assert "intent: greet  # predicted: goodbye: hello there" in failed_stories_yaml(run.failed)
    assert len(result.turn_latency_ms) == 2


def test_reports_are_written(tiny_project: Project,
                             make_tiny_manager: Callable[..., DialogueManager],
                             tmp_path: Path) -> None:
    stories = load_training_data([write_tests(tiny_project.paths.root)]).stories
    run = asyncio.run(run_stories(stories, make_tiny_manager, use_text=False))
    report = write_reports(run, tmp_path / "results")
    assert report["conversation_accuracy"] == {"accuracy": 0.5, "correct": 1,
                                               "with_warnings": 0, "total": 2}
    assert report["utter_greet"]["support"] == 1
    assert report["utter_goodbye"]["recall"] == 0.5
    saved = json.loads((tmp_path / "results" / "story_report.json").read_text())
    assert saved["xingkong"]["failed"][0]["story"] == "a wrong expectation"
    png = (tmp_path / "results" / "story_confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_cli_exit_code_follows_fail_on_prediction_errors(tiny_project: Project) -> None:
    root = tiny_project.paths.root
    write_tests(root)
    runner = CliRunner()
    trained = runner.invoke(main, ["train", "core", "--project", str(root)])
    assert trained.exit_code == 0, trained.output
    out = root / "results"
    args = ["test", "core", "--project", str(root), "--out", str(out)]
    lenient = runner.invoke(main, args)
    assert lenient.exit_code == 0, lenient.output
    assert "1/2 stories" in lenient.output
    assert "FAILED a wrong expectation" in lenient.output
    strict = runner.invoke(main, [*args, "--fail-on-prediction-errors"])
    assert strict.exit_code == 1
    assert (out / "failed_test_stories.yml").exists()
    # `xingkong test` (core, then nlu when there is one) behaves the same
    both = runner.invoke(main, ["test", "--project", str(root), "--out", str(out),
                                "--fail-on-prediction-errors"])
    assert both.exit_code == 1
    # Rasa's --successes and --no-plot
    other = root / "other"
    assert runner.invoke(main, [*args[:-1], str(other), "--successes", "--no-plot"]
                         ).exit_code == 0
    assert "greet and leave" in (other / "successful_test_stories.yml").read_text()
    assert not (other / "story_confusion_matrix.png").exists()


def test_missing_test_stories_is_a_clear_error(tiny_project: Project) -> None:
    root = tiny_project.paths.root
    runner = CliRunner()
    assert runner.invoke(main, ["train", "core", "--project", str(root)]).exit_code == 0
    result = runner.invoke(main, ["test", "core", "--project", str(root), "--stories",
                                  "nowhere"])
    assert result.exit_code == 1
    assert "Test stories" in result.output and "do not exist" in result.output


def test_entities_are_compared_as_rasa_compares_them() -> None:
    gold = [{"start": 5, "end": 18, "value": "April 2, 2031", "entity": "date"}]
    date = {"start": 5, "end": 18, "value": "April 2, 2031", "entity": "date",
            "role": "checkin", "extractor": "JointIntentEntity"}
    # a role the story leaves out is not checked (Rasa checks none)
    expected, got = entity_keys(gold, [date])
    assert expected == got
    # every extractor counts: Duckling's `time` next to the date fails the step, as in Rasa
    time = {"start": 0, "end": 18, "value": "2031-04-02T00:00:00.000+00:00", "entity": "time",
            "extractor": "DucklingEntityExtractor"}
    expected, got = entity_keys(gold, [date, time])
    assert expected != got
    # the span counts, not only the value
    expected, got = entity_keys(gold, [{**date, "start": 0}])
    assert expected != got
    # a role the story gives must match; a value is compared as a string (Duckling's 4)
    expected, got = entity_keys([{**gold[0], "role": "checkout"}], [date])
    assert expected != got
    expected, got = entity_keys([{"start": 0, "end": 4, "value": "4", "entity": "number"}],
                                [{"start": 0, "end": 4, "value": 4, "entity": "number"}])
    assert expected == got


def test_the_nlu_reads_what_the_bot_just_asked(
        tiny_project: Project, make_tiny_manager: Callable[..., DialogueManager]) -> None:
    seen: list[Any] = []

    async def parser(text: str, context: Any = None) -> dict[str, Any]:
        seen.append(context)
        return {"text": text, "intent": {"name": "greet" if "hello" in text else "goodbye",
                                         "confidence": 0.9},
                "entities": [], "intent_ranking": []}

    stories = load_training_data([write_tests(tiny_project.paths.root)]).stories[:1]
    for execute in (False, True):
        seen.clear()
        asyncio.run(run_stories(stories, lambda: make_tiny_manager(parser), use_text=True,
                                execute_actions=execute))
        assert seen[0].last_action is None
        assert seen[1].last_action == "utter_greet"
