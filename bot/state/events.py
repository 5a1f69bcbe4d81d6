"""Conversation events in Rasa 3.x's JSON wire format.

Every event is a frozen, slotted dataclass whose field names are its wire keys (``SlotSet.name``
is the JSON ``"name"``), so ``to_dict``/``from_dict`` are generic: ``{"event": type_name,
"timestamp": ..., "metadata": {...}, <one key per field>}``. Read-only aliases keep Rasa's
attribute names (``SlotSet.key``, ``ActionExecuted.action_name``, ...).

State transitions: ``apply_to(state)`` mutates the tracker's private ``bot.state.tracker._State``
through its methods (``set_slot``, ``reset``, ...). The history-rewriting events
(``UserUtteranceReverted``, ``ActionReverted``) are handled by the tracker, which drops
events and replays; their ``apply_to`` is a no-op.

Size: above the usual 400 lines on purpose: this is the whole wire contract (21 event types,
their validation and the registry); splitting it would scatter that contract.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from bot.errors import EventError

if TYPE_CHECKING:
    from typing import Self

logger = logging.getLogger(__name__)


class _State(Protocol):
    """What ``apply_to`` may change: the tracker's state (``bot.state.tracker._State``
    implements it). Declared here so that events need not import the tracker, which imports them."""

    paused: bool
    followup_action: str | None
    latest_bot_utterance: BotUttered | None

    def reset(self) -> None: ...
    def reset_slots(self) -> None: ...
    def set_slot(self, name: str, value: Any) -> None: ...
    def set_latest_message(self, message: UserUttered) -> None: ...
    def set_latest_action(self, action: dict[str, str]) -> None: ...
    def change_loop_to(self, name: str | None) -> None: ...
    def interrupt_loop(self, is_interrupted: bool) -> None: ...
    def reject_action(self, name: str) -> None: ...
    def add_entities(self, entities: list[dict[str, Any]]) -> None: ...
    def set_featurization(self, use_text: bool) -> None: ...

ACTION_LISTEN_NAME = "action_listen"
ACTION_SESSION_START_NAME = "action_session_start"
# Keys of ``BotUttered.data`` as Rasa writes them (rasa.core.actions.action.create_bot_utterance).
BOT_DATA_KEYS = ("elements", "quick_replies", "buttons", "attachment", "image", "custom")

_NOT_ON_WIRE = {"wire": False}
_ATOMS = (str, int, float, bool, type(None))


def copy_data(value: Any) -> Any:
    """A deep copy of event data: plain dicts and lists copied level by level, strings,
    numbers, booleans and None shared, anything else by ``copy.deepcopy``. Event payloads are
    JSON-shaped; this is several times faster than deepcopy on them (a tracker's events are
    copied for every action server call and every save)."""
    kind = type(value)
    if kind is dict:
        return {k: copy_data(v) for k, v in value.items()}
    if kind is list:
        return [copy_data(v) for v in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


@functools.cache
def _payload_fields(cls: type[Event]) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(
        f for f in dataclasses.fields(cls)
        if f.name not in ("timestamp", "metadata") and f.metadata.get("wire", True)
    )


@functools.cache
def _required(cls: type[Event]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)


def _malformed(type_name: str, problem: str) -> EventError:
    return EventError(f"Malformed '{type_name}' event: {problem}.")


def _shown(value: Any) -> str:
    """A short value as written (a name, a number); anything long only by its type, so that
    error messages never repeat a client's large values."""
    text = repr(value)
    return text if isinstance(value, (str, int, float)) and len(text) <= 40 else _kind(value)


def _kind(value: Any) -> str:
    """What a bad value is, for messages: its type, never the value (which may be huge)."""
    return "null" if value is None else type(value).__name__


def _finite(type_name: str, name: str, value: Any) -> float:
    """``value`` as a finite float (infinity or NaN could never be written back as JSON)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise _malformed(type_name, f"'{name}' must be a number (finite), got {_shown(value)}")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all events. Not instantiated directly."""

    type_name: ClassVar[str] = "event"
    # Declarative checks run by __post_init__: string fields (None allowed unless the field
    # has no default), optional numbers (made plain floats, e.g. from numpy) and bool fields
    # with the default used for null (None: null is an error).
    _str_fields: ClassVar[tuple[str, ...]] = ()
    _float_fields: ClassVar[tuple[str, ...]] = ()
    _bool_fields: ClassVar[dict[str, bool | None]] = {}
    timestamp: float = field(default_factory=time.time)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ts = time.time() if self.timestamp is None else self.timestamp
        if isinstance(ts, bool) or not isinstance(ts, (int, float)):
            raise _malformed(self.type_name, f"'timestamp' must be a number, got {_kind(ts)}")
        object.__setattr__(self, "timestamp", _finite(self.type_name, "timestamp", ts))
        meta = {} if self.metadata is None else self.metadata
        if not isinstance(meta, Mapping):
            raise _malformed(self.type_name, f"'metadata' must be a dict, got {_kind(meta)}")
        object.__setattr__(self, "metadata", dict(meta))
        for name in self._str_fields:
            value = getattr(self, name)
            if not isinstance(value, str) and (value is not None or name in _required(type(self))):
                raise _malformed(self.type_name, f"'{name}' must be a string, got {_kind(value)}")
        for name in self._float_fields:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _finite(self.type_name, name, value))
        for name, default in self._bool_fields.items():
            value = getattr(self, name)
            if value is None and default is not None:
                object.__setattr__(self, name, default)
            elif not isinstance(value, bool):
                raise _malformed(self.type_name, f"'{name}' must be true or false, got {_kind(value)}")
        self._normalize()

    def _normalize(self) -> None:
        """Validate and normalise the type's own fields beyond the declared checks."""

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The event in Rasa's wire shape (a deep copy: safe to mutate)."""
        data: dict[str, Any] = {
            "event": self.type_name,
            "timestamp": self.timestamp,
            "metadata": copy_data(self.metadata),
        }
        for f in _payload_fields(type(self)):
            data[f.name] = copy_data(getattr(self, f.name))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Parse a wire dict of this type. A missing or null timestamp means now."""
        if not isinstance(data, Mapping):
            raise EventError(f"An event must be a dict, got {type(data).__name__}.")
        name = data.get("event", cls.type_name)
        if name != cls.type_name and (
            not isinstance(name, str) or _LEGACY_EVENT_TYPES.get(name) is not cls
        ):
            raise EventError(f"Cannot parse a {_shown(name)} event as '{cls.type_name}'.")
        kwargs: dict[str, Any] = {
            "timestamp": data.get("timestamp"),
            "metadata": copy.deepcopy(data.get("metadata")),
        }
        for f in _payload_fields(cls):
            if f.name in data:
                kwargs[f.name] = copy.deepcopy(data[f.name])
            elif f.name in _required(cls):
                raise _malformed(cls.type_name, f"missing required key '{f.name}'")
        try:
            return cls(**kwargs)
        except EventError:
            raise
        except (TypeError, ValueError) as exc:
            raise _malformed(cls.type_name, str(exc)) from exc

    def apply_to(self, state: _State) -> None:
        """Apply this event to the tracker state (default: no effect on state)."""


@dataclass(frozen=True, slots=True)
class UserUttered(Event):
    """The user said something. ``parse_data`` is the NLU result (Rasa's shape)."""

    type_name: ClassVar[str] = "user"
    _str_fields: ClassVar[tuple[str, ...]] = ("text", "input_channel", "message_id")
    text: str | None = None
    parse_data: dict[str, Any] = field(default_factory=dict)
    input_channel: str | None = None
    message_id: str | None = None
    # Set by policies via DefinePrevUserUtteredFeaturization; not part of the wire format.
    use_text_for_featurization: bool | None = field(default=None, compare=False,
                                                    metadata=_NOT_ON_WIRE)

    def _normalize(self) -> None:
        given = {} if self.parse_data is None else self.parse_data
        if not isinstance(given, Mapping):
            raise _malformed(self.type_name, f"'parse_data' must be a dict, got {_kind(given)}")
        parse = {"intent": {}, "entities": [], "text": self.text, "message_id": self.message_id,
                 "metadata": self.metadata, **given}
        parse["intent"] = {} if parse["intent"] is None else parse["intent"]
        parse["entities"] = [] if parse["entities"] is None else parse["entities"]
        if not isinstance(parse["intent"], Mapping) or not isinstance(parse["entities"], list):
            raise _malformed(self.type_name, "'parse_data' needs a dict 'intent' and a list "
                             "'entities'")
        if not all(isinstance(entity, Mapping) for entity in parse["entities"]):
            raise _malformed(self.type_name, "each of 'parse_data.entities' must be a dict")
        intent = dict(parse["intent"])
        if not isinstance(intent.get("name"), (str, type(None))):
            raise _malformed(self.type_name, "'parse_data.intent.name' must be a string, got "
                             f"{_kind(intent.get('name'))}")
        if intent.get("confidence") is not None:
            intent["confidence"] = _finite(self.type_name, "parse_data.intent.confidence",
                                           intent["confidence"])
        parse["intent"] = intent
        self._set("parse_data", parse)
        if self.use_text_for_featurization is None:
            # Rasa: a text-only message is featurised by text, an intent-only one by intent.
            if self.text and not self.intent_name:
                self._set("use_text_for_featurization", True)
            elif self.intent_name and not self.text:
                self._set("use_text_for_featurization", False)

    @property
    def intent(self) -> dict[str, Any]:
        return self.parse_data["intent"]

    @property
    def intent_name(self) -> str | None:
        return self.parse_data["intent"].get("name")

    @property
    def intent_confidence(self) -> float | None:
        return self.parse_data["intent"].get("confidence")

    @property
    def full_retrieval_intent_name(self) -> str | None:
        return self.parse_data["intent"].get("full_retrieval_intent_name")

    @property
    def entities(self) -> list[dict[str, Any]]:
        return self.parse_data["entities"]

    def apply_to(self, state: _State) -> None:
        state.set_latest_message(self)


@dataclass(frozen=True, slots=True)
class BotUttered(Event):
    """The bot said something; ``data`` always carries Rasa's six keys (extras kept)."""

    type_name: ClassVar[str] = "bot"
    _str_fields: ClassVar[tuple[str, ...]] = ("text",)
    text: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def _normalize(self) -> None:
        given = {} if self.data is None else self.data
        if not isinstance(given, Mapping):
            raise _malformed(self.type_name, f"'data' must be a dict, got {_kind(given)}")
        self._set("data", {**dict.fromkeys(BOT_DATA_KEYS), **given})

    @classmethod
    def from_response(cls, response: Mapping[str, Any], **kwargs: Any) -> BotUttered:
        """Build from a response or dispatcher message dict the way Rasa does.

        ``text`` and the six data keys are taken out, an image doubles as the attachment when
        there is none, and every other key becomes event metadata.
        """
        message = dict(response)
        text = message.pop("text", None)
        data = {key: message.pop(key, None) for key in BOT_DATA_KEYS}
        data["attachment"] = data["attachment"] or data["image"]
        return cls(text, data, metadata={**message, **kwargs.pop("metadata", {})}, **kwargs)

    def message(self) -> dict[str, Any]:
        """The message for an output channel (Rasa's ``BotUttered.message()``)."""
        msg = {**copy.deepcopy(self.data), "text": self.text, "timestamp": self.timestamp}
        msg.update(copy.deepcopy(self.metadata))
        if msg.get("image") == msg.get("attachment"):
            msg["attachment"] = None
        return msg

    def apply_to(self, state: _State) -> None:
        state.latest_bot_utterance = self


@dataclass(frozen=True, slots=True)
class ActionExecuted(Event):
    """An action ran. ``action_text`` replaces ``name`` for end-to-end bot utterances."""

    type_name: ClassVar[str] = "action"
    _str_fields: ClassVar[tuple[str, ...]] = ("name", "policy", "action_text")
    _float_fields: ClassVar[tuple[str, ...]] = ("confidence",)
    _bool_fields: ClassVar[dict[str, bool | None]] = {"hide_rule_turn": False}
    name: str | None = None
    policy: str | None = None
    confidence: float | None = None
    action_text: str | None = None
    hide_rule_turn: bool = False

    def _normalize(self) -> None:
        if self.name is None and self.action_text is None:
            raise _malformed(self.type_name, "needs 'name' or 'action_text'")

    @property
    def action_name(self) -> str | None:
        return self.name

    def apply_to(self, state: _State) -> None:
        if self.name:
            state.set_latest_action({"action_name": self.name})
        else:
            state.set_latest_action({"action_text": self.action_text or ""})


@dataclass(frozen=True, slots=True)
class SlotSet(Event):
    type_name: ClassVar[str] = "slot"
    _str_fields: ClassVar[tuple[str, ...]] = ("name",)
    name: str
    value: Any = None

    @property
    def key(self) -> str:
        return self.name

    def apply_to(self, state: _State) -> None:
        state.set_slot(self.name, self.value)


@dataclass(frozen=True, slots=True)
class ActiveLoop(Event):
    """Activates the loop (form) ``name``; ``None`` deactivates the active loop."""

    type_name: ClassVar[str] = "active_loop"
    _str_fields: ClassVar[tuple[str, ...]] = ("name",)
    name: str | None = None

    def apply_to(self, state: _State) -> None:
        state.change_loop_to(self.name)


@dataclass(frozen=True, slots=True)
class LoopInterrupted(Event):
    """The active loop was interrupted (unhappy path): its input is then not validated."""

    type_name: ClassVar[str] = "loop_interrupted"
    _bool_fields: ClassVar[dict[str, bool | None]] = {"is_interrupted": False}
    is_interrupted: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        if isinstance(data, Mapping) and data.get("event") == "form_validation":
            # Legacy FormValidation: validate=True means is_interrupted=False.
            data = {**{k: v for k, v in data.items() if k != "validate"},
                    "event": cls.type_name, "is_interrupted": not data.get("validate", True)}
        return super(LoopInterrupted, cls).from_dict(data)

    def apply_to(self, state: _State) -> None:
        state.interrupt_loop(self.is_interrupted)


@dataclass(frozen=True, slots=True)
class FollowupAction(Event):
    """Forces ``name`` to be the next action."""

    type_name: ClassVar[str] = "followup"
    _str_fields: ClassVar[tuple[str, ...]] = ("name",)
    name: str

    @property
    def action_name(self) -> str:
        return self.name

    def apply_to(self, state: _State) -> None:
        state.followup_action = self.name


@dataclass(frozen=True, slots=True)
class ActionExecutionRejected(Event):
    """The action ``name`` refused to run (e.g. a form that cannot use the input)."""

    type_name: ClassVar[str] = "action_execution_rejected"
    _str_fields: ClassVar[tuple[str, ...]] = ("name", "policy")
    _float_fields: ClassVar[tuple[str, ...]] = ("confidence",)
    name: str
    policy: str | None = None
    confidence: float | None = None

    @property
    def action_name(self) -> str:
        return self.name

    def apply_to(self, state: _State) -> None:
        state.reject_action(self.name)


@dataclass(frozen=True, slots=True)
class Restarted(Event):
    """Resets the conversation; ``action_session_start`` becomes the follow-up action."""

    type_name: ClassVar[str] = "restart"

    def apply_to(self, state: _State) -> None:
        state.reset()
        state.followup_action = ACTION_SESSION_START_NAME


@dataclass(frozen=True, slots=True)
class UserUtteranceReverted(Event):
    """Reverts to before the latest user message (the tracker drops events and replays)."""

    type_name: ClassVar[str] = "rewind"


@dataclass(frozen=True, slots=True)
class ActionReverted(Event):
    """Undoes the latest action and what followed it (the tracker drops and replays)."""

    type_name: ClassVar[str] = "undo"


@dataclass(frozen=True, slots=True)
class AllSlotsReset(Event):
    type_name: ClassVar[str] = "reset_slots"

    def apply_to(self, state: _State) -> None:
        state.reset_slots()


@dataclass(frozen=True, slots=True)
class SessionStarted(Event):
    """Starts a new session: the state is reset (the events are kept)."""

    type_name: ClassVar[str] = "session_started"

    def apply_to(self, state: _State) -> None:
        state.reset()


@dataclass(frozen=True, slots=True)
class ReminderScheduled(Event):
    """Triggers ``intent`` at ``date_time`` (ISO 8601 string; a datetime is converted)."""

    type_name: ClassVar[str] = "reminder"
    _str_fields: ClassVar[tuple[str, ...]] = ("intent", "name")
    _bool_fields: ClassVar[dict[str, bool | None]] = {"kill_on_user_msg": True}
    intent: str
    date_time: str
    entities: list[dict[str, Any]] | dict[str, Any] | None = None
    name: str | None = None
    kill_on_user_msg: bool = True

    def _normalize(self) -> None:
        if isinstance(self.date_time, datetime):
            self._set("date_time", self.date_time.isoformat())
        try:
            datetime.fromisoformat(self.date_time)
        except (TypeError, ValueError) as exc:
            raise _malformed(self.type_name, "'date_time' is not an ISO "
                             "8601 date-time") from exc
        if self.name is None:
            self._set("name", str(uuid.uuid4()))

    @property
    def trigger_date_time(self) -> datetime:
        return datetime.fromisoformat(self.date_time)

    @property
    def kill_on_user_message(self) -> bool:
        return self.kill_on_user_msg


@dataclass(frozen=True, slots=True)
class ReminderCancelled(Event):
    """Cancels the reminders matching name/intent/entities (none given: all reminders)."""

    type_name: ClassVar[str] = "cancel_reminder"
    _str_fields: ClassVar[tuple[str, ...]] = ("name", "intent")
    name: str | None = None
    intent: str | None = None
    entities: list[dict[str, Any]] | dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ConversationPaused(Event):
    type_name: ClassVar[str] = "pause"

    def apply_to(self, state: _State) -> None:
        state.paused = True


@dataclass(frozen=True, slots=True)
class ConversationResumed(Event):
    type_name: ClassVar[str] = "resume"

    def apply_to(self, state: _State) -> None:
        state.paused = False


@dataclass(frozen=True, slots=True)
class EntitiesAdded(Event):
    """Adds entities to the latest user message (only right after ``action_listen``)."""

    type_name: ClassVar[str] = "entities"
    entities: list[dict[str, Any]] = field(default_factory=list)

    def _normalize(self) -> None:
        self._set("entities", [] if self.entities is None else self.entities)
        if not isinstance(self.entities, list) or not all(
                isinstance(entity, Mapping) for entity in self.entities):
            raise _malformed(self.type_name, "'entities' must be a list of dicts, got "
                             f"{_kind(self.entities)}")

    def apply_to(self, state: _State) -> None:
        state.add_entities(self.entities)


@dataclass(frozen=True, slots=True)
class DefinePrevUserUtteredFeaturization(Event):
    """Records whether the latest user message was featurised by text or by intent."""

    type_name: ClassVar[str] = "user_featurization"
    _bool_fields: ClassVar[dict[str, bool | None]] = {"use_text_for_featurization": None}
    use_text_for_featurization: bool

    def apply_to(self, state: _State) -> None:
        state.set_featurization(self.use_text_for_featurization)


@dataclass(frozen=True, slots=True)
class StoryExported(Event):
    """Asks for the conversation to be exported as a story to ``path`` (no state effect)."""

    type_name: ClassVar[str] = "export"
    _str_fields: ClassVar[tuple[str, ...]] = ("path",)
    path: str | None = None


@dataclass(frozen=True, slots=True)
class AgentUttered(Event):
    """Rasa's ``agent`` event (a message from an agent), kept for wire compatibility."""

    type_name: ClassVar[str] = "agent"
    _str_fields: ClassVar[tuple[str, ...]] = ("text",)
    text: str | None = None
    data: Any = None


EVENT_TYPES: dict[str, type[Event]] = {
    "user": UserUttered,
    "bot": BotUttered,
    "action": ActionExecuted,
    "slot": SlotSet,
    "active_loop": ActiveLoop,
    "loop_interrupted": LoopInterrupted,
    "followup": FollowupAction,
    "action_execution_rejected": ActionExecutionRejected,
    "restart": Restarted,
    "rewind": UserUtteranceReverted,
    "undo": ActionReverted,
    "reset_slots": AllSlotsReset,
    "session_started": SessionStarted,
    "reminder": ReminderScheduled,
    "cancel_reminder": ReminderCancelled,
    "pause": ConversationPaused,
    "resume": ConversationResumed,
    "entities": EntitiesAdded,
    "user_featurization": DefinePrevUserUtteredFeaturization,
    "export": StoryExported,
    "agent": AgentUttered,
}

# Old names still found in stored conversations; parsed into the current types.
_LEGACY_EVENT_TYPES: dict[str, type[Event]] = {
    "form": ActiveLoop,
    "form_validation": LoopInterrupted,
}


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Parse one wire dict into its event. Raises EventError when it is not a valid event."""
    if not isinstance(data, Mapping):
        raise EventError(f"An event must be a dict, got {type(data).__name__}.")
    name = data.get("event")
    if name is None:
        raise EventError("Event dict has no 'event' key.")
    cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if cls is None and isinstance(name, str):
        cls = _LEGACY_EVENT_TYPES.get(name)
    if cls is None:
        raise EventError(f"Unknown event type {_shown(name)}. "
                         f"Valid: {', '.join(sorted(EVENT_TYPES))}.")
    return cls.from_dict(data)


def events_from_list(items: Iterable[Mapping[str, Any]]) -> list[Event]:
    """Parse a list of wire dicts; the error names the index of the first bad one."""
    if isinstance(items, (str, bytes, Mapping)):
        raise EventError(f"Events must be a list of dicts, got {type(items).__name__}.")
    events: list[Event] = []
    for index, item in enumerate(items):
        try:
            events.append(event_from_dict(item))
        except EventError as exc:
            raise EventError(f"Event #{index}: {exc}") from exc
    return events


def events_to_list(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The wire dicts of ``events``, in order."""
    return [event.to_dict() for event in events]
