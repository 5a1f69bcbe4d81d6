"""Pick a response variation (channel and slot conditions) and fill its slot placeholders."""

from __future__ import annotations

import logging
import random
import re
from typing import Any

from bot.project.domain import Domain

logger = logging.getLogger(__name__)

MESSAGE_KEYS = ("text", "buttons", "image", "custom", "attachment", "elements", "quick_replies")
# Texts for the responses the engine itself needs, when a Rasa project does not define them.
BUILTIN = {
    "utter_default": "Sorry, I didn't get that. Could you rephrase?",
    "utter_error": "Sorry, something went wrong on my side. Please try again in a moment.",
    "utter_cannot_answer": "I'm sorry, I don't know the answer to that.",
    "utter_ask_rephrase": "I'm sorry, I didn't quite understand that. Could you rephrase?",
    "utter_restart": "Let's start over.",
    "utter_back": "Backing up...",
}
# As Rasa's interpolate_format_template: `{name}` (any characters but braces and newlines)
# takes a slot or a value passed with the response; `{{` and `}}` are literal braces.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^\n{}]+?)\}")


class ResponseRenderer:
    def __init__(self, domain: Domain, rng: random.Random | None = None) -> None:
        self.domain = domain
        self.rng = rng if rng is not None else random.Random()

    def has(self, name: str) -> bool:
        return name in self.domain.responses or name in BUILTIN

    def render(self, name: str, slots: dict[str, Any], channel: str | None = None,
               **kwargs: Any) -> dict[str, Any] | None:
        """The message dict for response `name`, or None when it does not exist."""
        variations = self.domain.responses.get(name)
        if not variations:
            text = BUILTIN.get(name)
            return {"text": text, "response": name} if text else None
        chosen = self._choose(variations, slots, channel)
        if chosen is None:
            logger.warning("response.no_variation response=%s channel=%s", name, channel)
            return None
        values = {**slots, **kwargs}
        message: dict[str, Any] = {"response": name}
        for key in MESSAGE_KEYS:
            if key in chosen and chosen[key] is not None:
                message[key] = _fill(chosen[key], values)
        if "metadata" in chosen:
            message["metadata"] = chosen["metadata"]
        return message

    def _choose(self, variations: tuple[dict[str, Any], ...], slots: dict[str, Any],
                channel: str | None) -> dict[str, Any] | None:
        usable = [v for v in variations if v.get("channel") in (None, channel)]
        conditional = [v for v in usable if v.get("condition") and _conditions_met(v, slots)]
        plain = [v for v in usable if not v.get("condition")]
        pool = conditional or plain
        if channel is not None:
            specific = [v for v in pool if v.get("channel") == channel]
            pool = specific or pool
        return self.rng.choice(pool) if pool else None


def _conditions_met(variation: dict[str, Any], slots: dict[str, Any]) -> bool:
    for cond in variation.get("condition") or []:
        if cond.get("type", "slot") != "slot":
            return False
        actual = slots.get(cond.get("name"))
        expected = cond.get("value")
        if isinstance(actual, str) and isinstance(expected, str):
            if actual.lower() != expected.lower():
                return False
        elif actual != expected:
            return False
    return True


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return _TOKEN.sub(lambda m: _token(values, m), value)
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _token(values: dict[str, Any], match: re.Match[str]) -> str:
    token = match.group(0)
    if token in ("{{", "}}"):
        return token[0]
    return _shown(values, match.group(1), token)


def _shown(values: dict[str, Any], key: str, original: str) -> str:
    if key not in values:
        return original
    value = values[key]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

