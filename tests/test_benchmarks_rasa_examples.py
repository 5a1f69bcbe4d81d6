"""benchmarks/rasa_examples.py still runs: on a project made by `xingkong init` (copied by the
script, which writes only into its own temporary folder) it loads, trains and passes the test
stories in Rasa's mode and with the actions run."""

from __future__ import annotations

from pathlib import Path

from bot.project_template import create_project
from tests.benchmark_scripts import load_benchmark


def test_rasa_examples_checks_a_bot_and_its_test_stories(tmp_path: Path,
                                                         restore_imports: None) -> None:
    module = load_benchmark("rasa_examples")

    bot = tmp_path / "starter"
    create_project(bot)
    before = sorted(p.relative_to(bot) for p in bot.rglob("*"))
    row = module.check_bot(bot, train_nlu=False)
    assert row["loads"] and row["validate_errors"] == 0
    assert row["rasa_mode"]["stories_passed"] == row["rasa_mode"]["stories"] == 1
    assert row["execute_mode"]["stories_passed"] == 1
    assert row["story_actions_matched"] == row["story_actions_total"] > 0
    assert sorted(p.relative_to(bot) for p in bot.rglob("*")) == before  # source untouched
