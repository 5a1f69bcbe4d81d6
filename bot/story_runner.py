"""`xingkong test core`: a trained project's test stories through bot.story_eval, reports out.

Test stories are the `test_*.yml` files of the folder given (Rasa's `tests/`), or one file.
Each story gets a fresh dialogue manager with an empty in-memory tracker store. With
`execute_actions`, the project's actions run in-process (or on the action server of
endpoints.yml), and a project can prepare its own stores before each story: when the actions
package has a module `story_setup` with `prepare_test_story(story_entities)`, it is called with
the entities the story's user steps mention (the demo seeds a fresh bookings database with
them).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.project.project import Project
from bot.training.core import load_policies
from bot.project.config import load_endpoints
from bot.errors import ConfigError
from bot.manager import DialogueManager
from bot.story_eval import StoryTestRun, run_stories
from bot.story_report import write_reports
from bot.storage.stores import InMemoryTrackerStore
from bot.project.training_data import Story, load_training_data

logger = logging.getLogger(__name__)

SETUP_MODULE = "story_setup"
SETUP_FUNCTION = "prepare_test_story"


@dataclass(slots=True)
class CoreTestOutcome:
    run: StoryTestRun
    report: dict[str, Any]
    files: list[Path]
    nlu_used: bool


def story_files(path: Path) -> list[Path]:
    """The test story files at `path`: the file itself, or a folder's test_*.yml files."""
    if not path.exists():
        raise ConfigError(f"Test stories {path} do not exist. Pass --stories with a file or a "
                          "folder of test_*.yml files (Rasa's tests/).")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("test_*") if p.suffix in (".yml", ".yaml"))
    if not files:
        raise ConfigError(f"No test_*.yml files in {path}. Rasa's test stories live in "
                          "tests/test_stories.yml.")
    return files


def load_test_stories(path: Path, limit: int | None = None) -> list[Story]:
    stories = load_training_data(story_files(path)).stories
    if not stories:
        raise ConfigError(f"No stories in {path}: test stories sit under a `stories:` key.")
    return stories[:limit] if limit is not None else stories


def run_core_tests(project: Project, stories_path: Path, out: Path, *, use_text: bool = True,
              execute_actions: bool = False, endpoints_path: Path | None = None,
              actions_package: str = "actions", limit: int | None = None,
              successes: bool = False, plot: bool = True) -> CoreTestOutcome:
    """Test the trained project on its test stories and write Rasa's report files to `out`."""
    from bot.wiring import load_parser, make_executor

    stories = load_test_stories(stories_path, limit)
    policies = load_policies(project)
    parser = load_parser(project) if use_text else None
    if use_text and parser is None:
        logger.warning("test.core.no_nlu path=%s effect=intents_given",
                       project.paths.models / "nlu")
    executor = None
    setup = None
    if execute_actions:
        endpoints = load_endpoints(endpoints_path if endpoints_path is not None
                                   else project.paths.endpoints)
        executor = make_executor(endpoints, project, actions_package)
        setup = story_setup(actions_package)
    max_predictions = project.config.max_number_of_predictions

    def new_manager() -> DialogueManager:
        return DialogueManager(project.domain, policies, parser=parser, executor=executor,
                               store=InMemoryTrackerStore(project.domain.slot_defaults()),
                               max_predictions=max_predictions)

    async def go() -> StoryTestRun:
        try:
            return await run_stories(stories, new_manager, use_text=parser is not None,
                                     execute_actions=execute_actions, setup=setup)
        finally:
            if executor is not None:
                await executor.close()

    run = asyncio.run(go())
    report = write_reports(run, out, successes=successes, plot=plot)
    names = ["failed_test_stories.yml", "story_report.json"]
    names += ["successful_test_stories.yml"] if successes else []
    names += ["story_confusion_matrix.png"] if plot else []
    files = [p for p in (out / n for n in names) if p.exists()]
    return CoreTestOutcome(run, report, files, parser is not None)


def story_setup(actions_package: str) -> Callable[[Story], None] | None:
    """The actions package's `story_setup.prepare_test_story`, called with a story's entities;
    None when the package has none."""
    name = f"{actions_package}.{SETUP_MODULE}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (name, actions_package):
            raise ConfigError(f"Cannot import {name}: {exc}.") from exc
        return None
    prepare = getattr(module, SETUP_FUNCTION, None)
    if not callable(prepare):
        raise ConfigError(f"{name} has no function {SETUP_FUNCTION}(story_entities).")

    def setup(story: Story) -> None:
        prepare([dict(e) for step in story.steps for e in step.entities])

    return setup
