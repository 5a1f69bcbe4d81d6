"""What channels share: the one outbound HTTP client and the memory of platform deliveries
already handled.

Platforms retry a webhook they think failed (Slack after 3 s without an answer, Telegram after
an error), so a channel that answers later, from a background task, claims each delivery id
once with ``SeenIds.first_time`` and ignores the retries. With several server processes the
claims must be shared: ``RedisSeenIds`` keeps them in the Redis the lock store uses
(``SET NX EX``), ``InMemorySeenIds`` in the process (one server).

Every call to a platform goes through ``ChannelServices.http``, an ``httpx.AsyncClient``; tests
hand in one with a mock transport, so the platform is faked and our code is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx

logger = logging.getLogger(__name__)

SEEN_TTL_S = 3600.0  # Slack and Telegram retry within minutes; an hour is ample
SEEN_MAX = 100_000  # ids kept in memory at most (about 10 MB), oldest forgotten first
OUTBOUND_TIMEOUT_S = 10.0  # one platform API call; a turn must not hang on a slow platform


@runtime_checkable
class SeenIds(Protocol):
    """Delivery ids already claimed by a server."""

    async def first_time(self, key: str) -> bool:
        """True for the first claim of ``key`` (within the retention time), False after."""
        ...

    async def forget(self, key: str) -> None:
        """Drop the claim (the delivery failed and the platform will send it again)."""
        ...


class InMemorySeenIds:
    """Claims kept in this process, for ``ttl_s`` seconds and at most ``max_ids`` of them."""

    def __init__(self, ttl_s: float = SEEN_TTL_S, max_ids: int = SEEN_MAX) -> None:
        if ttl_s <= 0 or max_ids < 1:
            raise ValueError(f"ttl_s and max_ids must be positive, not {ttl_s} and {max_ids}.")
        self.ttl_s = ttl_s
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> monotonic expiry

    async def first_time(self, key: str) -> bool:
        now = time.monotonic()
        while self._seen and (next(iter(self._seen.values())) <= now
                              or len(self._seen) >= self.max_ids):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now + self.ttl_s
        return True

    async def forget(self, key: str) -> None:
        self._seen.pop(key, None)


class RedisSeenIds:
    """Claims shared by every server on one Redis: ``SET <prefix><key> 1 NX EX ttl``.

    ``client`` is a ``redis.Redis``; the call runs in a worker thread so the event loop never
    waits on Redis."""

    def __init__(self, client: Any, prefix: str = "seen:", ttl_s: float = SEEN_TTL_S) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    async def first_time(self, key: str) -> bool:
        claimed = await asyncio.to_thread(self.client.set, self.prefix + key, "1", nx=True,
                                          ex=max(1, int(self.ttl_s)))
        return bool(claimed)

    async def forget(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete, self.prefix + key)


@dataclass(slots=True)
class ChannelServices:
    """Handed to every channel: ``http`` for calls to platforms, ``seen`` for retries."""

    http: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(timeout=OUTBOUND_TIMEOUT_S))
    seen: SeenIds = field(default_factory=InMemorySeenIds)


async def run_logged(channel: str, handler: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Run ``handler(*args)`` (answering a webhook after its HTTP reply went out) and log
    whatever it raises: no client is left to tell, and the server must stay up."""
    try:
        await handler(*args)
    except Exception:  # noqa: BLE001 - logged with its traceback; nobody else would see it
        logger.exception("channel.turn_failed channel=%s", channel)
