"""RulePolicy, MemoizationPolicy and the ensemble on the demo project and on tiny projects.

Trackers are built from events, as the DialogueManager would leave them, and the policies are
asked for the next action. Tiny hand-written projects (in tmp_path) pin down conflicts,
priorities and conversation_start rules with file:line reporting.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from bot.project.project import Project
from bot.project.config import ProjectPaths
from bot.project.domain import REQUESTED_SLOT, Domain
from bot.state.events import (
    ActionExecuted,
    ActiveLoop,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
    UserUtteranceReverted,
)
from bot.manager import DialogueManager, UserMessage
from bot.policies import MemoizationPolicy, PolicyEnsemble, RulePolicy, build_policies
from bot.policies.conflicts import find_conflicts
from bot.policies.story_graph import story_trajectories
from bot.state.tracker import DialogueStateTracker


BUG_FORM_SUBMIT_RULE = (
    "engine bug: rule_entries keeps the state before a rule's first step (here {loop:F} before "
    "`action: F`) in RuleEntry.states; Rasa drops every state up to the rule snippet "
    "(RulePolicy._create_feature_key). The live history collapses the form's later runs, so "
    "before its first run the loop was not active yet and the submit rule never matches"
)
BUG_MEMO_COLLAPSE = (
    "engine bug: MemoizationPolicy.train featurizes the raw story events while predict "
    "featurizes tracker.applied_events(), which collapses a form's happy-path runs (Rasa "
    "collapses both), so no history after a multi-turn form in a story is ever matched"
)
BUG_CONVERSATION_START = (
    "engine bug: a conversation_start rule and a general rule with the same steps get equal "
    "RuleEntry.states and specificity: the contradiction check reports them as contradicting, "
    "and at the start the rule listed first in the file wins (Rasa's key for a "
    "conversation_start rule has the extra start state, so it is longer and wins)"
)


# ---------------------------------------------------------------- helpers


def user(intent: str, **entities: Any) -> UserUttered:
    ents = [{"entity": name, "value": value} for name, value in entities.items()]
    return UserUttered(text=f"/{intent}", parse_data={
        "intent": {"name": intent, "confidence": 1.0}, "entities": ents, "text": f"/{intent}"})


def act(name: str) -> ActionExecuted:
    return ActionExecuted(name=name)


def chat(domain: Domain, *events: Event, start: bool = True) -> DialogueStateTracker:
    """A tracker from events; an action_listen goes in before every user message."""
    out: list[Event] = [act("action_session_start"), SessionStarted()] if start else []
    for event in events:
        if isinstance(event, UserUttered):
            out.append(act("action_listen"))
        out.append(event)
    return DialogueStateTracker("policy-test", domain.slot_defaults(), out)


def write_project(root: Path, domain: str, rules: str = "", stories: str = "",
                  policies: str = "") -> Project:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "domain.yml").write_text(textwrap.dedent(domain))
    (root / "config.yml").write_text("language: en\npolicies:\n" + textwrap.dedent(
        policies or "- name: RulePolicy\n- name: MemoizationPolicy\n  max_history: 5\n"))
    if rules:
        (root / "data" / "rules.yml").write_text(textwrap.dedent(rules))
    if stories:
        (root / "data" / "stories.yml").write_text(textwrap.dedent(stories))
    return Project.load(ProjectPaths.at(root))


def line_of(path: Path, text: str, occurrence: int = 1) -> int:
    """The 1-based line number of the occurrence-th line containing `text`."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return hits[occurrence - 1]


GREETINGS_DOMAIN = """\
    version: "3.1"
    intents:
      - greet
      - goodbye
      - thank
    responses:
      utter_greet:
        - text: "Hello!"
      utter_hello:
        - text: "Hi there!"
      utter_welcome:
        - text: "Welcome, first-time visitor!"
      utter_goodbye:
        - text: "Bye!"
      utter_you_are_welcome:
        - text: "You're welcome."
    """


# ---------------------------------------------------------------- the demo project


def rule_policy(ensemble: PolicyEnsemble) -> RulePolicy:
    return next(p for p in ensemble.policies if isinstance(p, RulePolicy))


def test_the_demo_trains_without_conflicts(demo: Project) -> None:
    # TED adds no conflicts and takes a minute: tests/bot/test_ted_policy.py trains it
    policies = PolicyEnsemble(build_policies(
        tuple(c for c in demo.config.policies if c.name != "TEDPolicy")))
    assert policies.train(demo.domain, demo.data) == []
    assert find_conflicts(demo.domain, demo.data) == []


@pytest.mark.parametrize("intent, action", [
    ("greet", "utter_greet"),
    ("ask_question", "action_answer_question"),
    ("nlu_fallback", "utter_default"),
    ("bot_challenge", "utter_iamabot"),
    ("goodbye", "utter_goodbye"),
])
def test_single_turn_rules_fire_anywhere(demo: Project, ensemble: PolicyEnsemble, intent: str,
                                         action: str) -> None:
    tracker = chat(demo.domain, user("thank"), act("utter_you_are_welcome"), user(intent))
    best, _ = ensemble.predict(tracker, demo.domain)
    assert (best.action, best.policy, best.confidence) == (action, "RulePolicy", 1.0)
    tracker.update(act(action))
    best, _ = ensemble.predict(tracker, demo.domain)
    assert best.action == "action_listen"  # the rule waits for the user afterwards


def test_a_two_step_rule_needs_its_previous_action(demo: Project,
                                                   ensemble: PolicyEnsemble) -> None:
    after_offer = chat(demo.domain, user("check_booking", booking_id="SL-482913"),
                       act("action_check_booking"), act("utter_anything_else"), user("affirm"))
    best, _ = ensemble.predict(after_offer, demo.domain)
    assert (best.action, best.policy) == ("utter_help", "RulePolicy")
    out_of_the_blue = chat(demo.domain, user("affirm"))
    best, _ = ensemble.predict(out_of_the_blue, demo.domain)
    assert best.action == "action_default_fallback"


def test_the_conversation_start_rule_only_fires_at_the_start(
        demo: Project, ensemble: PolicyEnsemble) -> None:
    rules = rule_policy(ensemble)
    first = chat(demo.domain, user("greet"))
    assert rules.predict(first, demo.domain).diagnostics["rule"] == (
        "welcome a user who opens the conversation with a greeting")
    later = chat(demo.domain, user("help"), act("utter_help"), user("greet"))
    assert rules.predict(later, demo.domain).diagnostics["rule"] == (
        "answer a greeting later in the conversation")


def test_rules_win_ties_with_memoization_by_priority(demo: Project,
                                                     ensemble: PolicyEnsemble) -> None:
    tracker = chat(demo.domain, user("greet"), act("utter_greet"), user("ask_question"))
    best, votes = ensemble.predict(tracker, demo.domain)
    by_policy = {v.policy: (v.action, v.confidence) for v in votes}
    assert by_policy["MemoizationPolicy"] == ("action_answer_question", 1.0)
    assert by_policy["RulePolicy"] == ("action_answer_question", 1.0)
    assert best.policy == "RulePolicy"  # priority 6 beats 3 at equal confidence


def test_core_fallback_when_nothing_matches(demo: Project, ensemble: PolicyEnsemble) -> None:
    tracker = chat(demo.domain, user("greet"), act("utter_greet"), user("deny"))
    best, votes = ensemble.predict(tracker, demo.domain)
    assert best.action == "action_default_fallback"
    assert best.policy == "RulePolicy"
    assert best.diagnostics["reason"] == "core_fallback"
    threshold = demo.config.component("RulePolicy").params.core_fallback_threshold
    assert best.confidence == pytest.approx(threshold) == pytest.approx(0.3)
    assert next(v for v in votes if v.policy == "MemoizationPolicy").action is None


async def test_the_core_fallback_utters_default_and_forgets_the_message(
        demo: Project, ensemble: PolicyEnsemble) -> None:
    manager = DialogueManager(demo.domain, ensemble)
    await manager.handle_message(UserMessage("/greet", "fallback"))
    result = await manager.handle_message(UserMessage("/deny", "fallback"))
    defaults = {v["text"] for v in demo.domain.responses["utter_default"]}
    assert len(result.messages) == 1 and result.messages[0]["text"] in defaults
    tracker = result.tracker
    assert any(isinstance(e, UserUtteranceReverted) for e in tracker.events)
    assert tracker.latest_message is not None
    assert tracker.latest_message.intent_name == "greet"  # /deny was undone
    assert tracker.latest_action_name == "action_listen"


def replay_checks(policy: MemoizationPolicy, domain: Domain,
                  story_name: str, data: Any) -> list[tuple[int, str, str | None]]:
    """Replay a story's events; at each of its actions ask the policy. Actions that
    applied_events() collapses (a form's happy-path reruns) are the RulePolicy's job and are
    skipped. Returns the (index, wanted, predicted) mismatches."""
    trajectories = [t for t in story_trajectories(data.stories) if t.name == story_name]
    assert trajectories, story_name
    misses = []
    for trajectory in trajectories:
        complete = DialogueStateTracker("story", None, trajectory.events)
        kept = {id(e) for e in complete.applied_events()}
        tracker = DialogueStateTracker("story", None)
        for index, event in enumerate(trajectory.events):
            if isinstance(event, ActionExecuted) and id(event) in kept:
                predicted = policy.predict(tracker, domain).action
                if predicted != event.name:
                    misses.append((index, str(event.name), predicted))
            tracker.update(event)
    return misses


@pytest.fixture(scope="module")
def memo(demo: Project) -> MemoizationPolicy:
    policy = MemoizationPolicy(max_history=5)
    policy.train(demo.domain, demo.data)
    return policy


@pytest.mark.parametrize("story", [
    "the user checks it is a bot and asks for a person",
    "small talk only",
    "greet, ask about the hotels, thank and leave",
    "look up a booking, the number is asked for",
])
def test_memoization_replays_a_demo_story(demo: Project, memo: MemoizationPolicy,
                                          story: str) -> None:
    assert replay_checks(memo, demo.domain, story, demo.data) == []


@pytest.mark.parametrize("story", [
    "book Aurora Riverside in Lisbon one answer at a time and confirm",
    "the user decides to keep the booking",
])
def test_memoization_replays_a_demo_story_with_a_form(demo: Project, memo: MemoizationPolicy,
                                                      story: str) -> None:
    assert replay_checks(memo, demo.domain, story, demo.data) == []


def test_memoization_respects_max_history(demo: Project) -> None:
    story = [user("greet"), act("utter_greet"), user("bot_challenge"), act("utter_iamabot"),
             user("human_handoff")]
    small_talk_first = [user("chitchat"), act("utter_chitchat"), *story]

    def predict(max_history: int | None, events: list[Event]) -> str | None:
        policy = MemoizationPolicy(max_history=max_history)
        policy.train(demo.domain, demo.data)
        return policy.predict(chat(demo.domain, *events, start=False), demo.domain).action

    # the story as written: every history length finds it
    assert predict(None, story) == predict(5, story) == predict(6, story) == "utter_handoff"
    # older turns in front: only a window that does not reach them still matches
    assert predict(5, small_talk_first) == "utter_handoff"
    assert predict(6, small_talk_first) is None
    assert predict(None, small_talk_first) is None


def test_the_form_submit_rule_fires_after_a_multi_turn_form(
        demo: Project, ensemble: PolicyEnsemble) -> None:
    tracker = chat(
        demo.domain,
        user("book_room"), act("booking_form"), ActiveLoop(name="booking_form"),
        SlotSet(name=REQUESTED_SLOT, value="city"),
        user("inform", city="Paris"), SlotSet(name="city", value="Paris"), act("booking_form"),
        SlotSet(name=REQUESTED_SLOT, value=None), ActiveLoop(name=None),
    )
    prediction = rule_policy(ensemble).predict(tracker, demo.domain)
    assert prediction.action == "utter_confirm_booking"
    assert prediction.diagnostics["rule"] == "booking form filled, read the booking back"


def test_the_form_happy_path_belongs_to_the_rule_policy(demo: Project,
                                                       ensemble: PolicyEnsemble) -> None:
    tracker = chat(demo.domain, user("book_room"), act("booking_form"),
                   ActiveLoop(name="booking_form"), SlotSet(name=REQUESTED_SLOT, value="city"),
                   user("inform", city="Paris"))
    best, _ = ensemble.predict(tracker, demo.domain)
    assert (best.action, best.policy) == ("booking_form", "RulePolicy")
    tracker.update(act("booking_form"))
    best, _ = ensemble.predict(tracker, demo.domain)
    assert best.action == "action_listen"


# ---------------------------------------------------------------- tiny projects


def test_a_rule_contradiction_is_reported_with_file_and_line(tmp_path: Path) -> None:
    project = write_project(tmp_path, GREETINGS_DOMAIN, rules="""\
        version: "3.1"
        rules:
        - rule: greet politely
          steps:
          - intent: greet
          - action: utter_greet
        - rule: greet casually
          steps:
          - intent: greet
          - action: utter_hello
        """)
    rules_file = tmp_path / "data" / "rules.yml"
    polite = f"{rules_file}:{line_of(rules_file, 'action: utter_greet')}"
    casual = f"{rules_file}:{line_of(rules_file, 'action: utter_hello')}"

    problems = RulePolicy().train(project.domain, project.data)
    assert len(problems) == 1
    assert problems[0].startswith(f"{casual}: rule 'greet casually' predicts 'utter_hello'")
    assert "rule 'greet polite" in problems[0] and f"({polite})" in problems[0]
    assert problems[0] in find_conflicts(project.domain, project.data)
    assert RulePolicy(check_for_contradictions=False).train(project.domain, project.data) == []


def test_a_story_conflict_is_reported_and_not_memorized(tmp_path: Path) -> None:
    project = write_project(tmp_path, GREETINGS_DOMAIN, stories="""\
        version: "3.1"
        stories:
        - story: a polite goodbye
          steps:
          - intent: goodbye
          - action: utter_goodbye
        - story: a confused goodbye
          steps:
          - intent: goodbye
          - action: utter_hello
        """)
    stories_file = tmp_path / "data" / "stories.yml"
    first = f"{stories_file}:{line_of(stories_file, 'action: utter_goodbye')}"
    second = f"{stories_file}:{line_of(stories_file, 'action: utter_hello')}"

    problems = find_conflicts(project.domain, project.data)
    assert len(problems) == 1
    assert problems[0].startswith(f"{second}: story 'a confused goodbye' runs 'utter_hello'")
    assert "story 'a polite goodbye'" in problems[0] and f"({first})" in problems[0]

    memo = MemoizationPolicy(max_history=5)
    memo.train(project.domain, project.data)
    tracker = chat(project.domain, user("goodbye"), start=False)
    assert memo.predict(tracker, project.domain).action is None  # ambiguous: forgotten


STORY_AGAINST_RULE = """\
    version: "3.1"
    stories:
    - story: greet with a different answer
      steps:
      - intent: greet
      - action: utter_hello
    """
GREET_RULE = """\
    version: "3.1"
    rules:
    - rule: greet politely
      steps:
      - intent: greet
      - action: utter_greet
    """


def test_rules_beat_a_disagreeing_story_and_the_disagreement_is_reported(
        tmp_path: Path) -> None:
    project = write_project(tmp_path, GREETINGS_DOMAIN, rules=GREET_RULE,
                            stories=STORY_AGAINST_RULE)
    policies = PolicyEnsemble(build_policies(project.config.policies))
    problems = policies.train(project.domain, project.data)
    stories_file = tmp_path / "data" / "stories.yml"
    assert any(p.startswith(f"{stories_file}:{line_of(stories_file, 'utter_hello')}: story "
                            "'greet with a different answer' runs 'utter_hello' but rule "
                            "'greet politely'") for p in problems), problems

    tracker = chat(project.domain, user("greet"), start=False)
    best, votes = policies.predict(tracker, project.domain)
    assert {(v.policy, v.action, v.confidence) for v in votes} == {
        ("RulePolicy", "utter_greet", 1.0), ("MemoizationPolicy", "utter_hello", 1.0)}
    assert (best.action, best.policy) == ("utter_greet", "RulePolicy")


def test_a_higher_priority_lets_memoization_win_the_tie(tmp_path: Path) -> None:
    project = write_project(tmp_path, GREETINGS_DOMAIN, rules=GREET_RULE,
                            stories=STORY_AGAINST_RULE, policies="""\
        - name: RulePolicy
        - name: MemoizationPolicy
          priority: 7
        """)
    policies = PolicyEnsemble(build_policies(project.config.policies))
    policies.train(project.domain, project.data)
    best, _ = policies.predict(chat(project.domain, user("greet"), start=False), project.domain)
    assert (best.action, best.policy) == ("utter_hello", "MemoizationPolicy")


def test_the_core_fallback_threshold_and_action_come_from_the_config(tmp_path: Path) -> None:
    project = write_project(tmp_path, GREETINGS_DOMAIN, rules=GREET_RULE, policies="""\
        - name: RulePolicy
          core_fallback_threshold: 0.45
          core_fallback_action_name: action_default_ask_rephrase
        """)
    policies = PolicyEnsemble(build_policies(project.config.policies))
    policies.train(project.domain, project.data)
    best, _ = policies.predict(chat(project.domain, user("thank"), start=False), project.domain)
    assert (best.action, best.confidence) == ("action_default_ask_rephrase", 0.45)


CONVERSATION_START_RULE = """\
    - rule: welcome at the start
      conversation_start: true
      steps:
      - intent: greet
      - action: utter_welcome
    """
GENERAL_GREET_RULE = """\
    - rule: greet again later
      steps:
      - intent: greet
      - action: utter_hello
    """
THANKS_RULE = """\
    - rule: thanks
      steps:
      - intent: thank
      - action: utter_you_are_welcome
    """


def start_rules_project(root: Path, start_rule_first: bool) -> Project:
    order = [CONVERSATION_START_RULE, GENERAL_GREET_RULE]
    if not start_rule_first:
        order.reverse()
    rules = 'version: "3.1"\nrules:\n' + "".join(
        textwrap.dedent(r) for r in [*order, THANKS_RULE])
    return write_project(root, GREETINGS_DOMAIN, rules=rules)


def test_a_conversation_start_rule_only_applies_at_the_start(tmp_path: Path) -> None:
    project = start_rules_project(tmp_path, start_rule_first=True)
    rules = RulePolicy(check_for_contradictions=False)
    rules.train(project.domain, project.data)
    domain = project.domain
    assert rules.predict(chat(domain, user("greet")), domain).action == "utter_welcome"
    later = chat(domain, user("thank"), act("utter_you_are_welcome"), user("greet"))
    assert rules.predict(later, domain).action == "utter_hello"


def test_a_conversation_start_rule_wins_at_the_start_wherever_it_is_written(
        tmp_path: Path) -> None:
    project = start_rules_project(tmp_path, start_rule_first=False)
    rules = RulePolicy(check_for_contradictions=False)
    rules.train(project.domain, project.data)
    assert rules.predict(chat(project.domain, user("greet")), project.domain).action == (
        "utter_welcome")


def test_a_conversation_start_rule_does_not_contradict_the_general_rule(tmp_path: Path) -> None:
    project = start_rules_project(tmp_path, start_rule_first=True)
    assert RulePolicy().train(project.domain, project.data) == []
