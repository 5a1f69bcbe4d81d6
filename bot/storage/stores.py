"""Tracker stores: where conversations live between messages.

A store keeps each conversation's events (never derived state) and rebuilds a
``DialogueStateTracker`` from them on ``retrieve``, using the ``slot_defaults`` it was built
with. Stores implement the ``TrackerStore`` protocol:

- ``InMemoryTrackerStore``: a dict, for tests and single-process development.
- ``SQLTrackerStore``: any SQLAlchemy URL. One append-only ``events`` table with Rasa's schema
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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from bot.errors import EventError, StaleWriteError, StoreError
from bot.state import wire_json
from bot.state.events import ActionExecuted, Event, UserUttered, event_from_dict
from bot.state.tracker import DialogueStateTracker

logger = logging.getLogger(__name__)

DEFAULT_SQL_URL = "sqlite:///.xingkong/trackers.sqlite"


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
        for event in tracker.events:
            serialise_event(event)  # what the other stores could not store is refused here too
        sender_id = tracker.sender_id
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


def redact_url(url: str | URL) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return "<unparsable database URL>"


class SQLTrackerStore:
    """Stores events in one SQL table, appending only the events not stored yet.

    ``url`` is any SQLAlchemy URL (``sqlite:///path``, ``sqlite://`` for in-memory,
    ``postgresql+psycopg://user:pw@host/db``, ...); the parent folder of a SQLite file is
    created. Errors reaching the database raise StoreError naming the URL without password.
    Concurrent saves of one conversation from several processes need a lock (as in Rasa).
    """

    def __init__(self, url: str = DEFAULT_SQL_URL, *,
                 slot_defaults: Mapping[str, Any] | None = None,
                 max_event_history: int | None = None, table_name: str = "events",
                 engine_kwargs: Mapping[str, Any] | None = None) -> None:
        self.slot_defaults = None if slot_defaults is None else dict(slot_defaults)
        self.max_event_history = max_event_history
        self.url = redact_url(url)
        try:
            parsed = sa.make_url(url)
            kwargs = dict(engine_kwargs or {})
            if parsed.get_backend_name() == "sqlite":
                kwargs.update(_sqlite_engine_kwargs(parsed))
            self._engine = sa.create_engine(parsed, **kwargs)
        except (ArgumentError, NoSuchModuleError, ImportError, OSError, ValueError) as exc:
            raise StoreError(f"Cannot open tracker database {self.url}: "
                             f"{_redact(str(exc), url)}") from exc
        metadata = sa.MetaData()
        self._table = sa.Table(
            table_name, metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("sender_id", sa.String(255), nullable=False, index=True),
            sa.Column("type_name", sa.String(255), nullable=False),
            sa.Column("timestamp", sa.Float),
            sa.Column("intent_name", sa.String(255)),
            sa.Column("action_name", sa.String(255)),
            sa.Column("data", sa.Text),
        )
        # Our own table beside Rasa's: per conversation, the version and the highest fencing
        # token (Rasa never reads it; a database without it gets it at the next start).
        self._versions = sa.Table(
            f"{table_name}_versions", metadata,
            sa.Column("sender_id", sa.String(255), primary_key=True),
            sa.Column("version", sa.BigInteger, nullable=False),
            sa.Column("fence", sa.BigInteger, nullable=False),
        )
        with self._connect("connect and create the events table", begin=True) as conn:
            metadata.create_all(conn, checkfirst=True)

    @contextmanager
    def _connect(self, doing: str, *, begin: bool = False) -> Iterator[Connection]:
        try:
            with (self._engine.begin() if begin else self._engine.connect()) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"Tracker database {self.url}: cannot {doing}: "
                             f"{_redact(_first_line(exc), self._engine.url)}") from exc

    def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return self.load(sender_id).tracker

    def load(self, sender_id: str) -> Stored:
        t, v = self._table, self._versions
        query = sa.select(t.c.data).where(t.c.sender_id == sender_id).order_by(t.c.id)
        with self._connect(f"read conversation '{sender_id}'", begin=True) as conn:
            rows = list(conn.execute(query).scalars())
            version = conn.execute(sa.select(v.c.version).where(v.c.sender_id == sender_id)
                                   ).scalar_one_or_none() or 0
        if not rows:
            return Stored(None, version)
        return Stored(rebuild_tracker(sender_id, rows, self.slot_defaults,
                                      self.max_event_history), version)

    def save(self, tracker: DialogueStateTracker, *, expected_version: int | None = None,
             fence: int | None = None, replace: bool = False) -> None:
        t, sender_id = self._table, tracker.sender_id
        of_sender = t.c.sender_id == sender_id
        rows = [_row(sender_id, e) for e in tracker.events]  # serialised before any write
        with self._connect(f"save conversation '{sender_id}'", begin=True) as conn:
            self._claim_version(conn, sender_id, expected_version, fence)
            count = conn.execute(sa.select(sa.func.count()).select_from(t).where(of_sender))
            stored_count = count.scalar_one()
            last_row = conn.execute(sa.select(t.c.data).where(of_sender)
                                    .order_by(t.c.id.desc()).limit(1)).scalar_one_or_none()
            plan = plan_save(tracker, stored_count, _loads_or_none(last_row), replace)
            if plan.rewrite:
                conn.execute(sa.delete(t).where(of_sender))
            if plan.events:
                conn.execute(t.insert(), rows[len(rows) - len(plan.events):])
        logger.debug("store.saved sender_id=%s appended=%d rewrite=%s", sender_id,
                     len(plan.events), plan.rewrite)

    def _claim_version(self, conn: Connection, sender_id: str, expected_version: int | None,
                       fence: int | None) -> None:
        """Move the conversation's version one up, in the save's transaction, only when the
        stored version and fence allow this save (a conditional UPDATE, so two writers can
        never both pass); StaleWriteError otherwise, which rolls the transaction back."""
        v = self._versions
        current = conn.execute(sa.select(v.c.version, v.c.fence)
                               .where(v.c.sender_id == sender_id)).one_or_none()
        version, highest = (current.version, current.fence) if current else (0, 0)
        check_write(sender_id, version, highest, expected_version, fence)
        new_fence = max(highest, fence or 0)
        if current is None:
            try:
                with conn.begin_nested():
                    conn.execute(v.insert().values(sender_id=sender_id, version=1,
                                                   fence=new_fence))
            except IntegrityError:  # another writer created it first
                raise StaleWriteError(f"Conversation '{sender_id}' was saved by another "
                                      "writer at the same time: this save is refused.") from None
            return
        updated = conn.execute(sa.update(v).where(
            v.c.sender_id == sender_id, v.c.version == version, v.c.fence == highest,
        ).values(version=version + 1, fence=new_fence))
        if updated.rowcount != 1:
            raise StaleWriteError(f"Conversation '{sender_id}' was saved by another writer at "
                                  "the same time: this save is refused.")

    def keys(self) -> list[str]:
        with self._connect("list conversations") as conn:
            return list(conn.execute(sa.select(self._table.c.sender_id).distinct()).scalars())

    def delete(self, sender_id: str) -> None:
        t = self._table
        with self._connect(f"delete conversation '{sender_id}'", begin=True) as conn:
            conn.execute(sa.delete(t).where(t.c.sender_id == sender_id))
            conn.execute(sa.update(self._versions).where(self._versions.c.sender_id == sender_id)
                         .values(version=self._versions.c.version + 1))

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()


def _sqlite_engine_kwargs(url: URL) -> dict[str, Any]:
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        # One shared connection, or each connection would see its own empty database.
        return {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    if not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return {}


def _row(sender_id: str, event: Event) -> dict[str, Any]:
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": event.timestamp,
        "intent_name": event.intent_name if isinstance(event, UserUttered) else None,
        "action_name": event.name if isinstance(event, ActionExecuted) else None,
        "data": serialise_event(event),
    }


def _loads_or_none(text: str | None) -> dict[str, Any] | None:
    try:
        loaded = json.loads(text) if text else None
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None


def _redact(text: str, url: str | URL) -> str:
    """``text`` without the URL's password (nor the raw URL, which may hold it)."""
    text = text.replace(str(url), redact_url(url))
    try:
        password = sa.make_url(url).password
    except (ArgumentError, ValueError, TypeError):
        password = None
    return text.replace(str(password), "***") if password else text


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def create_tracker_store(url: str | None = None, *,
                         slot_defaults: Mapping[str, Any] | None = None,
                         max_event_history: int | None = None) -> TrackerStore:
    """The store for ``url``: None or "memory://" keeps conversations in memory, any other URL
    is an SQLAlchemy database URL."""
    if url is None or url.lower().startswith("memory://"):
        return InMemoryTrackerStore(slot_defaults, max_event_history=max_event_history)
    return SQLTrackerStore(url, slot_defaults=slot_defaults, max_event_history=max_event_history)
