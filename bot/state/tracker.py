"""The dialogue state tracker: one conversation's state, derived only from its events.

The state (slots, latest message/action, active loop, follow-up action, paused) lives in a
private ``_State`` that only events change, through ``Event.apply_to`` (bot/state/events.py). New
events are applied incrementally; a rewind or undo drops events from the applied list and
replays it from a fresh state; a restart or session start resets the state. Semantics are
Rasa 3.x's, quirks included: a fresh or reset state has ``followup_action == "action_listen"``
and a restart sets it to ``"action_session_start"``. With ``slot_defaults`` given, a SlotSet
for an unknown slot is ignored with a warning (as Rasa does); ``None`` accepts any slot.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.errors import TrackerError
from bot.state.events import (ACTION_LISTEN_NAME, ActionExecuted, ActionExecutionRejected,
                        ActionReverted, ActiveLoop, BotUttered, DefinePrevUserUtteredFeaturization,
                        Event, Restarted, SessionStarted, UserUttered, UserUtteranceReverted,
                        copy_data, event_from_dict, events_from_list)

logger = logging.getLogger(__name__)

SHOULD_NOT_BE_SET = "should_not_be_set"  # rules' "no loop may be active"; never active
EVENT_VERBOSITIES = ("ALL", "AFTER_RESTART", "APPLIED", "NONE")
_EMPTY_PARSE_DATA: dict[str, Any] = {"intent": {}, "entities": [], "text": None,
                                     "message_id": None, "metadata": {}}


def _view(getter: Callable[[DialogueStateTracker], Any], doc: str) -> Any:
    """A read-only tracker property (its type is given at the start of ``doc``)."""
    return property(getter, doc=doc)


@dataclass(slots=True)
class _State:
    """Mutable conversation state. Only ``Event.apply_to`` (and replays) change it."""

    slot_defaults: dict[str, Any] | None
    slots: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    followup_action: str | None = ACTION_LISTEN_NAME
    latest_action: dict[str, str] = field(default_factory=dict)
    latest_message: UserUttered | None = None
    latest_bot_utterance: BotUttered | None = None
    active_loop: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reset_slots()

    def clone(self) -> _State:
        other = copy.copy(self)
        other.slots, other.active_loop = copy.deepcopy(self.slots), copy.deepcopy(self.active_loop)
        other.latest_action = dict(self.latest_action)
        return other

    @property
    def latest_action_name(self) -> str | None:
        return self.latest_action.get("action_name") or self.latest_action.get("action_text")

    def reset(self) -> None:
        _State.__init__(self, self.slot_defaults)  # every field back to its default

    def reset_slots(self) -> None:
        self.slots = {} if self.slot_defaults is None else copy_data(self.slot_defaults)

    def set_slot(self, name: str, value: Any) -> None:
        if self.slot_defaults is not None and name not in self.slot_defaults:
            logger.warning("tracker.unknown_slot slot=%s: not in the domain, ignored", name)
            return
        self.slots[name] = value

    def set_latest_message(self, message: UserUttered) -> None:
        self.latest_message = message
        self.followup_action = None

    def set_latest_action(self, action: dict[str, str]) -> None:
        self.latest_action = action
        self.followup_action = None
        loop = self.active_loop.get("name")
        if loop:
            self.active_loop["validate"] = True  # any action ends an interruption
            if action.get("action_name") == loop:
                self.active_loop["rejected"] = False

    def change_loop_to(self, name: str | None) -> None:
        trigger = self.latest_message.parse_data if self.latest_message else _EMPTY_PARSE_DATA
        self.active_loop = {} if name is None else {
            "name": name, "validate": True, "rejected": False,
            "trigger_message": copy.deepcopy(trigger)}

    def interrupt_loop(self, is_interrupted: bool) -> None:
        if self.active_loop:
            self.active_loop["validate"] = not is_interrupted

    def reject_action(self, name: str) -> None:
        if self.active_loop and name == self.active_loop.get("name"):
            self.active_loop["rejected"] = True

    def add_entities(self, entities: list[dict[str, Any]]) -> None:
        message = self.latest_message
        if message is None or self.latest_action_name != ACTION_LISTEN_NAME:
            return  # entities only belong to a user message that was just received
        merged = list(message.entities)
        for entity in entities:
            if entity not in merged:
                merged.append(entity)
        if len(merged) > len(message.entities):
            parse_data = {**message.parse_data, "entities": merged}
            self.latest_message = dataclasses.replace(message, parse_data=parse_data)

    def set_featurization(self, use_text: bool) -> None:
        message = self.latest_message
        if message is not None and self.latest_action_name == ACTION_LISTEN_NAME:
            self.latest_message = dataclasses.replace(message, use_text_for_featurization=use_text)


class DialogueStateTracker:
    """One conversation's state, derived from its events. ``slot_defaults``: every domain slot
    and its initial value (``Domain.slot_defaults()``), None accepts any slot. Properties return
    copies: the state changes only through ``update``."""

    def __init__(self, sender_id: str, slot_defaults: Mapping[str, Any] | None = None,
                 events: Iterable[Event] = (), max_event_history: int | None = None) -> None:
        if not isinstance(sender_id, str) or not sender_id:
            raise TrackerError(f"sender_id must be a non-empty string, got {sender_id!r}.")
        if max_event_history is not None and (type(max_event_history) is not int
                                              or max_event_history < 1):
            raise TrackerError("max_event_history must be a positive integer or None, got "
                               f"{max_event_history!r}.")
        self._sender_id = sender_id
        self._slot_defaults = None if slot_defaults is None else copy.deepcopy(dict(slot_defaults))
        self._max_event_history = max_event_history
        self._events: deque[Event] = deque(maxlen=max_event_history)
        # Events in effect since the latest restart or session start (loops not collapsed).
        self._applied: deque[Event] = deque(maxlen=max_event_history)
        self._state = _State(self._slot_defaults)
        self._latest_input_channel: str | None = None
        self._total_events = 0
        self._collapsed: tuple[int, list[Event]] | None = None  # cache of applied_events()
        self._derived: tuple[int, object, Any] | None = None  # see derived()
        self.update_many(events)

    @classmethod
    def from_events(cls, sender_id: str, events: Iterable[Event | Mapping[str, Any]],
                    slot_defaults: Mapping[str, Any] | None = None, *,
                    max_event_history: int | None = None) -> DialogueStateTracker:
        """A tracker replaying ``events`` (Event objects or Rasa wire dicts)."""
        parsed = (e if isinstance(e, Event) else event_from_dict(e) for e in events)
        return cls(sender_id, slot_defaults, parsed, max_event_history)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], slot_defaults: Mapping[str, Any] | None = None,
                  *, max_event_history: int | None = None) -> DialogueStateTracker:
        """Rebuild from a Rasa tracker dump: {"sender_id": ..., "events": [...], ...}."""
        if not isinstance(data, Mapping) or not isinstance(data.get("events"), list):
            raise TrackerError(f"A tracker dump must be a dict with an 'events' list to rebuild "
                               f"the state from, got {data!r:.100}.")
        return cls(data.get("sender_id"), slot_defaults,  # type: ignore[arg-type]
                   events_from_list(data["events"]), max_event_history)

    def init_copy(self) -> DialogueStateTracker:
        """An empty tracker with the same sender id, slot defaults and history limit."""
        return DialogueStateTracker(self._sender_id, self._slot_defaults,
                                    max_event_history=self._max_event_history)

    def copy(self) -> DialogueStateTracker:
        """An independent tracker with the same events and state (frozen events are shared)."""
        other = copy.copy(self)
        other._events, other._applied = self._events.copy(), self._applied.copy()
        other._state = self._state.clone()
        return other

    def update(self, event: Event) -> None:
        """Append ``event`` to the history and apply it to the state."""
        if not isinstance(event, Event):
            raise TrackerError(f"Trackers take Event objects, got {type(event).__name__}.")
        self._events.append(event)
        self._total_events += 1
        if isinstance(event, UserUttered):
            self._latest_input_channel = event.input_channel
        if isinstance(event, (Restarted, SessionStarted)):
            self._applied.clear()
            event.apply_to(self._state)
        elif isinstance(event, (ActionReverted, UserUtteranceReverted)):
            if isinstance(event, UserUtteranceReverted):
                _undo_till(self._applied, UserUttered)  # then the listen before it
            _undo_till(self._applied, ActionExecuted)
            state = _State(self._slot_defaults)
            for applied in self._applied:
                applied.apply_to(state)
            self._state = state
        else:
            self._applied.append(event)
            event.apply_to(self._state)

    def update_many(self, events: Iterable[Event]) -> None:
        for event in events:
            self.update(event)

    sender_id = _view(lambda t: t._sender_id, "str: the conversation's id.")

    @property
    def events(self) -> tuple[Event, ...]:
        """Every event in order (only the latest ``max_event_history`` when that is set)."""
        return tuple(self._events)

    total_event_count = _view(lambda t: t._total_events, "int: events ever added, including "
                              "those that max_event_history dropped.")

    def applied_events(self, *, collapse_loops: bool = True) -> list[Event]:
        """Rasa's ``applied_events()``: a restart or session start clears what came before, a
        rewind removes back to and including the latest user message and the action before it,
        an undo back to and including the latest action. ``collapse_loops`` (Rasa's; shapes
        featurisation): a loop re-run on its happy path also removes the actions and user
        messages since its previous run. The state derives from ``collapse_loops=False``."""
        loops = {e.name for e in self._events if isinstance(e, ActiveLoop) and e.name}
        if not collapse_loops or not loops:
            return list(self._applied)
        if self._collapsed is None or self._collapsed[0] != self._total_events:
            self._collapsed = (self._total_events, _collapse_loops(self._events, loops))
        return list(self._collapsed[1])

    def derived(self, owner: object, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept until the next event: a value that several readers derive from
        the same events (the policies' dialogue states, bot/policies/states.py). ``owner``
        (compared by identity) tells values apart; the latest one is kept. Callers must not
        change what it returns."""
        kept = self._derived
        if kept is not None and kept[0] == self._total_events and kept[1] is owner:
            return kept[2]
        value = compute()
        self._derived = (self._total_events, owner, value)
        return value

    def idx_after_latest_restart(self) -> int:
        """Index in ``events`` just after the latest Restarted (0 when there is none)."""
        return _idx_after_latest(self._events, Restarted)

    def events_after_latest_restart(self) -> list[Event]:
        return list(self._events)[self.idx_after_latest_restart():]

    def idx_after_latest_user_message(self) -> int:
        """Index in ``events`` just after the latest UserUttered (0 when there is none)."""
        return _idx_after_latest(self._events, UserUttered)

    def get_last_event_for(self, event_type: type[Event] | tuple[type[Event], ...], *,
                           exclude_actions: Iterable[str] = (), skip: int = 0,
                           applied_only: bool = True) -> Event | None:
        """The latest event of ``event_type``, passing over ``skip`` matches, else None."""
        excluded = set(exclude_actions)
        matches = (e for e in reversed(self.applied_events() if applied_only else self._events)
                   if isinstance(e, event_type)
                   and not (isinstance(e, ActionExecuted) and e.name in excluded))
        return next(itertools.islice(matches, skip, None), None)

    def last_executed_action_has(self, name: str, skip: int = 0) -> bool:
        """Whether the latest applied action other than action_listen is ``name``."""
        last = self.get_last_event_for(ActionExecuted, exclude_actions=[ACTION_LISTEN_NAME],
                                       skip=skip)
        return isinstance(last, ActionExecuted) and last.name == name

    @property
    def slots(self) -> dict[str, Any]:
        return copy.deepcopy(self._state.slots)

    def get_slot(self, name: str) -> Any:
        """The slot's value; None for a slot that does not exist."""
        return self._state.slots.get(name)

    latest_message = _view(lambda t: t._state.latest_message, "UserUttered | None: the latest "
                           "user message in effect, with the entities of EntitiesAdded.")
    latest_bot_utterance = _view(lambda t: t._state.latest_bot_utterance, "BotUttered | None.")
    latest_action_name = _view(lambda t: t._state.latest_action_name,
                               "str | None: the latest action's name (or e2e text).")
    followup_action = _view(lambda t: t._state.followup_action, "str | None: forced next action.")
    is_paused = _view(lambda t: t._state.paused, "bool: whether the conversation is paused.")

    latest_action = _view(lambda t: dict(t._state.latest_action), "dict[str, str]: "
                          '{"action_name": ...} or {"action_text": ...}; {} before any action.')

    latest_input_channel = _view(lambda t: t._latest_input_channel, "str | None: the channel of "
                                 "the latest user message ever received (survives restarts).")

    active_loop = _view(lambda t: copy.deepcopy(t._state.active_loop), "dict[str, Any]: "
                        '{"name", "validate", "rejected", "trigger_message"}, or {} if none.')

    @property
    def active_loop_name(self) -> str | None:
        name = self._state.active_loop.get("name")
        return None if name == SHOULD_NOT_BE_SET else name

    is_active_loop_rejected = _view(lambda t: bool(t._state.active_loop.get("rejected")),
                                    "bool: the active loop rejected its last run.")
    is_active_loop_interrupted = _view(
        lambda t: bool(t._state.active_loop) and not t._state.active_loop.get("validate"),
        "bool: the active loop was interrupted (its next input is not validated).")

    def get_latest_entity_values(self, entity: str, role: str | None = None,
                                 group: str | None = None) -> Iterator[Any]:
        """Values of ``entity`` in the latest message. Role and group must match exactly
        (None matches only entities without one), as in Rasa 3 and rasa_sdk."""
        message = self._state.latest_message
        return (e.get("value") for e in (message.entities if message else [])
                if e.get("entity") == entity and e.get("role") == role
                and e.get("group") == group)

    def current_state(self, include_events: bool | str = True) -> dict[str, Any]:
        """The tracker in Rasa's JSON shape (action servers, HTTP API). ``include_events``:
        True/"ALL", "AFTER_RESTART", "APPLIED", or False/"NONE" (then "events" is None)."""
        verbosity = (("ALL" if include_events else "NONE") if isinstance(include_events, bool)
                     else str(include_events).upper())
        if verbosity not in EVENT_VERBOSITIES:
            raise TrackerError(f"include_events must be a bool or one of "
                               f"{', '.join(EVENT_VERBOSITIES)}, got {include_events!r}.")
        events = {"ALL": lambda: list(self._events), "APPLIED": self.applied_events,
                  "AFTER_RESTART": self.events_after_latest_restart,
                  "NONE": lambda: None}[verbosity]()
        message = self._state.latest_message
        return {
            "sender_id": self._sender_id,
            "slots": copy_data(self._state.slots),
            "latest_message": copy_data(message.parse_data if message else _EMPTY_PARSE_DATA),
            "latest_event_time": self._events[-1].timestamp if self._events else None,
            "followup_action": self._state.followup_action,
            "paused": self._state.paused,
            "events": None if events is None else [e.to_dict() for e in events],
            "latest_input_channel": self._latest_input_channel,
            "active_loop": self.active_loop,
            "latest_action": self.latest_action,
            "latest_action_name": self.latest_action_name,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DialogueStateTracker):
            return NotImplemented
        return self._sender_id == other._sender_id and list(self._events) == list(other._events)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DialogueStateTracker(sender_id={self._sender_id!r}, events={len(self._events)})"


def _idx_after_latest(events: deque[Event], kind: type[Event]) -> int:
    for offset, event in enumerate(reversed(events)):
        if isinstance(event, kind):
            return len(events) - offset
    return 0


def _undo_till(events: list[Event] | deque[Event], kind: type[Event]) -> None:
    """Remove events from the end up to and including the latest one of ``kind``."""
    while events:
        if isinstance(events.pop(), kind):
            return


def _collapse_loops(events: Iterable[Event], loops: set[str | None]) -> list[Event]:
    applied: list[Event] = []
    for event in events:
        if isinstance(event, (Restarted, SessionStarted)):
            applied = []
        elif isinstance(event, (ActionReverted, UserUtteranceReverted)):
            if isinstance(event, UserUtteranceReverted):
                _undo_till(applied, UserUttered)
            _undo_till(applied, ActionExecuted)
        elif (isinstance(event, ActionExecuted) and event.name in loops
              and not _first_loop_run_or_unhappy_path(event.name, applied)):
            _undo_till_previous_loop_run(event.name, applied)
        else:
            applied.append(event)
    return applied


def _first_loop_run_or_unhappy_path(loop: str, applied: list[Event]) -> bool:
    """Whether running ``loop`` now starts it or follows an unhappy path (Rasa's rule)."""
    next_action: str | None = None
    for event in reversed(applied):
        if isinstance(event, ActiveLoop) and event.name is None:
            return True  # a deactivation: earlier runs belonged to another activation
        if isinstance(event, ActionExecutionRejected) and event.name == loop:
            return True
        if isinstance(event, UserUttered) and next_action not in (None, loop):
            return True  # another action answered the user (training data has no rejections)
        if isinstance(event, ActionExecuted):
            if event.name == loop:
                return False
            next_action = event.name
    return True


def _undo_till_previous_loop_run(loop: str, applied: list[Event]) -> None:
    """Drop the turns (actions, user messages, featurisations) since ``loop`` last ran,
    keeping the other events (slot sets, ...) in order."""
    kept: list[Event] = []
    while applied and not (isinstance(applied[-1], ActionExecuted) and applied[-1].name == loop):
        event = applied.pop()
        if not isinstance(event, (ActionExecuted, UserUttered, DefinePrevUserUtteredFeaturization)):
            kept.append(event)
    applied.extend(reversed(kept))
