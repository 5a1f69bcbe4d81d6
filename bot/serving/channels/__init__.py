"""Input and output channels: how users reach the assistant.

``build_channels(credentials)`` makes the input channels that credentials.yml lists (Rasa's
rule: without credentials, only the REST channel). Channels Xingkong does not implement are
skipped with a warning, so Rasa projects whose credentials.yml names other platforms still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from bot.serving.channels.base import (
    CollectingOutputChannel,
    InputChannel,
    MessageHandler,
    OutputChannel,
    PayloadError,
    TextTooLong,
)
from bot.serving.channels.rest import RestInput

logger = logging.getLogger(__name__)

CHANNELS: dict[str, Callable[[dict[str, Any] | None], InputChannel]] = {
    RestInput.name: RestInput,
}

__all__ = [
    "CHANNELS",
    "CollectingOutputChannel",
    "InputChannel",
    "MessageHandler",
    "OutputChannel",
    "PayloadError",
    "RestInput",
    "TextTooLong",
    "build_channels",
]


def build_channels(credentials: Mapping[str, Any] | None) -> list[InputChannel]:
    """The input channels for ``credentials`` ({channel name: its settings or None})."""
    if not credentials:
        return [RestInput()]
    channels: list[InputChannel] = []
    for name, settings in credentials.items():
        factory = CHANNELS.get(name)
        if factory is None:
            logger.warning("channels.unsupported name=%s effect=skipped available=%s", name,
                           ",".join(sorted(CHANNELS)))
            continue
        channels.append(factory(dict(settings) if isinstance(settings, Mapping) else None))
    return channels
