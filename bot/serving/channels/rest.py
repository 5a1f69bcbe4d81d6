"""Rasa's REST channel.

    GET  /webhooks/rest/          -> {"status": "ok"}
    POST /webhooks/rest/webhook   {"sender": "id", "message": "hi", "metadata": {...},
                                   "message_id": "client-chosen id"}
                                  -> [{"recipient_id": "id", "text": ..., "buttons": [...]}, ...]

``sender`` defaults to "default" as in Rasa; the answer lists the bot messages of the turn as
the dialogue manager returns them. ``message_id`` (ours, optional) makes retries safe: a message
whose id the conversation already holds is answered with the bot messages stored for it
instead of being handled again.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from bot.serving.channels.base import (
    CollectingOutputChannel,
    MessageHandler,
    channel_router,
    check_sender_id,
    read_json,
    validate,
)
from bot.serving.channels.services import ChannelServices
from bot.manager import UserMessage

logger = logging.getLogger(__name__)

DEFAULT_SENDER_ID = "default"


class RestPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sender: StrictStr = DEFAULT_SENDER_ID
    message: StrictStr
    metadata: dict[str, Any] | None = None
    message_id: StrictStr | None = Field(default=None, min_length=1, max_length=255)


class RestInput:
    """Answers each message in the HTTP response."""

    name = "rest"

    def __init__(self, config: dict[str, Any] | None = None,
                 services: ChannelServices | None = None) -> None:
        self.config = dict(config or {})  # REST needs no settings nor services

    def router(self, on_message: MessageHandler) -> APIRouter:
        router = channel_router()

        @router.post("/webhook")
        async def receive(request: Request) -> list[dict[str, Any]]:
            payload = validate(RestPayload, await read_json(request))
            check_sender_id(payload.sender, "sender")
            ids = {"message_id": payload.message_id} if payload.message_id else {}
            message = UserMessage(payload.message, payload.sender, input_channel=self.name,
                                  metadata=payload.metadata or {}, **ids)
            collector = CollectingOutputChannel()
            for bot_message in await on_message(message):
                await collector.send_response(bot_message.get("recipient_id", payload.sender),
                                              bot_message)
            return collector.messages

        return router
