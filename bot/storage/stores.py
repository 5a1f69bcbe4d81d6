"""Tracker stores: where conversations live between messages.

A store keeps each conversation's events (never derived state) and rebuilds a
``DialogueStateTracker`` from them on ``retrieve``, using the ``slot_defaults`` it was built
with. Stores implement the ``TrackerStore`` protocol:

- ``InMemoryTrackerStore``: a dict, for tests and single-process development.
- ``SQLTrackerStore`` (``bot/storage/sql_store.py``): any SQLAlchemy URL. One append-only ``events`` table with Rasa's schema
  (id, sender_id, type_name, timestamp, intent_name, action_name, data), so databases written
  by Rasa's SQLTrackerStore can be read and vice versa.
- ``RedisTrackerStore`` (``bot/storage/redis_store.py``): a Redis list per conversation.

Log-structured stores (SQL, and Redis: a list per conversation, RPUSH/LLEN/LINDEX) save
incrementally with ``plan_save``: given how many events are stored and the last stored one, it
returns the events to append, or asks for a rewrite when the stored log is not a prefix of
the tracker's history (a different or reset tracker was saved under the same id).
``save(..., replace=True)`` always rewrites (PUT tracker/events).

Fenced, versioned writes: every store keeps, per conversation, a version (how many saves it
has taken) and the highest fencing token that has written it. ``load`` returns the tracker
with its version; ``save(tracker, expected_version=v, fence=t)`` writes only when the stored
version is still ``v`` and no save with a token above ``t`` has happened (one atomic step:
a lock in memory, a conditional UPDATE in SQL, WATCH/MULTI in Redis), else it raises
StaleWriteError and writes nothing. A turn whose lock expired while it was frozen thus cannot
overwrite the turns other servers answered meanwhile. Plain ``save(tracker)`` writes
unconditionally, as before.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bot.errors import EventError, StaleWriteError, StoreError
from bot.state import wire_json
from bot.state.events import Event, event_from_dict
from bot.state.tracker import DialogueStateTracker

logger = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class Stored:
    """A conversation as loaded: its tracker (None when nothing is stored) and the version
    to name when saving it back (0: never saved)."""

    tracker: DialogueStateTracker | None
    version: int


@runtime_checkable
class TrackerStore(Protocol):
    """What the engine needs from a tracker store."""

    def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The conversation rebuilt from its stored events, or None when there is none."""
        ...

    def load(self, sender_id: str) -> Stored:
        """The conversation and its version, read together."""
        ...

    def save(self, tracker: DialogueStateTracker, *, expected_version: int | None = None,
             fence: int | None = None, replace: bool = False) -> None:
        """Store the tracker's events (replacing what was stored under its sender id).
        With ``expected_version``/``fence``: StaleWriteError, nothing written, when the stored
        version differs or a higher fence has written (see the module docstring)."""
        ...

    def keys(self) -> list[str]:
        """The sender ids of every stored conversation."""
        ...

    def delete(self, sender_id: str) -> None:
        """Forget a conversation; no error when it does not exist."""
        ...


class InMemoryTrackerStore:
    """Keeps the events of each conversation in a dict (lost when the process ends)."""

    in_process = True  # never blocks: the dialogue manager calls it on the event loop

    def __init__(self, slot_defaults: Mapping[str, Any] | None = None, *,
                 max_event_history: int | None = None) -> None:
        self.slot_defaults = None if slot_defaults is None else dict(slot_defaults)
        self.max_event_history = max_event_history
        self._events: dict[str, tuple[Event, ...]] = {}
        self._versions: dict[str, tuple[int, int]] = {}  # sender id -> (version, fence)
        self._lock = threading.Lock()  # calls come from a thread pool

    def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return self.load(sender_id).tracker

    def load(self, sender_id: str) -> Stored:
        with self._lock:
            events = self._events.get(sender_id)
            version = self._versions.get(sender_id, (0, 0))[0]
        if events is None:
            return Stored(None, version)
        return Stored(DialogueStateTracker(sender_id, self.slot_defaults, events,
                                           self.max_event_history), version)

    def save(self, tracker: DialogueStateTracker, *, expected_version: int | None = None,
             fence: int | None = None, replace: bool = False) -> None:
        sender_id = tracker.sender_id
        events = tracker.events
        with self._lock:
            stored = self._events.get(sender_id, ())
        # what the other stores could not store is refused here too; the events saved before
        # (the same objects, first in the list) were checked then: a turn checks its own only
        same = len(stored) <= len(events) and all(a is b for a, b in zip(stored, events))
        for event in events[len(stored) if same else 0:]:
            serialise_event(event)
        with self._lock:
            version, highest = self._versions.get(sender_id, (0, 0))
            check_write(sender_id, version, highest, expected_version, fence)
            self._versions[sender_id] = (version + 1, max(highest, fence or 0))
            if tracker.events:
                self._events[sender_id] = tracker.events  # a tuple of frozen events
            else:  # like the SQL store: a conversation without events is not stored
                self._events.pop(sender_id, None)

    def keys(self) -> list[str]:
        return list(self._events)

    def delete(self, sender_id: str) -> None:
        with self._lock:
            self._events.pop(sender_id, None)


@dataclass(frozen=True, slots=True)
class SavePlan:
    """What a log-structured store must write: ``events`` appended, after clearing the stored
    log first when ``rewrite`` is set."""

    events: tuple[Event, ...]
    rewrite: bool = False


def check_write(sender_id: str, version: int, highest_fence: int,
                expected_version: int | None, fence: int | None) -> None:
    """StaleWriteError unless a save naming ``expected_version`` and ``fence`` may go over a
    conversation at ``version`` last written with ``highest_fence``."""
    if fence is not None and fence < highest_fence:
        logger.warning("store.stale_fence sender_id=%s fence=%d highest=%d", sender_id, fence,
                       highest_fence)
        raise StaleWriteError(f"Conversation '{sender_id}' was written under a newer lock "
                              f"grant (fencing token {highest_fence} > {fence}): this turn's "
                              "lock had expired, so its save is refused.")
    if expected_version is not None and expected_version != version:
        logger.warning("store.stale_version sender_id=%s expected=%d stored=%d", sender_id,
                       expected_version, version)
        raise StaleWriteError(f"Conversation '{sender_id}' changed since this turn read it "
                              f"(version {version}, read {expected_version}): its save is "
                              "refused.")


def plan_save(tracker: DialogueStateTracker, stored_count: int,
              last_stored: Mapping[str, Any] | None, replace: bool = False) -> SavePlan:
    """Which of the tracker's events a log holding ``stored_count`` events (the last one
    being the wire dict ``last_stored``) lacks, found by count as Rasa does, plus a check
    that the log's last event is the tracker's event at that position."""
    events = tracker.events
    dropped = tracker.total_event_count - len(events)  # cut off by max_event_history
    if replace:
        return SavePlan(events, rewrite=True)
    if stored_count > tracker.total_event_count:
        logger.warning("store.rewrite sender_id=%s stored=%d tracker=%d: the stored history is "
                       "longer than the tracker's", tracker.sender_id, stored_count,
                       tracker.total_event_count)
        return SavePlan(events, rewrite=True)
    index = stored_count - 1 - dropped
    if last_stored is not None and 0 <= index < len(events) and not _same_event(
            events[index], last_stored):
        logger.warning("store.rewrite sender_id=%s: the stored history is not a prefix of the "
                       "tracker's", tracker.sender_id)
        return SavePlan(events, rewrite=True)
    if stored_count < dropped:
        logger.warning("store.events_lost sender_id=%s count=%d: dropped by max_event_history "
                       "before they were saved", tracker.sender_id, dropped - stored_count)
    return SavePlan(events[max(0, stored_count - dropped):])


def _same_event(event: Event, stored: Mapping[str, Any]) -> bool:
    try:
        other = event_from_dict(stored)
    except EventError:
        return False
    return other.type_name == event.type_name and other.timestamp == event.timestamp


def serialise_event(event: Event) -> str:
    """The event's wire dict as JSON text; StoreError when a value is not JSON-serialisable."""
    try:
        return wire_json.dumps(event.to_dict())
    except (TypeError, ValueError) as exc:
        raise StoreError(f"Cannot store a '{event.type_name}' event: {exc}. Event values "
                         "(slot values, metadata, ...) must be JSON-serialisable, with finite "
                         "numbers.") from exc


def rebuild_tracker(sender_id: str, rows: Sequence[str], slot_defaults: Mapping[str, Any] | None,
                    max_event_history: int | None = None) -> DialogueStateTracker:
    """A tracker replaying events stored as JSON texts (StoreError when one is corrupt)."""
    events: list[Event] = []
    for index, row in enumerate(rows):
        try:
            events.append(event_from_dict(json.loads(row)))
        except (ValueError, TypeError) as exc:  # EventError is a ValueError
            raise StoreError(f"Stored event #{index} of conversation '{sender_id}' is "
                             f"corrupt: {exc}") from exc
    return DialogueStateTracker(sender_id, slot_defaults, events, max_event_history)


def stored_from_rows(sender_id: str, rows: Sequence[str], version: int,
                     slot_defaults: Mapping[str, Any] | None,
                     max_event_history: int | None) -> Stored:
    """What a log-structured store's ``load`` returns: None for a conversation without rows,
    else the tracker rebuilt from them; with the stored version either way."""
    if not rows:
        return Stored(None, version)
    return Stored(rebuild_tracker(sender_id, rows, slot_defaults, max_event_history), version)


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
