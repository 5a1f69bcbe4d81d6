"""Socket.IO: Rasa's socketio channel, the protocol of the common Rasa web-chat widgets.

    credentials.yml:   socketio:
                         user_message_evt: user_uttered
                         bot_message_evt: bot_uttered
                         session_persistence: true
                         socketio_path: /socket.io           # optional

    GET /webhooks/socketio/   -> {"status": "ok"}
    /socket.io/               the Socket.IO server (Engine.IO 4: polling and websocket)

A client connects, sends ``session_request`` ({"session_id": id or null}) and gets
``session_confirm`` with the session id (a new one when it sent none). It sends
``user_uttered`` ({"message": text, "session_id": id, "customData": {...}}) and receives one
``bot_uttered`` per message part, in Rasa's shapes: {"text"}, {"text", "quick_replies":
[{"content_type": "text", "title", "payload"}]}, {"attachment": {"type": "image", "payload":
{"src"}}}, custom payloads as they are. With ``session_persistence`` the conversation id is the
session id (the widget keeps it across page loads, and the client joins a room of that name);
without it, the socket id.

Pages on other origins (a widget embedded in a website) need `xingkong run --cors ORIGIN`, as
with Rasa's --cors: the server's CORS layer answers for the socket.io routes too.

Several server processes: Socket.IO's polling transport needs the load balancer to keep each
client on one server (sticky sessions); the conversation itself lives in the shared stores.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter

from bot.manager import UserMessage
from bot.serving.channels.base import MessageHandler, OutputChannel, PayloadError, channel_router
from bot.serving.channels.services import ChannelServices

logger = logging.getLogger(__name__)


class SocketIOOutput(OutputChannel):
    """Emits bot messages to the client's room (its session id or socket id)."""

    name = "socketio"

    def __init__(self, sio: Any, bot_message_evt: str) -> None:
        self.sio = sio
        self.bot_message_evt = bot_message_evt

    async def _emit(self, room: str, body: Mapping[str, Any]) -> None:
        await self.sio.emit(self.bot_message_evt, dict(body), room=room)

    async def send_text(self, recipient_id: str, text: str) -> None:
        for part in text.strip().split("\n\n"):  # as Rasa: one bubble per paragraph
            await self._emit(recipient_id, {"text": part})

    async def send_buttons(self, recipient_id: str, text: str,
                           buttons: list[dict[str, Any]]) -> None:
        replies = [{"content_type": "text", "title": b.get("title", ""),
                    "payload": b.get("payload", "")} for b in buttons]
        await self._emit(recipient_id, {"text": text, "quick_replies": replies})

    async def send_image(self, recipient_id: str, image: str) -> None:
        await self._emit(recipient_id, {"attachment": {"type": "image",
                                                       "payload": {"src": image}}})

    async def send_attachment(self, recipient_id: str, attachment: Any) -> None:
        await self._emit(recipient_id, {"attachment": attachment})

    async def send_custom(self, recipient_id: str, custom: Mapping[str, Any]) -> None:
        await self._emit(recipient_id, custom)


class SocketIOInput:
    """A Socket.IO server speaking Rasa's events."""

    name = "socketio"

    def __init__(self, config: dict[str, Any] | None, services: ChannelServices) -> None:
        config = dict(config or {})
        self.user_message_evt = str(config.get("user_message_evt") or "user_uttered")
        self.bot_message_evt = str(config.get("bot_message_evt") or "bot_uttered")
        self.session_persistence = bool(config.get("session_persistence", False))
        self.metadata_key = str(config.get("metadata_key") or "customData")
        self.socketio_path = "/" + str(config.get("socketio_path") or "/socket.io").strip("/")
        for key in ("jwt_key", "jwt_method"):
            if config.get(key):
                logger.warning("channel.socketio.unsupported key=%s effect=ignored", key)

    def router(self, on_message: MessageHandler) -> APIRouter:
        router = channel_router()

        return router

    def mount(self, on_message: MessageHandler) -> tuple[str, Any]:
        """The Socket.IO ASGI app and the path to mount it at."""
        import socketio

        # [] leaves CORS to the server's --cors layer (two layers would send the headers twice)
        sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])
        output = SocketIOOutput(sio, self.bot_message_evt)

        @sio.on("connect")
        async def connect(sid: str, environ: Any, auth: Any = None) -> bool:
            logger.debug("channel.socketio.connect")
            return True

        @sio.on("session_request")
        async def session_request(sid: str, data: Any = None) -> None:
            session_id = data.get("session_id") if isinstance(data, dict) else None
            if not isinstance(session_id, str) or not session_id.strip():
                session_id = uuid.uuid4().hex
            if self.session_persistence:
                await sio.enter_room(sid, session_id)
            await sio.emit("session_confirm", session_id, room=sid)

        @sio.on(self.user_message_evt)
        async def user_uttered(sid: str, data: Any = None) -> None:
            if not isinstance(data, dict) or not isinstance(data.get("message"), str):
                logger.info("channel.socketio.bad_message reason=no_message_text")
                return
            sender = sid
            if self.session_persistence:
                session_id = data.get("session_id")
                if isinstance(session_id, str) and session_id.strip():
                    sender = session_id
                else:
                    logger.warning("channel.socketio.no_session_id effect=socket_id_used")
            metadata = data.get(self.metadata_key)
            message = UserMessage(data["message"], sender, input_channel=self.name,
                                  metadata=metadata if isinstance(metadata, dict) else {})
            try:
                bot_messages = await on_message(message)
            except PayloadError as exc:
                logger.info("channel.socketio.rejected field=%s", exc.field)
                return
            if sender != sid:  # a client that skipped session_request still gets its answers
                await sio.enter_room(sid, sender)
            for bot_message in bot_messages:
                await output.send_response(sender, bot_message)

        return self.socketio_path, socketio.ASGIApp(sio, socketio_path=None)
