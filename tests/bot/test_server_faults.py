"""Inputs and faults that used to poison conversations or answer 500 (issue 16, failures 3-7
and 9, and the lock order of 8), in process on the tiny project; the Redis cases use a
redis-server of their own on a free port."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from benchmarks.faults import RedisServer, redis_available
from bot.manager import DialogueManager
from bot.serving.server import create_app
from bot.storage.sql_store import SQLTrackerStore
from bot.storage.stores import InMemoryTrackerStore

needs_redis = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed; "
                                 "this test needs a real Redis (apt-get install redis-server)")


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def api(tiny_manager: DialogueManager) -> AsyncIterator[httpx.AsyncClient]:
    async with client(create_app(tiny_manager)) as c:
        yield c


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not redis_available():
        pytest.skip("redis-server is not installed; this test needs a real Redis")
    server = RedisServer()
    yield server
    server.stop()


async def post_raw(c: httpx.AsyncClient, path: str, body: str | bytes,
                   method: str = "POST") -> httpx.Response:
    return await c.request(method, path, content=body,
                           headers={"content-type": "application/json"})


async def assert_readable(c: httpx.AsyncClient, sender: str) -> dict[str, Any]:
    """The conversation still answers on every read and turn route."""
    tracker = await c.get(f"/conversations/{sender}/tracker?include_events=ALL")
    assert tracker.status_code == 200, tracker.text
    assert (await c.post(f"/conversations/{sender}/predict")).status_code == 200
    turn = await c.post("/webhooks/rest/webhook", json={"sender": sender, "message": "/greet"})
    assert turn.status_code == 200, turn.text
    return tracker.json()


# 3: a public message poisons its conversation ---------------------------------------------------
@pytest.mark.parametrize("value", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"])
async def test_a_non_finite_number_in_a_payload_message_is_refused(
        api: httpx.AsyncClient, value: str) -> None:
    assert (await api.post("/webhooks/rest/webhook",
                           json={"sender": "p", "message": "/greet"})).status_code == 200
    message = "/inform{\"city\": " + value + "}"
    reply = await api.post("/webhooks/rest/webhook", json={"sender": "p", "message": message})
    assert reply.status_code == 400, reply.text
    state = await assert_readable(api, "p")
    assert all(e.get("text") != message for e in state["events"])
    assert (await api.post("/conversations/p/tracker/events",
                           json={"event": "restart"})).status_code == 200
    await assert_readable(api, "p")


@pytest.mark.parametrize("entities", [[1], ["city"], [None], [[]], {"city": "x"}, "x"])
async def test_a_user_event_with_non_object_entities_is_refused(
        api: httpx.AsyncClient, entities: Any) -> None:
    event = {"event": "user", "text": "hi", "parse_data": {
        "intent": {"name": "greet", "confidence": 1.0}, "entities": entities}}
    reply = await api.post("/conversations/u/tracker/events", json=event)
    assert reply.status_code == 400, reply.text
    await assert_readable(api, "u")


# 4: write routes answer 500 after they saved ----------------------------------------------------
@pytest.mark.parametrize("path,body", [
    ("/conversations/w/tracker/events", '{"event": "slot", "name": "city", "value": 1e999}'),
    ("/conversations/w/tracker/events", '[{"event": "slot", "name": "city", "value": NaN}]'),
    ("/conversations/w/messages", '{"text": "hi", "sender": "user", "parse_data": '
                                  '{"intent": {"name": "greet", "confidence": 1e999}}}'),
    ("/conversations/w/trigger_intent", '{"name": "inform", "entities": {"city": 1e999}}'),
    ("/conversations/w/trigger_intent", '{"name": "inform", "entities": {"city": Infinity}}'),
])
async def test_write_routes_refuse_non_finite_values_before_storing(
        api: httpx.AsyncClient, path: str, body: str) -> None:
    await assert_readable(api, "w")
    before = (await api.get("/conversations/w/tracker?include_events=ALL")).json()
    reply = await post_raw(api, path, body)
    assert reply.status_code == 400, reply.text
    after = await api.get("/conversations/w/tracker?include_events=ALL")
    assert after.status_code == 200 and after.json()["events"] == before["events"]
    await assert_readable(api, "w")


# 5: PUT replace keeps the old history ------------------------------------------------------------
def _stores(redis_port: int | None) -> dict[str, Any]:
    stores: dict[str, Any] = {"memory": InMemoryTrackerStore(), "sql": SQLTrackerStore("sqlite://")}
    if redis_port is not None:
        from bot.storage.redis_store import RedisSettings, RedisTrackerStore

        stores["redis"] = RedisTrackerStore(RedisSettings(host="127.0.0.1", port=redis_port),
                                            key_prefix="put")
    return stores


@pytest.mark.parametrize("kind", ["memory", "sql", pytest.param("redis", marks=needs_redis)])
async def test_put_replaces_even_with_the_same_length_and_last_event(
        kind: str, tiny_manager: DialogueManager, request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue("redis_server").port if kind == "redis" else None
    tiny_manager.store = _stores(port)[kind]
    last = {"event": "action", "name": "action_listen", "timestamp": 1000.0}
    old = [{"event": "slot", "name": "city", "value": "Oslo", "timestamp": 998.0},
           {"event": "user", "text": "old", "timestamp": 999.0}, last]
    new = [{"event": "slot", "name": "city", "value": "Rome", "timestamp": 10.0},
           {"event": "user", "text": "new", "timestamp": 11.0}, last]
    async with client(create_app(tiny_manager)) as api:
        for events in (old, new):
            reply = await api.put("/conversations/r/tracker/events", json=events)
            assert reply.status_code == 200
        stored = (await api.get("/conversations/r/tracker?include_events=ALL")).json()
    assert [e.get("text") for e in stored["events"] if e["event"] == "user"] == ["new"]
    assert stored["slots"]["city"] == "Rome"


# 6: malformed input answers 500 -----------------------------------------------------------------
DEEP = "[" * 1000 + "]" * 1000
MALFORMED = [
    ("/webhooks/rest/webhook", '{"sender": "m", "message": "hi", "metadata": ' + DEEP + "}"),
    ("/conversations/m/tracker/events", DEEP),
    ("/webhooks/rest/webhook", '{"sender": "m", "message": "/greet@1.2.3"}'),
    ("/webhooks/rest/webhook", '{"sender": "m", "message": "/greet@."}'),
    ("/webhooks/rest/webhook", json.dumps(
        {"sender": "m", "message": "/inform{\"city\": " + "[" * 2000 + "]" * 2000 + "}"})),
    ("/conversations/m/tracker/events", '{"event": "user", "text": "x", "timestamp": '
                                        + "9" * 401 + "}"),
    ("/conversations/m/tracker/events", '{"event": "action", "name": "utter_greet", '
                                        '"confidence": ' + "9" * 401 + "}"),
    ("/conversations/m/execute", '{"name": "utter_greet", "confidence": ' + "9" * 401 + "}"),
    ("/model/parse", '{"text": "/greet@1.2.3"}'),
]


@pytest.mark.parametrize("path,body", MALFORMED)
async def test_malformed_input_gets_400(api: httpx.AsyncClient, path: str, body: str) -> None:
    reply = await post_raw(api, path, body)
    assert reply.status_code == 400, reply.text
    assert "Traceback" not in reply.text
    await assert_readable(api, "m")


# 7: retries duplicate turns ---------------------------------------------------------------------
async def test_a_retried_message_id_is_answered_from_the_stored_turn(
        api: httpx.AsyncClient) -> None:
    first = await api.post("/webhooks/rest/webhook",
                           json={"sender": "i", "message": "/greet", "message_id": "m-1"})
    again = await api.post("/webhooks/rest/webhook",
                           json={"sender": "i", "message": "/greet", "message_id": "m-1"})
    other = await api.post("/webhooks/rest/webhook",
                           json={"sender": "i", "message": "/greet", "message_id": "m-2"})
    assert first.status_code == again.status_code == other.status_code == 200
    assert again.json() == first.json() and first.json()
    events = (await api.get("/conversations/i/tracker?include_events=ALL")).json()["events"]
    users = [e for e in events if e["event"] == "user"]
    assert [e["message_id"] for e in users] == ["m-1", "m-2"]


async def test_concurrent_retries_of_one_message_run_it_once(api: httpx.AsyncClient) -> None:
    body = {"sender": "j", "message": "/greet", "message_id": "once"}
    replies = await asyncio.gather(*(api.post("/webhooks/rest/webhook", json=body)
                                     for _ in range(5)))
    assert {r.status_code for r in replies} == {200}
    assert len({json.dumps(r.json()) for r in replies}) == 1
    events = (await api.get("/conversations/j/tracker?include_events=ALL")).json()["events"]
    assert sum(e["event"] == "user" for e in events) == 1


# 8: waiters are served in arrival order -----------------------------------------------------------
@needs_redis
async def test_redis_lock_waiters_are_served_in_arrival_order(redis_server: RedisServer) -> None:
    from bot.storage.redis_store import RedisLockStore, RedisSettings

    settings = RedisSettings(host="127.0.0.1", port=redis_server.port, section="lock_store")
    stores = [RedisLockStore(settings, key_prefix="order") for _ in range(8)]  # 8 "servers"
    granted: list[int] = []

    async def turn(index: int) -> None:
        async with stores[index].lock("conv"):
            granted.append(index)
            await asyncio.sleep(0.01)

    async with stores[0].lock("conv"):
        waiters = []
        for index in range(1, 8):
            waiters.append(asyncio.create_task(turn(index)))
            await asyncio.sleep(0.05)
    await asyncio.gather(*waiters)
    for store in stores:
        store.close()
    assert granted == list(range(1, 8))


# 9: error bodies, store outages, half-sent bodies -----------------------------------------------
async def test_error_bodies_never_echo_the_clients_values(api: httpx.AsyncClient) -> None:
    huge = "x" * 200_000
    for body in ({"event": "slot", "name": huge, "value": 1, "timestamp": huge},
                 {"event": huge}, {"event": "user", "text": 5, "input_channel": huge},
                 {"event": "slot", "name": "city", "value": 1, "metadata": huge}):
        reply = await api.post("/conversations/e/tracker/events", json=body)
        assert reply.status_code == 400, reply.text[:300]
        assert len(reply.content) < 2_000 and "xxxxxxxx" not in reply.text


@needs_redis
async def test_a_store_outage_answers_503_with_retry_after(
        tiny_manager: DialogueManager) -> None:
    from bot.storage.redis_store import RedisSettings, RedisTrackerStore

    server = RedisServer()
    try:
        tiny_manager.store = RedisTrackerStore(
            RedisSettings(host="127.0.0.1", port=server.port, socket_timeout_s=1),
            key_prefix="outage")
        async with client(create_app(tiny_manager)) as api:
            assert (await api.post("/webhooks/rest/webhook",
                                   json={"sender": "o", "message": "/greet"})).status_code == 200
            server.stop()
            for method, path in (("POST", "/webhooks/rest/webhook"),
                                 ("GET", "/conversations/o/tracker"),
                                 ("POST", "/conversations/o/predict")):
                reply = await api.request(method, path,
                                          json={"sender": "o", "message": "/greet"})
                assert reply.status_code == 503, reply.text
                assert int(reply.headers["Retry-After"]) >= 1
                assert "Traceback" not in reply.text and "127.0.0.1" not in reply.text
    finally:
        server.stop()


async def test_a_half_sent_body_times_out(tiny_manager: DialogueManager) -> None:
    app = create_app(tiny_manager, body_timeout_s=0.5)
    sent: list[dict[str, Any]] = []
    parts = [{"type": "http.request", "body": b'{"sender": "t", ', "more_body": True}]

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop(0)
        await asyncio.sleep(3600)  # the client never sends the rest
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/webhooks/rest/webhook",
             "raw_path": b"/webhooks/rest/webhook", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 5005)}
    began = time.monotonic()
    await asyncio.wait_for(app(scope, receive, send), 5)
    assert time.monotonic() - began < 2
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
