"""Redis tracker and lock stores, against a real Redis at 127.0.0.1:6379.

When nothing answers there, the ``redis_server`` fixture starts one (``redis-server
--daemonize yes``, no persistence) and leaves it running for later runs; without a
``redis-server`` binary these tests skip. Every test uses db 15 and its own random key prefix,
and deletes its keys afterwards. The wrong-password tests start a private, password-protected
redis-server on a free port and stop it at the end.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.project.project import Project
from bot.training.core import train_core
from bot.project.config import EndpointConfig, Secret, load_endpoints
from bot.errors import ConfigError, StoreError
from bot.state.events import SlotSet, UserUttered
from bot.storage.locks import LockStore
from bot.storage.redis_store import (
    RedisLockStore,
    RedisSettings,
    RedisTrackerStore,
    lock_store_from_endpoint,
    tracker_store_from_endpoint,
)
from bot.wiring import Runtime, build_runtime
from bot.serving.server import create_app
from bot.storage.stores import TrackerStore
from bot.state.tracker import DialogueStateTracker
from tests.bot.test_locks import LockStoreContract
from tests.bot.test_stores import SLOTS, TrackerStoreContract, assert_same, conversation, user

HOST, PORT, DB = "127.0.0.1", 6379, 15
START_COMMAND = ["redis-server", "--daemonize", "yes", "--bind", HOST, "--port", str(PORT),
                 "--save", "", "--appendonly", "no"]


def _answers(port: int, password: str | None = None) -> bool:
    client = redis.Redis(host=HOST, port=port, password=password, socket_timeout=1,
                         socket_connect_timeout=1, protocol=2)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def _wait_until_it_answers(port: int, password: str | None = None) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _answers(port, password):
            return True
        time.sleep(0.1)
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server() -> str:
    """host:port of a Redis that answers, started when needed."""
    if not _answers(PORT):
        if shutil.which("redis-server") is None:
            pytest.skip(f"no Redis answers at {HOST}:{PORT} and there is no redis-server "
                        "binary to start one (apt-get install redis-server)")
        subprocess.run(START_COMMAND, check=False, capture_output=True, timeout=30)
        if not _wait_until_it_answers(PORT):
            pytest.skip(f"started `{' '.join(START_COMMAND)}` but nothing answers at "
                        f"{HOST}:{PORT}")
    return f"{HOST}:{PORT}"


@pytest.fixture
def prefix(redis_server: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys in db 15 are deleted afterwards."""
    name = f"xkt{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis(host=HOST, port=PORT, db=DB)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def raw(redis_server: str) -> Iterator[redis.Redis]:
    """A plain client on db 15, to look at what the stores wrote."""
    client = redis.Redis(host=HOST, port=PORT, db=DB, decode_responses=True)
    yield client
    client.close()


def settings(section: str = "tracker_store", **changes: Any) -> RedisSettings:
    values: dict[str, Any] = {"host": HOST, "port": PORT, "db": DB, "socket_timeout_s": 5.0,
                              "section": section, **changes}
    return RedisSettings(**values)


@pytest.fixture
def make_store(prefix: str) -> Iterator[Callable[..., RedisTrackerStore]]:
    stores: list[RedisTrackerStore] = []

    def make(**kwargs: Any) -> RedisTrackerStore:
        store = RedisTrackerStore(settings(), key_prefix=prefix, slot_defaults=SLOTS, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def make_lock_store(prefix: str) -> Iterator[Callable[..., RedisLockStore]]:
    stores: list[RedisLockStore] = []

    def make(**kwargs: Any) -> RedisLockStore:
        store = RedisLockStore(settings("lock_store"), key_prefix=prefix, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def stored_events(raw: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(item) for item in raw.lrange(key, 0, -1)]


# the tracker store -----------------------------------------------------------------------------
class TestRedisTrackerStore(TrackerStoreContract):
    @pytest.fixture
    def store(self, make_store: Callable[..., RedisTrackerStore]) -> Iterator[TrackerStore]:
        yield make_store()


def test_layout_is_a_list_of_rasa_wire_events(make_store: Callable[..., RedisTrackerStore],
                                              raw: redis.Redis, prefix: str) -> None:
    tracker = conversation("ana")
    make_store().save(tracker)
    key = f"{prefix}:tracker:ana"
    assert raw.type(key) == "list"
    assert stored_events(raw, key) == [e.to_dict() for e in tracker.events]
    assert raw.ttl(key) == -1  # no record_exp: kept


def test_a_save_pushes_only_the_new_events(make_store: Callable[..., RedisTrackerStore],
                                           raw: redis.Redis, prefix: str) -> None:
    store, key = make_store(), f"{prefix}:tracker:ana"
    tracker = conversation()
    store.save(tracker)
    marked = {**json.loads(raw.lindex(key, 0)), "metadata": {"marker": "left alone"}}
    raw.lset(key, 0, json.dumps(marked))  # a rewrite would replace it
    tracker.update_many([user("two", "inform"), SlotSet("guests", 2.0)])
    store.save(tracker)
    store.save(tracker)  # nothing new: nothing pushed
    events = stored_events(raw, key)
    assert len(events) == len(tracker.events)
    assert events[0]["metadata"] == {"marker": "left alone"}
    assert [e["event"] for e in events[-2:]] == ["user", "slot"]
    assert events[-1]["value"] == 2.0


def test_a_reset_tracker_rewrites_the_list(make_store: Callable[..., RedisTrackerStore],
                                           raw: redis.Redis, prefix: str) -> None:
    store, key = make_store(), f"{prefix}:tracker:ana"
    store.save(conversation())
    reset = DialogueStateTracker("ana", SLOTS, [SlotSet("city", "Rome"), user("hi", "greet")])
    store.save(reset)
    assert stored_events(raw, key) == [e.to_dict() for e in reset.events]
    assert_same(store.retrieve("ana"), reset)


def test_record_exp_expires_a_quiet_conversation(make_store: Callable[..., RedisTrackerStore],
                                                 raw: redis.Redis, prefix: str) -> None:
    store, key = make_store(record_exp_s=0.5), f"{prefix}:tracker:ana"
    tracker = conversation()
    store.save(tracker)
    assert 0 < raw.pttl(key) <= 500
    time.sleep(0.3)
    tracker.update(SlotSet("guests", 2.0))
    store.save(tracker)  # each save restarts the clock
    assert raw.pttl(key) > 300
    time.sleep(0.7)
    assert store.retrieve("ana") is None
    assert "ana" not in store.keys()


def test_keys_uses_scan_and_sees_only_its_prefix(make_store: Callable[..., RedisTrackerStore],
                                                 raw: redis.Redis, prefix: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store()
    for i in range(30):
        store.save(DialogueStateTracker(f"user{i}", SLOTS, [SlotSet("city", "Oslo")]))
    raw.rpush(f"{prefix}:other:user99", "{}")  # same prefix, another store's keys
    raw.set(f"{prefix}:lock:user98", "token")

    def no_keys(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("KEYS blocks the server; keys() must SCAN")

    monkeypatch.setattr(store._client, "keys", no_keys)
    assert sorted(store.keys()) == sorted(f"user{i}" for i in range(30))


def test_delete_removes_the_key(make_store: Callable[..., RedisTrackerStore],
                                raw: redis.Redis, prefix: str) -> None:
    store = make_store()
    store.save(conversation("ana"))
    store.delete("ana")
    assert raw.exists(f"{prefix}:tracker:ana") == 0


def test_reads_a_tracker_written_by_rasa_and_saves_it_as_a_list(
        make_store: Callable[..., RedisTrackerStore], raw: redis.Redis, prefix: str) -> None:
    events = [
        {"event": "action", "timestamp": 1700000000.1, "name": "action_session_start"},
        {"event": "session_started", "timestamp": 1700000000.2},
        {"event": "action", "timestamp": 1700000000.3, "name": "action_listen"},
        {"event": "user", "timestamp": 1700000001.0, "text": "hi",
         "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": []}},
        {"event": "slot", "timestamp": 1700000003.0, "name": "city", "value": "Lisbon"},
    ]
    key = f"{prefix}:tracker:r1"
    raw.set(key, json.dumps({"name": "r1", "events": events}))  # Rasa's RedisTrackerStore
    store = make_store()
    tracker = store.retrieve("r1")
    assert tracker is not None and len(tracker.events) == 5
    assert tracker.get_slot("city") == "Lisbon"
    assert store.keys() == ["r1"]
    tracker.update(SlotSet("guests", 2.0))
    store.save(tracker)
    assert raw.type(key) == "list"
    assert_same(store.retrieve("r1"), tracker)


def test_an_unserialisable_value_writes_nothing(make_store: Callable[..., RedisTrackerStore]
                                                ) -> None:
    store, saved = make_store(), conversation()
    store.save(saved)
    tracker = store.retrieve("ana")
    tracker.update_many([user("two", "inform"), SlotSet("city", {"a", "set"})])
    with pytest.raises(StoreError, match="JSON-serialisable"):
        store.save(tracker)
    assert_same(store.retrieve("ana"), saved)


# the lock store --------------------------------------------------------------------------------
class TestRedisLockStore(LockStoreContract):
    @pytest.fixture
    def lock_stores(self, make_lock_store: Callable[..., RedisLockStore]
                    ) -> Iterator[tuple[LockStore, LockStore]]:
        yield make_lock_store(), make_lock_store()  # two clients, as two servers would have


async def test_lock_excludes_another_process_for_a_read_modify_write(
        make_lock_store: Callable[..., RedisLockStore], raw: redis.Redis, prefix: str) -> None:
    first, second = make_lock_store(), make_lock_store()
    counter = f"{prefix}:counter"

    async def increment(store: RedisLockStore) -> None:
        async with store.lock("ana"):
            value = int(raw.get(counter) or 0)
            await asyncio.sleep(0.005)
            raw.set(counter, value + 1)

    await asyncio.gather(*(increment(first if i % 2 else second) for i in range(20)))
    assert raw.get(counter) == "20"
    assert raw.exists(f"{prefix}:lock:ana") == 0  # released


async def test_waiting_too_long_fails_clearly(make_lock_store: Callable[..., RedisLockStore],
                                              prefix: str) -> None:
    holder, waiter = make_lock_store(), make_lock_store(wait_timeout_s=0.2)
    async with holder.lock("ana"):
        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            await waiter.acquire("ana")
        assert 0.2 <= time.monotonic() - started < 2
    message = str(info.value)
    assert "still locked by another turn after 0.2 s" in message
    assert f"{HOST}:{PORT} (db {DB})" in message and f"'{prefix}:lock:ana'" in message
    assert "lock_wait_timeout in endpoints.yml lock_store" in message


async def test_a_lock_whose_holder_never_releases_it_expires(
        make_lock_store: Callable[..., RedisLockStore], raw: redis.Redis, prefix: str,
        caplog: pytest.LogCaptureFixture) -> None:
    crashed, other = make_lock_store(lifetime_s=0.3), make_lock_store(wait_timeout_s=5)
    stale = await crashed.acquire("ana")  # and never released nor renewed
    started = time.monotonic()
    fresh = await other.acquire("ana")
    assert 0.1 < time.monotonic() - started < 3
    assert fresh > stale  # the fencing token grows with every grant
    assert await crashed.release("ana", stale) is False  # too late: no longer its lock
    assert raw.zrange(f"{prefix}:lock:ana", 0, -1) == [str(fresh)]
    assert "lock.not_owner" in caplog.text and "raise lock_lifetime" in caplog.text
    assert await other.release("ana", fresh) is True


async def test_a_held_lock_is_renewed_while_its_turn_runs(
        make_lock_store: Callable[..., RedisLockStore]) -> None:
    holder, waiter = make_lock_store(lifetime_s=0.3), make_lock_store(wait_timeout_s=0.8)
    async with holder.lock("ana") as grant:
        with pytest.raises(StoreError, match="still locked"):
            await waiter.acquire("ana")  # more than two lifetimes: renewed all along
        assert not grant.lost and grant.fence is not None


async def test_only_the_owner_can_release(make_lock_store: Callable[..., RedisLockStore],
                                          raw: redis.Redis, prefix: str) -> None:
    owner, intruder = make_lock_store(), make_lock_store(wait_timeout_s=0.05)
    ticket = await owner.acquire("ana")
    assert await intruder.release("ana", ticket + 1000) is False
    assert raw.zrange(f"{prefix}:lock:ana", 0, -1) == [str(ticket)]
    with pytest.raises(StoreError, match="still locked"):
        await intruder.acquire("ana")
    assert await owner.release("ana", ticket) is True
    assert raw.exists(f"{prefix}:lock:ana") == 0


async def test_a_cancelled_wait_leaves_no_ticket_behind(
        make_lock_store: Callable[..., RedisLockStore], raw: redis.Redis, prefix: str) -> None:
    holder, store = make_lock_store(), make_lock_store()
    ticket = await holder.acquire("ana")
    waiting = asyncio.ensure_future(store.acquire("ana"))
    await asyncio.sleep(0.1)
    assert raw.zcard(f"{prefix}:lock:ana") == 2  # queued behind the holder
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0.3)
    assert raw.zrange(f"{prefix}:lock:ana", 0, -1) == [str(ticket)]  # left the queue
    assert await holder.release("ana", ticket)
    assert raw.exists(f"{prefix}:lock:ana") == 0


async def test_a_crashed_process_blocks_the_conversation_only_for_the_lifetime(
        make_lock_store: Callable[..., RedisLockStore], prefix: str) -> None:
    script = textwrap.dedent(f"""
        import asyncio, os, sys
        from bot.storage.redis_store import RedisLockStore, RedisSettings
        store = RedisLockStore(RedisSettings(host="{HOST}", port={PORT}, db={DB}),
                               key_prefix="{prefix}", lifetime_s=0.5)
        asyncio.run(store.acquire("ana"))
        print("held", flush=True)
        os._exit(0)  # crash: no release
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert child.stdout.strip() == "held", child.stderr
    waiter = make_lock_store(wait_timeout_s=5)
    token = await waiter.acquire("ana")  # at most 0.5 s after the child took it
    assert await waiter.release("ana", token)


# errors ---------------------------------------------------------------------------------------
def test_no_redis_there_is_a_clear_error() -> None:
    port = _free_port()
    with pytest.raises(StoreError) as tracker_error:
        RedisTrackerStore(settings(port=port))
    with pytest.raises(StoreError) as lock_error:
        RedisLockStore(settings("lock_store", port=port))
    for error, section, role in ((tracker_error, "tracker_store", "tracker store"),
                                 (lock_error, "lock_store", "lock store")):
        message = str(error.value)
        assert message.startswith(f"Redis {role} at {HOST}:{port} (db {DB}): cannot connect:")
        assert "Connection refused" in message
        assert f"Start redis-server there, or fix url, port and use_ssl in endpoints.yml " \
               f"{section}." in message


def test_a_database_the_server_lacks(redis_server: str) -> None:
    with pytest.raises(StoreError, match=r"DB index is out of range\. Fix db in endpoints.yml "
                                         r"tracker_store"):
        RedisTrackerStore(settings(db=99))


def test_a_password_for_a_server_without_one(redis_server: str) -> None:
    with pytest.raises(StoreError, match=r"without any password configured.*Fix password "):
        RedisTrackerStore(settings(password="s3cr3t-pw"))


@pytest.fixture(scope="module")
def password_server() -> Iterator[int]:
    """A private redis-server with a password ("right-pw"), on a free port."""
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary to start a password-protected Redis")
    port = _free_port()
    server = subprocess.Popen(["redis-server", "--bind", HOST, "--port", str(port), "--save", "",
                               "--appendonly", "no", "--requirepass", "right-pw"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not _wait_until_it_answers(port, "right-pw"):
            pytest.skip(f"the password-protected redis-server on port {port} did not start")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("password", [None, "wrong-pw", Secret("wrong-pw", "${REDIS_PASSWORD}")])
def test_a_wrong_or_missing_password(password_server: int, password: Any) -> None:
    with pytest.raises(StoreError) as info:
        RedisLockStore(settings("lock_store", port=password_server, password=password))
    message = str(info.value)
    assert f"Redis lock store at {HOST}:{password_server} (db {DB}): cannot connect" in message
    assert "Fix password (and username) in endpoints.yml lock_store" in message
    assert "wrong-pw" not in message


def test_the_right_password_from_the_environment(password_server: int, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XK_TEST_REDIS_PASSWORD", "right-pw")
    path = tmp_path / "endpoints.yml"
    path.write_text(f"tracker_store:\n  type: redis\n  url: {HOST}\n  port: {password_server}\n"
                    f"  db: {DB}\n  password: ${{XK_TEST_REDIS_PASSWORD}}\n")
    spec = load_endpoints(path).tracker_store
    assert spec is not None and isinstance(spec.params["password"], Secret)
    store = tracker_store_from_endpoint(spec, slot_defaults=SLOTS)
    tracker = conversation("pw")
    store.save(tracker)
    assert_same(store.retrieve("pw"), tracker)
    assert "right-pw" not in repr(store.settings)
    store.delete("pw")
    store.close()


@pytest.mark.parametrize(("section", "params", "url", "expected"), [
    ("tracker_store", {"port": "six"}, HOST, "tracker_store.port: 'six' is not a whole number"),
    ("tracker_store", {"port": 70000}, HOST, "70000 is not a TCP port"),
    ("tracker_store", {"db": -1}, HOST, "tracker_store.db: -1 is not a whole number >= 0"),
    ("tracker_store", {}, "redis://user:pw@host:6379/0", "'redis://***@host:6379/0' is a URL"),
    ("tracker_store", {"key_prefix": "my bot"}, HOST, "key_prefix: 'my bot' may hold only"),
    ("tracker_store", {"record_exp": -5}, HOST, "record_exp: -5 is not a number of seconds"),
    ("tracker_store", {"record_exp": "soon"}, HOST, "record_exp: 'soon' is not a number"),
    ("tracker_store", {"use_ssl": "maybe"}, HOST, "use_ssl: 'maybe' is not true or false"),
    ("lock_store", {"socket_timeout": 0}, HOST, "lock_store.socket_timeout: 0 is not a number"),
    ("lock_store", {"lock_lifetime": "long"}, HOST, "lock_store.lock_lifetime: 'long' is not"),
    ("lock_store", {"password": 123}, HOST, "lock_store.password must be a string"),
])
def test_bad_endpoint_settings_name_the_key(section: str, params: dict[str, Any], url: str,
                                            expected: str) -> None:
    spec = EndpointConfig(url=url, type="redis", params=params)
    build = tracker_store_from_endpoint if section == "tracker_store" else \
        lock_store_from_endpoint
    with pytest.raises(ConfigError, match="endpoints.yml ") as info:
        build(spec)
    assert expected in str(info.value)
    assert "pw@" not in str(info.value)


def test_endpoint_settings_as_rasa_writes_them(redis_server: str, prefix: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    spec = EndpointConfig(url=HOST, type="redis", params={
        "port": str(PORT), "db": DB, "key_prefix": prefix, "record_exp": 60, "use_ssl": False,
        "password": None, "sentinel_service": "mymaster"})
    store = tracker_store_from_endpoint(spec, slot_defaults=SLOTS)
    assert store.settings == settings(socket_timeout_s=10.0)
    assert store.prefix == f"{prefix}:tracker:" and store.record_exp_s == 60.0
    assert "endpoints.tracker_store.unknown_keys keys=sentinel_service" in caplog.text
    store.close()
    lock = lock_store_from_endpoint(EndpointConfig(url=HOST, type="redis", params={
        "port": PORT, "db": DB, "key_prefix": prefix, "socket_timeout": 3,
        "lock_lifetime": 30, "lock_wait_timeout": 5}))
    assert lock.prefix == f"{prefix}:lock:"
    assert (lock.settings.socket_timeout_s, lock.lifetime_s, lock.wait_timeout_s) == (3, 30, 5)
    lock.close()
    default = lock_store_from_endpoint(EndpointConfig(url=HOST, type="redis",
                                                      params={"db": DB}))
    assert default.prefix == "lock:" and default.lifetime_s == 3.0
    default.close()


# through the runtime and the server ------------------------------------------------------------
ENDPOINTS = """
tracker_store:
  type: redis
  url: {host}
  port: {port}
  db: {db}
  key_prefix: {prefix}
  record_exp: 3600
lock_store:
  type: redis
  url: {host}
  port: {port}
  db: {db}
  key_prefix: {prefix}
  socket_timeout: 5
"""


@pytest.fixture
def make_runtime(tiny_project: Project, prefix: str) -> Iterator[Callable[..., Runtime]]:
    """Builds runtimes (one per "server") from an endpoints.yml naming Redis for both stores."""
    train_core(tiny_project, tiny_project.paths.models / "core")
    endpoints = tiny_project.paths.root / "endpoints.yml"
    built: list[Runtime] = []

    def make(port: int = PORT) -> Runtime:
        endpoints.write_text(ENDPOINTS.format(host=HOST, port=port, db=DB, prefix=prefix))
        runtime = build_runtime(tiny_project, endpoints, actions_package=None)
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.manager.store.close()  # type: ignore[attr-defined]
        runtime.manager.lock_store.close()  # type: ignore[attr-defined]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Runtime], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def open_client(runtime: Runtime) -> httpx.AsyncClient:
        app = create_app(runtime.manager, model_info=runtime.model_info)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://test")
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.aclose()


async def say(client: httpx.AsyncClient, sender: str, text: str) -> httpx.Response:
    return await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})


@pytest.mark.e2e
async def test_a_conversation_through_the_server_lives_in_redis(
        make_runtime: Callable[..., Runtime], serve: Callable[[Runtime], httpx.AsyncClient],
        raw: redis.Redis, prefix: str) -> None:
    first = make_runtime()
    assert isinstance(first.manager.store, RedisTrackerStore)
    assert isinstance(first.manager.lock_store, RedisLockStore)
    reply = await say(serve(first), "ana", "/greet")
    assert reply.status_code == 200 and reply.json()[0]["text"] == "Hello! How can I help?"
    key = f"{prefix}:tracker:ana"
    events = stored_events(raw, key)
    assert [e["event"] for e in events] == [
        "action", "session_started", "action", "user", "action", "bot", "action"]
    assert events[3]["parse_data"]["intent"]["name"] == "greet"
    assert 0 < raw.ttl(key) <= 3600  # record_exp
    assert raw.exists(f"{prefix}:lock:ana") == 0  # the turn released its lock
    second = serve(make_runtime())  # another server on the same Redis continues it
    reply = await say(second, "ana", "/goodbye")
    assert reply.json()[0]["text"] == "Bye!"
    tracker = (await second.get("/conversations/ana/tracker")).json()
    assert [e["event"] for e in tracker["events"]][:len(events)] == \
        [e["event"] for e in events]
    assert len(stored_events(raw, key)) == len(events) + 4  # appended: user, action, bot, listen


@pytest.mark.e2e
async def test_two_servers_take_turns_on_one_conversation(
        make_runtime: Callable[..., Runtime], serve: Callable[[Runtime], httpx.AsyncClient],
        raw: redis.Redis, prefix: str) -> None:
    servers = [serve(make_runtime()), serve(make_runtime())]
    replies = await asyncio.gather(*(say(servers[i % 2], "ana", "/greet") for i in range(6)))
    assert all(r.status_code == 200 for r in replies)
    events = stored_events(raw, f"{prefix}:tracker:ana")
    assert sum(e["event"] == "user" for e in events) == 6  # no turn lost another's events
    assert sum(e["event"] == "bot" for e in events) == 6


@pytest.mark.e2e
@pytest.mark.parametrize("failing", ["lock", "read", "save"])
async def test_redis_going_down_mid_conversation_answers_503_and_loses_nothing(
        failing: str, make_runtime: Callable[..., Runtime],
        serve: Callable[[Runtime], httpx.AsyncClient], raw: redis.Redis, prefix: str,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = make_runtime()
    client = serve(runtime)
    assert (await say(client, "ana", "/greet")).status_code == 200
    before = stored_events(raw, f"{prefix}:tracker:ana")
    store, lock_store = runtime.manager.store, runtime.manager.lock_store
    assert isinstance(store, RedisTrackerStore) and isinstance(lock_store, RedisLockStore)
    down = redis.Redis(host=HOST, port=_free_port(), socket_connect_timeout=1, protocol=2,
                       retry=Retry(NoBackoff(), 0))
    # The server is gone (a fault injected at the client): for the lock, for the whole turn,
    # or only for the save at the turn's end, after the conversation was read.
    if failing == "lock":
        for script in ("_enqueue_script", "_poll_script", "_release_script"):
            monkeypatch.setattr(lock_store, script, down.register_script("return 1"))
    elif failing == "read":
        monkeypatch.setattr(store, "_client", down)
    else:
        monkeypatch.setattr(store._client, "pipeline", down.pipeline)
    caplog.set_level("DEBUG", logger="bot.serving.server")
    reply = await say(client, "ana", "/goodbye")
    assert reply.status_code == 503 and int(reply.headers["Retry-After"]) >= 1
    assert reply.json()["reason"] == "ServiceUnavailable"
    for leak in ("Traceback", "StoreError", "Connection refused", "ana"):
        assert leak not in reply.text
    details = [r.getMessage() for r in caplog.records if r.name == "bot.serving.server"
               and r.getMessage().startswith("server.store_unavailable.detail")]
    assert len(details) == 1
    section = "lock_store" if failing == "lock" else "tracker_store"
    assert f"Start redis-server there, or fix url, port and use_ssl in endpoints.yml " \
           f"{section}." in details[0]
    assert stored_events(raw, f"{prefix}:tracker:ana") == before  # nothing lost
    monkeypatch.undo()  # Redis is back: the conversation goes on where it was
    down.close()
    assert (await say(client, "ana", "/goodbye")).json()[0]["text"] == "Bye!"
    assert stored_events(raw, f"{prefix}:tracker:ana")[:len(before)] == before
    assert raw.exists(f"{prefix}:lock:ana") == 0


def test_a_runtime_whose_redis_is_down_does_not_start(make_runtime: Callable[..., Runtime]
                                                      ) -> None:
    port = _free_port()
    with pytest.raises(StoreError, match=f"Redis tracker store at {HOST}:{port} .*endpoints.yml "
                                         "tracker_store"):
        make_runtime(port)


def test_unknown_lock_store_type(tiny_project: Project) -> None:
    from bot.project.config import Endpoints
    from bot.wiring import make_lock_store

    with pytest.raises(ConfigError, match="lock_store: unknown type 'zookeeper'. Valid: "
                                          "in_memory, redis."):
        make_lock_store(Endpoints(lock_store=EndpointConfig(url=None, type="zookeeper")))


def test_user_events_keep_their_text(make_store: Callable[..., RedisTrackerStore]) -> None:
    store = make_store()
    tracker = DialogueStateTracker("ü", SLOTS, [UserUttered("Ünïcödé 你好 🙂", {
        "intent": {"name": "greet", "confidence": 1.0}, "entities": []})])
    store.save(tracker)
    assert store.keys() == ["ü"]
    assert_same(store.retrieve("ü"), tracker)
