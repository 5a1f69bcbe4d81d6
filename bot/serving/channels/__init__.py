"""Input and output channels: how users reach the assistant.

``build_channels(credentials, services)`` makes the input channels that credentials.yml lists
(Rasa's rule: without credentials, only the REST channel): rest, callback, socketio, telegram
and slack, with Rasa's names, payloads and behaviour. Channels Xingkong does not implement are
skipped with a warning, so Rasa projects whose credentials.yml names other platforms still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from bot.errors import SignatureError
from bot.serving.channels.base import (
    CollectingOutputChannel,
    InputChannel,
    MessageHandler,
    OutputChannel,
    PayloadError,
    TextTooLong,
)
from bot.serving.channels.callback import CallbackInput
from bot.serving.channels.rest import RestInput
from bot.serving.channels.services import (
    ChannelServices,
    InMemorySeenIds,
    RedisSeenIds,
    SeenIds,
)
from bot.serving.channels.slack import SlackInput
from bot.serving.channels.socketio import SocketIOInput
from bot.serving.channels.telegram import TelegramInput

logger = logging.getLogger(__name__)

ChannelFactory = Callable[[dict[str, Any] | None, ChannelServices], InputChannel]
CHANNELS: dict[str, ChannelFactory] = {
    CallbackInput.name: CallbackInput,
    RestInput.name: RestInput,
    SlackInput.name: SlackInput,
    SocketIOInput.name: SocketIOInput,
    TelegramInput.name: TelegramInput,
}

__all__ = [
    "CHANNELS",
    "CallbackInput",
    "ChannelServices",
    "CollectingOutputChannel",
    "InMemorySeenIds",
    "InputChannel",
    "MessageHandler",
    "OutputChannel",
    "PayloadError",
    "RedisSeenIds",
    "RestInput",
    "SeenIds",
    "SignatureError",
    "SlackInput",
    "SocketIOInput",
    "TelegramInput",
    "TextTooLong",
    "build_channels",
]


def build_channels(credentials: Mapping[str, Any] | None,
                   services: ChannelServices | None = None) -> list[InputChannel]:
    """The input channels for ``credentials`` ({channel name: its settings or None}); they
    share ``services`` (one outbound HTTP client, one memory of handled deliveries)."""
    services = services if services is not None else ChannelServices()
    if not credentials:
        return [RestInput(None, services)]
    channels: list[InputChannel] = []
    for name, settings in credentials.items():
        factory = CHANNELS.get(name)
        if factory is None:
            logger.warning("channels.unsupported name=%s effect=skipped available=%s", name,
                           ",".join(sorted(CHANNELS)))
            continue
        channels.append(factory(dict(settings) if isinstance(settings, Mapping) else None,
                                services))
    return channels
