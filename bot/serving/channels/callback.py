"""Rasa's callback channel: messages come in as on the REST channel, answers go out as HTTP
POSTs to the URL in credentials.yml, one per bot message.

    credentials.yml:   callback:
                         url: "http://localhost:5034/bot"

    GET  /webhooks/callback/          -> {"status": "ok"}
    POST /webhooks/callback/webhook   {"sender": "id", "message": "hi", "metadata": {...}}
                                      -> "success" once the turn is done
    then, for each bot message:  POST <url>  {"recipient_id": "id", "text": ..., "buttons": ...}

The bot messages keep Rasa's REST shape (buttons, image, custom...): the receiving service
renders them. A callback URL that fails is logged; the turn is already stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from bot.errors import ConfigError
from bot.project.config import reveal
from bot.serving.channels.base import MessageHandler, channel_router
from bot.serving.channels.rest import read_rest_message, relay
from bot.serving.channels.services import ChannelServices

logger = logging.getLogger(__name__)


class CallbackOutput:
    """Posts each bot message, whole, to the callback URL."""

    name = "callback"

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.http = http

    async def send_response(self, recipient_id: str, message: Mapping[str, Any]) -> None:
        body = {**message, "recipient_id": recipient_id}
        try:
            response = await self.http.post(self.url, json=body)
        except httpx.HTTPError as exc:
            logger.warning("channel.callback.failed error=%s", type(exc).__name__)
            return
        if response.status_code >= 300:
            logger.warning("channel.callback.failed status=%d", response.status_code)

    async def send_text(self, recipient_id: str, text: str) -> None:
        await self.send_response(recipient_id, {"text": text})


class CallbackInput:
    """REST-shaped webhook whose answers go to ``url`` instead of the HTTP response."""

    name = "callback"

    def __init__(self, config: dict[str, Any] | None, services: ChannelServices) -> None:
        url = reveal((config or {}).get("url"))
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("credentials.yml callback.url: the channel needs the http(s) URL "
                              "that receives the bot's messages, e.g. "
                              "url: \"http://localhost:5034/bot\".")
        self.output = CallbackOutput(url, services.http)

    def router(self, on_message: MessageHandler) -> APIRouter:
        router = channel_router()

        @router.post("/webhook")
        async def receive(request: Request) -> Response:
            message = await read_rest_message(request, self.name, retry_ids=False)
            await relay(await on_message(message), message.sender_id, self.output.send_response)
            return PlainTextResponse("success")

        return router
