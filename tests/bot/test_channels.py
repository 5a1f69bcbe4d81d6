"""Channels against the platforms' documented request bodies: callback, telegram and slack
through the ASGI app with a mock transport standing in for the platform (the outbound
client is the one the channels really use), socketio with a real Socket.IO client against a
real uvicorn server. Bad signatures: 401, no detail, no conversation touched."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.manager import DialogueManager
from bot.serving.channels import (
    ChannelServices,
    InMemorySeenIds,
    RedisSeenIds,
    build_channels,
)
from bot.serving.channels.slack import SlackOutput
from bot.serving.channels.telegram import NON_TEXT_REPLY, TelegramOutput
from bot.serving.server import create_app
from bot.errors import ConfigError
from tests.bot.test_redis_stores import redis_server  # noqa: F401 - the fixture

GREETING = "Hello! How can I help?"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TELEGRAM_SECRET = "tg-secret_123"

# Telegram's Bot API docs ("Testing your bot with updates"), text changed to a payload
TELEGRAM_MESSAGE = {
    "update_id": 10000,
    "message": {
        "date": 1441645532,
        "chat": {"last_name": "Test Lastname", "id": 1111111, "type": "private",
                 "first_name": "Test Firstname", "username": "Testusername"},
        "message_id": 1365,
        "from": {"last_name": "Test Lastname", "id": 1111111, "first_name": "Test Firstname",
                 "username": "Testusername"},
        "text": "/greet",
    },
}
TELEGRAM_PHOTO = {
    "update_id": 10001,
    "message": {
        "date": 1441645532, "message_id": 1366,
        "chat": {"id": 1111111, "type": "private", "first_name": "Test Firstname"},
        "from": {"id": 1111111, "first_name": "Test Firstname"},
        "photo": [{"file_id": "AgADBAADr6cxG", "file_unique_id": "AQADr6cxG", "file_size": 1234,
                   "width": 90, "height": 67}],
    },
}
TELEGRAM_CALLBACK = {
    "update_id": 10002,
    "callback_query": {
        "id": "4382bfdwdsb323b2d9",
        "from": {"id": 1111111, "first_name": "Test Firstname", "username": "Testusername"},
        "message": {"message_id": 1367, "date": 1441645532,
                    "chat": {"id": 1111111, "type": "private"}, "text": GREETING},
        "chat_instance": "-12345",
        "data": "/goodbye",
    },
}
# Slack's Events API docs: a direct message to the app, and the URL verification handshake
SLACK_MESSAGE = {
    "token": "XXYYZZ", "team_id": "TXXXXXXXX", "api_app_id": "AXXXXXXXXX",
    "event": {"type": "message", "channel": "D024BE91L", "user": "U2147483697",
              "text": "/greet", "ts": "1355517523.000005", "event_ts": "1355517523.000005",
              "channel_type": "im"},
    "type": "event_callback", "authed_users": ["UXXXXXXX1"], "event_id": "Ev08MFMKH6",
    "event_time": 1355517523,
}
SLACK_CHALLENGE = {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
                   "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                   "type": "url_verification"}


class FakePlatform:
    """The platform's side of the outbound HTTP client: records every call, answers ok."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.delay_s = delay_s

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.calls.append((str(request.url), json.loads(request.content or b"{}")))
        return httpx.Response(200, json={"ok": True, "result": {}})

    def services(self, seen: Any = None) -> ChannelServices:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return ChannelServices(http=http, seen=seen if seen is not None else InMemorySeenIds())

    def bodies(self, method: str) -> list[dict[str, Any]]:
        return [body for url, body in self.calls if url.endswith("/" + method)]


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform()


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def user_texts(manager: DialogueManager, sender: str) -> list[str]:
    tracker = manager.store.retrieve(sender)
    if tracker is None:
        return []
    return [e.text for e in tracker.events if type(e).__name__ == "UserUttered"]


def assert_no_detail(r: httpx.Response) -> None:
    assert r.status_code == 401
    assert r.json()["details"] == {} and "Traceback" not in r.text
    assert "signature" not in r.text.lower() and "secret" not in r.text.lower()


# credentials.yml ---------------------------------------------------------------------------------
def test_every_rasa_channel_is_built_from_credentials(platform: FakePlatform) -> None:
    channels = build_channels({
        "rest": None, "callback": {"url": "http://localhost:5034/bot"},
        "socketio": {"user_message_evt": "user_uttered", "bot_message_evt": "bot_uttered"},
        "telegram": {"access_token": "123:abc", "verify": "bot", "secret_token": "s"},
        "slack": {"slack_token": "xoxb-1", "slack_signing_secret": "x"},
        "facebook": {"verify": "x"}}, platform.services())
    assert [c.name for c in channels] == ["rest", "callback", "socketio", "telegram", "slack"]


@pytest.mark.parametrize(("credentials", "key"), [
    ({"callback": {}}, "callback.url"),
    ({"telegram": {"verify": "bot"}}, "telegram.access_token"),
    ({"slack": {"slack_token": "xoxb-1"}}, "slack.slack_signing_secret"),
    ({"slack": {"slack_signing_secret": "x"}}, "slack.slack_token"),
])
def test_missing_channel_settings_stop_startup_naming_the_key(
        credentials: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_channels(credentials)


# callback ----------------------------------------------------------------------------------------
async def test_callback_posts_each_bot_message_to_the_url(
        tiny_manager: DialogueManager, platform: FakePlatform) -> None:
    app = create_app(tiny_manager, credentials={"callback": {"url": "http://localhost:5034/bot"}},
                     channel_services=platform.services())
    async with client(app) as c:
        r = await c.post("/webhooks/callback/webhook", json={"sender": "cb", "message": "/greet"})
    assert r.status_code == 200 and r.text == "success"
    assert platform.calls == [("http://localhost:5034/bot", {
        "recipient_id": "cb", "text": GREETING, "metadata": {"utter_action": "utter_greet"},
        "buttons": [{"title": "Say bye", "payload": "/goodbye"}]})]


# telegram ----------------------------------------------------------------------------------------
@pytest.fixture
def telegram_app(tiny_manager: DialogueManager, platform: FakePlatform) -> Any:
    return create_app(tiny_manager, enable_api=False, channel_services=platform.services(),
                      credentials={"telegram": {"access_token": "123:abc", "verify": "bot",
                                                "secret_token": TELEGRAM_SECRET}})


async def post_update(c: httpx.AsyncClient, update: dict[str, Any],
                      secret: str | None = TELEGRAM_SECRET) -> httpx.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return await c.post("/webhooks/telegram/webhook", json=update, headers=headers)


async def test_telegram_answers_text_with_an_inline_keyboard(
        telegram_app: Any, tiny_manager: DialogueManager, platform: FakePlatform) -> None:
    async with client(telegram_app) as c:
        r = await post_update(c, TELEGRAM_MESSAGE)
    assert r.status_code == 200 and r.text == "success"
    assert platform.calls == [("https://api.telegram.org/bot123:abc/sendMessage", {
        "chat_id": "1111111", "text": GREETING,
        "reply_markup": {"inline_keyboard": [[{"text": "Say bye", "callback_data": "/goodbye"}]]},
    })]
    assert user_texts(tiny_manager, "1111111") == ["/greet"]


async def test_telegram_button_press_is_the_next_message(
        telegram_app: Any, tiny_manager: DialogueManager, platform: FakePlatform) -> None:
    async with client(telegram_app) as c:
        await post_update(c, TELEGRAM_MESSAGE)
        r = await post_update(c, TELEGRAM_CALLBACK)
    assert r.status_code == 200
    assert platform.bodies("answerCallbackQuery") == [
        {"callback_query_id": "4382bfdwdsb323b2d9"}]
    assert platform.bodies("sendMessage")[-1] == {"chat_id": "1111111", "text": "Bye!"}
    assert user_texts(tiny_manager, "1111111") == ["/greet", "/goodbye"]


async def test_telegram_non_text_is_answered_politely_without_a_turn(
        telegram_app: Any, tiny_manager: DialogueManager, platform: FakePlatform) -> None:
    async with client(telegram_app) as c:
        r = await post_update(c, TELEGRAM_PHOTO)
        ignored = await post_update(c, {"update_id": 10005, "my_chat_member": {"chat": {}}})
    assert r.status_code == 200 and ignored.status_code == 200
    assert platform.calls == [("https://api.telegram.org/bot123:abc/sendMessage",
                               {"chat_id": "1111111", "text": NON_TEXT_REPLY})]
    assert tiny_manager.store.retrieve("1111111") is None


async def test_telegram_redelivered_update_is_answered_once(
        telegram_app: Any, tiny_manager: DialogueManager, platform: FakePlatform) -> None:
    async with client(telegram_app) as c:
        first, again = await asyncio.gather(post_update(c, TELEGRAM_MESSAGE),
                                            post_update(c, TELEGRAM_MESSAGE))
    assert first.status_code == again.status_code == 200
    assert len(platform.bodies("sendMessage")) == 1
    assert user_texts(tiny_manager, "1111111") == ["/greet"]


@pytest.mark.parametrize("secret", [None, "", "wrong", TELEGRAM_SECRET + "x"])
async def test_telegram_wrong_secret_token_is_401_and_changes_nothing(
        telegram_app: Any, tiny_manager: DialogueManager, platform: FakePlatform,
        secret: str | None) -> None:
    async with client(telegram_app) as c:
        r = await post_update(c, TELEGRAM_MESSAGE, secret)
        assert_no_detail(r)
        # the refused update_id was not claimed: the real delivery still gets its turn
        assert (await post_update(c, TELEGRAM_MESSAGE)).status_code == 200
    assert user_texts(tiny_manager, "1111111") == ["/greet"]


async def test_telegram_malformed_update_is_400(telegram_app: Any,
                                                tiny_manager: DialogueManager) -> None:
    async with client(telegram_app) as c:
        r = await post_update(c, {"message": {"text": "hi"}})
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "update_id"
    assert tiny_manager.store.keys() == []


async def test_telegram_rich_responses_degrade(platform: FakePlatform) -> None:
    out = TelegramOutput("123:abc", platform.services().http)
    await out.send_response("7", {"text": "Pick", "buttons": [
        {"title": "Long", "payload": "/inform" + json.dumps({"city": "x" * 80})}]})
    await out.send_response("7", {"image": "https://example.com/a.png"})
    await out.send_response("7", {"custom": {"text": "Custom hello", "kind": "card"}})
    await out.send_response("7", {"custom": {"kind": "card"}})
    assert [(url.rsplit("/", 1)[1], body) for url, body in platform.calls] == [
        ("sendMessage", {"chat_id": "7", "text": 'Pick\n1: Long (/inform{"city": "'
                         + "x" * 80 + '"})'}),
        ("sendPhoto", {"chat_id": "7", "photo": "https://example.com/a.png"}),
        ("sendMessage", {"chat_id": "7", "text": "Custom hello"}),
    ]


async def test_telegram_set_webhook_registers_url_and_secret(
        tiny_manager: DialogueManager, platform: FakePlatform) -> None:
    app = create_app(tiny_manager, channel_services=platform.services(), credentials={
        "telegram": {"access_token": "123:abc", "secret_token": TELEGRAM_SECRET,
                     "webhook_url": "https://bot.example.com/webhooks/telegram/webhook"}})
    async with client(app) as c:
        assert (await c.get("/webhooks/telegram/set_webhook")).status_code == 200
    assert platform.bodies("setWebhook") == [{
        "url": "https://bot.example.com/webhooks/telegram/webhook",
        "secret_token": TELEGRAM_SECRET}]


# slack --------------------------------------------------------------------------------------------
def slack_headers(body: bytes, *, timestamp: int | None = None, secret: str = SLACK_SECRET,
                  content_type: str = "application/json") -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body,
                      hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": content_type}


def slack_app(manager: DialogueManager, services: ChannelServices) -> Any:
    return create_app(manager, enable_api=False, channel_services=services, credentials={
        "slack": {"slack_token": "xoxb-test", "slack_signing_secret": SLACK_SECRET}})


async def post_slack(c: httpx.AsyncClient, payload: dict[str, Any],
                     **kwargs: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    extra = kwargs.pop("extra_headers", {})
    return await c.post("/webhooks/slack/webhook", content=body,
                        headers={**slack_headers(body, **kwargs), **extra})


async def test_slack_url_verification(tiny_manager: DialogueManager,
                                      platform: FakePlatform) -> None:
    async with client(slack_app(tiny_manager, platform.services())) as c:
        r = await post_slack(c, SLACK_CHALLENGE)
    assert r.status_code == 200 and r.json() == {"challenge": SLACK_CHALLENGE["challenge"]}


async def test_slack_message_answered_with_block_kit_buttons(
        tiny_manager: DialogueManager, platform: FakePlatform) -> None:
    async with client(slack_app(tiny_manager, platform.services())) as c:
        r = await post_slack(c, SLACK_MESSAGE)
    assert r.status_code == 200
    [(url, body)] = platform.calls
    assert url == "https://slack.com/api/chat.postMessage"
    assert body == {"channel": "D024BE91L", "text": GREETING, "blocks": [
        {"type": "section", "text": {"type": "plain_text", "text": GREETING}},
        {"type": "actions", "elements": [{"type": "button", "value": "/goodbye",
                                          "text": {"type": "plain_text", "text": "Say bye"}}]}]}
    assert user_texts(tiny_manager, "U2147483697") == ["/greet"]


async def test_slack_button_press_and_mentions(tiny_manager: DialogueManager,
                                               platform: FakePlatform) -> None:
    press = {"type": "block_actions", "user": {"id": "U2147483697", "username": "ana"},
             "channel": {"id": "D024BE91L", "name": "directmessage"}, "trigger_id": "1.2.3",
             "actions": [{"action_id": "a1", "block_id": "b1", "type": "button",
                          "value": "/goodbye", "action_ts": "1548426417.840180"}]}
    form = urlencode({"payload": json.dumps(press)}).encode()
    mention = copy.deepcopy(SLACK_MESSAGE)
    mention["event_id"] = "Ev0MENTION"
    mention["event"].update(type="app_mention", text="<@U0LAN0Z89> /greet")
    async with client(slack_app(tiny_manager, platform.services())) as c:
        assert (await post_slack(c, mention)).status_code == 200
        r = await c.post("/webhooks/slack/webhook", content=form, headers=slack_headers(
            form, content_type="application/x-www-form-urlencoded"))
    assert r.status_code == 200
    assert user_texts(tiny_manager, "U2147483697") == ["/greet", "/goodbye"]
    assert platform.calls[-1][1] == {"channel": "D024BE91L", "text": "Bye!"}


async def test_slack_ignores_bot_messages_and_edits(tiny_manager: DialogueManager,
                                                   platform: FakePlatform) -> None:
    bot = copy.deepcopy(SLACK_MESSAGE)
    bot["event"].update(bot_id="B123", subtype="bot_message")
    edit = copy.deepcopy(SLACK_MESSAGE)
    edit["event_id"] = "Ev0EDIT"
    edit["event"]["subtype"] = "message_changed"
    async with client(slack_app(tiny_manager, platform.services())) as c:
        assert (await post_slack(c, bot)).status_code == 200
        assert (await post_slack(c, edit)).status_code == 200
    assert platform.calls == [] and tiny_manager.store.keys() == []


async def test_slack_retry_of_a_slow_turn_never_answers_twice(
        tiny_manager: DialogueManager) -> None:
    slow = FakePlatform(delay_s=0.3)  # the turn is still sending when the retry arrives
    async with client(slack_app(tiny_manager, slow.services())) as c:
        first = asyncio.create_task(post_slack(c, SLACK_MESSAGE))
        await asyncio.sleep(0.05)
        retries = [await post_slack(c, SLACK_MESSAGE, extra_headers={
            "X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"})
            for n in (1, 2)]
        await first
    assert all(r.status_code == 200 and r.headers["x-slack-no-retry"] == "1" for r in retries)
    assert len(slow.calls) == 1
    assert user_texts(tiny_manager, "U2147483697") == ["/greet"]


@pytest.mark.parametrize("attack", ["wrong_secret", "old", "future", "no_headers", "tampered"])
async def test_slack_bad_signature_is_401_and_changes_nothing(
        tiny_manager: DialogueManager, platform: FakePlatform, attack: str) -> None:
    body = json.dumps(SLACK_MESSAGE).encode()
    headers = {
        "wrong_secret": slack_headers(body, secret="not-the-secret"),
        "old": slack_headers(body, timestamp=int(time.time()) - 301),
        "future": slack_headers(body, timestamp=int(time.time()) + 360),  # clear of a slow run
        "no_headers": {"Content-Type": "application/json"},
        "tampered": slack_headers(json.dumps(SLACK_CHALLENGE).encode()),
    }[attack]
    async with client(slack_app(tiny_manager, platform.services())) as c:
        assert_no_detail(await c.post("/webhooks/slack/webhook", content=body, headers=headers))
        assert (await post_slack(c, SLACK_MESSAGE)).status_code == 200  # id not claimed
    assert user_texts(tiny_manager, "U2147483697") == ["/greet"]


async def test_slack_rich_responses_degrade(platform: FakePlatform) -> None:
    out = SlackOutput("xoxb-test", platform.services().http, "C1")
    await out.send_response("U1", {"image": "https://example.com/a.png"})
    await out.send_response("U1", {"attachment": "menu.pdf"})
    await out.send_response("U1", {"custom": {"kind": "card"}})
    assert [body for _, body in platform.calls] == [
        {"channel": "C1", "text": "https://example.com/a.png", "blocks": [
            {"type": "image", "image_url": "https://example.com/a.png", "alt_text": "image"}]},
        {"channel": "C1", "text": "Attachment: menu.pdf"},
    ]


# socketio -----------------------------------------------------------------------------------------
def widget_session(url: str, session_id: str | None, messages: list[str],
                   transports: list[str]) -> dict[str, Any]:
    """What the Rasa web-chat widget does: connect, ask for a session, send messages, collect
    the bot_uttered events (a real Socket.IO client, in its own thread)."""
    import socketio

    received: list[dict[str, Any]] = []
    confirmed: list[str] = []
    got = threading.Event()
    sio = socketio.Client(reconnection=False)
    sio.on("session_confirm", lambda sid: (confirmed.append(sid), got.set()))
    sio.on("bot_uttered", lambda data: (received.append(data), got.set()))
    sio.connect(url, socketio_path="socket.io", transports=transports, wait_timeout=10)
    try:
        sio.emit("session_request", {"session_id": session_id})
        assert got.wait(10), "no session_confirm"
        for text in messages:
            got.clear()
            before = len(received)
            sio.emit("user_uttered", {"message": text, "session_id": confirmed[0],
                                      "customData": {"language": "en"}})
            deadline = time.monotonic() + 10
            while len(received) == before and time.monotonic() < deadline:
                got.wait(0.1)
            time.sleep(0.2)  # the turn's other parts, if any
    finally:
        sio.eio.disconnect(abort=True)  # a closed tab: no wait for the pending long-poll
    return {"session_id": confirmed[0], "received": received}


@pytest.fixture
async def socketio_url(tiny_manager: DialogueManager) -> AsyncIterator[str]:
    """A real uvicorn server with the socketio channel (session persistence on)."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(tiny_manager, enable_api=False, credentials={"socketio": {
        "user_message_evt": "user_uttered", "bot_message_evt": "bot_uttered",
        "session_persistence": True}})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def test_socketio_speaks_the_rasa_widget_protocol(
        socketio_url: str, tiny_manager: DialogueManager) -> None:
    transports = ["polling"]  # the widget's first transport (websocket-client is not a dep)
    async with httpx.AsyncClient() as c:
        assert (await c.get(socketio_url + "/webhooks/socketio/")).json() == {"status": "ok"}
    result = await asyncio.to_thread(widget_session, socketio_url, None,
                                     ["/greet", "/goodbye"], transports)
    session_id = result["session_id"]
    assert len(session_id) == 32
    assert result["received"] == [
        {"text": GREETING, "quick_replies": [
            {"content_type": "text", "title": "Say bye", "payload": "/goodbye"}]},
        {"text": "Bye!"}]
    assert user_texts(tiny_manager, session_id) == ["/greet", "/goodbye"]
    # the widget reconnects with its stored session id: the same conversation goes on
    again = await asyncio.to_thread(widget_session, socketio_url, session_id, ["/greet"],
                                    transports)
    assert again["session_id"] == session_id
    assert user_texts(tiny_manager, session_id) == ["/greet", "/goodbye", "/greet"]


async def test_socketio_rich_parts_keep_rasa_shapes() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.emitted: list[tuple[str, Any, str]] = []

        async def emit(self, event: str, data: Any, room: str) -> None:
            self.emitted.append((event, data, room))

    from bot.serving.channels.socketio import SocketIOOutput

    sio = Recorder()
    out = SocketIOOutput(sio, "bot_uttered")
    await out.send_response("s1", {"text": "One\n\nTwo", "image": "https://e.com/a.png",
                                   "custom": {"kind": "card"}})
    assert sio.emitted == [
        ("bot_uttered", {"text": "One"}, "s1"), ("bot_uttered", {"text": "Two"}, "s1"),
        ("bot_uttered",
         {"attachment": {"type": "image", "payload": {"src": "https://e.com/a.png"}}}, "s1"),
        ("bot_uttered", {"kind": "card"}, "s1")]


async def test_slack_answers_in_the_thread_with_use_threads(
        tiny_manager: DialogueManager, platform: FakePlatform) -> None:
    app = create_app(tiny_manager, enable_api=False, channel_services=platform.services(),
                     credentials={"slack": {"slack_token": "xoxb-test", "use_threads": True,
                                            "slack_signing_secret": SLACK_SECRET}})
    async with client(app) as c:
        assert (await post_slack(c, SLACK_MESSAGE)).status_code == 200
    assert platform.calls[0][1]["thread_ts"] == "1355517523.000005"
    with pytest.raises(ConfigError, match="use_threads"):
        build_channels({"slack": {"slack_token": "x", "slack_signing_secret": "y",
                                  "use_threads": "yes"}})


@pytest.mark.usefixtures("redis_server")
async def test_slack_retry_on_another_server_is_recognised_through_redis(
        tiny_manager: DialogueManager) -> None:
    """Two servers (apps) whose retry memory is the same Redis, as `build_runtime` makes it
    with a Redis lock store: the first delivery on one, Slack's retry on the other."""
    import redis

    prefix = f"xkt{uuid.uuid4().hex[:12]}:seen:"
    raw = redis.Redis(host="127.0.0.1", port=6379, db=15, decode_responses=True)
    platforms = [FakePlatform(), FakePlatform()]
    apps = [slack_app(tiny_manager, p.services(RedisSeenIds(raw, prefix))) for p in platforms]
    try:
        async with client(apps[0]) as first, client(apps[1]) as second:
            assert (await post_slack(first, SLACK_MESSAGE)).status_code == 200
            retry = await post_slack(second, SLACK_MESSAGE, extra_headers={
                "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
        assert retry.status_code == 200 and retry.headers["x-slack-no-retry"] == "1"
        assert [len(p.calls) for p in platforms] == [1, 0]
        assert 0 < raw.ttl(prefix + "slack:Ev08MFMKH6") <= 3600
    finally:
        for key in raw.scan_iter(prefix + "*"):
            raw.delete(key)
        raw.close()


@pytest.mark.parametrize("payload", [
    {"type": "event_callback", "event_id": "Ev1", "event": "not an object"},
    {"type": "block_actions", "user": "U1", "channel": 7, "actions": [{"value": "/greet"}]},
    {"type": "block_actions", "user": {"id": "U1"}, "channel": {"id": "C1"}, "actions": "x"},
    {"type": "event_callback", "event_id": "Ev2", "event": {"type": "message", "text": 5}},
    ["not", "an", "object"],
])
async def test_slack_odd_signed_bodies_never_crash(tiny_manager: DialogueManager,
                                                  platform: FakePlatform, payload: Any) -> None:
    body = json.dumps(payload).encode()
    async with client(slack_app(tiny_manager, platform.services())) as c:
        r = await c.post("/webhooks/slack/webhook", content=body, headers=slack_headers(body))
    assert r.status_code in (200, 400) and "Traceback" not in r.text
    assert platform.calls == [] and tiny_manager.store.keys() == []


@pytest.mark.parametrize("update", [
    {"update_id": 20, "message": "text"},
    {"update_id": 21, "message": {"chat": "x", "text": "/greet"}},
    {"update_id": 22, "callback_query": {"id": 5, "data": {"a": 1}, "message": []}},
    {"update_id": 23, "edited_message": {"chat": {"id": None}, "text": "/greet"}},
    {"update_id": 24, "message": {"chat": {"id": 9}, "text": "   "}},
])
async def test_telegram_odd_updates_never_crash(
        telegram_app: Any, tiny_manager: DialogueManager, platform: FakePlatform,
        update: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    async with client(telegram_app) as c:
        r = await post_update(c, update)
    assert r.status_code == 200 and r.text == "success"
    assert "turn_failed" not in caplog.text  # the answer after the reply did not crash
    assert tiny_manager.store.keys() == []
    assert all(body["text"] == NON_TEXT_REPLY for _, body in platform.calls)


async def test_socketio_over_websocket(socketio_url: str, tiny_manager: DialogueManager) -> None:
    """The widget's upgraded transport, spoken frame by frame (Engine.IO 4 / Socket.IO 5
    packets over a real websocket): open, connect, session_request, user_uttered."""
    websockets = pytest.importorskip("websockets")  # uvicorn's websocket implementation

    url = socketio_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"

    async def next_event(ws: Any) -> list[Any]:
        while True:
            frame = await asyncio.wait_for(ws.recv(), 10)
            if frame == "2":  # Engine.IO ping
                await ws.send("3")
            elif frame.startswith("42"):
                return json.loads(frame[2:])

    async with websockets.connect(url) as ws:
        assert (await asyncio.wait_for(ws.recv(), 10)).startswith("0{")  # Engine.IO open
        await ws.send("40")  # Socket.IO connect, default namespace
        assert (await asyncio.wait_for(ws.recv(), 10)).startswith("40")
        await ws.send("42" + json.dumps(["session_request", {"session_id": None}]))
        event, session_id = await next_event(ws)
        assert event == "session_confirm" and len(session_id) == 32
        await ws.send("42" + json.dumps(["user_uttered", {"message": "/greet",
                                                          "session_id": session_id}]))
        assert await next_event(ws) == ["bot_uttered", {"text": GREETING, "quick_replies": [
            {"content_type": "text", "title": "Say bye", "payload": "/goodbye"}]}]
    assert user_texts(tiny_manager, session_id) == ["/greet"]


async def test_telegram_update_whose_turn_failed_is_handled_on_redelivery(
        tiny_manager: DialogueManager, platform: FakePlatform,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.errors import StoreError

    app = create_app(tiny_manager, enable_api=False, channel_services=platform.services(),
                     credentials={"telegram": {"access_token": "123:abc",
                                               "secret_token": TELEGRAM_SECRET}})
    real_save = tiny_manager.store.save

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise StoreError("the tracker store is down")

    async with client(app) as c:
        monkeypatch.setattr(tiny_manager.store, "save", broken_save)
        failed = await post_update(c, TELEGRAM_MESSAGE)
        monkeypatch.setattr(tiny_manager.store, "save", real_save)
        again = await post_update(c, TELEGRAM_MESSAGE)  # Telegram redelivers after an error
    assert failed.status_code >= 500 and "Traceback" not in failed.text
    assert again.status_code == 200
    assert user_texts(tiny_manager, "1111111") == ["/greet"]
    assert len(platform.bodies("sendMessage")) == 1
