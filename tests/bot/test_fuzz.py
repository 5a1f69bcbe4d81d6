"""Property-based fuzzing of every HTTP route with hypothesis (issue 16: no input may answer
500 or leave a conversation unreadable).

Bodies are drawn from shapes close to what each route expects (Rasa events, REST messages,
`/intent{...}` payloads) with every value replaced at random by hostile JSON: non-finite and
huge numbers, deep nesting, wrong types, long strings. After each request the conversation it
touched must still answer GET tracker, POST predict and a new message. The default run is
bounded (about 20 s); ``-m slow`` runs the long one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bot.manager import DialogueManager
from bot.serving.server import create_app
from bot.state.events import EVENT_TYPES

SENDERS = ["fz-a", "fz-b"]
CONVERSATION = "/conversations/{id}"
# Every route of the app with the body shape it expects ("" for none).
ROUTES = {
    ("GET", "/"): "none", ("GET", "/version"): "none", ("GET", "/status"): "none",
    ("GET", "/domain"): "none", ("GET", "/webhooks/rest/"): "none",
    ("POST", "/webhooks/rest/webhook"): "rest",
    ("POST", "/model/parse"): "parse",
    ("GET", CONVERSATION + "/tracker"): "none",
    ("POST", CONVERSATION + "/messages"): "log",
    ("POST", CONVERSATION + "/trigger_intent"): "trigger",
    ("POST", CONVERSATION + "/execute"): "execute",
    ("POST", CONVERSATION + "/predict"): "none",
    ("POST", CONVERSATION + "/tracker/events"): "events",
    ("PUT", CONVERSATION + "/tracker/events"): "event_list",
}

# hostile JSON ------------------------------------------------------------------------------------
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["greet", "inform", "goodbye", "city", "action_listen", "utter_greet", "",
                     "x" * 3000, "\x00", "/greet", "2026-01-01T00:00:00"]),
)
values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def maybe(shape: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the expected shape, sometimes any value at all."""
    return st.one_of(shape, shape, shape, values)


intent_names = maybe(st.sampled_from(["greet", "inform", "goodbye", "nope"]))
entity_lists = maybe(st.lists(st.fixed_dictionaries(
    {"entity": maybe(st.sampled_from(["city", "x"])), "value": values}), max_size=3))
parse_data = maybe(st.fixed_dictionaries({
    "intent": maybe(st.fixed_dictionaries({"name": intent_names, "confidence": values})),
    "entities": entity_lists}))
events = st.fixed_dictionaries(
    {"event": maybe(st.sampled_from(sorted(EVENT_TYPES)))},
    optional={"name": maybe(st.sampled_from(["city", "utter_greet", "action_listen"])),
              "value": values, "text": maybe(st.text(max_size=10)), "parse_data": parse_data,
              "timestamp": values, "confidence": values, "policy": values, "metadata": values,
              "entities": entity_lists, "date_time": values, "intent": values,
              "kill_on_user_msg": values, "data": values, "input_channel": values})
payload_texts = st.one_of(
    st.builds(lambda i, v: f"/{i}{json.dumps(v, allow_nan=True)}",
              st.sampled_from(["greet", "inform"]),
              st.dictionaries(st.sampled_from(["city", "x"]), values, max_size=2)),
    st.builds(lambda i, c: f"/{i}@{c}", st.sampled_from(["greet", "inform"]),
              st.text(alphabet="0123456789.e-", max_size=6)),
    st.text(max_size=30), st.sampled_from(["/greet", "hello", "/inform{\"city\": 1e999}"]))
BODIES: dict[str, st.SearchStrategy[Any]] = {
    "none": st.none(),
    "rest": st.fixed_dictionaries({"sender": maybe(st.sampled_from(SENDERS)),
                                   "message": maybe(payload_texts)},
                                  optional={"metadata": values, "message_id": values}),
    "parse": st.fixed_dictionaries({"text": maybe(payload_texts)},
                                   optional={"message_id": values}),
    "log": st.fixed_dictionaries({"text": maybe(payload_texts), "sender": maybe(st.just("user"))},
                                 optional={"parse_data": parse_data, "message_id": values}),
    "trigger": st.fixed_dictionaries({"name": intent_names}, optional={"entities": maybe(
        st.dictionaries(st.sampled_from(["city", "x"]), values, max_size=2))}),
    "execute": st.fixed_dictionaries({"name": maybe(st.sampled_from(["utter_greet",
                                                                     "action_listen"]))},
                                     optional={"policy": values, "confidence": values}),
    "events": st.one_of(events, st.lists(events, max_size=3)),
    "event_list": maybe(st.lists(events, max_size=3)),
}
requests = st.sampled_from(sorted(ROUTES)).flatmap(lambda route: st.tuples(
    st.just(route), st.sampled_from(SENDERS), st.one_of(
        BODIES[ROUTES[route]], BODIES[ROUTES[route]], BODIES[ROUTES[route]], values,
        st.just("[" * 2000), st.binary(max_size=30))))


def encode(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str) and body.startswith("["):
        return body.encode()
    return json.dumps(body, allow_nan=True).encode()  # NaN/Infinity tokens on purpose


@pytest.fixture
def app_client(tiny_manager: DialogueManager) -> Iterator[TestClient]:
    with TestClient(create_app(tiny_manager), raise_server_exceptions=False) as client:
        yield client


def test_the_fuzzer_covers_every_route(tiny_manager: DialogueManager) -> None:
    def walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
        for route in routes:
            if hasattr(route, "original_router"):  # an included router
                yield from walk(route.original_router.routes,
                                prefix + route.include_context.prefix)
                continue
            for method in getattr(route, "methods", ()):
                yield method, (prefix + route.path).replace("{conversation_id}", "{id}")

    assert set(walk(create_app(tiny_manager).routes)) == set(ROUTES)


def check_request(client: TestClient, request: tuple[tuple[str, str], str, Any]) -> None:
    (method, template), sender, body = request
    path = template.replace("{id}", sender)
    reply = client.request(method, path, content=encode(body),
                           headers={"content-type": "application/json"})
    assert reply.status_code < 500, (method, template, reply.status_code, reply.text[:300])
    assert "Traceback" not in reply.text
    for target in SENDERS:  # no conversation is poisoned by what was just sent
        tracker = client.get(f"/conversations/{target}/tracker?include_events=ALL")
        assert tracker.status_code == 200, (method, template, tracker.text[:300])
        assert client.post(f"/conversations/{target}/predict").status_code == 200
    turn = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": "/greet"})
    assert turn.status_code == 200, (method, template, turn.text[:300])


_FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow, HealthCheck.data_too_large])


@_FAST
@given(request=requests)
def test_no_request_answers_500_or_poisons_a_conversation(
        app_client: TestClient, request: tuple[tuple[str, str], str, Any]) -> None:
    check_request(app_client, request)


@pytest.mark.slow
@settings(_FAST, max_examples=3000, derandomize=False)
@given(request=requests)
def test_no_request_answers_500_or_poisons_a_conversation_long(
        app_client: TestClient, request: tuple[tuple[str, str], str, Any]) -> None:
    check_request(app_client, request)
