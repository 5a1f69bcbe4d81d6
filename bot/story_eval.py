"""Test stories, as Rasa's `rasa test core`: replay each story and compare what the bot does.

Two modes:
- replay (Rasa's own): before every action step of the story the policies predict the next
  action for the story so far; then the story's events (its action, slot_was_set, active_loop)
  are applied whatever was predicted. Custom actions and forms never run, and one wrong
  prediction does not derail the rest of the story. As in Rasa, the action_listen before each
  user step is predicted and checked too.
- execute (`--execute-actions`): each user step is sent to the dialogue manager and actions and
  forms run for real; the actions of the turn must be the story's, and the story's
  slot_was_set / active_loop steps must hold once the turn is over.

A user step goes through the real NLU when it has text and `use_text` is set (the parse's
intent and entities are checked against the story's, and the story's own are then used in
replay mode, as Rasa does); otherwise the story's intent and entities are given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.state.events import (
    ACTION_LISTEN_NAME,
    ActionExecuted,
    ActionExecutionRejected,
    ActiveLoop,
    SlotSet,
    UserUttered,
)
from bot.manager import DialogueManager, UserMessage, dialogue_context
from bot.state.slot_mapping import slots_for_entities
from bot.state.tracker import DialogueStateTracker
from bot.project.training_data import Story, StoryStep

# Steps a test story may hold: `or` and checkpoints have no single expected path.
TESTABLE_KINDS = ("user", "action", "slot", "active_loop")
IGNORED_ACTIONS = (ACTION_LISTEN_NAME, "action_session_start", "action_extract_slots")

@dataclass(frozen=True, slots=True)
class Check:
    """One comparison: `step` is the index in story.steps it belongs to. kind: action, intent,
    entities, slot or active_loop. An action_listen check sits on the user step it precedes."""

    step: int
    kind: str
    expected: Any
    predicted: Any

    @property
    def ok(self) -> bool:
        return self.expected == self.predicted

@dataclass(slots=True)
class StoryResult:
    story: Story
    checks: list[Check] = field(default_factory=list)
    turn_latency_ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)

    @property
    def action_pairs(self) -> list[tuple[str, str]]:
        return [(c.expected, c.predicted) for c in self.checks if c.kind == "action"]

@dataclass(slots=True)
class StoryTestRun:
    results: list[StoryResult]
    mode: str  # "replay" or "execute"
    use_text: bool

    @property
    def failed(self) -> list[StoryResult]:
        return [r for r in self.results if not r.passed]

StorySetup = Callable[[Story], None]  # run before each story (execute mode: seed stores)
ManagerFactory = Callable[[], DialogueManager]

def unsupported_steps(story: Story) -> list[str]:
    """Why the story cannot be tested (empty when it can)."""
    problems = []
    for step in story.steps:
        if step.kind not in TESTABLE_KINDS:
            problems.append(f"{step.source}: '{step.kind}' steps have no single path to test")
        elif step.kind == "user" and not step.intent:
            problems.append(f"{step.source}: a test story's user step needs an intent")
    return problems

async def run_stories(stories: list[Story], new_manager: ManagerFactory, *,
                      use_text: bool = True, execute_actions: bool = False,
                      setup: StorySetup | None = None) -> StoryTestRun:
    """Test every story with a fresh manager (fresh tracker store) each."""
    results = []
    for number, story in enumerate(stories):
        problems = unsupported_steps(story)
        if problems:
            results.append(StoryResult(story, error="; ".join(problems)))
            continue
        if setup is not None:
            setup(story)
        manager = new_manager()
        sender = f"test-story-{number}"
        if execute_actions:
            results.append(await _execute(manager, story, sender, use_text))
        else:
            results.append(await _replay(manager, story, sender, use_text))
    return StoryTestRun(results, "execute" if execute_actions else "replay", use_text)

def gold_parse(step: StoryStep) -> dict[str, Any]:
    """The story's own parse of a user step (confidence 1)."""
    intent = {"name": step.intent, "confidence": 1.0}
    return {"text": step.text or f"/{step.intent}", "intent": intent, "intent_ranking": [intent],
            "entities": [dict(e) for e in step.entities]}

def entity_keys(expected: list[dict[str, Any]] | tuple[dict[str, Any], ...],
                predicted: list[dict[str, Any]] | tuple[dict[str, Any], ...]
                ) -> tuple[list[str], list[str]]:
    """The story's entities and the parse's, compared as Rasa's end-to-end test compares them
    (rasa/core/test.py): every entity of the parse, whichever extractor found it, as a set of
    (start, end, entity, value as a string), so a Duckling `time` the story does not annotate
    fails the step. A role or group the story annotates must match too (Rasa checks neither;
    slots here map from them); one the story leaves out is not checked, as in Rasa."""
    annotated = {(e.get("start"), e.get("end"), e.get("entity")): e for e in expected}

    def key(entity: dict[str, Any], checked: tuple[str, ...]) -> str:
        parts = [str(entity.get("entity")), str(entity.get("value"))]
        parts += [f"{k}={entity[k]}" for k in checked if entity.get(k)]
        if "start" in entity and "end" in entity:
            parts.append(f"@{entity['start']}-{entity['end']}")
        return ":".join(parts)

    def story_says(entity: dict[str, Any]) -> tuple[str, ...]:
        gold = annotated.get((entity.get("start"), entity.get("end"), entity.get("entity")))
        return tuple(k for k in ("role", "group") if gold is not None and gold.get(k))

    return (sorted({key(e, ("role", "group")) for e in expected}),
            sorted({key(e, story_says(e)) for e in predicted}))


async def _check_nlu(manager: DialogueManager, step: StoryStep, index: int,
                     result: StoryResult, use_text: bool,
                     tracker: DialogueStateTracker) -> dict[str, Any]:
    """The parse the bot gets for a user step, with what the bot just asked (the dialogue
    context the manager gives the NLU in a conversation); checks its intent and entities."""
    if not (use_text and step.text):
        return gold_parse(step)
    parse = await manager.parse(step.text, dialogue_context(tracker))
    intent = parse.get("intent") or {}
    predicted = intent.get("name")
    if step.intent and "/" in step.intent:  # a retrieval intent: compared in full, as Rasa
        predicted = intent.get("full_retrieval_intent_name") or predicted
    result.checks.append(Check(index, "intent", step.intent, predicted))
    expected, got = entity_keys(step.entities, parse.get("entities") or [])
    result.checks.append(Check(index, "entities", expected, got))
    return parse

async def _replay(manager: DialogueManager, story: Story, sender: str,
                  use_text: bool) -> StoryResult:
    result = StoryResult(story)
    tracker = await manager.get_tracker(sender)
    started: float | None = None
    for index, step in enumerate(story.steps):
        if step.kind == "user":
            if started is not None:
                result.turn_latency_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            if tracker.latest_action_name != ACTION_LISTEN_NAME:
                predicted, *_ = manager.predict_next(tracker.copy())
                result.checks.append(Check(index, "action", ACTION_LISTEN_NAME, predicted))
                tracker.update(ActionExecuted(name=ACTION_LISTEN_NAME))
            await _check_nlu(manager, step, index, result, use_text, tracker)
            gold = gold_parse(step)
            tracker.update(UserUttered(text=gold["text"], parse_data=gold))
            tracker.update_many(slots_for_entities(manager.domain, gold["entities"]))
        elif step.kind == "action":
            predicted, *_ = manager.predict_next(tracker.copy())
            if predicted != step.name and predicted == tracker.active_loop_name \
                    and predicted in manager.domain.forms:
                # As Rasa: the form may have rejected the message (it fills no slot), which
                # only running it would show; emulate the rejection and predict again.
                tracker.update(ActionExecutionRejected(name=predicted))
                predicted, *_ = manager.predict_next(tracker.copy())
            result.checks.append(Check(index, "action", step.name, predicted))
            manager.mark_interruption(tracker, step.name or "")
            tracker.update(ActionExecuted(name=step.name))
        elif step.kind == "slot":
            for name, value in step.slots:
                if value is ...:
                    value = tracker.get_slot(name) if tracker.get_slot(name) is not None \
                        else True
                tracker.update(SlotSet(name=name, value=value))
        elif step.kind == "active_loop":
            tracker.update(ActiveLoop(name=step.name))
    if started is not None:
        result.turn_latency_ms.append((time.perf_counter() - started) * 1000)
    return result

async def _execute(manager: DialogueManager, story: Story, sender: str,
                   use_text: bool) -> StoryResult:
    result = StoryResult(story)
    turns = _turns(story)
    for user_index, following in turns:
        step = story.steps[user_index]
        started = time.perf_counter()
        parse = await _check_nlu(manager, step, user_index, result, use_text,
                                 manager.retrieve(sender))
        turn = await manager.handle_message(UserMessage(parse.get("text") or "", sender,
                                                        input_channel="test",
                                                        parse_data=parse))
        result.turn_latency_ms.append((time.perf_counter() - started) * 1000)
        tracker = turn.tracker
        done = [e.name for e in tracker.events[tracker.idx_after_latest_user_message():]
                if isinstance(e, ActionExecuted) and e.name not in IGNORED_ACTIONS]
        wanted = [(i, story.steps[i].name) for i in following
                  if story.steps[i].kind == "action"]
        for position, (index, name) in enumerate(wanted):
            got = done[position] if position < len(done) else ACTION_LISTEN_NAME
            result.checks.append(Check(index, "action", name, got))
        last = wanted[-1][0] if wanted else user_index
        if user_index != turns[-1][0]:  # as Rasa: nothing is checked after the story's end
            for extra in done[len(wanted):]:  # the bot did more than the story says
                result.checks.append(Check(last, "action", ACTION_LISTEN_NAME, extra))
        loops = [i for i in following if story.steps[i].kind == "active_loop"]
        for index in following:
            expected = story.steps[index]
            if expected.kind == "active_loop" and index == loops[-1]:  # the turn's last word
                result.checks.append(Check(index, "active_loop", expected.name,
                                           tracker.active_loop_name))
            elif expected.kind == "slot":
                for name, value in expected.slots:
                    actual = tracker.get_slot(name)
                    if value is ...:
                        result.checks.append(Check(index, "slot", f"{name} set",
                                                   f"{name} set" if actual is not None
                                                   else f"{name} unset"))
                    else:
                        result.checks.append(Check(index, "slot", {name: value},
                                                   {name: actual}))
    return result

def _turns(story: Story) -> list[tuple[int, list[int]]]:
    """(index of a user step, indices of the steps up to the next one)."""
    turns: list[tuple[int, list[int]]] = []
    for index, step in enumerate(story.steps):
        if step.kind == "user":
            turns.append((index, []))
        elif turns:
            turns[-1][1].append(index)
    return turns
