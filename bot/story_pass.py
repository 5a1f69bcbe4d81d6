"""Test stories replayed as text through the NLU and the dialogue manager, end to end.

Each user step's text (its annotations stripped) is sent as a message; the step's `intent`
is what the NLU should say, and the steps after it are what the turn must do: the bot's
actions (action_listen left out), `active_loop` and `slot_was_set`. A story passes when every
turn does. `summary` gives the pass rate and turn-level intent and action accuracy.

The caller builds the manager (the real NLU parser, the policies, the actions) and prepares
the world a story needs (bookings for the ids it mentions: `booking_ids`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bot.state.events import ACTION_LISTEN_NAME, ActionExecuted, UserUttered
from bot.manager import DialogueManager, UserMessage
from bot.project.training_data import Story, StoryStep

BOOKING_ID = re.compile(r"\bSL-?\d{6}\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    text: str
    intent: str | None  # what the story says
    predicted_intent: str | None
    actions: tuple[str, ...]
    predicted_actions: tuple[str, ...]
    problems: tuple[str, ...]  # loop and slot mismatches; an action mismatch is one too

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def intent_ok(self) -> bool:
        return self.intent is None or self.intent == self.predicted_intent

    @property
    def actions_ok(self) -> bool:
        return self.actions == self.predicted_actions


@dataclass(frozen=True, slots=True)
class StoryOutcome:
    name: str
    source: str
    turns: tuple[TurnOutcome, ...]

    @property
    def passed(self) -> bool:
        return all(t.ok for t in self.turns)

    def to_dict(self) -> dict[str, Any]:
        failed = next((i for i, t in enumerate(self.turns) if not t.ok), None)
        out: dict[str, Any] = {"story": self.name, "source": self.source, "passed": self.passed,
                               "turns": len(self.turns)}
        if failed is not None:
            turn = self.turns[failed]
            out["first_failure"] = {
                "turn": failed + 1, "text": turn.text, "intent": turn.intent,
                "predicted_intent": turn.predicted_intent, "actions": list(turn.actions),
                "predicted_actions": list(turn.predicted_actions),
                "problems": list(turn.problems)}
        return out


def turns_of(story: Story) -> list[tuple[StoryStep, list[StoryStep]]]:
    """(user step, the steps that follow it) for each user turn of a test story."""
    turns: list[tuple[StoryStep, list[StoryStep]]] = []
    for step in story.steps:
        if step.kind == "user":
            turns.append((step, []))
        elif not turns:
            raise ValueError(f"{step.source}: a test story must start with a user step")
        elif step.kind in ("or", "checkpoint"):
            raise ValueError(f"{step.source}: '{step.kind}' steps have no place in a test story")
        else:
            turns[-1][1].append(step)
    return turns


def booking_ids(story: Story) -> list[str]:
    """Booking numbers the story's user steps mention (annotated or just written)."""
    found = set()
    for step in story.steps:
        found |= {str(e.get("value")).upper() for e in step.entities
                  if e.get("entity") == "booking_id" and e.get("value")}
        found |= {m.group(0).upper() for m in BOOKING_ID.finditer(step.text or "")}
    return sorted(f"SL-{i[-6:]}" for i in found)


def message_text(step: StoryStep, intents_given: bool = False) -> str:
    """What the guest writes: the step's text, or an /intent payload when it has none (or
    with `intents_given`: the NLU left out, the ceiling of a run)."""
    if step.text and step.text.strip() and not intents_given:
        return step.text.strip()
    values = {e["entity"]: e.get("value") for e in step.entities}
    return f"/{step.intent}" + (json.dumps(values) if values else "")


async def replay_story(story: Story, manager: DialogueManager, sender: str = "story-test",
                       intents_given: bool = False) -> StoryOutcome:
    outcomes = []
    turns = turns_of(story)
    for number, (user_step, expected) in enumerate(turns, 1):
        text = message_text(user_step, intents_given)
        result = await manager.handle_message(UserMessage(text, sender))
        tracker = result.tracker
        since = tracker.idx_after_latest_user_message()
        latest = tracker.events[since - 1] if since else None  # not latest_message: a
        # fallback's UserUtteranceReverted hides the message the turn is about
        predicted_intent = latest.intent_name if isinstance(latest, UserUttered) else None
        got = tuple(e.name for e in tracker.events[since:]
                    if isinstance(e, ActionExecuted) and e.name != ACTION_LISTEN_NAME)
        wanted = tuple(s.name or "" for s in expected if s.kind == "action")
        problems = []
        if number == len(turns):  # as Rasa (and `xingkong test`): nothing is checked after
            got = got[:len(wanted)]  # the story's last step
        if got != wanted:
            problems.append(f"actions {list(wanted)} expected, got {list(got)}")
        loops = [s.name for s in expected if s.kind == "active_loop"]
        if loops and tracker.active_loop_name != loops[-1]:
            problems.append(f"active_loop {loops[-1]!r} expected, got "
                            f"{tracker.active_loop_name!r}")
        for step in expected:
            for name, value in step.slots if step.kind == "slot" else ():
                actual = tracker.get_slot(name)
                if not (actual is not None if value is ... else _same(actual, value)):
                    problems.append(f"slot {name}={value!r} expected, got {actual!r}")
        outcomes.append(TurnOutcome(text, user_step.intent, predicted_intent, wanted, got,
                                    tuple(problems)))
    return StoryOutcome(story.name, str(story.source), tuple(outcomes))


def summary(outcomes: list[StoryOutcome]) -> dict[str, Any]:
    """Pass rate, turn-level intent and action accuracy, and each failed story's first
    failing turn."""
    turns = [t for o in outcomes for t in o.turns]
    passed = sum(o.passed for o in outcomes)
    return {
        "stories": len(outcomes),
        "passed": passed,
        "pass_rate": round(passed / len(outcomes), 4) if outcomes else 0.0,
        "turns": len(turns),
        "turn_intent_accuracy": round(sum(t.intent_ok for t in turns) / len(turns), 4)
        if turns else 0.0,
        "turn_action_accuracy": round(sum(t.actions_ok for t in turns) / len(turns), 4)
        if turns else 0.0,
        "failed": [o.to_dict() for o in outcomes if not o.passed],
    }


def _same(actual: Any, expected: Any) -> bool:
    if actual == expected:
        return True
    # a float slot holds 2.0 where the story wrote 2
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        return float(actual) == float(expected)
    return str(actual).strip().lower() == str(expected).strip().lower()
