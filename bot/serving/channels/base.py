"""What every channel implements, and the payload checks they share.

An ``InputChannel`` turns a platform's webhook into ``UserMessage``s: it has a ``name`` and
returns an ``APIRouter`` that the server mounts at ``/webhooks/<name>``. Its handlers call the
``on_message`` callback the server gives it, which runs the turn and returns the bot messages
(dicts in the REST shape: recipient_id, text, buttons, image, custom, ...); the channel then
delivers them through an ``OutputChannel``.

Channels never pick HTTP status codes: a payload they cannot use raises ``PayloadError``
(naming the field), and the server maps it to 400; a request whose signature or secret does
not check out raises ``bot.errors.SignatureError``, which the server answers 401 with no detail.

A channel that serves a whole ASGI app of its own (socket.io) also has
``mount(on_message) -> (path, app)``; the server mounts that app at the path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from bot.errors import PayloadError, TextTooLong
from bot.state import wire_json
from bot.manager import MAX_TEXT_CHARS, UserMessage

logger = logging.getLogger(__name__)

MAX_SENDER_ID_CHARS = 255  # the SQL tracker store's sender_id column
MessageHandler = Callable[[UserMessage], Awaitable[list[dict[str, Any]]]]
ModelT = TypeVar("ModelT", bound=BaseModel)


@runtime_checkable
class InputChannel(Protocol):
    """A platform webhook: parses the platform's payload into ``UserMessage``s."""

    name: str

    def router(self, on_message: MessageHandler) -> APIRouter:
        """Routes to mount at ``/webhooks/<name>``; they call ``on_message`` for each message."""
        ...


class OutputChannel(Protocol):
    """Delivers bot messages to a platform. Only ``send_text`` is required: subclass this
    protocol explicitly to get the rich senders, which default to plain text."""

    name: str

    async def send_text(self, recipient_id: str, text: str) -> None:
        """Send a plain text message."""
        ...

    async def send_buttons(self, recipient_id: str, text: str,
                           buttons: list[dict[str, Any]]) -> None:
        """Text with buttons; by default the buttons are listed as numbered lines."""
        lines = [text] if text else []
        lines += [f"{i}: {b.get('title', '')} ({b.get('payload', '')})"
                  for i, b in enumerate(buttons, start=1)]
        await self.send_text(recipient_id, "\n".join(lines))

    async def send_image(self, recipient_id: str, image: str) -> None:
        await self.send_text(recipient_id, f"Image: {image}")

    async def send_attachment(self, recipient_id: str, attachment: Any) -> None:
        await self.send_text(recipient_id, f"Attachment: {attachment}")

    async def send_custom(self, recipient_id: str, custom: Mapping[str, Any]) -> None:
        await self.send_text(recipient_id, json.dumps(custom, ensure_ascii=False))

    async def send_response(self, recipient_id: str, message: Mapping[str, Any]) -> None:
        """Send one bot message (a dict as the dialogue manager returns it), part by part."""
        text = message.get("text") or ""
        buttons = message.get("buttons") or message.get("quick_replies")
        if buttons:
            await self.send_buttons(recipient_id, text, list(buttons))
        elif text:
            await self.send_text(recipient_id, text)
        if message.get("image"):
            await self.send_image(recipient_id, message["image"])
        if message.get("attachment"):
            await self.send_attachment(recipient_id, message["attachment"])
        if message.get("custom"):
            await self.send_custom(recipient_id, message["custom"])


class CollectingOutputChannel(OutputChannel):
    """Keeps the messages instead of sending them (the REST channel, tests).

    ``send_response`` keeps a bot message whole, as the dialogue manager returns it; the
    single-part senders keep a message dict with just that part."""

    name = "collector"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def send_response(self, recipient_id: str, message: Mapping[str, Any]) -> None:
        self.messages.append({**message, "recipient_id": recipient_id})

    async def send_text(self, recipient_id: str, text: str) -> None:
        self.messages.append({"recipient_id": recipient_id, "text": text})

    async def send_buttons(self, recipient_id: str, text: str,
                           buttons: list[dict[str, Any]]) -> None:
        self.messages.append({"recipient_id": recipient_id, "text": text, "buttons": buttons})

    async def send_image(self, recipient_id: str, image: str) -> None:
        self.messages.append({"recipient_id": recipient_id, "image": image})

    async def send_attachment(self, recipient_id: str, attachment: Any) -> None:
        self.messages.append({"recipient_id": recipient_id, "attachment": attachment})

    async def send_custom(self, recipient_id: str, custom: Mapping[str, Any]) -> None:
        self.messages.append({"recipient_id": recipient_id, "custom": dict(custom)})

    def latest(self) -> dict[str, Any] | None:
        return self.messages[-1] if self.messages else None


# payload checks shared by the channels and the HTTP API -------------------------------------
async def read_json(request: Request) -> Any:
    """The request body parsed as JSON (PayloadError when it is empty or not JSON). The body
    size limit is enforced by the server before and while the body is read."""
    body = await request.body()
    if not body.strip():
        raise PayloadError("The request body is empty; send a JSON document.")
    return wire_json.loads(body)  # no NaN, infinity, absurd nesting or integers


def validate(model: type[ModelT], data: Any) -> ModelT:
    """``data`` checked against a pydantic model; PayloadError names the first bad field."""
    if not isinstance(data, dict):
        raise PayloadError("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        raise PayloadError(f"Invalid '{field}': {error['msg']}.", field) from None


def check_text(text: str, field: str = "text") -> None:
    """Reject empty or whitespace-only texts and texts over ``MAX_TEXT_CHARS`` characters."""
    if not text.strip():
        raise PayloadError("message text must not be empty", field)
    if len(text) > MAX_TEXT_CHARS:
        raise TextTooLong(f"message text is longer than {MAX_TEXT_CHARS} characters", field)


def check_sender_id(sender_id: str, field: str = "sender", location: str = "body") -> None:
    """Reject blank conversation ids and ids over ``MAX_SENDER_ID_CHARS`` characters."""
    if not sender_id.strip():
        raise PayloadError(f"Invalid '{field}': a conversation id must not be empty.", field,
                           location)
    if len(sender_id) > MAX_SENDER_ID_CHARS:
        raise PayloadError(f"Invalid '{field}': a conversation id must not be longer than "
                           f"{MAX_SENDER_ID_CHARS} characters.", field, location)


def channel_router() -> APIRouter:
    """A channel's router with Rasa's health check at its root (GET / -> {"status": "ok"})."""
    router = APIRouter()

    @router.get("/")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return router
