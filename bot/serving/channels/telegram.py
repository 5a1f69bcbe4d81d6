"""Telegram: Rasa's telegram channel, on the Bot API's webhook.

    credentials.yml:   telegram:
                         access_token: ${TELEGRAM_TOKEN}     # from @BotFather
                         verify: "starlight_bot"              # the bot's username (as Rasa)
                         webhook_url: "https://bot.example.com/webhooks/telegram/webhook"
                         secret_token: ${TELEGRAM_SECRET}     # ours: see below

    GET  /webhooks/telegram/              -> {"status": "ok"}
    GET  /webhooks/telegram/set_webhook   registers webhook_url (and secret_token) with Telegram
    POST /webhooks/telegram/webhook       an Update -> its answer sent, then "success"

Telegram sends ``secret_token`` back in the ``X-Telegram-Bot-Api-Secret-Token`` header of every
update; a request without it, or with another one, gets 401 and changes nothing. Without a
``secret_token`` anyone who knows the URL can post updates (logged as a warning at startup).

An update is a text message (``message`` or ``edited_message``) or a button press
(``callback_query``, whose data is the button's payload); the conversation id is the chat id.
Other messages (photos, stickers, voice...) get a polite text reply and no turn; other update
kinds are acknowledged and ignored. Each update_id is handled once, so a redelivered update
never answers twice; an update whose turn fails (a store outage) is answered with an error and
forgotten, so Telegram's redelivery gets its turn.

Answers: text by sendMessage, buttons as an inline keyboard (one button per row; payloads over
Telegram's 64-byte callback_data limit degrade to a numbered text list), images by sendPhoto;
attachments and custom payloads degrade to text (a custom payload's "text", if it has one).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from bot.errors import ConfigError, SignatureError
from bot.manager import UserMessage
from bot.project.config import reveal
from bot.serving.channels.base import (
    MessageHandler,
    OutputChannel,
    PayloadError,
    channel_router,
    read_json,
)
from bot.serving.channels.services import ChannelServices

logger = logging.getLogger(__name__)

API_BASE = "https://api.telegram.org"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_CALLBACK_DATA_BYTES = 64  # Telegram's limit on a button's callback_data
NON_TEXT_REPLY = "Sorry, I can only read text messages. Please type your question."
UNREADABLE_REPLY = "Sorry, I could not read that message. Could you say it in fewer words?"


class TelegramOutput(OutputChannel):
    """Sends bot messages with the Bot API (``<api_base>/bot<token>/<method>``)."""

    name = "telegram"

    def __init__(self, access_token: str, http: httpx.AsyncClient,
                 api_base: str = API_BASE) -> None:
        self._base = f"{api_base}/bot{access_token}"
        self.http = http

    async def call(self, method: str, body: Mapping[str, Any]) -> bool:
        """One Bot API call; False (logged, never raised) when Telegram refuses it."""
        try:
            response = await self.http.post(f"{self._base}/{method}", json=dict(body))
            ok = response.status_code == 200 and bool(response.json().get("ok"))
        except (httpx.HTTPError, ValueError) as exc:  # ValueError: a body that is not JSON
            logger.warning("channel.telegram.failed method=%s error=%s", method,
                           type(exc).__name__)
            return False
        if not ok:
            logger.warning("channel.telegram.failed method=%s status=%d", method,
                           response.status_code)
        return ok

    async def send_text(self, recipient_id: str, text: str) -> None:
        await self.call("sendMessage", {"chat_id": recipient_id, "text": text})

    async def send_buttons(self, recipient_id: str, text: str,
                           buttons: list[dict[str, Any]]) -> None:
        keyboard = [[{"text": str(b.get("title", "")), "callback_data": str(b.get("payload", ""))}]
                    for b in buttons]
        if any(not 0 < len(row[0]["callback_data"].encode()) <= MAX_CALLBACK_DATA_BYTES
               for row in keyboard):
            await OutputChannel.send_buttons(self, recipient_id, text, buttons)
            return
        await self.call("sendMessage", {"chat_id": recipient_id, "text": text or "Choose:",
                                        "reply_markup": {"inline_keyboard": keyboard}})

    async def send_image(self, recipient_id: str, image: str) -> None:
        await self.call("sendPhoto", {"chat_id": recipient_id, "photo": image})

    async def send_custom(self, recipient_id: str, custom: Mapping[str, Any]) -> None:
        text = custom.get("text")
        if isinstance(text, str) and text.strip():
            await self.send_text(recipient_id, text)
        else:
            logger.info("channel.telegram.custom_dropped reason=no_text keys=%s",
                        ",".join(sorted(map(str, custom))))


class TelegramInput:
    """Telegram's webhook: updates in, Bot API calls out."""

    name = "telegram"

    def __init__(self, config: dict[str, Any] | None, services: ChannelServices,
                 api_base: str = API_BASE) -> None:
        config = dict(config or {})
        token = reveal(config.get("access_token"))
        if not isinstance(token, str) or not token.strip():
            raise ConfigError("credentials.yml telegram.access_token: missing. Put the token "
                              "@BotFather gave you there (e.g. access_token: ${TELEGRAM_TOKEN}).")
        secret = reveal(config.get("secret_token"))
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ConfigError("credentials.yml telegram.secret_token must be a non-empty "
                              "string (1-256 characters A-Z, a-z, 0-9, _ and -).")
        if secret is None:
            logger.warning("channel.telegram.no_secret_token effect=updates_not_authenticated "
                           "fix=set_credentials.yml_telegram.secret_token")
        self.secret_token: str | None = secret
        self.webhook_url = reveal(config.get("webhook_url"))
        self.output = TelegramOutput(token, services.http, api_base)
        self.seen = services.seen

    def router(self, on_message: MessageHandler) -> APIRouter:
        router = channel_router()

        @router.get("/set_webhook")
        async def set_webhook() -> Response:
            if not self.webhook_url:
                raise PayloadError("credentials.yml telegram.webhook_url is not set.")
            body: dict[str, Any] = {"url": self.webhook_url}
            if self.secret_token:
                body["secret_token"] = self.secret_token
            ok = await self.output.call("setWebhook", body)
            return PlainTextResponse("Webhook set." if ok else "Telegram refused the webhook.",
                                     status_code=200 if ok else 502)

        @router.post("/webhook")
        async def receive(request: Request) -> Response:
            self._check_secret(request)
            update = await read_json(request)
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                raise PayloadError("A Telegram update must be an object with an integer "
                                   "'update_id'.", "update_id")
            key = f"telegram:{update['update_id']}"
            if not await self.seen.first_time(key):
                logger.info("channel.telegram.redelivered effect=ignored")
                return PlainTextResponse("success")
            try:
                await self._handle(update, on_message)
            except Exception:
                # not handled: Telegram sends the update again after an error answer
                await self.seen.forget(key)
                raise
            return PlainTextResponse("success")

        return router

    def _check_secret(self, request: Request) -> None:
        if self.secret_token is None:
            return
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret_token.encode()):
            raise SignatureError("telegram: wrong or missing secret token header")

    async def _handle(self, update: dict[str, Any], on_message: MessageHandler) -> None:
        query = update.get("callback_query")
        if isinstance(query, dict):
            chat = _chat_id(query.get("message")) or _user_id(query)
            if isinstance(query.get("id"), str):
                await self.output.call("answerCallbackQuery", {"callback_query_id": query["id"]})
            data = query.get("data")
            if chat is not None and isinstance(data, str) and data.strip():
                await self._turn(chat, data, on_message, {"update_id": update["update_id"]})
            return
        message = update.get("message") or update.get("edited_message")
        chat = _chat_id(message)
        if chat is None:
            logger.info("channel.telegram.ignored kinds=%s",
                        ",".join(sorted(k for k in update if k != "update_id")))
            return
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(text, str) or not text.strip():
            await self.output.send_text(chat, NON_TEXT_REPLY)
            return
        await self._turn(chat, text, on_message, {"update_id": update["update_id"]})

    async def _turn(self, chat_id: str, text: str, on_message: MessageHandler,
                    metadata: dict[str, Any]) -> None:
        message = UserMessage(text, chat_id, input_channel=self.name, metadata=metadata)
        try:
            bot_messages = await on_message(message)
        except PayloadError:  # too long for a turn: say so instead of going quiet
            await self.output.send_text(chat_id, UNREADABLE_REPLY)
            return
        for bot_message in bot_messages:
            await self.output.send_response(chat_id, bot_message)


def _chat_id(message: Any) -> str | None:
    chat = message.get("chat") if isinstance(message, dict) else None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    return str(chat_id) if isinstance(chat_id, (int, str)) and str(chat_id) else None


def _user_id(query: dict[str, Any]) -> str | None:
    user = query.get("from")
    user_id = user.get("id") if isinstance(user, dict) else None
    return str(user_id) if isinstance(user_id, (int, str)) else None
