"""SQLTrackerStore: conversations in one append-only SQL table (Rasa's schema), any SQLAlchemy
URL. Kept apart from ``stores.py`` so that a server without a database never imports
SQLAlchemy (about 10 MB resident)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from bot.errors import StaleWriteError, StoreError
from bot.state.events import ActionExecuted, Event, UserUttered
from bot.state.tracker import DialogueStateTracker
from bot.storage.stores import (
    InMemoryTrackerStore, Stored, TrackerStore, check_write, _first_line, plan_save,
    serialise_event, stored_from_rows,
)

logger = logging.getLogger(__name__)

DEFAULT_SQL_URL = "sqlite:///.xingkong/trackers.sqlite"


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
        return stored_from_rows(sender_id, rows, version, self.slot_defaults,
                                self.max_event_history)

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


def create_tracker_store(url: str | None = None, *,
                         slot_defaults: Mapping[str, Any] | None = None,
                         max_event_history: int | None = None) -> TrackerStore:
    """The store for ``url``: None or "memory://" keeps conversations in memory, any other URL
    is an SQLAlchemy database URL."""
    if url is None or url.lower().startswith("memory://"):
        return InMemoryTrackerStore(slot_defaults, max_event_history=max_event_history)
    return SQLTrackerStore(url, slot_defaults=slot_defaults, max_event_history=max_event_history)
