"""Lock stores: one turn at a time per conversation.

A turn reads a tracker, runs the policies and actions, and saves the tracker. Two turns of the
same conversation running at once would each save their own version, and one would lose the
other's events, so the dialogue manager holds the conversation's lock from read to save.
Stores implement the ``LockStore`` protocol:

- ``InMemoryLockStore``: an ``asyncio.Lock`` per conversation. Enough for one server process.
- ``RedisLockStore`` (``bot/storage/redis_store.py``): a lock in Redis, shared by every server
  process that uses the same Redis (as Rasa's lock store, needed when several servers share one
  tracker store).

Configured in endpoints.yml as Rasa does (``lock_store: {type: in_memory | redis, ...}``).

``async with store.lock(sender_id) as grant`` yields a ``Grant``: ``grant.fence`` is the
grant's fencing token (a number that grows with every grant, None for in-process locks, which
cannot outlive their process), which the turn passes to the tracker store's save so that a
holder whose lock expired cannot overwrite newer turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(slots=True)
class Grant:
    """One holding of a conversation's lock. ``fence``: its fencing token (None: no fencing
    needed); ``lost``: set when the lock was found expired while held."""

    fence: int | None = None
    lost: bool = False


@runtime_checkable
class LockStore(Protocol):
    """What the engine needs from a lock store."""

    def lock(self, sender_id: str) -> AbstractAsyncContextManager[Grant]:
        """Hold the conversation's lock: ``async with store.lock(sender_id) as grant: ...``.
        Waits, in arrival order, while another turn holds it; StoreError when the store cannot
        be used or the wait is too long."""
        ...


class InMemoryLockStore:
    """An ``asyncio.Lock`` per conversation (waiters served first come, first served),
    forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}  # holders and waiters per conversation

    @asynccontextmanager
    async def lock(self, sender_id: str) -> AsyncIterator[Grant]:
        lock = self._locks.get(sender_id)
        if lock is None:
            lock = self._locks[sender_id] = asyncio.Lock()
        self._users[sender_id] = self._users.get(sender_id, 0) + 1
        try:
            async with lock:
                yield Grant()
        finally:
            self._users[sender_id] -= 1
            if self._users[sender_id] == 0:
                del self._users[sender_id]
                del self._locks[sender_id]

    def __len__(self) -> int:
        """How many conversations have a lock held or awaited right now."""
        return len(self._locks)
