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
      use_ssl: false                          lock_lifetime: 60      # ours, seconds
                                              lock_wait_timeout: 60  # ours, seconds

Both sections also take Rasa's ``username``, ``use_ssl``, ``ssl_keyfile``, ``ssl_certfile``,
``ssl_ca_certs`` and ``socket_timeout``.

Conversations: one Redis list per conversation, ``<prefix>tracker:<sender_id>``, one event per
item as JSON in Rasa's wire format. A save appends only the events the list lacks (``plan_save``
on LLEN and LINDEX -1, then RPUSH) inside WATCH/MULTI, so a concurrent save or a failure
halfway never leaves a partial conversation; a reset tracker rewrites the list in the same
transaction. ``record_exp`` (seconds) makes a conversation expire that long after its last save.
Keys written by Rasa's own RedisTrackerStore (the whole tracker as one JSON string) are read
too, and become a list at their next save.

Locks: ``<prefix>lock:<sender_id>`` holds a random token, set with SET NX PX: only when free,
and with a lifetime, so a crashed holder blocks the conversation for ``lock_lifetime`` seconds
at most. A Lua compare-and-delete releases it, so only its owner can. A waiter retries with a
growing pause for up to ``lock_wait_timeout`` seconds, then fails with StoreError. Redis calls
run in a worker thread, so waiting never blocks the event loop.

Errors: a Redis that cannot be reached, refuses the password or has no such db raises
StoreError naming host:port and what to fix, at startup (each store pings when built) and
during a turn (the server then answers 500, as for any store failure).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
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
from bot.storage.stores import SavePlan, plan_save, rebuild_tracker, serialise_event
from bot.state.tracker import DialogueStateTracker

logger = logging.getLogger(__name__)

DEFAULT_SOCKET_TIMEOUT_S = 10.0  # Rasa's lock store default: a dead server fails in 10 s, not never
DEFAULT_LOCK_LIFETIME_S = 60.0  # Rasa's DEFAULT_LOCK_LIFETIME; far above a turn's action timeouts
DEFAULT_LOCK_WAIT_TIMEOUT_S = 60.0  # one full lifetime: a crashed holder's lock has expired by then
_SAVE_ATTEMPTS = 5  # WATCH retries when another process saves the same conversation meanwhile
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.-]+")
_COMMON_KEYS = ("port", "db", "username", "password", "use_ssl", "ssl_keyfile", "ssl_certfile",
                "ssl_ca_certs", "socket_timeout", "key_prefix")
_TRACKER_KEYS = (*_COMMON_KEYS, "record_exp")
_LOCK_KEYS = (*_COMMON_KEYS, "lock_lifetime", "lock_wait_timeout")
# Delete the lock only when it still holds the caller's token (GET and DEL in one atomic step).
_RELEASE_LUA = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
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
        self.record_exp_s = record_exp_s
        self.slot_defaults = None if slot_defaults is None else dict(slot_defaults)
        self.max_event_history = max_event_history
        self._client = _connect(self.settings, "tracker store")

    def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        key = self.prefix + sender_id
        with _translated(self.settings, "tracker store", f"read conversation '{sender_id}'"):
            try:
                rows: list[str] = self._client.lrange(key, 0, -1)
            except redis.exceptions.ResponseError as exc:
                if not _wrong_type(exc):
                    raise
                rows = self._rows_written_by_rasa(key)
        if not rows:
            return None
        return rebuild_tracker(sender_id, rows, self.slot_defaults, self.max_event_history)

    def save(self, tracker: DialogueStateTracker) -> None:
        sender_id, key = tracker.sender_id, self.prefix + tracker.sender_id
        with _translated(self.settings, "tracker store", f"save conversation '{sender_id}'"):
            for _ in range(_SAVE_ATTEMPTS):
                with self._client.pipeline() as pipe:
                    try:
                        pipe.watch(key)
                        plan = self._plan(pipe, key, tracker)
                        rows = [serialise_event(e) for e in plan.events]  # before any write
                        pipe.multi()
                        if plan.rewrite:
                            pipe.delete(key)
                        if rows:
                            pipe.rpush(key, *rows)
                        if self.record_exp_s is not None and tracker.events:
                            pipe.pexpire(key, max(1, round(self.record_exp_s * 1000)))
                        pipe.execute()
                    except redis.exceptions.WatchError:
                        continue  # saved by someone else meanwhile: plan again
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

    def close(self) -> None:
        """Release the connections."""
        self._client.close()

    def _plan(self, pipe: Any, key: str, tracker: DialogueStateTracker) -> SavePlan:
        try:
            stored_count = int(pipe.llen(key))
        except redis.exceptions.ResponseError as exc:
            if not _wrong_type(exc):
                raise
            return SavePlan(tracker.events, rewrite=True)  # Rasa's layout: rewrite as a list
        last = pipe.lindex(key, -1) if stored_count else None
        return plan_save(tracker, stored_count, _json_object(last))

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
    """A lock per conversation in Redis, shared by every process using that Redis."""

    def __init__(self, settings: RedisSettings | None = None, *, key_prefix: str | None = None,
                 lifetime_s: float = DEFAULT_LOCK_LIFETIME_S,
                 wait_timeout_s: float = DEFAULT_LOCK_WAIT_TIMEOUT_S) -> None:
        if lifetime_s <= 0 or wait_timeout_s < 0:
            raise ValueError("lifetime_s must be positive and wait_timeout_s not negative, not "
                             f"{lifetime_s} and {wait_timeout_s}.")
        self.settings = settings if settings is not None else RedisSettings(section="lock_store")
        self.prefix = f"{key_prefix}:lock:" if key_prefix else "lock:"
        self.lifetime_s = lifetime_s
        self.wait_timeout_s = wait_timeout_s
        self._client = _connect(self.settings, "lock store")
        self._release_script = self._client.register_script(_RELEASE_LUA)

    @asynccontextmanager
    async def lock(self, sender_id: str) -> AsyncIterator[None]:
        token = await self.acquire(sender_id)
        try:
            yield
        finally:
            await self.release(sender_id, token)

    async def acquire(self, sender_id: str) -> str:
        """Wait for the conversation's lock and take it; returns the token that releases it."""
        key, token = self.prefix + sender_id, secrets.token_hex(16)
        deadline = time.monotonic() + self.wait_timeout_s
        pause_s = 0.005
        while not await self._set_if_free(key, token):
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise StoreError(
                    f"Conversation '{sender_id}' is still locked by another turn after "
                    f"{self.wait_timeout_s:g} s (Redis lock store at {self.settings.where}, key "
                    f"'{key}'). A turn on another server is slow or stuck; its lock frees "
                    f"itself at the latest {self.lifetime_s:g} s after it was taken. To wait "
                    "longer, raise lock_wait_timeout in endpoints.yml lock_store.")
            await asyncio.sleep(min(pause_s, remaining_s))
            pause_s = min(pause_s * 2, 0.1)
        return token

    async def release(self, sender_id: str, token: str) -> bool:
        """Free the lock if ``token`` still owns it. False when it does not (its lifetime ran
        out, and another turn may hold it now) or Redis failed (it then expires by itself);
        both are logged, never raised, so a turn that has saved still answers."""
        key = self.prefix + sender_id
        try:
            released = await asyncio.to_thread(self._compare_and_delete, key, token)
        except StoreError:
            logger.exception("lock.release_failed sender=%s effect=expires_after_s=%g",
                             _hash(sender_id), self.lifetime_s)
            return False
        if not released:
            logger.warning("lock.not_owner sender=%s lifetime_s=%g: the lock had expired or "
                           "belongs to another turn; if turns take that long, raise "
                           "lock_lifetime in endpoints.yml lock_store", _hash(sender_id),
                           self.lifetime_s)
        return released

    def close(self) -> None:
        """Release the connections."""
        self._client.close()

    async def _set_if_free(self, key: str, token: str) -> bool:
        attempt = asyncio.ensure_future(asyncio.to_thread(self._set_nx, key, token))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # The SET may still land after the caller stopped waiting: then undo it.
            attempt.add_done_callback(lambda done: self._undo(done, key, token))
            raise

    def _set_nx(self, key: str, token: str) -> bool:
        lifetime_ms = max(1, round(self.lifetime_s * 1000))
        with _translated(self.settings, "lock store", f"take the lock '{key}'"):
            return bool(self._client.set(key, token, nx=True, px=lifetime_ms))

    def _compare_and_delete(self, key: str, token: str) -> bool:
        with _translated(self.settings, "lock store", f"release the lock '{key}'"):
            return bool(self._release_script(keys=[key], args=[token]))

    def _undo(self, done: asyncio.Future[bool], key: str, token: str) -> None:
        if done.cancelled() or done.exception() is not None or not done.result():
            return
        try:
            self._compare_and_delete(key, token)
        except StoreError:
            logger.warning("lock.undo_failed key=%s effect=expires_after_s=%g", key,
                           self.lifetime_s)


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
