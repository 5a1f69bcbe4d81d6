"""Rasa behaviours real projects rely on (issue 11), each on an example from Rasa's docs or
its example bots (formbot, moodbot, the two-stage-fallback and forms pages)."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bot.project.project import Project
from bot.training.train import train
from bot.project.config import ProjectPaths, load_config, skipped_components
from bot.state.events import BotUttered
from bot.manager import DialogueManager, UserMessage
from bot.policies import PolicyEnsemble, build_policies
from bot.story_eval import run_stories
from bot.project.training_data import load_training_data
from bot.validate import validate_project


def write_project(root: Path, domain: str, config: str, **data: str) -> Project:
    """A Rasa project in `root`: domain.yml, config.yml and data/<name>.yml per keyword."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "domain.yml").write_text(textwrap.dedent(domain))
    (root / "config.yml").write_text(textwrap.dedent(config))
    (root / "data").mkdir(exist_ok=True)
    for name, text in data.items():
        (root / "data" / f"{name}.yml").write_text(textwrap.dedent(text))
    return Project.load(ProjectPaths.at(root))


def trained(project: Project) -> PolicyEnsemble:
    ensemble = PolicyEnsemble(build_policies(project.config.policies))
    ensemble.train(project.domain, project.data)
    return ensemble


def actions_of_turn(manager: DialogueManager, text: str, sender: str = "u") -> list[str]:
    result = asyncio.run(manager.handle_message(UserMessage(text, sender)))
    events = result.tracker.events[result.tracker.idx_after_latest_user_message():]
    return [e.name for e in events if type(e).__name__ == "ActionExecuted"
            and e.name not in ("action_listen", "action_extract_slots")]


# ---------------------------------------------------------------- formbot (Rasa's example)

FORMBOT_DOMAIN = """
version: "3.1"
intents: [greet, request_restaurant, chitchat, inform, thankyou]
entities: [cuisine, number]
slots:
  cuisine:
    type: text
    influence_conversation: false
    mappings:
    - type: from_entity
      entity: cuisine
  num_people:
    type: float
    influence_conversation: false
    mappings:
    - type: from_entity
      entity: number
forms:
  restaurant_form:
    required_slots: [cuisine, num_people]
responses:
  utter_greet: [{text: "Hello! I am restaurant search assistant! How can I help?"}]
  utter_chitchat: [{text: "chitchat"}]
  utter_ask_cuisine: [{text: "What cuisine?"}]
  utter_ask_num_people: [{text: "How many people?"}]
  utter_submit: [{text: "All done!"}]
  utter_noworries: [{text: "You are welcome :)"}]
"""

FORMBOT_CONFIG = """
recipe: default.v1
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: DucklingEntityExtractor
    url: http://localhost:8000
    dimensions: [number]
  - name: DIETClassifier
    epochs: 100
policies:
  - name: TEDPolicy
    epochs: 100
  - name: AugmentedMemoizationPolicy
  - name: RulePolicy
"""

FORMBOT_RULES = """
version: "3.1"
rules:
  - rule: Chitchat
    steps:
      - intent: chitchat
      - action: utter_chitchat
  - rule: activate restaurant form
    steps:
      - intent: request_restaurant
      - action: restaurant_form
      - active_loop: restaurant_form
  - rule: submit form
    condition:
    - active_loop: restaurant_form
    steps:
      - action: restaurant_form
      - active_loop: null
      - action: utter_submit
"""


@pytest.fixture
def formbot(tmp_path: Path) -> Project:
    return write_project(tmp_path / "formbot", FORMBOT_DOMAIN, FORMBOT_CONFIG,
                         rules=FORMBOT_RULES)


def test_1_duckling_runs_so_it_is_not_reported_as_skipped(formbot: Project) -> None:
    # DucklingEntityExtractor is real now (nlu/duckling.py); what is still skipped is named in
    # the test below.
    findings = validate_project(formbot.paths)
    assert not [f for f in findings if "DucklingEntityExtractor" in f.message]
    report = train(formbot, progress=False, nlu=False, knowledge=False)
    assert not any("DucklingEntityExtractor" in w for w in report.warnings)


def test_1_spacy_regex_featurizer_and_lookup_tables_are_named(tmp_path: Path) -> None:
    config = """
    pipeline:
      - name: SpacyNLP
        model: en_core_web_md
      - name: SpacyTokenizer
      - name: RegexFeaturizer
      - name: DIETClassifier
    policies:
      - name: RulePolicy
    """
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(config))
    notes = skipped_components(load_config(path), has_lookups=True)
    for name in ("SpacyNLP", "SpacyTokenizer", "RegexFeaturizer", "lookup tables"):
        assert any(name in n for n in notes), name


def test_2_ted_is_a_real_learned_policy_below_memoization_and_rules(formbot: Project,
                                                                    tmp_path: Path) -> None:
    # formbot lists TED first: Rasa's priorities still put it last on ties
    policies = build_policies(formbot.config.policies)
    assert [(p.name, p.priority) for p in policies] == [
        ("TEDPolicy", 1), ("AugmentedMemoizationPolicy", 3), ("RulePolicy", 6)]
    assert not [n for n in skipped_components(formbot.config) if "TEDPolicy" in n]
    # moodbot's policies (Memoization + TED + Rule): no stand-in, nothing skipped
    path = tmp_path / "config.yml"
    path.write_text("policies:\n  - name: MemoizationPolicy\n  - name: TEDPolicy\n"
                    "    max_history: 5\n  - name: RulePolicy\n")
    config = load_config(path)
    assert [p.name for p in build_policies(config.policies)] == [
        "MemoizationPolicy", "TEDPolicy", "RulePolicy"]
    assert skipped_components(config) == []


def test_8_rule_policy_returns_to_the_form_after_a_general_digression_rule(
        formbot: Project) -> None:
    manager = DialogueManager(formbot.domain, trained(formbot))
    assert actions_of_turn(manager, "/request_restaurant") == ["restaurant_form"]
    # The form rejects the message (no slot filled), the "Chitchat" rule answers, and as
    # that rule knows nothing of the form it ends with action_listen: Rasa's RulePolicy
    # predicts the active loop instead, which asks its question again.
    assert actions_of_turn(manager, "/chitchat") == ["utter_chitchat", "restaurant_form"]
    tracker = manager.retrieve("u")
    assert tracker.active_loop_name == "restaurant_form"
    said = [e.text for e in tracker.events if isinstance(e, BotUttered)]
    assert said[-2:] == ["chitchat", "What cuisine?"]


def test_8_formbot_unhappy_test_story_passes_in_replay_mode(formbot: Project) -> None:
    (formbot.paths.root / "tests").mkdir()
    story_file = formbot.paths.root / "tests" / "test_stories.yml"
    story_file.write_text(textwrap.dedent("""
    stories:
    - story: unhappy path
      steps:
      - user: |
          im looking for a restaurant
        intent: request_restaurant
      - action: restaurant_form
      - active_loop: restaurant_form
      - user: |
          can you share your boss with me?
        intent: chitchat
      - action: utter_chitchat
      - action: restaurant_form
      - active_loop: null
      - action: utter_submit
    """))
    ensemble = trained(formbot)
    stories = load_training_data([story_file]).stories
    run = asyncio.run(run_stories(stories, lambda: DialogueManager(formbot.domain, ensemble),
                                  use_text=False))
    assert run.results[0].passed, run.results[0].checks


# ---------------------------------------------------------------- 4: /restart

def test_4_restart_starts_a_new_session_and_says_nothing_else(formbot: Project) -> None:
    # Rasa's default action: action_restart (utter_restart when the domain has it), then its
    # follow-up action_session_start; the turn ends there, with no fallback message.
    manager = DialogueManager(formbot.domain, trained(formbot))
    asyncio.run(manager.handle_message(UserMessage("/greet", "u")))
    result = asyncio.run(manager.handle_message(UserMessage("/restart", "u")))
    assert result.messages == []
    names = [d["action"] for d in result.diagnostics]
    assert names == ["action_restart"]
    tail = [type(e).__name__ for e in result.tracker.events[-4:]]
    assert tail == ["Restarted", "ActionExecuted", "SessionStarted", "ActionExecuted"]
    assert result.tracker.latest_action_name == "action_listen"


# ---------------------------------------------------------------- 7: overriding defaults

OVERRIDES = '''
from rasa_sdk import Action
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet, UserUtteranceReverted


class ActionSessionStart(Action):
    """Rasa docs, "Customizing the session start action": SessionStarted first, then slots,
    then action_listen."""

    def name(self):
        return "action_session_start"

    async def run(self, dispatcher, tracker, domain):
        return [SessionStarted(), SlotSet("cuisine", "from session start"),
                ActionExecuted("action_listen")]


class ActionDefaultFallback(Action):
    def name(self):
        return "action_default_fallback"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text="my own fallback")
        return [UserUtteranceReverted()]
'''


def test_7_custom_actions_override_default_actions(formbot: Project, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.runtime.executors import InProcessExecutor

    package = tmp_path / "pkg" / "parity_overrides"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "actions.py").write_text(OVERRIDES)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    domain_file = formbot.paths.root / "domain.yml"
    domain_file.write_text(domain_file.read_text() + "\nactions:\n  - action_session_start\n"
                           "  - action_default_fallback\n")
    project = Project.load(formbot.paths)
    # Without TED: it would guess an answer to /thankyou, and the core fallback is under test.
    ensemble = PolicyEnsemble(build_policies(
        tuple(c for c in project.config.policies if c.name != "TEDPolicy")))
    ensemble.train(project.domain, project.data)
    manager = DialogueManager(project.domain, ensemble,
                              executor=InProcessExecutor("parity_overrides"))
    result = asyncio.run(manager.handle_message(UserMessage("/thankyou", "u")))
    assert result.tracker.get_slot("cuisine") == "from session start"
    assert [m.get("text") for m in result.messages] == ["my own fallback"]


RESTART_OVERRIDE = '''
from rasa_sdk import Action
from rasa_sdk.events import Restarted


class ActionRestart(Action):
    """Rasa docs, "Default Actions": a custom action named action_restart replaces it."""

    def name(self):
        return "action_restart"

    async def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text="Starting over, the slots are cleared.")
        return [Restarted()]
'''


def test_7_a_custom_action_restart_replaces_the_default(formbot: Project, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.runtime.executors import InProcessExecutor

    make_package(tmp_path / "pkg", "parity_restart", RESTART_OVERRIDE)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    domain_file = formbot.paths.root / "domain.yml"
    domain_file.write_text(domain_file.read_text() + "\nactions:\n  - action_restart\n")
    project = Project.load(formbot.paths)
    manager = DialogueManager(project.domain, trained(project),
                              executor=InProcessExecutor("parity_restart"))
    asyncio.run(manager.handle_message(UserMessage('/inform{"cuisine": "thai"}', "u")))
    assert manager.retrieve("u").get_slot("cuisine") == "thai"
    result = asyncio.run(manager.handle_message(UserMessage("/restart", "u")))
    assert [m.get("text") for m in result.messages] == ["Starting over, the slots are cleared."]
    # the Restarted event it returns still brings action_session_start after it, as in Rasa
    tail = [type(e).__name__ for e in result.tracker.events[-4:]]
    assert tail == ["Restarted", "ActionExecuted", "SessionStarted", "ActionExecuted"]
    assert result.tracker.get_slot("cuisine") is None


# ---------------------------------------------------------------- 3: custom actions unchanged

RUAMEL_ACTIONS = '''
import ruamel.yaml
from rasa_sdk import Action

# Rasa 3.6 era (ruamel.yaml < 0.17.22): module-level safe_load, removed in ruamel.yaml 0.18
SETTINGS = ruamel.yaml.safe_load("greeting: hello from yaml")


class ActionGreetFromYaml(Action):
    def name(self):
        return "action_greet_from_yaml"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text=SETTINGS["greeting"])
        text = ruamel.yaml.safe_dump({"n": 1})
        return []
'''


def make_package(root: Path, name: str, code: str) -> None:
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "actions.py").write_text(textwrap.dedent(code))


def test_3_actions_calling_ruamel_safe_load_run_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.runtime.executors import InProcessExecutor

    make_package(tmp_path, "parity_ruamel", RUAMEL_ACTIONS)
    monkeypatch.syspath_prepend(str(tmp_path))
    executor = InProcessExecutor("parity_ruamel")
    assert executor.names() == {"action_greet_from_yaml"}
    call = {"next_action": "action_greet_from_yaml", "sender_id": "u", "version": "3.6.0",
            "tracker": {"sender_id": "u", "slots": {}, "latest_message": {}, "events": [],
                        "paused": False, "followup_action": None, "active_loop": {},
                        "latest_action_name": None},
            "domain": {}}
    reply = asyncio.run(executor.run(call))
    assert reply["responses"][0]["text"] == "hello from yaml"


def test_3_the_action_server_gets_the_same_ruamel_functions(repo_root: Path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(repo_root / "bot" / "runtime" / "compat_site"), str(repo_root)]))
    out = subprocess.run([sys.executable, "-c", "import ruamel.yaml; "
                          "print(ruamel.yaml.safe_load('a: 1'))"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "{'a': 1}", out.stderr


def test_3_an_import_failure_names_the_module_the_line_and_the_real_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.errors import ConfigError
    from bot.runtime.executors import InProcessExecutor

    make_package(tmp_path, "parity_broken", "import requests_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        InProcessExecutor("parity_broken")
    message = str(caught.value)
    assert "parity_broken.actions" in message
    assert "actions.py:1" in message
    assert "No module named 'requests_that_is_not_installed'" in message
    assert "install the missing package" in message


def test_3_shell_reports_a_broken_actions_package_without_a_traceback(
        formbot: Project, restore_imports: None) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    root = formbot.paths.root
    (root / "domain.yml").write_text((root / "domain.yml").read_text()
                                     + "\nactions:\n  - action_hello\n")
    make_package(root, "actions", "x = 1 / 0\n")
    runner = CliRunner()
    assert runner.invoke(main, ["train", "core", "--project", str(root)]).exit_code == 0
    result = runner.invoke(main, ["shell", "--project", str(root)], input="/greet\n")
    assert result.exit_code == 1
    assert "ZeroDivisionError: division by zero" in result.output
    assert "actions.py:1" in result.output
    assert not isinstance(result.exception, ZeroDivisionError)


# ---------------------------------------------------------------- 6: stories that start with an action

FEEDBACK_DOMAIN = """
version: "3.1"
intents: [greet, goodbye, affirm, deny]
entities: [name]
slots:
  name:
    type: text
    mappings:
    - type: from_entity
      entity: name
responses:
  utter_greet: [{text: "Hi!"}]
  utter_ask_feedback: [{text: "Did I help?"}]
  utter_thanks: [{text: "Thanks for the feedback!"}]
  utter_sorry: [{text: "Sorry to hear."}]
"""

FEEDBACK_STORIES = """
version: "3.1"
stories:
- story: greet by name
  steps:
  - intent: greet
    entities:
    - name: Ana
  - action: utter_greet
# Rasa's docs on checkpoints: a story need not start with user input; these two start with
# the bot's question and hold wherever that question is asked.
- story: feedback yes
  steps:
  - action: utter_ask_feedback
  - intent: affirm
  - action: utter_thanks
- story: feedback no
  steps:
  - action: utter_ask_feedback
  - intent: deny
  - action: utter_sorry
"""

FEEDBACK_RULES = """
version: "3.1"
rules:
- rule: ask for feedback when the user leaves
  steps:
  - intent: goodbye
  - action: utter_ask_feedback
"""


@pytest.mark.parametrize("policy", ["AugmentedMemoizationPolicy", "MemoizationPolicy"])
def test_6_augmented_memoization_forgets_what_came_before_a_story_starting_with_an_action(
        tmp_path: Path, policy: str) -> None:
    config = f"policies:\n  - name: {policy}\n    max_history: 5\n  - name: RulePolicy\n"
    project = write_project(tmp_path, FEEDBACK_DOMAIN, config, stories=FEEDBACK_STORIES,
                            rules=FEEDBACK_RULES)
    manager = DialogueManager(project.domain, trained(project))
    assert actions_of_turn(manager, '/greet{"name": "Ana"}') == ["utter_greet"]
    assert actions_of_turn(manager, "/goodbye") == ["utter_ask_feedback"]
    # the earlier greeting and the `name` slot it set are forgotten by the augmented policy
    after = actions_of_turn(manager, "/affirm")
    if policy == "AugmentedMemoizationPolicy":
        assert after == ["utter_thanks"]
    else:  # plain memoization needs the whole history, as in Rasa
        assert after == ["action_default_fallback"]


def test_6_validator_reports_no_conflict_between_stories_starting_with_actions(
        tmp_path: Path) -> None:
    config = "policies:\n  - name: AugmentedMemoizationPolicy\n  - name: RulePolicy\n"
    project = write_project(tmp_path, FEEDBACK_DOMAIN, config, stories=FEEDBACK_STORIES,
                            rules=FEEDBACK_RULES)
    findings = validate_project(project.paths)
    assert [f for f in findings if "story" in f.message and f.level == "error"] == []
    # a real conflict (same history, different actions) is still found
    (tmp_path / "data" / "more.yml").write_text(textwrap.dedent("""
    stories:
    - story: feedback yes, other answer
      steps:
      - action: utter_ask_feedback
      - intent: affirm
      - action: utter_sorry
    """))
    findings = validate_project(project.paths)
    assert any("feedback yes, other answer" in f.message or "feedback yes" in f.message
               for f in findings if f.level == "error")


# ---------------------------------------------------------------- 9: entities set slots

CUISINE_DOMAIN = """
version: "3.1"
intents: [inform, affirm]
entities: [cuisine]
slots:
  cuisine:
    type: text
    mappings:
    - type: from_entity
      entity: cuisine
responses:
  utter_ok: [{text: "ok"}]
  utter_book: [{text: "Booking your table."}]
  utter_ask_cuisine: [{text: "Which cuisine?"}]
"""

CUISINE_STORIES = """
version: "3.1"
stories:
# No slot_was_set step: as in Rasa, the entity sets the same-named (from_entity) slot
- story: cuisine given
  steps:
  - intent: inform
    entities:
    - cuisine: italian
  - action: utter_ok
  - intent: affirm
  - action: utter_book
- story: no cuisine yet
  steps:
  - intent: inform
  - action: utter_ok
  - intent: affirm
  - action: utter_ask_cuisine
"""


def test_9_story_entities_set_their_slots_in_training(tmp_path: Path) -> None:
    # max_history 1: only the slot can tell the two `affirm` turns apart
    config = "policies:\n  - name: MemoizationPolicy\n    max_history: 1\n  - name: RulePolicy\n"
    project = write_project(tmp_path, CUISINE_DOMAIN, config, stories=CUISINE_STORIES)
    assert [f for f in validate_project(project.paths) if f.level == "error"] == []
    manager = DialogueManager(project.domain, trained(project))
    assert actions_of_turn(manager, '/inform{"cuisine": "italian"}') == ["utter_ok"]
    assert actions_of_turn(manager, "/affirm") == ["utter_book"]
    assert actions_of_turn(manager, "/inform", "v") == ["utter_ok"]
    assert actions_of_turn(manager, "/affirm", "v") == ["utter_ask_cuisine"]


def test_9_slots_for_entities_follows_rasa(tmp_path: Path) -> None:
    from bot.state.slot_mapping import slots_for_entities

    domain = write_project(tmp_path, """
    version: "3.1"
    entities: [city, topping]
    forms:
      order_form:
        required_slots: [size]
    slots:
      origin:
        type: text
        mappings:
        - type: from_entity
          entity: city
          role: from
      toppings:
        type: list
        mappings:
        - type: from_entity
          entity: topping
      size:
        type: text
        mappings:
        - type: from_entity
          entity: city
          conditions:
          - active_loop: order_form
    """, "policies:\n  - name: RulePolicy\n").domain
    events = slots_for_entities(domain, [
        {"entity": "city", "value": "Berlin", "role": "from"},
        {"entity": "city", "value": "Lisbon"},
        {"entity": "topping", "value": "ham"}, {"entity": "topping", "value": "olives"}])
    assert {(e.name, str(e.value)) for e in events} == {  # type: ignore[attr-defined]
        ("origin", "Berlin"), ("toppings", "['ham', 'olives']")}


# ---------------------------------------------------------------- 11: two-stage fallback loop

TWO_STAGE_DOMAIN = """
version: "3.1"
intents: [greet, goodbye]
responses:
  utter_greet: [{text: "Hello!"}]
  utter_goodbye: [{text: "Bye!"}]
  utter_default: [{text: "I give up."}]
  utter_ask_rephrase: [{text: "Could you rephrase?"}]
"""

TWO_STAGE_RULES = """
version: "3.1"
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
# Rasa's docs, "Two-Stage Fallback"
- rule: Implementation of the Two-Stage-Fallback
  steps:
  - intent: nlu_fallback
  - action: action_two_stage_fallback
  - active_loop: action_two_stage_fallback
"""


@pytest.fixture
def two_stage(tmp_path: Path) -> DialogueManager:
    project = write_project(tmp_path, TWO_STAGE_DOMAIN, "policies:\n  - name: RulePolicy\n",
                            rules=TWO_STAGE_RULES)
    return DialogueManager(project.domain, trained(project), parser=unsure_parse)


async def unsure_parse(text: str) -> dict[str, Any]:
    """What FallbackClassifier hands on for every message."""
    ranking = [{"name": "nlu_fallback", "confidence": 1.0},
               {"name": "greet", "confidence": 0.45}]
    return {"text": text, "intent": ranking[0], "intent_ranking": ranking, "entities": []}


def said(manager: DialogueManager, text: str) -> list[str]:
    result = asyncio.run(manager.handle_message(UserMessage(text, "u")))
    return [m.get("text") or "" for m in result.messages]


def test_11_two_stage_fallback_affirmed_answers_the_clarified_message(
        two_stage: DialogueManager) -> None:
    assert said(two_stage, "hiya??") == ["Did you mean 'greet'?"]
    assert two_stage.retrieve("u").active_loop_name == "action_two_stage_fallback"
    assert said(two_stage, "/greet") == ["Hello!"]
    tracker = two_stage.retrieve("u")
    assert tracker.active_loop_name is None
    assert tracker.latest_message.intent_name == "greet"  # type: ignore[union-attr]


def test_11_two_stage_fallback_denied_asks_to_rephrase_then_gives_up(
        two_stage: DialogueManager) -> None:
    assert said(two_stage, "hiya??") == ["Did you mean 'greet'?"]
    assert said(two_stage, "/out_of_scope") == ["Could you rephrase?"]
    assert said(two_stage, "still unclear") == ["Did you mean 'greet'?"]
    assert said(two_stage, "/out_of_scope") == ["I give up."]
    assert two_stage.retrieve("u").active_loop_name is None


def test_11_two_stage_fallback_two_unclear_messages_give_up(
        two_stage: DialogueManager) -> None:
    assert said(two_stage, "hiya??") == ["Did you mean 'greet'?"]
    assert said(two_stage, "what") == ["I give up."]
    assert two_stage.retrieve("u").active_loop_name is None
    assert said(two_stage, "/greet") == ["Hello!"]


AFFIRMATION_OVERRIDES = '''
from rasa_sdk import Action


class ActionDefaultAskAffirmation(Action):
    """Rasa docs, "Default Actions": action_default_ask_affirmation "can be customized to be
    more personalized to your specific use case"; so can action_default_ask_rephrase."""

    def name(self):
        return "action_default_ask_affirmation"

    async def run(self, dispatcher, tracker, domain):
        ranking = tracker.latest_message["intent_ranking"]
        best = ranking[1]["name"]  # ranking[0] is nlu_fallback
        titles = {"greet": "Say hello"}
        dispatcher.utter_message(text="Did you want to:", buttons=[
            {"title": titles.get(best, best), "payload": f"/{best}"},
            {"title": "Something else", "payload": "/out_of_scope"}])
        return []


class ActionDefaultAskRephrase(Action):
    def name(self):
        return "action_default_ask_rephrase"

    async def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text="Sorry, say that another way?")
        return []
'''


def test_7_the_two_stage_fallback_calls_the_projects_own_affirmation_and_rephrase(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.runtime.executors import InProcessExecutor

    make_package(tmp_path / "pkg", "parity_affirm", AFFIRMATION_OVERRIDES)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    domain = TWO_STAGE_DOMAIN + ("actions:\n  - action_default_ask_affirmation\n"
                                 "  - action_default_ask_rephrase\n")
    project = write_project(tmp_path / "bot", domain, "policies:\n  - name: RulePolicy\n",
                            rules=TWO_STAGE_RULES)
    manager = DialogueManager(project.domain, trained(project), parser=unsure_parse,
                              executor=InProcessExecutor("parity_affirm"))
    result = asyncio.run(manager.handle_message(UserMessage("hiya??", "u")))
    assert [(m.get("text"), [b["title"] for b in m.get("buttons") or []])
            for m in result.messages] == [("Did you want to:", ["Say hello", "Something else"])]
    assert said(manager, "/out_of_scope") == ["Sorry, say that another way?"]
    assert said(manager, "/greet") == ["Hello!"]
    assert manager.retrieve("u").active_loop_name is None


# ---------------------------------------------------------------- 11: response templates

def test_11_double_braces_in_responses_are_literal_braces(tmp_path: Path) -> None:
    from bot.runtime.responses import ResponseRenderer

    domain = write_project(tmp_path, """
    version: "3.1"
    responses:
      utter_order:
      - text: "Order {{id}} for {name}: {{ {count} items }}"
        buttons:
        - title: "Yes, {name}"
          payload: '/affirm{{"name": "x"}}'
    """, "policies:\n  - name: RulePolicy\n").domain
    message = ResponseRenderer(domain).render("utter_order", {"name": "Ana", "count": 2.0})
    assert message is not None
    assert message["text"] == "Order {id} for Ana: { 2 items }"
    assert message["buttons"][0] == {"title": "Yes, Ana", "payload": '/affirm{"name": "x"}'}
    # an unknown placeholder is left as written
    assert ResponseRenderer(domain).render("utter_order", {})["text"] == (  # type: ignore[index]
        "Order {id} for {name}: { {count} items }")


# ---------------------------------------------------------------- 11: `- entity: value`

def test_11_story_entity_shorthand_is_read_like_rasa(tmp_path: Path) -> None:
    path = tmp_path / "stories.yml"
    path.write_text(textwrap.dedent("""
    stories:
    - story: Rasa's docs, stories with entities
      steps:
      - intent: account_balance
        entities:
        - account_type: credit
        - amount: 20
        - city: Berlin
          role: departure
        - currency
      - action: action_credit_account_balance
    - story: older files, several entities in one mapping; the long form
      steps:
      - intent: inform
        entities:
        - cuisine: italian
          people: 2
        - entity: city
          value: Lisbon
      - action: utter_ok
    """))
    first, second = load_training_data([path]).stories
    assert list(first.steps[0].entities) == [
        {"entity": "account_type", "value": "credit"}, {"entity": "amount", "value": 20},
        {"entity": "city", "value": "Berlin", "role": "departure"}, {"entity": "currency"}]
    assert list(second.steps[0].entities) == [
        {"entity": "cuisine", "value": "italian"}, {"entity": "people", "value": 2},
        {"entity": "city", "value": "Lisbon"}]


# ---------------------------------------------------------------- 10: Rasa 2.x domains

RASA2_DOMAIN = """
version: "2.0"
intents: [request_restaurant, inform]
entities: [cuisine, number]
slots:
  cuisine:
    type: text
    influence_conversation: false
  num_people:
    type: float
    auto_fill: false
  outdoor_seating:
    type: bool
    auto_fill: false
  note:
    type: unfeaturized
forms:
  restaurant_form:
    required_slots:
      cuisine:
      - type: from_entity
        entity: cuisine
      num_people:
      - type: from_entity
        entity: number
      outdoor_seating:
      - type: from_intent
        intent: affirm
        value: true
responses:
  utter_ask_cuisine: [{text: "Which cuisine?"}]
"""


def _refusal(tmp_path: Path, domain_text: str) -> str:
    """The ConfigError message of loading `domain_text` as domain.yml."""
    from bot.errors import ConfigError
    from bot.project.domain import load_domain

    path = tmp_path / "domain.yml"
    path.write_text(textwrap.dedent(domain_text))
    with pytest.raises(ConfigError) as caught:
        load_domain(path)
    return str(caught.value)


def _migrated(tmp_path: Path) -> Any:
    """tmp_path's domain.yml through `xingkong data migrate`, loaded."""
    from click.testing import CliRunner

    from bot.cli import main
    from bot.project.domain import load_domain

    out = tmp_path / "new_domain.yml"
    result = CliRunner().invoke(main, ["data", "migrate", "--domain",
                                       str(tmp_path / "domain.yml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return load_domain(out)


def test_10_a_rasa2_domain_is_refused_with_the_fix(tmp_path: Path) -> None:
    message = _refusal(tmp_path, RASA2_DOMAIN)
    assert "Rasa 2.x domain" in message and "form 'restaurant_form'" in message
    assert "xingkong data migrate" in message


def test_10_data_migrate_converts_a_rasa2_domain(tmp_path: Path) -> None:
    (tmp_path / "domain.yml").write_text(textwrap.dedent(RASA2_DOMAIN))
    domain = _migrated(tmp_path)
    assert domain.forms["restaurant_form"].required_slots == (
        "cuisine", "num_people", "outdoor_seating")
    cuisine = domain.slots["cuisine"].mappings
    assert {"type": "from_entity", "entity": "cuisine"} in cuisine  # was auto_fill
    assert {"type": "from_entity", "entity": "cuisine",
            "conditions": [{"active_loop": "restaurant_form"}]} in cuisine
    assert domain.slots["num_people"].mappings == (
        {"type": "from_entity", "entity": "number",
         "conditions": [{"active_loop": "restaurant_form"}]},)
    assert domain.slots["outdoor_seating"].mappings == (
        {"type": "from_intent", "intent": "affirm", "value": True,
         "conditions": [{"active_loop": "restaurant_form",
                         "requested_slot": "outdoor_seating"}]},)
    assert domain.slots["note"].type == "any"
    assert domain.slots["note"].mappings == ({"type": "custom"},)


# Rasa 2.0 wrote a form's slot mappings straight under its name (no required_slots key);
# Rasa's `rasa data migrate` reads that shape too.
RASA20_DOMAIN = """
version: "2.0"
intents: [order_pizza, inform, affirm, chitchat]
entities: [size, topping]
slots:
  size:
    type: text
    auto_fill: false
  topping:
    type: text
  delivery:
    type: bool
    auto_fill: false
  note:
    type: text
    auto_fill: false
forms:
  pizza_form:
    ignored_intents: [chitchat]
    size:
    - type: from_entity
      entity: size
    delivery:
    - type: from_trigger_intent
      intent: order_pizza
      value: true
    - type: from_intent
      intent: affirm
      value: true
    note:
    - type: from_text
      not_intent: chitchat
responses:
  utter_ask_size: [{text: "Which size?"}]
  utter_ask_delivery: [{text: "Delivered?"}]
  utter_ask_note: [{text: "Anything else?"}]
"""


def test_10_a_rasa20_form_with_inline_mappings_is_refused_then_migrated(tmp_path: Path) -> None:
    assert "form 'pizza_form' maps its slots inside the form" in _refusal(tmp_path,
                                                                          RASA20_DOMAIN)
    domain = _migrated(tmp_path)
    form = domain.forms["pizza_form"]
    assert form.required_slots == ("size", "delivery", "note")
    assert tuple(form.ignored_intents) == ("chitchat",)
    in_form = {"active_loop": "pizza_form"}
    assert domain.slots["size"].mappings == (
        {"type": "from_entity", "entity": "size", "conditions": [in_form]},)
    # as Rasa: only from_entity and from_trigger_intent apply whatever slot is requested
    assert domain.slots["delivery"].mappings == (
        {"type": "from_trigger_intent", "intent": "order_pizza", "value": True,
         "conditions": [in_form]},
        {"type": "from_intent", "intent": "affirm", "value": True,
         "conditions": [{**in_form, "requested_slot": "delivery"}]})
    assert domain.slots["note"].mappings == (
        {"type": "from_text", "not_intent": "chitchat",
         "conditions": [{**in_form, "requested_slot": "note"}]},)
    assert domain.slots["topping"].mappings == ({"type": "from_entity", "entity": "topping"},)
