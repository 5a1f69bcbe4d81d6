"""Before the bot gives up, it tries the actions that may still answer: the fallback chain.

    rules / stories / forms  ->  give-up action predicted (utter_out_of_scope, utter_default, ...)
                                  or an unsure intent outside a form
                             ->  try action_answer_question (a confident knowledge-base answer)
                             ->  try the next attempt (e.g. a generated small-talk reply)
                             ->  the give-up action as predicted

Rules and stories keep the control: the chain only steps in where they already chose to give
up (or where the NLU was unsure and no form is asking), and an attempt that declines leaves no
trace in the tracker. An attempt "answers" when it utters a message that is not one of
`declines` (the knowledge action utters utter_cannot_answer when it is not confident).

config.yml, all keys optional; without a `fallback:` section there is no chain and a Rasa
project behaves exactly as before:

    fallback:
      attempts: [action_answer_question]     # tried in this order
      give_up: [utter_out_of_scope, utter_default, action_default_fallback]
      below: 0.6       # outside forms, a message whose intent is under this confidence is
                       # tried too (0 turns it off); `keep` intents never are
      keep: [affirm, deny, inform, stop, greet, goodbye, thank]
      declines: [utter_cannot_answer]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import ConfigError
from bot.state.events import BotUttered, Event, UserUttered
from bot.state.tracker import DialogueStateTracker

ACTION_LISTEN = "action_listen"
KEYS = ("attempts", "give_up", "below", "keep", "declines")


@dataclass(frozen=True, slots=True)
class FallbackChain:
    attempts: tuple[str, ...] = ("action_answer_question",)
    give_up: tuple[str, ...] = ("utter_out_of_scope", "utter_default", "action_default_fallback")
    below: float = 0.0  # off unless configured: an unsure intent alone changes nothing
    keep: tuple[str, ...] = ("affirm", "deny", "inform", "stop", "greet", "goodbye", "thank")
    declines: tuple[str, ...] = ("utter_cannot_answer",)

    def __post_init__(self) -> None:
        if not 0.0 <= self.below <= 1.0:
            raise ConfigError(f"fallback.below must be a confidence in [0, 1], got {self.below}.")

    @classmethod
    def from_config(cls, section: Mapping[str, Any], at: str) -> FallbackChain:
        unknown = [key for key in section if key not in KEYS]
        if unknown:
            raise ConfigError(f"{at}: unknown key 'fallback.{unknown[0]}'. "
                              f"Available: {', '.join(KEYS)}.")
        values: dict[str, Any] = {}
        for key in ("attempts", "give_up", "keep", "declines"):
            if key in section:
                names = section[key]
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise ConfigError(f"{at}: fallback.{key} must be a list of names, "
                                      f"got {type(names).__name__}.")
                values[key] = tuple(names)
        if "below" in section:
            below = section["below"]
            if isinstance(below, bool) or not isinstance(below, (int, float)):
                raise ConfigError(f"{at}: fallback.below must be a number in [0, 1].")
            values["below"] = float(below)
        return cls(**values)

    def available(self, known: Iterable[str]) -> FallbackChain | None:
        """This chain with only the attempts the project can run (None when none is left)."""
        names = set(known)
        attempts = tuple(a for a in self.attempts if a in names)
        if not attempts:
            return None
        return FallbackChain(attempts, self.give_up, self.below, self.keep, self.declines)

    def applies(self, tracker: DialogueStateTracker, action: str) -> bool:
        """True when `action` is the first one predicted after a typed user message and the
        bot is about to give up on it (or the NLU was unsure and no form is asking)."""
        if tracker.latest_action_name != ACTION_LISTEN or action in self.attempts:
            return False
        user = next((e for e in reversed(tracker.events) if isinstance(e, UserUttered)), None)
        text = (user.text or "").strip() if user is not None else ""
        if not text or text.startswith("/"):  # `/intent` payloads say exactly what they mean
            return False
        if action in self.give_up:
            return True
        intent = (user.parse_data or {}).get("intent") or {}
        confidence = float(intent.get("confidence") or 0.0)
        return (confidence < self.below and intent.get("name") not in self.keep
                and tracker.active_loop_name is None)

    def answered(self, events: Iterable[Event]) -> bool:
        """An attempt answered when it uttered anything other than a declining response."""
        return any(isinstance(e, BotUttered)
                   and (e.metadata or {}).get("utter_action") not in self.declines
                   for e in events)
