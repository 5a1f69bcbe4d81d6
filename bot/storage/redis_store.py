"""Redis stores: conversations (``RedisTrackerStore``) and per-conversation locks
(``RedisLockStore``) in a Redis server, configured with Rasa 3.x's endpoints.yml keys.

    tracker_store:                          lock_store:
      type: redis                             type: redis
      url: localhost    # the host            url: localhost
      port: 6379                              port: 6379
      db: 0                                   db: 0
      password: ${REDIS_PASSWORD}             password: ${REDIS_PASSWORD}
      key_prefix: hotel # hotel:tracker:<id>  key_prefix: hotel  # hotel:lock:<id>
      record_exp: 604800                      socket_timeout: 10
      use_ssl: false                          lock_lifetime: 3       # ours, seconds
                                              lock_wait_timeout: 20  # ours, seconds

Both sections also take Rasa's ``username``, ``use_ssl``, ``ssl_keyfile``, ``ssl_certfile``,
``ssl_ca_certs`` and ``socket_timeout``.

Conversations: one Redis list per conversation, ``<prefix>tracker:<sender_id>``, one event per
item as JSON in Rasa's wire format. A save appends only the events the list lacks (``plan_save``
on LLEN and LINDEX -1, then RPUSH) inside WATCH/MULTI, so a concurrent save or a failure
halfway never leaves a partial conversation; a reset tracker rewrites the list in the same
transaction. ``record_exp`` (seconds) makes a conversation expire that long after its last save.
Keys written by Rasa's own RedisTrackerStore (the whole tracker as one JSON string) are read
too, and become a list at their next save.

Conversations also have ``<prefix>tracker_version:<sender_id>``, a hash with the version and
the highest fencing token that saved it; a save naming an older version or a lower token is
refused (``bot/storage/stores.py``), checked and written in the same WATCH/MULTI transaction.

Locks: a ticket lock, as Rasa's. ``<prefix>lock:<sender_id>`` is the queue of tickets taken
from the counter ``<prefix>lock_tickets`` (the ticket is also the grant's fencing token), and
``<prefix>lock_expiry:<sender_id>`` when each expires. The lowest live ticket holds the lock;
waiters are served in arrival order. Tickets live ``lock_lifetime`` seconds and are renewed
while their turn runs or waits, so a frozen or killed server frees its conversations within a
lifetime. Lua scripts do each step atomically. A waiter gives up after ``lock_wait_timeout``
seconds with StoreError. Every Redis call runs on the store thread pool with a deadline
(``bot/storage/blocking.py``), so neither waiting nor a stalled Redis blocks the event loop.

Errors: a Redis that cannot be reached, refuses the password or has no such db raises
StoreError naming host:port and what to fix, at startup (each store pings when built) and
during a turn (the server then answers 503 with Retry-After, as for any store failure).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from bot.project.config import EndpointConfig, Secret, reveal
from bot.errors import ConfigError, StoreError
from bot.storage.blocking import DEFAULT_IO_TIMEOUT_S, run_blocking
from bot.storage.locks import Grant
from bot.storage.stores import (
    SavePlan, Stored, check_write, plan_save, serialise_event, stored_from_rows,
)
from bot.state.tracker import DialogueStateTracker

logger = logging.getLogger(__name__)

DEFAULT_SOCKET_TIMEOUT_S = 10.0  # Rasa's lock store default: a dead server fails in 10 s, not never
DEFAULT_LOCK_LIFETIME_S = 3.0  # renewed every third of it while a turn runs: a dead server's
# conversations free within 3 s, while a live turn keeps its lock however long it takes
DEFAULT_LOCK_WAIT_TIMEOUT_S = 20.0  # several lifetimes: queued turns and a dead holder fit
_HOLDER, _EXPIRED = 1, -1  # answers of _POLL_LUA (0: still waiting)
_MAX_POLL_S = 0.05  # a waiter polls at least this often once the lock frees
_SAVE_ATTEMPTS = 5  # WATCH retries when another process saves the same conversation meanwhile
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.-]+")
_COMMON_KEYS = ("port", "db", "username", "password", "use_ssl", "ssl_keyfile", "ssl_certfile",
                "ssl_ca_certs", "socket_timeout", "key_prefix")
_TRACKER_KEYS = (*_COMMON_KEYS, "record_exp")
_LOCK_KEYS = (*_COMMON_KEYS, "lock_lifetime", "lock_wait_timeout")
# The ticket lock. KEYS: the queue (a sorted set of tickets, scored by ticket), the tickets'
# expiry times (a sorted set scored by Redis time in ms) and, to enqueue, the ticket counter.
# Every script drops expired tickets first; the lowest ticket left holds the lock.
_DROP_EXPIRED = """
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, ticket in ipairs(redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", now)) do
    redis.call("ZREM", KEYS[1], ticket)
    redis.call("ZREM", KEYS[2], ticket)
end
"""
_KEEP = """
redis.call("ZADD", KEYS[2], now + tonumber(ARGV[1]), ticket)
redis.call("PEXPIRE", KEYS[1], 2 * tonumber(ARGV[1]))
redis.call("PEXPIRE", KEYS[2], 2 * tonumber(ARGV[1]))
"""
_ENQUEUE_LUA = _DROP_EXPIRED + """
local ticket = redis.call("INCR", KEYS[3])
redis.call("ZADD", KEYS[1], ticket, ticket)
""" + _KEEP + """
return ticket
"""
# ARGV: ticket, lifetime in ms. Returns 1: holds the lock, 0: waits, -1: the ticket expired.
_POLL_LUA = _DROP_EXPIRED + """
local ticket = ARGV[1]
if not redis.call("ZSCORE", KEYS[1], ticket) then
    return -1
end
""" + _KEEP.replace("ARGV[1]", "ARGV[2]") + """
if redis.call("ZRANGE", KEYS[1], 0, 0)[1] == ticket then
    return 1
end
return 0
"""
_RELEASE_LUA = _DROP_EXPIRED + """
local holder = redis.call("ZRANGE", KEYS[1], 0, 0)[1] == ARGV[1]
redis.call("ZREM", KEYS[1], ARGV[1])
redis.call("ZREM", KEYS[2], ARGV[1])
if holder then
    return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where the Redis server is and how to reach it; ``section`` is the endpoints.yml
    section the settings come from, named in error messages."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: Secret | str | None = field(default=None, repr=False)
    use_ssl: bool = False
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    ssl_ca_certs: str | None = None
    socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S
    section: str = "tracker_store"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port} (db {self.db})"


class RedisTrackerStore:
    """Stores each conversation's events in a Redis list, appending only the new ones."""

    def __init__(self, settings: RedisSettings | None = None, *, key_prefix: str | None = None,
                 record_exp_s: float | None = None,
                 slot_defaults: Mapping[str, Any] | None = None,
                 max_event_history: int | None = None) -> None:
        if record_exp_s is not None and record_exp_s <= 0:
            raise ValueError(f"record_exp_s must be positive or None, not {record_exp_s}.")
        self.settings = settings if settings is not None else RedisSettings()
        self.prefix = f"{key_prefix}:tracker:" if key_prefix else "tracker:"
        self.meta_prefix = f"{key_prefix}:tracker_version:" if key_prefix else "tracker_version:"
        self.record_exp_s = record_exp_s
        self.slot_defaults = None if slot_defaults is None else dict(slot_defaults)
        self.max_event_history = max_event_history
        self._client = _connect(self.settings, "tracker store")

    def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return self.load(sender_id).tracker

    def load(self, sender_id: str) -> Stored:
        key, meta = self.prefix + sender_id, self.meta_prefix + sender_id
        with _translated(self.settings, "tracker store", f"read conversation '{sender_id}'"):
            with self._client.pipeline(transaction=True) as pipe:  # one consistent read
                pipe.lrange(key, 0, -1)
                pipe.hget(meta, "version")
                rows_or_error, version = pipe.execute(raise_on_error=False)
            if isinstance(rows_or_error, redis.exceptions.ResponseError):
                if not _wrong_type(rows_or_error):
                    raise rows_or_error
                rows = self._rows_written_by_rasa(key)
            else:
                rows = rows_or_error
        version = int(version or 0)
        return stored_from_rows(sender_id, rows, version, self.slot_defaults,
                                self.max_event_history)

    def save(self, tracker: DialogueStateTracker, *, expected_version: int | None = None,
             fence: int | None = None, replace: bool = False) -> None:
        sender_id, key = tracker.sender_id, self.prefix + tracker.sender_id
        meta = self.meta_prefix + sender_id
        serialised = [serialise_event(e) for e in tracker.events]  # before any write
        with _translated(self.settings, "tracker store", f"save conversation '{sender_id}'"):
            for _ in range(_SAVE_ATTEMPTS):
                with self._client.pipeline() as pipe:
                    try:
                        pipe.watch(key, meta)
                        stored = pipe.hmget(meta, "version", "fence")
                        version, highest = int(stored[0] or 0), int(stored[1] or 0)
                        check_write(sender_id, version, highest, expected_version, fence)
                        plan = self._plan(pipe, key, tracker, replace)
                        rows = serialised[len(serialised) - len(plan.events):]
                        pipe.multi()
                        if plan.rewrite:
                            pipe.delete(key)
                        if rows:
                            pipe.rpush(key, *rows)
                        pipe.hset(meta, mapping={"version": version + 1,
                                                 "fence": max(highest, fence or 0)})
                        if self.record_exp_s is not None and tracker.events:
                            for name in (key, meta):
                                pipe.pexpire(name, max(1, round(self.record_exp_s * 1000)))
                        pipe.execute()
                    except redis.exceptions.WatchError:
                        continue  # saved by someone else meanwhile: check and plan again
                logger.debug("store.saved sender_id=%s appended=%d rewrite=%s",
                             _hash(sender_id), len(rows), plan.rewrite)
                return
        raise StoreError(f"Redis tracker store at {self.settings.where}: conversation "
                         f"'{sender_id}' changed during each of {_SAVE_ATTEMPTS} attempts to "
                         "save it. Several servers are writing it at once: configure a "
                         "lock_store of type redis in endpoints.yml.")

    def keys(self) -> list[str]:
        with _translated(self.settings, "tracker store", "list conversations"):
            found = self._client.scan_iter(match=self.prefix + "*", count=1000)
            return list(dict.fromkeys(key[len(self.prefix):] for key in found))  # SCAN may repeat

    def delete(self, sender_id: str) -> None:
        with _translated(self.settings, "tracker store", f"delete conversation '{sender_id}'"):
            self._client.delete(self.prefix + sender_id)
            self._client.hincrby(self.meta_prefix + sender_id, "version", 1)

    def close(self) -> None:
        """Release the connections."""
        self._client.close()

    def _plan(self, pipe: Any, key: str, tracker: DialogueStateTracker,
              replace: bool) -> SavePlan:
        try:
            stored_count = int(pipe.llen(key))
        except redis.exceptions.ResponseError as exc:
            if not _wrong_type(exc):
                raise
            return SavePlan(tracker.events, rewrite=True)  # Rasa's layout: rewrite as a list
        last = pipe.lindex(key, -1) if stored_count and not replace else None
        return plan_save(tracker, stored_count, _json_object(last), replace)

    def _rows_written_by_rasa(self, key: str) -> list[str]:
        """The events of a key holding a whole tracker as JSON, as Rasa's store writes it."""
        stored = _json_object(self._client.get(key))
        events = stored.get("events") if stored is not None else None
        if not isinstance(events, list):
            raise StoreError(f"Redis tracker store at {self.settings.where}: key '{key}' holds "
                             "neither a list of events nor a tracker written by Rasa. Delete "
                             "it, or choose another key_prefix in endpoints.yml tracker_store.")
        return [json.dumps(event) for event in events]


class RedisLockStore:
    """A ticket lock per conversation in Redis, shared by every process using that Redis.

    Each turn takes a ticket (INCR of one counter, so tickets also serve as fencing tokens);
    the lowest live ticket in the conversation's queue holds the lock. A ticket lives
    ``lifetime_s`` unless its owner renews it (waiters while polling, the holder every third
    of the lifetime), so a frozen or dead process frees the conversation within one lifetime
    and waiters are served in arrival order.
    """

    def __init__(self, settings: RedisSettings | None = None, *, key_prefix: str | None = None,
                 lifetime_s: float = DEFAULT_LOCK_LIFETIME_S,
                 wait_timeout_s: float = DEFAULT_LOCK_WAIT_TIMEOUT_S,
                 io_timeout_s: float = DEFAULT_IO_TIMEOUT_S) -> None:
        if lifetime_s <= 0 or wait_timeout_s < 0 or io_timeout_s <= 0:
            raise ValueError("lifetime_s and io_timeout_s must be positive and wait_timeout_s "
                             f"not negative, not {lifetime_s}, {io_timeout_s} and "
                             f"{wait_timeout_s}.")
        self.settings = settings if settings is not None else RedisSettings(section="lock_store")
        self.prefix = f"{key_prefix}:lock:" if key_prefix else "lock:"
        self._expiry_prefix = f"{key_prefix}:lock_expiry:" if key_prefix else "lock_expiry:"
        self._counter = f"{key_prefix}:lock_tickets" if key_prefix else "lock_tickets"
        self.lifetime_s = lifetime_s
        self.wait_timeout_s = wait_timeout_s
        self.io_timeout_s = io_timeout_s
        self._client = _connect(self.settings, "lock store")
        self._enqueue_script = self._client.register_script(_ENQUEUE_LUA)
        self._poll_script = self._client.register_script(_POLL_LUA)
        self._release_script = self._client.register_script(_RELEASE_LUA)

    @asynccontextmanager
    async def lock(self, sender_id: str) -> AsyncIterator[Grant]:
        grant = Grant(await self.acquire(sender_id))
        renewing = asyncio.create_task(self._renew(sender_id, grant))
        try:
            yield grant
        finally:
            renewing.cancel()
            assert grant.fence is not None
            await self.release(sender_id, grant.fence)

    async def acquire(self, sender_id: str) -> int:
        """Queue for the conversation's lock and wait for its turn; returns the ticket (the
        fencing token), which releases it."""
        deadline = time.monotonic() + self.wait_timeout_s
        ticket = await self._io(self._enqueue, sender_id, doing="take a lock ticket")
        pause_s = 0.005
        try:
            while (state := await self._io(self._poll, sender_id, ticket,
                                           doing="wait for a lock")) != _HOLDER:
                if state == _EXPIRED:  # we could not poll for a lifetime (a frozen process)
                    ticket = await self._io(self._enqueue, sender_id, doing="take a lock ticket")
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:  # leave the queue before saying so: no ticket lingers
                    await self._io(self._quietly_remove, sender_id, ticket, doing="leave a queue")
                    raise StoreError(
                        f"Conversation '{sender_id}' is still locked by another turn after "
                        f"{self.wait_timeout_s:g} s (Redis lock store at {self.settings.where}, "
                        f"key '{self.prefix}{sender_id}'). A turn on another server is slow or "
                        f"stuck; a dead server's lock frees itself within {self.lifetime_s:g} s. "
                        "To wait longer, raise lock_wait_timeout in endpoints.yml lock_store.")
                await asyncio.sleep(min(pause_s, remaining_s))
                pause_s = min(pause_s * 2, _MAX_POLL_S)
        except BaseException:  # Redis failure or cancelled (or timeout, again): leave the queue
            asyncio.get_running_loop().run_in_executor(None, self._quietly_remove, sender_id,
                                                       ticket)
            raise
        return ticket

    async def release(self, sender_id: str, ticket: int) -> bool:
        """Free the lock if ``ticket`` still holds it. False when it does not (its lifetime ran
        out) or Redis failed (it then expires by itself); both are logged, never raised, so a
        turn that has saved still answers."""
        try:
            released = await self._io(self._remove, sender_id, ticket, doing="release a lock")
        except StoreError:
            logger.exception("lock.release_failed sender=%s effect=expires_after_s=%g",
                             _hash(sender_id), self.lifetime_s)
            return False
        if not released:
            logger.warning("lock.not_owner sender=%s lifetime_s=%g: the lock had expired; if "
                           "turns stall that long, raise lock_lifetime in endpoints.yml "
                           "lock_store", _hash(sender_id), self.lifetime_s)
        return released

    def close(self) -> None:
        """Release the connections."""
        self._client.close()

    async def _renew(self, sender_id: str, grant: Grant) -> None:
        """Keep the held ticket alive while the turn runs."""
        assert grant.fence is not None
        while True:
            await asyncio.sleep(self.lifetime_s / 3)
            try:
                state = await self._io(self._poll, sender_id, grant.fence, doing="renew a lock")
            except StoreError:
                logger.warning("lock.renew_failed sender=%s", _hash(sender_id))
                continue
            if state != _HOLDER:
                grant.lost = True
                logger.warning("lock.lost sender=%s: the lock expired while the turn ran; its "
                               "save will be refused", _hash(sender_id))
                return

    async def _io(self, call: Any, *args: Any, doing: str) -> Any:
        return await run_blocking(call, *args, timeout_s=self.io_timeout_s,
                                  doing=f"{doing} (Redis lock store at {self.settings.where})")

    def _keys(self, sender_id: str) -> list[str]:
        return [self.prefix + sender_id, self._expiry_prefix + sender_id]

    def _lifetime_ms(self) -> int:
        return max(1, round(self.lifetime_s * 1000))

    def _enqueue(self, sender_id: str) -> int:
        with _translated(self.settings, "lock store", f"take a lock ticket for '{sender_id}'"):
            return int(self._enqueue_script(keys=[*self._keys(sender_id), self._counter],
                                            args=[self._lifetime_ms()]))

    def _poll(self, sender_id: str, ticket: int) -> int:
        with _translated(self.settings, "lock store", f"wait for the lock of '{sender_id}'"):
            return int(self._poll_script(keys=self._keys(sender_id),
                                         args=[ticket, self._lifetime_ms()]))

    def _remove(self, sender_id: str, ticket: int) -> bool:
        """Drop the ticket; True when it was still the holder."""
        with _translated(self.settings, "lock store", f"release the lock of '{sender_id}'"):
            return bool(self._release_script(keys=self._keys(sender_id), args=[ticket]))

    def _quietly_remove(self, sender_id: str, ticket: int) -> None:
        try:
            self._remove(sender_id, ticket)
        except StoreError:
            logger.warning("lock.leave_failed sender=%s effect=expires_after_s=%g",
                           _hash(sender_id), self.lifetime_s)


# endpoints.yml ---------------------------------------------------------------------------------
def tracker_store_from_endpoint(spec: EndpointConfig, *,
                                slot_defaults: Mapping[str, Any] | None = None,
                                ) -> RedisTrackerStore:
    """The tracker store an endpoints.yml ``tracker_store`` section of type redis describes."""
    section = "tracker_store"
    params = _known_params(spec, section, _TRACKER_KEYS)
    return RedisTrackerStore(_settings(spec, params, section),
                             key_prefix=_key_prefix(params, section),
                             record_exp_s=_optional_seconds(params, "record_exp", section),
                             slot_defaults=slot_defaults)


def lock_store_from_endpoint(spec: EndpointConfig) -> RedisLockStore:
    """The lock store an endpoints.yml ``lock_store`` section of type redis describes."""
    section = "lock_store"
    params = _known_params(spec, section, _LOCK_KEYS)
    return RedisLockStore(
        _settings(spec, params, section), key_prefix=_key_prefix(params, section),
        lifetime_s=_seconds(params, "lock_lifetime", section, DEFAULT_LOCK_LIFETIME_S),
        wait_timeout_s=_seconds(params, "lock_wait_timeout", section,
                                DEFAULT_LOCK_WAIT_TIMEOUT_S))


def _known_params(spec: EndpointConfig, section: str, known: tuple[str, ...]) -> dict[str, Any]:
    unknown = sorted(str(k) for k in spec.params if k not in known)
    if unknown:
        logger.warning("endpoints.%s.unknown_keys keys=%s known=url,%s", section,
                       ",".join(unknown), ",".join(known))
    return {k: v for k, v in spec.params.items() if k in known}


def _settings(spec: EndpointConfig, params: Mapping[str, Any], section: str) -> RedisSettings:
    host = _text(spec.url, "url", section) or "localhost"
    if "://" in host or "/" in host:
        raise ConfigError(f"endpoints.yml {section}.url: '{_no_password(host)}' is a URL; for "
                          "a Redis store, url is the host name as in Rasa (e.g. localhost), "
                          "with port, db and password as keys of their own.")
    port = _integer(params, "port", section, 6379)
    if not 0 < port < 65536:
        raise ConfigError(f"endpoints.yml {section}.port: {port} is not a TCP port (1-65535).")
    password = params.get("password")
    if password is not None and not isinstance(password, (str, Secret)):
        raise ConfigError(f"endpoints.yml {section}.password must be a string or a ${{VAR}} "
                          f"reference, not {type(password).__name__}.")
    return RedisSettings(
        host=host, port=port, db=_integer(params, "db", section, 0),
        username=_text(params.get("username"), "username", section),
        password=password if password != "" else None,
        use_ssl=_flag(params, "use_ssl", section),
        ssl_keyfile=_text(params.get("ssl_keyfile"), "ssl_keyfile", section),
        ssl_certfile=_text(params.get("ssl_certfile"), "ssl_certfile", section),
        ssl_ca_certs=_text(params.get("ssl_ca_certs"), "ssl_ca_certs", section),
        socket_timeout_s=_seconds(params, "socket_timeout", section, DEFAULT_SOCKET_TIMEOUT_S),
        section=section,
    )


def _text(value: Any, key: str, section: str) -> str | None:
    value = reveal(value)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"endpoints.yml {section}.{key} must be a string, not "
                          f"{type(value).__name__}.")
    return value.strip() or None


def _integer(params: Mapping[str, Any], key: str, section: str, default: int) -> int:
    value = reveal(params.get(key))
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"endpoints.yml {section}.{key}: {value!r} is not a whole number "
                          f">= 0 (default {default}).")
    return value


def _seconds(params: Mapping[str, Any], key: str, section: str, default: float) -> float:
    seconds = _optional_seconds(params, key, section)
    return seconds if seconds is not None else default


def _optional_seconds(params: Mapping[str, Any], key: str, section: str) -> float | None:
    value = reveal(params.get(key))
    if value is None:
        return None
    try:
        seconds = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"endpoints.yml {section}.{key}: {value!r} is not a number of seconds "
                          "> 0.")
    return seconds


def _flag(params: Mapping[str, Any], key: str, section: str) -> bool:
    value = reveal(params.get(key))
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
        return value.strip().lower() in ("true", "yes")
    raise ConfigError(f"endpoints.yml {section}.{key}: {value!r} is not true or false.")


def _key_prefix(params: Mapping[str, Any], section: str) -> str | None:
    value = reveal(params.get("key_prefix"))
    prefix = str(value).strip() if value is not None else ""
    if not prefix:
        return None
    if not _KEY_PREFIX.fullmatch(prefix):
        raise ConfigError(f"endpoints.yml {section}.key_prefix: '{prefix}' may hold only "
                          "letters, digits, '_', '-' and '.' (Rasa: letters and digits).")
    return prefix


def _no_password(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


# connections and errors ------------------------------------------------------------------------
def _connect(settings: RedisSettings, role: str) -> redis.Redis:
    """A client for ``settings``, checked with PING (StoreError when Redis cannot be used)."""
    client = redis.Redis(
        host=settings.host, port=settings.port, db=settings.db, username=settings.username,
        password=reveal(settings.password), ssl=settings.use_ssl,
        ssl_keyfile=settings.ssl_keyfile, ssl_certfile=settings.ssl_certfile,
        ssl_ca_certs=settings.ssl_ca_certs, socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.socket_timeout_s, decode_responses=True,
        protocol=2,  # RESP2: every Redis server speaks it (RESP3 needs Redis 6)
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),  # rides out a blip
    )
    with _translated(settings, role, "connect"):
        client.ping()
    logger.info("store.redis.connected role=%s at=%s", role.replace(" ", "_"), settings.where)
    return client


def seen_ids_client(lock_store: RedisLockStore) -> redis.Redis:
    """A client on the lock store's Redis for the channels' memory of platform retries."""
    s = lock_store.settings
    return redis.Redis(
        host=s.host, port=s.port, db=s.db, username=s.username, password=reveal(s.password),
        ssl=s.use_ssl, ssl_keyfile=s.ssl_keyfile, ssl_certfile=s.ssl_certfile,
        ssl_ca_certs=s.ssl_ca_certs, socket_timeout=s.socket_timeout_s,
        socket_connect_timeout=s.socket_timeout_s, decode_responses=True, protocol=2)


@contextmanager
def _translated(settings: RedisSettings, role: str, doing: str) -> Iterator[None]:
    """Redis errors as StoreError naming the server and what to fix in endpoints.yml."""
    at, section = f"Redis {role} at {settings.where}", settings.section
    try:
        yield
    except redis.exceptions.AuthenticationError as exc:
        raise StoreError(f"{at}: cannot {doing}: the server refused the credentials "
                         f"({_first_line(exc)}). Fix password (and username) in endpoints.yml "
                         f"{section}.") from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise StoreError(f"{at}: cannot {doing}: {_first_line(exc)}. Start redis-server there, "
                         f"or fix url, port and use_ssl in endpoints.yml {section}.") from exc
    except redis.exceptions.ResponseError as exc:
        message = _first_line(exc)
        if "DB index" in message:
            fix = f"Fix db in endpoints.yml {section} (this server has fewer databases)."
        elif "AUTH" in message or "password" in message:
            fix = f"Fix password in endpoints.yml {section} (or set one on the server)."
        else:
            fix = f"Check endpoints.yml {section} and the server's logs."
        raise StoreError(f"{at}: cannot {doing}: {message}. {fix}") from exc
    except redis.exceptions.RedisError as exc:
        raise StoreError(f"{at}: cannot {doing}: {_first_line(exc)}.") from exc


def _wrong_type(exc: redis.exceptions.ResponseError) -> bool:
    return str(exc).startswith("WRONGTYPE")


def _json_object(text: str | None) -> dict[str, Any] | None:
    try:
        loaded = json.loads(text) if text else None
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__


def _hash(sender_id: str) -> str:
    return hashlib.sha256(sender_id.encode()).hexdigest()[:12]
