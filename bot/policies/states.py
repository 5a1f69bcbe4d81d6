"""Dialogue states: what the policies see of a conversation.

A state is a frozenset of feature strings, taken just before each action:
  intent:<name> | text:<user text>       the latest user message (e2e stories use text)
  entity:<name>, entity:<name>#<role>    its entities the intent uses
  prev:<action> | prev_text:<bot text>   the previous action
  slot:<name>:<value>                    slots that influence the conversation
  loop:<name> | loop:none                the active loop
Stories, rules and live trackers all go through `event_states`, so they compare exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.project.domain import Domain
from bot.state.events import (
    ActionExecuted,
    ActiveLoop,
    AllSlotsReset,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from bot.state.tracker import DialogueStateTracker

State = frozenset[str]


@dataclass(frozen=True, slots=True)
class Turn:
    """The state before one action, and that action (name, or bot text for e2e)."""

    state: State
    action: str


def slot_feature(domain: Domain, name: str, value: Any) -> str | None:
    spec = domain.slots.get(name)
    if spec is None or not spec.influence_conversation:
        return None
    if spec.type == "bool":
        shown = "none" if value is None else str(bool(value) if not isinstance(value, str)
                                                 else value.lower() in ("true", "1", "yes")).lower()
    elif spec.type == "categorical":
        shown = "none" if value is None else str(value).lower()
        if shown != "none" and shown not in {v.lower() for v in spec.values}:
            shown = "__other__"
    elif spec.type == "float":
        shown = "none" if value is None else _float_feature(value, spec.min_value, spec.max_value)
    else:  # text, list, any: set or not
        shown = "0" if value in (None, [], "") else "1"
    return f"slot:{name}:{shown}"


def user_features(domain: Domain, intent: str | None, text: str | None,
                  entities: Iterable[dict[str, Any]]) -> set[str]:
    features: set[str] = set()
    if intent:
        features.add(f"intent:{intent}")
    elif text is not None:
        features.add(f"text:{text}")
    used = set(domain.used_entities(intent)) if intent else set(domain.entities)
    for ent in entities:
        name = ent.get("entity")
        if name not in used:
            continue
        features.add(f"entity:{name}")
        if ent.get("role"):
            features.add(f"entity:{name}#{ent['role']}")
        if ent.get("group"):
            features.add(f"entity:{name}#{ent['group']}")
    return features


class StateWalker:
    """Replays events and snapshots the state before each action."""

    def __init__(self, domain: Domain, slot_values: dict[str, Any] | None = None) -> None:
        self.domain = domain
        self.user: set[str] = set()
        self.prev: str | None = None
        self.loop: str | None = None
        self.slots: dict[str, str] = {}
        self._defaults = {n: s.initial_value for n, s in domain.slots.items()}
        for name, value in {**self._defaults, **(slot_values or {})}.items():
            self._set_slot(name, value)

    def state(self) -> State:
        features = set(self.user)
        if self.prev is not None:
            features.add(self.prev)
        features.add(f"loop:{self.loop or 'none'}")
        features.update(self.slots.values())
        return frozenset(features)

    def apply(self, event: Event) -> Turn | None:
        """Apply one event; for an action return the Turn it completes."""
        if isinstance(event, ActionExecuted):
            name = event.name or (f"text:{event.action_text}" if event.action_text else None)
            if name is None:
                return None
            turn = Turn(self.state(), name)
            self.prev = f"prev:{event.name}" if event.name else f"prev_text:{event.action_text}"
            return turn
        if isinstance(event, UserUttered):
            self.user = user_features(self.domain, event.intent_name, event.text,
                                      list(event.entities))
        elif isinstance(event, SlotSet):
            self._set_slot(event.name, event.value)
        elif isinstance(event, ActiveLoop):
            self.loop = event.name
        elif isinstance(event, (Restarted, SessionStarted, AllSlotsReset)):
            if not isinstance(event, AllSlotsReset):
                self.user, self.prev, self.loop = set(), None, None
            for name, value in self._defaults.items():
                self._set_slot(name, value)
        return None

    def _set_slot(self, name: str, value: Any) -> None:
        feature = slot_feature(self.domain, name, value)
        if feature is not None:
            self.slots[name] = feature


def tracker_turns(domain: Domain, tracker: DialogueStateTracker) -> tuple[list[Turn], State]:
    """``event_turns`` of the tracker's applied events, walked once for every policy that
    predicts before the next event (kept on the tracker; do not change the list)."""
    return tracker.derived(domain, lambda: event_turns(domain, tracker.applied_events()))


def event_turns(domain: Domain, events: Iterable[Event]) -> tuple[list[Turn], State]:
    """(every action with the state before it, the state now)."""
    walker = StateWalker(domain)
    turns = [t for t in (walker.apply(e) for e in events) if t is not None]
    return turns, walker.state()


def _float_feature(value: Any, low: float, high: float) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "none"
    if high <= low:
        return f"{number:g}"
    clipped = min(max((number - low) / (high - low), 0.0), 1.0)
    return f"{clipped:.2f}"
