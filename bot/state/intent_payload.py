"""Messages like `/intent` or `/intent{"entity": "value"}` skip the NLU (Rasa's
RegexMessageHandler), so buttons and tests work with or without NLU models."""

from __future__ import annotations

import math
import re
from typing import Any

from bot.errors import PayloadError
from bot.state import wire_json

_PAYLOAD = re.compile(
    r"^/(?P<intent>[^{@]+?)(?:@(?P<confidence>[0-9.]+))?(?P<entities>\{.*\})?\s*$", re.S
)


def parse_intent_payload(text: str) -> dict[str, Any] | None:
    """Rasa parse data for a `/intent...` message, or None when `text` is not one."""
    match = _PAYLOAD.match(text.strip())
    if match is None:
        return None
    intent = match.group("intent").strip()
    if not intent or " " in intent:
        return None
    confidence = _confidence(match.group("confidence"))
    entities: list[dict[str, Any]] = []
    raw = match.group("entities")
    if raw:
        try:
            values = wire_json.loads(raw, "The message's entities")
        except PayloadError as exc:
            if wire_json.nesting_depth(raw) <= wire_json.MAX_DEPTH and "valid JSON" in str(exc):
                return None  # not a payload after all: plain text for the NLU, as before
            raise
        if not isinstance(values, dict):
            return None
        start, end = match.start("entities"), match.end("entities")
        for name, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                entities.append({"entity": name, "start": start, "end": end, "value": item})
    ranking = [{"name": intent, "confidence": confidence}]
    parse: dict[str, Any] = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": ranking,
        "entities": entities,
    }
    return parse


def _confidence(text: str | None) -> float:
    """The `@0.9` part of `/intent@0.9`; PayloadError when it is not a number."""
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise PayloadError("The intent payload's confidence (after '@') is not a number.") \
            from None
    if not math.isfinite(value):
        raise PayloadError("The intent payload's confidence (after '@') is not finite.")
    return value
