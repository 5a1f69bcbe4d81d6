"""MemoizationPolicy: remembers the stories' state histories and replays their next action.

AugmentedMemoizationPolicy also tries the history with its oldest turns forgotten, so a story
written from the middle of a conversation still matches later in a live one.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.project.domain import Domain
from bot.policies.base import PolicyPrediction
from bot.policies.states import State, event_turns, tracker_turns
from bot.policies.story_graph import story_trajectories
from bot.project.training_data import TrainingData
from bot.state.events import ActionExecuted, Event
from bot.state.tracker import DialogueStateTracker

logger = logging.getLogger(__name__)
_CONFLICT = "__conflict__"


def applied(events: tuple[Event, ...] | list[Event]) -> list[Event]:
    """A story's events as a live tracker applies them (form turns collapsed), so training
    sees the same histories as prediction."""
    return DialogueStateTracker("story", None, events).applied_events()


def history_key(states: list[State]) -> str:
    """The states as compact JSON, each one's features sorted: the lookup's key."""
    return _joined([_state_key(s) for s in states])


def _state_key(state: State) -> str:
    return json.dumps(sorted(state), separators=(",", ":"))


def _joined(parts: list[str]) -> str:
    return f"[{','.join(parts)}]"  # json.dumps(list of lists) of those parts, byte for byte


class MemoizationPolicy:
    name = "MemoizationPolicy"

    def __init__(self, max_history: int | None = 5, priority: int = 3,
                 augmented: bool = False) -> None:
        self.max_history = max_history
        self.priority = priority
        self.augmented = augmented
        self.lookup: dict[str, str] = {}
        if augmented:
            self.name = "AugmentedMemoizationPolicy"

    def train(self, domain: Domain, data: TrainingData) -> list[str]:
        self.lookup = {}
        for trajectory in story_trajectories(data.stories, domain):
            turns, _ = event_turns(domain, applied(trajectory.events))
            states = [t.state for t in turns]
            for i, turn in enumerate(turns):
                window = self._window(states[: i + 1])
                for key in self._keys(window):
                    known = self.lookup.get(key)
                    if known is None:
                        self.lookup[key] = turn.action
                    elif known != turn.action:
                        self.lookup[key] = _CONFLICT
        conflicts = sum(1 for v in self.lookup.values() if v == _CONFLICT)
        self.lookup = {k: v for k, v in self.lookup.items() if v != _CONFLICT}
        logger.info("policy.memoization.trained entries=%d ambiguous=%d", len(self.lookup), conflicts)
        return []

    def predict(self, tracker: DialogueStateTracker, domain: Domain) -> PolicyPrediction:
        turns, now = tracker_turns(domain, tracker)
        states = [t.state for t in turns] + [now]
        window = self._window(states)
        keys = self._keys(window)
        if self.augmented:
            keys = keys[:1] + self._forgetful_keys(domain, tracker.applied_events()) + keys[1:]
        for key in keys:
            action = self.lookup.get(key)
            if action is not None:
                return PolicyPrediction(action, 1.0, self.name, self.priority,
                                        diagnostics={"history": len(json.loads(key))})
        return PolicyPrediction.abstain(self.name, self.priority)

    def _forgetful_keys(self, domain: Domain, events: list[Event]) -> list[str]:
        """Rasa's AugmentedMemoizationPolicy: the history re-read from each of its last
        `max_history` actions on, as if the conversation had started there, with the slots
        at their initial values and no earlier user message. A story that starts with a bot
        action then matches in the middle of a live conversation."""
        starts = [i for i, e in enumerate(events) if isinstance(e, ActionExecuted)]
        if self.max_history:
            starts = starts[-self.max_history:]
        keys = []
        for start in starts:
            turns, now = event_turns(domain, events[start:])
            keys.append(history_key(self._window([t.state for t in turns] + [now])))
        return keys

    def _window(self, states: list[State]) -> list[State]:
        return states[-self.max_history:] if self.max_history else states

    def _keys(self, window: list[State]) -> list[str]:
        if not self.augmented:
            return [history_key(window)]
        # Forget the oldest states one by one, down to the current state alone.
        parts = [_state_key(s) for s in window]
        return [_joined(parts[i:]) for i in range(len(parts))]

    def to_dict(self) -> dict[str, Any]:
        return {"max_history": self.max_history, "augmented": self.augmented,
                "lookup": self.lookup}

    def load_dict(self, data: dict[str, Any]) -> None:
        self.lookup = dict(data["lookup"])
