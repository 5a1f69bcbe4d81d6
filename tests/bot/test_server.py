"""The HTTP server: Rasa's HTTP API routes and payloads, the REST channel, auth, input
validation (every rejected request leaves the tracker unchanged), the 500 path, enable_api,
and a real uvicorn run."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from bot.serving.channels import CollectingOutputChannel, OutputChannel, RestInput, build_channels
from bot.state.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from bot.manager import MAX_TEXT_CHARS, DialogueManager
from bot.serving.server import create_app

TOKEN = "s3cret-token"
SECRET_TEXT = "my password is hunter2"


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def say(c: httpx.AsyncClient, sender: str, message: str) -> list[dict[str, Any]]:
    r = await c.post("/webhooks/rest/webhook", json={"sender": sender, "message": message})
    assert r.status_code == 200, r.text
    return r.json()


async def events_of(c: httpx.AsyncClient, sender: str, **params: str) -> list[dict[str, Any]]:
    r = await c.get(f"/conversations/{sender}/tracker",
                    params={"include_events": "ALL", **params})
    assert r.status_code == 200, r.text
    return r.json()["events"]


def assert_rasa_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "failure"
    assert body["code"] == status
    assert set(body) >= {"version", "status", "message", "reason", "details", "help", "code"}
    assert "Traceback" not in r.text
    return body


@pytest.fixture
async def api(tiny_manager: DialogueManager) -> AsyncIterator[httpx.AsyncClient]:
    async with client(create_app(tiny_manager, model_info={
            "model_file": "models/core", "model_id": "abc123"})) as c:
        yield c


# public routes --------------------------------------------------------------------------------
async def test_root_says_hello_and_version_has_rasa_shape(api: httpx.AsyncClient) -> None:
    r = await api.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("Hello from Xingkong: ")
    r = await api.get("/version")
    assert r.status_code == 200
    body = r.json()
    assert body["minimum_compatible_version"] == "3.0.0"
    assert isinstance(body["version"], str) and body["version"]


async def test_every_response_carries_a_request_id(api: httpx.AsyncClient) -> None:
    first, second = await api.get("/version"), await api.get("/nowhere")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_no_generated_docs_are_served(api: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert_rasa_error(await api.get(path), 404)


async def test_unknown_route_and_method_get_rasa_errors(api: httpx.AsyncClient) -> None:
    body = assert_rasa_error(await api.get("/nowhere/at/all"), 404)
    assert body["reason"] == "NotFound"
    assert "nowhere" not in body["message"]
    r = await api.delete("/version")
    assert_rasa_error(r, 405)
    assert "GET" in r.headers["allow"]


# API routes -------------------------------------------------------------------------------------
async def test_status_reports_model_info(api: httpx.AsyncClient) -> None:
    r = await api.get("/status")
    assert r.status_code == 200
    assert r.json() == {"model_file": "models/core", "model_id": "abc123",
                        "num_active_training_jobs": 0}


async def test_domain_as_json_by_default_and_yaml_on_request(
        api: httpx.AsyncClient, tiny_manager: DialogueManager) -> None:
    expected = tiny_manager.domain.to_dict()
    for accept in (None, "application/json", "*/*"):
        r = await api.get("/domain", headers={"Accept": accept} if accept else {})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == expected
    for accept in ("application/yaml", "application/x-yml", "text/yaml;q=0.9"):
        r = await api.get("/domain", headers={"Accept": accept})
        assert r.status_code == 200
        assert "yaml" in r.headers["content-type"]
        assert yaml.safe_load(r.text) == expected
    body = assert_rasa_error(await api.get("/domain", headers={"Accept": "text/html"}), 406)
    assert body["reason"] == "NotAcceptable"


async def test_model_parse_returns_parse_data_with_text(api: httpx.AsyncClient) -> None:
    r = await api.post("/model/parse", json={"text": '/inform{"city": "Paris"}',
                                             "message_id": "m-1"})
    assert r.status_code == 200
    body = r.json()
    assert body["text"] == '/inform{"city": "Paris"}'
    assert body["message_id"] == "m-1"
    assert body["intent"] == {"name": "inform", "confidence": 1.0}
    assert body["intent_ranking"][0]["name"] == "inform"
    assert [(e["entity"], e["value"]) for e in body["entities"]] == [("city", "Paris")]
    r = await api.post("/model/parse", json={"text": "hello there"})  # no NLU configured
    assert r.status_code == 200
    assert r.json()["intent"]["name"] is None
    assert r.json()["text"] == "hello there"
    assert "message_id" not in r.json()


async def test_model_parse_uses_the_parser(make_tiny_manager: Callable[..., DialogueManager],
                                           ) -> None:
    async def parser(text: str) -> dict[str, Any]:
        return {"intent": {"name": "greet", "confidence": 0.9}, "entities": [],
                "intent_ranking": [{"name": "greet", "confidence": 0.9}]}

    async with client(create_app(make_tiny_manager(parser=parser))) as c:
        r = await c.post("/model/parse", json={"text": "hi"})
    assert r.status_code == 200
    assert r.json() == {"intent": {"name": "greet", "confidence": 0.9}, "entities": [],
                        "intent_ranking": [{"name": "greet", "confidence": 0.9}], "text": "hi"}


async def test_tracker_of_a_new_conversation_is_empty(api: httpx.AsyncClient) -> None:
    r = await api.get("/conversations/nobody/tracker")
    assert r.status_code == 200
    state = r.json()
    assert state["sender_id"] == "nobody"
    assert state["events"] == []
    assert state["slots"] == {"city": None}
    assert set(state) >= {"latest_message", "latest_event_time", "followup_action", "paused",
                          "latest_input_channel", "active_loop", "latest_action",
                          "latest_action_name"}


async def test_tracker_event_verbosity(api: httpx.AsyncClient) -> None:
    await say(api, "u1", "/greet")
    await api.post("/conversations/u1/tracker/events", json={"event": "restart"})
    await say(api, "u1", "/goodbye")
    every = await events_of(api, "u1")
    after_restart = (await api.get("/conversations/u1/tracker")).json()["events"]  # default
    applied = (await api.get("/conversations/u1/tracker",
                             params={"include_events": "applied"})).json()["events"]
    none = (await api.get("/conversations/u1/tracker",
                          params={"include_events": "NONE"})).json()["events"]
    assert none is None
    restart = next(i for i, e in enumerate(every) if e["event"] == "restart")
    assert after_restart == every[restart + 1:]
    assert len(applied) < len(every)
    assert [e["event"] for e in every].count("user") == 2


async def test_rest_webhook_answers_with_the_bot_messages(api: httpx.AsyncClient) -> None:
    messages = await say(api, "u1", "/greet")
    assert len(messages) == 1
    assert messages[0]["recipient_id"] == "u1"
    assert messages[0]["text"] == "Hello! How can I help?"
    assert messages[0]["buttons"] == [{"title": "Say bye", "payload": "/goodbye"}]
    messages = await say(api, "u1", '/inform{"city": "Paris"}')
    assert [m["text"] for m in messages] == ["Noted: Paris."]
    state = (await api.get("/conversations/u1/tracker")).json()
    assert state["slots"]["city"] == "Paris"
    assert state["latest_input_channel"] == "rest"
    assert state["latest_action_name"] == "action_listen"


async def test_rest_webhook_health_default_sender_and_metadata(api: httpx.AsyncClient) -> None:
    r = await api.get("/webhooks/rest/")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    r = await api.post("/webhooks/rest/webhook",
                       json={"message": "/goodbye", "metadata": {"lang": "en"}})
    assert r.status_code == 200
    assert r.json()[0]["recipient_id"] == "default"
    user = [e for e in await events_of(api, "default") if e["event"] == "user"]
    assert user[-1]["metadata"] == {"lang": "en"}
    assert user[-1]["input_channel"] == "rest"


async def test_concurrent_messages_of_one_conversation_are_all_kept(
        api: httpx.AsyncClient) -> None:
    await asyncio.gather(*(say(api, "busy", "/greet") for _ in range(5)))
    events = await events_of(api, "busy")
    assert [e["event"] for e in events].count("user") == 5
    assert [e.get("name") for e in events].count("utter_greet") == 5


async def test_log_message_adds_the_user_message_without_predicting(
        api: httpx.AsyncClient) -> None:
    r = await api.post("/conversations/u2/messages", json={"text": "/greet", "sender": "user"})
    assert r.status_code == 200
    state = r.json()
    kinds = [e["event"] for e in state["events"]]
    assert kinds == ["action", "session_started", "action", "user"]  # a session, then the text
    assert state["latest_message"]["intent"]["name"] == "greet"
    assert not any(e["event"] == "bot" for e in state["events"])
    assert await events_of(api, "u2") == state["events"]  # saved


async def test_log_message_with_parse_data(api: httpx.AsyncClient) -> None:
    await say(api, "u3", "/greet")
    before = await events_of(api, "u3")
    parse_data = {"intent": {"name": "inform", "confidence": 0.8},
                  "entities": [{"entity": "city", "value": "Rome"}]}
    r = await api.post("/conversations/u3/messages",
                       json={"text": "Rome please", "sender": "user", "parse_data": parse_data})
    assert r.status_code == 200
    events = r.json()["events"]
    assert events[:len(before)] == before
    assert len(events) == len(before) + 1
    assert events[-1]["text"] == "Rome please"
    assert events[-1]["parse_data"]["intent"] == {"name": "inform", "confidence": 0.8}


async def test_trigger_intent_runs_a_turn(api: httpx.AsyncClient) -> None:
    r = await api.post("/conversations/u4/trigger_intent",
                       json={"name": "inform", "entities": {"city": "Oslo"}})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"tracker", "messages"}
    assert [m["text"] for m in body["messages"]] == ["Noted: Oslo."]
    assert body["tracker"]["slots"]["city"] == "Oslo"
    r = await api.post("/conversations/u4/trigger_intent",
                       json={"name": "inform", "entities": [{"entity": "city", "value": "Rome"}]})
    assert r.json()["tracker"]["slots"]["city"] == "Rome"
    r = await api.post("/conversations/u4/trigger_intent", json={"name": "greet"},
                       params={"include_events": "NONE"})
    assert r.json()["messages"][0]["buttons"] == [{"title": "Say bye", "payload": "/goodbye"}]
    assert r.json()["tracker"]["events"] is None


async def test_execute_runs_the_action(api: httpx.AsyncClient) -> None:
    await say(api, "u5", "/greet")
    r = await api.post("/conversations/u5/execute",
                       json={"name": "utter_goodbye", "policy": "manual", "confidence": 0.5})
    assert r.status_code == 200
    body = r.json()
    assert body["messages"][0]["text"] == "Bye!"
    executed = [e for e in body["tracker"]["events"]
                if e["event"] == "action" and e["name"] == "utter_goodbye"]
    assert executed[-1]["policy"] == "manual"
    assert executed[-1]["confidence"] == 0.5


async def test_predict_scores_every_action_and_saves_the_session(
        api: httpx.AsyncClient, tiny_manager: DialogueManager) -> None:
    r = await api.post("/conversations/u6/messages", json={"text": "/greet", "sender": "user"})
    assert r.status_code == 200
    r = await api.post("/conversations/u6/predict")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"scores", "policy", "confidence", "tracker"}
    assert body["scores"][0] == {"action": "utter_greet", "score": 1.0}
    assert {s["action"] for s in body["scores"]} == set(tiny_manager.domain.action_names)
    assert body["confidence"] == 1.0
    assert isinstance(body["policy"], str)
    assert body["tracker"]["events"] == await events_of(api, "u6")  # nothing else was added


async def test_append_one_event_or_a_list(api: httpx.AsyncClient) -> None:
    await say(api, "u7", "/greet")
    before = await events_of(api, "u7")
    r = await api.post("/conversations/u7/tracker/events",
                       json={"event": "slot", "name": "city", "value": "Lima"})
    assert r.status_code == 200
    assert r.json()["slots"]["city"] == "Lima"
    r = await api.post("/conversations/u7/tracker/events",
                       json=[{"event": "slot", "name": "city", "value": "Kyiv"},
                             {"event": "pause"}])
    assert r.status_code == 200
    assert r.json()["paused"] is True
    after = await events_of(api, "u7")
    assert after[:len(before)] == before
    assert [e["event"] for e in after[len(before):]] == ["slot", "slot", "pause"]


async def test_appending_to_a_new_conversation_starts_its_session(
        api: httpx.AsyncClient) -> None:
    r = await api.post("/conversations/fresh/tracker/events",
                       json={"event": "slot", "name": "city", "value": "Lima"})
    assert r.status_code == 200
    assert [e["event"] for e in r.json()["events"]] == ["action", "session_started", "action",
                                                        "slot"]
    messages = await say(api, "fresh", "/greet")  # no second session start wipes the slot
    assert messages[0]["text"] == "Hello! How can I help?"
    events = await events_of(api, "fresh")
    assert [e["event"] for e in events].count("session_started") == 1
    assert (await api.get("/conversations/fresh/tracker")).json()["slots"]["city"] == "Lima"


async def test_replace_events(api: httpx.AsyncClient, tiny_manager: DialogueManager) -> None:
    await say(api, "u8", "/greet")
    new = [ActionExecuted(name="action_listen").to_dict(),
           UserUttered(text="/inform", parse_data={"intent": {"name": "inform"}}).to_dict(),
           {"event": "slot", "name": "city", "value": "Cairo"}]
    r = await api.put("/conversations/u8/tracker/events", json=new)
    assert r.status_code == 200
    assert r.json()["slots"]["city"] == "Cairo"
    assert [e["event"] for e in await events_of(api, "u8")] == ["action", "user", "slot"]
    r = await api.put("/conversations/u8/tracker/events", json=[])
    assert r.status_code == 200
    assert await events_of(api, "u8") == []
    assert tiny_manager.store.retrieve("u8") is None


# auth ------------------------------------------------------------------------------------------
API_REQUESTS = [
    ("GET", "/status", None),
    ("GET", "/domain", None),
    ("POST", "/model/parse", {"text": "/greet"}),
    ("GET", "/conversations/a/tracker", None),
    ("POST", "/conversations/a/messages", {"text": "/greet", "sender": "user"}),
    ("POST", "/conversations/a/trigger_intent", {"name": "greet"}),
    ("POST", "/conversations/a/execute", {"name": "utter_greet"}),
    ("POST", "/conversations/a/predict", None),
    ("POST", "/conversations/a/tracker/events", {"event": "pause"}),
    ("PUT", "/conversations/a/tracker/events", []),
]


@pytest.mark.parametrize(("method", "path", "body"), API_REQUESTS)
async def test_api_routes_need_the_token(tiny_manager: DialogueManager, method: str, path: str,
                                         body: Any) -> None:
    async with client(create_app(tiny_manager, auth_token=TOKEN)) as c:
        missing = await c.request(method, path, json=body)
        body401 = assert_rasa_error(missing, 401)
        assert body401["reason"] == "NotAuthenticated"
        assert body401["details"] == {}
        wrong = await c.request(method, path, json=body, params={"token": "nope"})
        assert assert_rasa_error(wrong, 403)["reason"] == "NotAuthorized"
        wrong_bearer = await c.request(method, path, json=body,
                                       headers={"Authorization": "Bearer nope"})
        assert_rasa_error(wrong_bearer, 403)
        assert "nope" not in wrong.text and TOKEN not in wrong.text
        assert tiny_manager.store.keys() == []  # nothing ran
        by_query = await c.request(method, path, json=body, params={"token": TOKEN})
        assert by_query.status_code == 200, by_query.text
        by_bearer = await c.request(method, path, json=body,
                                    headers={"Authorization": f"Bearer {TOKEN}"})
        assert by_bearer.status_code == 200, by_bearer.text


@pytest.mark.parametrize(("method", "path", "body"), API_REQUESTS)
async def test_api_routes_are_open_without_a_token(tiny_manager: DialogueManager, method: str,
                                                   path: str, body: Any) -> None:
    async with client(create_app(tiny_manager)) as c:
        r = await c.request(method, path, json=body)
    assert r.status_code == 200, r.text


async def test_public_routes_and_webhooks_need_no_token(tiny_manager: DialogueManager) -> None:
    async with client(create_app(tiny_manager, auth_token=TOKEN)) as c:
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/version")).status_code == 200
        assert (await c.get("/webhooks/rest/")).status_code == 200
        assert (await say(c, "pub", "/greet"))[0]["text"] == "Hello! How can I help?"
        r = await c.get("/status", headers={"Authorization": "Basic abc"})
        assert_rasa_error(r, 401)  # only bearer tokens count


def test_an_empty_auth_token_is_refused(tiny_manager: DialogueManager) -> None:
    with pytest.raises(ValueError, match="auth_token"):
        create_app(tiny_manager, auth_token="")


# bad input: a 4xx and the tracker unchanged ----------------------------------------------------
TOO_LONG = "x" * (MAX_TEXT_CHARS + 1)
BAD_REQUESTS: list[tuple[str, str, str, Any, int, str | None]] = [
    # (case, method, path, json body or raw bytes, status, field named in details)
    ("webhook not json", "POST", "/webhooks/rest/webhook", b"{not json", 400, None),
    ("webhook empty body", "POST", "/webhooks/rest/webhook", b"", 400, None),
    ("webhook NaN", "POST", "/webhooks/rest/webhook",
     b'{"sender": "c", "message": NaN}', 400, None),
    ("webhook bad utf-8", "POST", "/webhooks/rest/webhook", b'{"message": "\xff\xfe"}', 400,
     None),
    ("webhook list body", "POST", "/webhooks/rest/webhook", ["c", "/greet"], 400, None),
    ("webhook missing message", "POST", "/webhooks/rest/webhook", {"sender": "c"}, 400,
     "message"),
    ("webhook message not a string", "POST", "/webhooks/rest/webhook",
     {"sender": "c", "message": 42}, 400, "message"),
    ("webhook sender not a string", "POST", "/webhooks/rest/webhook",
     {"sender": ["c"], "message": "/greet"}, 400, "sender"),
    ("webhook metadata not an object", "POST", "/webhooks/rest/webhook",
     {"sender": "c", "message": "/greet", "metadata": "x"}, 400, "metadata"),
    ("webhook blank sender", "POST", "/webhooks/rest/webhook",
     {"sender": " ", "message": "/greet"}, 400, "sender"),
    ("webhook empty text", "POST", "/webhooks/rest/webhook", {"sender": "c", "message": ""},
     400, "message"),
    ("webhook blank text", "POST", "/webhooks/rest/webhook",
     {"sender": "c", "message": " \n\t "}, 400, "message"),
    ("webhook text too long", "POST", "/webhooks/rest/webhook",
     {"sender": "c", "message": TOO_LONG}, 413, "message"),
    ("parse missing text", "POST", "/model/parse", {"message_id": "x"}, 400, "text"),
    ("parse blank text", "POST", "/model/parse", {"text": "   "}, 400, "text"),
    ("parse text too long", "POST", "/model/parse", {"text": TOO_LONG}, 413, "text"),
    ("tracker bad verbosity", "GET", "/conversations/c/tracker?include_events=SOME", None, 400,
     "include_events"),
    ("messages not json", "POST", "/conversations/c/messages", b"text=hi", 400, None),
    ("messages missing sender", "POST", "/conversations/c/messages", {"text": "/greet"}, 400,
     "sender"),
    ("messages bot sender", "POST", "/conversations/c/messages",
     {"text": "/greet", "sender": "bot"}, 400, "sender"),
    ("messages empty text", "POST", "/conversations/c/messages", {"text": "", "sender": "user"},
     400, "text"),
    ("messages text too long", "POST", "/conversations/c/messages",
     {"text": TOO_LONG, "sender": "user"}, 413, "text"),
    ("messages bad parse_data", "POST", "/conversations/c/messages",
     {"text": "/greet", "sender": "user", "parse_data": {"intent": "greet"}}, 400,
     "parse_data"),
    ("messages bad verbosity", "POST", "/conversations/c/messages?include_events=x",
     {"text": "/greet", "sender": "user"}, 400, "include_events"),
    ("trigger missing name", "POST", "/conversations/c/trigger_intent", {}, 400, "name"),
    ("trigger empty name", "POST", "/conversations/c/trigger_intent", {"name": " "}, 400,
     "name"),
    ("trigger unknown intent", "POST", "/conversations/c/trigger_intent", {"name": "dance"},
     404, "name"),
    ("trigger bad entities", "POST", "/conversations/c/trigger_intent",
     {"name": "inform", "entities": "city=Paris"}, 400, "entities"),
    ("trigger bad entity item", "POST", "/conversations/c/trigger_intent",
     {"name": "inform", "entities": [{"value": "Paris"}]}, 400, "entities.0"),
    ("execute name not a string", "POST", "/conversations/c/execute", {"name": 3}, 400, "name"),
    ("execute unknown action", "POST", "/conversations/c/execute", {"name": "action_dance"},
     404, "name"),
    ("execute unknown response", "POST", "/conversations/c/execute", {"name": "utter_nothing"},
     404, "name"),
    ("execute bad confidence", "POST", "/conversations/c/execute",
     {"name": "utter_greet", "confidence": "high"}, 400, "confidence"),
    ("execute confidence out of range", "POST", "/conversations/c/execute",
     {"name": "utter_greet", "confidence": 7}, 400, "confidence"),
    ("predict bad verbosity", "POST", "/conversations/c/predict?include_events=x", None, 400,
     "include_events"),
    ("append unknown event", "POST", "/conversations/c/tracker/events", {"event": "dance"}, 400,
     "events"),
    ("append event without type", "POST", "/conversations/c/tracker/events", {"name": "x"},
     400, "events"),
    ("append bad event in list", "POST", "/conversations/c/tracker/events",
     [{"event": "pause"}, {"event": "slot", "value": 1}], 400, "events"),
    ("append bad timestamp", "POST", "/conversations/c/tracker/events",
     {"event": "pause", "timestamp": "now"}, 400, "events"),
    ("append empty list", "POST", "/conversations/c/tracker/events", [], 400, None),
    ("append not json", "POST", "/conversations/c/tracker/events", b"[{", 400, None),
    ("replace with an object", "PUT", "/conversations/c/tracker/events", {"event": "pause"},
     400, None),
    ("replace bad event", "PUT", "/conversations/c/tracker/events", [{"event": "dance"}], 400,
     "events"),
    ("conversation id too long", "POST", "/conversations/" + "c" * 300 + "/tracker/events",
     {"event": "pause"}, 400, "conversation_id"),
    ("conversation id blank", "POST", "/conversations/%20/trigger_intent", {"name": "greet"},
     400, "conversation_id"),
]


@pytest.mark.parametrize(("case", "method", "path", "body", "status", "field"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
async def test_bad_input_is_rejected_and_the_tracker_unchanged(
        api: httpx.AsyncClient, case: str, method: str, path: str, body: Any, status: int,
        field: str | None) -> None:
    await say(api, "c", "/greet")
    before = await events_of(api, "c")
    kwargs: dict[str, Any] = ({"content": body, "headers": {"content-type": "application/json"}}
                              if isinstance(body, bytes) else {"json": body})
    r = await api.request(method, path, **kwargs)
    error = assert_rasa_error(r, status)
    if field is not None:
        assert error["details"]["parameter"] == field
        assert field.split(".")[0] in error["message"]
    assert "Paris" not in r.text and "city=" not in r.text and "xxxxxxxxxx" not in r.text
    assert await events_of(api, "c") == before


async def test_empty_text_message_wording(api: httpx.AsyncClient) -> None:
    r = await api.post("/webhooks/rest/webhook", json={"sender": "c", "message": "  "})
    assert assert_rasa_error(r, 400)["message"] == "message text must not be empty"
    r = await api.post("/model/parse", json={"text": TOO_LONG})
    assert str(MAX_TEXT_CHARS) in assert_rasa_error(r, 413)["message"]


async def test_bad_event_answer_carries_the_event_error(api: httpx.AsyncClient) -> None:
    r = await api.post("/conversations/c/tracker/events", json=[{"event": "pause"},
                                                                {"event": "dance"}])
    message = assert_rasa_error(r, 400)["message"]
    assert "Event #1" in message and "Unknown event type" in message


async def test_bodies_over_the_limit_get_413_unread(tiny_manager: DialogueManager) -> None:
    async with client(create_app(tiny_manager, max_body_bytes=200)) as c:
        await say(c, "big", "/greet")
        before = await events_of(c, "big")
        padded = {"sender": "big", "message": "/goodbye", "metadata": {"pad": "p" * 300}}
        r = await c.post("/webhooks/rest/webhook", json=padded)  # Content-Length says so
        body = assert_rasa_error(r, 413)
        assert "200" in body["message"] and "ppp" not in r.text

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            yield b'{"sender": "big", "message": "/goodbye", "metadata": {"pad": "'
            for _ in range(10):
                yield b"p" * 50
            yield b'"}}'

        r = await c.post("/webhooks/rest/webhook", content=chunks(),
                         headers={"content-type": "application/json"})
        assert_rasa_error(r, 413)
        r = await c.post("/conversations/big/tracker/events",
                         json=[{"event": "pause"}] * 20)
        assert_rasa_error(r, 413)
        r = await c.post("/webhooks/rest/webhook", content=b"{}",
                         headers={"content-length": "two"})
        assert_rasa_error(r, 400)
        assert await events_of(c, "big") == before
        assert (await say(c, "big", "/goodbye"))[0]["text"] == "Bye!"  # small bodies still fine


# the 500 path ----------------------------------------------------------------------------------
async def test_a_crashing_parser_gives_internal_error_without_leaking(
        make_tiny_manager: Callable[..., DialogueManager],
        caplog: pytest.LogCaptureFixture) -> None:
    async def parser(text: str) -> dict[str, Any]:
        raise RuntimeError(f"NLU exploded on {text}")

    async with client(create_app(make_tiny_manager(parser=parser))) as c:
        await say(c, "boom", "/greet")  # `/intent` payloads skip the parser
        before = await events_of(c, "boom")
        for path, body in (("/webhooks/rest/webhook", {"sender": "boom", "message": SECRET_TEXT}),
                           ("/model/parse", {"text": SECRET_TEXT}),
                           ("/conversations/boom/messages",
                            {"text": SECRET_TEXT, "sender": "user"})):
            r = await c.post(path, json=body)
            assert r.status_code == 500
            error = r.json()
            assert error["error"] == "internal_error"
            assert error["request_id"] == r.headers["x-request-id"]
            assert error["status"] == "failure" and error["code"] == 500
            for leak in ("hunter2", "exploded", "RuntimeError", "Traceback"):
                assert leak not in r.text
        assert await events_of(c, "boom") == before
    logged = [rec for rec in caplog.records if rec.name == "bot.serving.server"
              and rec.levelname == "ERROR"]
    assert len(logged) == 3
    assert all(rec.exc_info is not None for rec in logged)
    assert all("hunter2" not in rec.getMessage() for rec in logged)


# enable_api=False --------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "body"), API_REQUESTS)
async def test_without_the_api_only_public_routes_and_channels_exist(
        tiny_manager: DialogueManager, method: str, path: str, body: Any) -> None:
    async with client(create_app(tiny_manager, enable_api=False)) as c:
        assert_rasa_error(await c.request(method, path, json=body), 404)
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/version")).status_code == 200
        assert (await say(c, "off", "/greet"))[0]["recipient_id"] == "off"


# channels --------------------------------------------------------------------------------------
def test_channels_from_credentials(caplog: pytest.LogCaptureFixture) -> None:
    assert [c.name for c in build_channels(None)] == ["rest"]
    assert [c.name for c in build_channels({})] == ["rest"]
    assert [c.name for c in build_channels({"rest": None, "facebook": {"verify": "x"}})
            ] == ["rest"]
    assert "facebook" in caplog.text
    assert build_channels({"twilio": {"account_sid": "t"}}) == []
    assert isinstance(build_channels({"rest": {}})[0], RestInput)


async def test_no_rest_channel_when_credentials_leave_it_out(
        tiny_manager: DialogueManager) -> None:
    async with client(create_app(tiny_manager, credentials={"facebook": {"verify": "x"}})) as c:
        r = await c.post("/webhooks/rest/webhook", json={"sender": "a", "message": "/greet"})
        assert_rasa_error(r, 404)
        assert (await c.get("/version")).status_code == 200


async def test_output_channel_rich_senders_default_to_text() -> None:
    class TextOnly(OutputChannel):
        """Implements only send_text: the rich senders fall back to it."""

        name = "text_only"

        def __init__(self) -> None:
            self.texts: list[str] = []

        async def send_text(self, recipient_id: str, text: str) -> None:
            self.texts.append(f"{recipient_id}> {text}")

    out = TextOnly()
    await out.send_response("r", {"text": "Pick", "buttons": [{"title": "A", "payload": "/a"}],
                                  "image": "http://img", "custom": {"k": 1}})
    assert out.texts == ["r> Pick\n1: A (/a)", "r> Image: http://img", 'r> {"k": 1}']
    collector = CollectingOutputChannel()
    message = {"recipient_id": "r", "text": "hi", "buttons": [{"title": "A", "payload": "/a"}]}
    await collector.send_response("r", message)
    await collector.send_image("r", "http://img")
    assert collector.messages == [message, {"recipient_id": "r", "image": "http://img"}]
    assert collector.latest() == {"recipient_id": "r", "image": "http://img"}


# a real server ---------------------------------------------------------------------------------
async def test_uvicorn_serves_the_app(tiny_manager: DialogueManager) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(tiny_manager), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            answers = await asyncio.gather(*(c.post("/webhooks/rest/webhook", json={
                "sender": f"s{i}", "message": "/greet"}) for i in range(4)))
            assert [a.json()[0]["recipient_id"] for a in answers] == ["s0", "s1", "s2", "s3"]
            r = await c.get("/conversations/s0/tracker")
            assert [e["event"] for e in r.json()["events"]].count("bot") == 1
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_bot_events_in_tracker_match_the_rest_answer(
        tiny_manager: DialogueManager) -> None:
    async with client(create_app(tiny_manager)) as c:
        answer = await say(c, "match", "/greet")
    events = tiny_manager.retrieve("match").events
    assert [e.text for e in events if isinstance(e, BotUttered)] == [m["text"] for m in answer]
    assert isinstance(events[1], SessionStarted)
