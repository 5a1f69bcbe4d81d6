"""Shared set-up for the dialogue tests: a tiny Rasa project trained into a DialogueManager."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.project.project import Project
from bot.project.config import ComponentConfig, ProjectPaths
from bot.manager import DialogueManager, Parser
from bot.policies import PolicyEnsemble, build_policies

TINY_DOMAIN = """
version: "3.1"
intents:
  - greet
  - goodbye
  - inform
entities:
  - city
slots:
  city:
    type: text
    influence_conversation: false
    mappings:
      - type: from_entity
        entity: city
responses:
  utter_greet:
    - text: "Hello! How can I help?"
      buttons:
        - title: "Say bye"
          payload: "/goodbye"
  utter_goodbye:
    - text: "Bye!"
  utter_city:
    - text: "Noted: {city}."
session_config:
  session_expiration_time: 60
  carry_over_slots_to_new_session: true
"""

TINY_CONFIG = """
recipe: default.v1
language: en
pipeline: []
policies:
  - name: MemoizationPolicy
  - name: RulePolicy
"""

TINY_RULES = """
version: "3.1"
rules:
  - rule: greet back
    steps:
      - intent: greet
      - action: utter_greet
  - rule: say goodbye
    steps:
      - intent: goodbye
      - action: utter_goodbye
  - rule: note the city
    steps:
      - intent: inform
      - action: utter_city
"""

TINY_STORIES = """
version: "3.1"
stories:
  - story: hello and goodbye
    steps:
      - intent: greet
      - action: utter_greet
      - intent: goodbye
      - action: utter_goodbye
"""


@pytest.fixture
def tiny_project(tmp_path: Path) -> Project:
    """The tiny project's files in tmp_path, loaded (intents greet/goodbye/inform, slot city,
    utter_greet with a button, three rules and a story; no NLU examples)."""
    (tmp_path / "domain.yml").write_text(textwrap.dedent(TINY_DOMAIN))
    (tmp_path / "config.yml").write_text(textwrap.dedent(TINY_CONFIG))
    data = tmp_path / "data"
    data.mkdir()
    (data / "rules.yml").write_text(textwrap.dedent(TINY_RULES))
    (data / "stories.yml").write_text(textwrap.dedent(TINY_STORIES))
    return Project.load(ProjectPaths.at(tmp_path))


@pytest.fixture
def make_tiny_manager(tiny_project: Project) -> Callable[..., DialogueManager]:
    """Builds a DialogueManager on the trained tiny project; pass ``parser=`` for an NLU."""
    ensemble = PolicyEnsemble(build_policies(tiny_project.config.policies))
    ensemble.train(tiny_project.domain, tiny_project.data)

    def make(parser: Parser | None = None) -> DialogueManager:
        return DialogueManager(tiny_project.domain, ensemble, parser=parser)

    return make


@pytest.fixture
def tiny_manager(make_tiny_manager: Callable[..., DialogueManager]) -> DialogueManager:
    """A DialogueManager on the tiny project, without NLU (use `/intent` messages)."""
    return make_tiny_manager()


@pytest.fixture(scope="session")
def demo() -> Project:
    """The demo assistant at the repository root, loaded once."""
    return Project.load(ProjectPaths.at(Path(__file__).resolve().parents[2]))


def without_ted(components: tuple[ComponentConfig, ...]) -> tuple[ComponentConfig, ...]:
    return tuple(c for c in components if c.name != "TEDPolicy")


@pytest.fixture(scope="session")
def ensemble(demo: Project) -> PolicyEnsemble:
    """The demo's rules and memoization, trained once (tests only predict with them). TED is
    left out: it takes a minute to train, and tests/bot/test_ted_policy.py covers it."""
    policies = PolicyEnsemble(build_policies(without_ted(demo.config.policies)))
    policies.train(demo.domain, demo.data)
    return policies

