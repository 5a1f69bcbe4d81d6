"""Slack: Rasa's slack channel, on the Events API.

    credentials.yml:   slack:
                         slack_token: ${SLACK_TOKEN}                  # xoxb-... bot token
                         slack_signing_secret: ${SLACK_SIGNING_SECRET}
                         slack_channel: "C0123"     # optional: always answer in this channel
                         use_threads: false         # answer in the user's thread

    GET  /webhooks/slack/          -> {"status": "ok"}
    POST /webhooks/slack/webhook   Events API (JSON) and interactivity (form field "payload")

Every request must carry Slack's signature: ``X-Slack-Signature`` = ``v0=`` + HMAC-SHA256 of
``v0:<X-Slack-Request-Timestamp>:<body>`` with the signing secret, and a timestamp within 5
minutes of now (replays). Anything else gets 401 with no detail and changes nothing.

- ``url_verification`` -> ``{"challenge": ...}``.
- ``event_callback`` with a user's ``message`` or ``app_mention`` (bot messages, edits and
  other subtypes are ignored, so the bot never answers itself): answered 200 at once, the turn
  runs afterwards and its messages go out by ``chat.postMessage``. Slack retries an event it
  got no answer to within 3 s; each ``event_id`` is claimed once, so a retry (even one that
  lands while the first delivery's turn is still running, or on another server) is answered
  200 with ``X-Slack-No-Retry: 1`` and never runs a second turn.
- ``block_actions`` (a button press): the button's value is the user's message.

The conversation id is the Slack user id (Rasa's default granularity). Buttons become Block
Kit buttons, images image blocks; a custom payload with ``blocks`` or ``text`` is posted as
it is, others are dropped (logged); attachments degrade to text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.background import BackgroundTask

from bot.errors import ConfigError, SignatureError
from bot.manager import UserMessage
from bot.project.config import reveal
from bot.serving.channels.base import MessageHandler, OutputChannel, PayloadError, channel_router
from bot.serving.channels.services import ChannelServices, run_logged

logger = logging.getLogger(__name__)

API_BASE = "https://slack.com/api"
MAX_REQUEST_AGE_S = 300  # Slack's advice: refuse requests signed more than 5 minutes ago
_MENTION = re.compile(r"<@[A-Z0-9]+(\|[^>]*)?>")


class SlackOutput(OutputChannel):
    """Posts bot messages with chat.postMessage to one Slack channel (and thread)."""

    name = "slack"

    def __init__(self, token: str, http: httpx.AsyncClient, channel: str,
                 thread_ts: str | None = None, api_base: str = API_BASE) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}
        self.http = http
        self.channel = channel
        self.thread_ts = thread_ts
        self.api_base = api_base

    async def post(self, body: Mapping[str, Any]) -> bool:
        """One chat.postMessage; False (logged, never raised) when Slack refuses it."""
        message = {**body, "channel": self.channel}
        if self.thread_ts:
            message["thread_ts"] = self.thread_ts
        try:
            response = await self.http.post(f"{self.api_base}/chat.postMessage", json=message,
                                            headers=self._headers)
            answer = response.json()
            ok = response.status_code == 200 and bool(answer.get("ok"))
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("channel.slack.failed error=%s", type(exc).__name__)
            return False
        if not ok:
            logger.warning("channel.slack.failed status=%d error=%s", response.status_code,
                           answer.get("error") if isinstance(answer, dict) else None)
        return ok

    async def send_text(self, recipient_id: str, text: str) -> None:
        await self.post({"text": text})

    async def send_buttons(self, recipient_id: str, text: str,
                           buttons: list[dict[str, Any]]) -> None:
        elements = [{"type": "button",
                     "text": {"type": "plain_text", "text": str(b.get("title", ""))[:75]},
                     "value": str(b.get("payload", ""))[:2000]} for b in buttons]
        blocks: list[dict[str, Any]] = []
        if text:
            blocks.append({"type": "section", "text": {"type": "plain_text", "text": text}})
        blocks.append({"type": "actions", "elements": elements})
        await self.post({"text": text or "Choose:", "blocks": blocks})

    async def send_image(self, recipient_id: str, image: str) -> None:
        await self.post({"text": image, "blocks": [
            {"type": "image", "image_url": image, "alt_text": "image"}]})

    async def send_custom(self, recipient_id: str, custom: Mapping[str, Any]) -> None:
        if "blocks" in custom or "text" in custom:
            await self.post(custom)
        else:
            logger.info("channel.slack.custom_dropped reason=no_blocks_or_text keys=%s",
                        ",".join(sorted(map(str, custom))))


class SlackInput:
    """Slack's Events API and interactivity webhook."""

    name = "slack"

    def __init__(self, config: dict[str, Any] | None, services: ChannelServices,
                 api_base: str = API_BASE) -> None:
        config = dict(config or {})
        self.token = _required(config, "slack_token", "the bot token (xoxb-...)")
        self.signing_secret = _required(config, "slack_signing_secret",
                                        "the app's Signing Secret (Basic Information page)")
        channel = reveal(config.get("slack_channel"))
        self.slack_channel = channel if isinstance(channel, str) and channel else None
        threads = config.get("use_threads", False)
        if not isinstance(threads, bool):
            raise ConfigError("credentials.yml slack.use_threads must be true or false, not "
                              f"{type(threads).__name__}.")
        self.use_threads = threads
        self.http = services.http
        self.seen = services.seen
        self.api_base = api_base

    def router(self, on_message: MessageHandler) -> APIRouter:
        router = channel_router()

        @router.post("/webhook")
        async def receive(request: Request) -> Response:
            body = await request.body()
            self._verify(request, body)
            payload = _payload(request, body)
            kind = payload.get("type")
            if kind == "url_verification":
                return JSONResponse({"challenge": str(payload.get("challenge", ""))})
            turn = self._turn_of(payload)
            if turn is None:
                return PlainTextResponse("")
            delivery, text, user, channel, thread = turn
            if not await self.seen.first_time(f"slack:{delivery}"):
                logger.info("channel.slack.retry_ignored retry_num=%s",
                            request.headers.get("x-slack-retry-num"))
                return PlainTextResponse("", headers={"X-Slack-No-Retry": "1"})
            return PlainTextResponse("", background=BackgroundTask(
                run_logged, self.name, self._turn, on_message, text, user, channel, thread,
                delivery))

        return router

    def _verify(self, request: Request, body: bytes) -> None:
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            raise SignatureError("slack: missing or malformed request timestamp") from None
        if age > MAX_REQUEST_AGE_S:
            raise SignatureError("slack: request timestamp older than 5 minutes")
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self.signing_secret.encode(), base,
                                    hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise SignatureError("slack: wrong signature")

    def _turn_of(self, payload: dict[str, Any]
                 ) -> tuple[str, str, str, str, str | None] | None:
        """(delivery id, text, user, channel, thread) of a user's message, else None."""
        kind = payload.get("type")
        if kind == "event_callback":
            event = payload.get("event")
            event_id = payload.get("event_id")
            if not isinstance(event, dict) or not isinstance(event_id, str):
                raise PayloadError("An event_callback needs an 'event' object and an "
                                   "'event_id'.", "event")
            # any subtype (bot_message, message_changed, channel_join...) is not a user's turn
            if event.get("type") not in ("message", "app_mention") or event.get("bot_id") \
                    or event.get("subtype"):
                return None
            text, user, channel = event.get("text"), event.get("user"), event.get("channel")
            if not (isinstance(text, str) and isinstance(user, str)
                    and isinstance(channel, str)):
                return None
            text = _MENTION.sub("", text).strip()
            thread = event.get("thread_ts") or event.get("ts") if self.use_threads else None
            return (event_id, text, user, channel, thread) if text else None
        if kind == "block_actions":
            actions = payload.get("actions")
            user, channel = _id_of(payload.get("user")), _id_of(payload.get("channel"))
            if not (isinstance(actions, list) and actions and isinstance(actions[0], dict)):
                return None
            value, stamp = actions[0].get("value"), actions[0].get("action_ts")
            if not (isinstance(value, str) and value and isinstance(user, str)
                    and isinstance(channel, str)):
                return None
            return (f"action:{user}:{stamp}", value, user, channel, None)
        return None

    async def _turn(self, on_message: MessageHandler, text: str, user: str, channel: str,
                    thread: str | None, delivery: str) -> None:
        out = SlackOutput(self.token, self.http, self.slack_channel or channel, thread,
                          self.api_base)
        message = UserMessage(text, user, input_channel=self.name,
                              metadata={"out_channel": out.channel, "thread_id": thread,
                                        "event_id": delivery})
        try:
            bot_messages = await on_message(message)
        except PayloadError:
            await out.send_text(user, "Sorry, I could not read that message. Could you say it "
                                      "in fewer words?")
            return
        for bot_message in bot_messages:
            await out.send_response(user, bot_message)


def _id_of(value: Any) -> str | None:
    """The "id" of a Slack object ({"id": "U123", ...}), None for anything else."""
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _required(config: Mapping[str, Any], key: str, what: str) -> str:
    value = reveal(config.get(key))
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"credentials.yml slack.{key}: missing. Put {what} there "
                          f"(e.g. {key}: ${{{key.upper()}}}).")
    return value


def _payload(request: Request, body: bytes) -> dict[str, Any]:
    """The JSON body of an Events API request, or the "payload" form field of an
    interactivity request."""
    try:
        if request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            fields = parse_qs(body.decode("utf-8"))
            data = json.loads(fields["payload"][0])
        else:
            data = json.loads(body)
    except (KeyError, IndexError, ValueError, UnicodeDecodeError):
        raise PayloadError("The request body is neither Events API JSON nor an interactivity "
                           "'payload' form field.") from None
    if not isinstance(data, dict):
        raise PayloadError("The request body must be a JSON object.")
    return data
