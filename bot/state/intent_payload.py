"""Messages like `/intent` or `/intent{"entity": "value"}` skip the NLU (Rasa's
RegexMessageHandler), so buttons and tests work with or without NLU models."""

from __future__ import annotations

import json
import re
from typing import Any

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
    confidence = float(match.group("confidence")) if match.group("confidence") else 1.0
    entities: list[dict[str, Any]] = []
    raw = match.group("entities")
    if raw:
        try:
            values = json.loads(raw)
        except json.JSONDecodeError:
            values = None
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
