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

from collections.abc import Awaitable, Callable, Mapping

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


async def read_rest_message(request: Request, channel: str, *,
                            retry_ids: bool = True) -> UserMessage:
    """The REST-shaped body of a webhook request as a UserMessage, sender checked.
    ``retry_ids``: keep the client's ``message_id`` (ours; the callback channel, as Rasa's,
    has none)."""
    payload = validate(RestPayload, await read_json(request))
    check_sender_id(payload.sender, "sender")
    ids = {"message_id": payload.message_id} if retry_ids and payload.message_id else {}
    return UserMessage(payload.message, payload.sender, input_channel=channel,
                       metadata=payload.metadata or {}, **ids)


async def relay(messages: list[dict[str, Any]], sender_id: str,
                send_response: Callable[[str, Mapping[str, Any]], Awaitable[None]]) -> None:
    """Hand each bot message of a turn to an output channel, to its recipient (default: the
    sender)."""
    for bot_message in messages:
        await send_response(bot_message.get("recipient_id", sender_id), bot_message)


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
            message = await read_rest_message(request, self.name)
            collector = CollectingOutputChannel()
            await relay(await on_message(message), message.sender_id, collector.send_response)
            return collector.messages

        return router
