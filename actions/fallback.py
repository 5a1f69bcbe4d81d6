"""Small talk the assistant has no response for, answered by the generator (GPT-2).

`action_generate_reply` is an attempt of the fallback chain (config.yml `fallback.attempts`,
bot/runtime/fallback_chain.py): the dialogue manager tries it before the bot gives up with
its canned response (utter_chitchat, utter_out_of_scope, utter_default), after the knowledge
answer:

    rules / forms -> action_answer_question -> action_generate_reply -> the canned response

It utters the generated reply, marked for the UI and REST clients,

    {"text": "...", "metadata": {"generated": true, "generation": {"candidates": 8,
                                 "kept": 3, "score": 0.41, "ms": 180.2}}}

then steers back to the stay (`utter_steer_back`). It declines - utters nothing, so the chain
goes on to the canned response - when the message's intent is not small talk (chitchat,
out_of_scope, nlu_fallback; `$XINGKONG_GENERATION_INTENTS` lists others, comma-separated: an
unsure booking request must reach its form, not get a chat), when there is no generator model,
when a form is asking for a slot, when the message is empty, or when every candidate was
unsafe or broken (generation/safety.py). It never crashes the turn and returns no events.

The model directory is `$XINGKONG_GENERATION_DIR` (default "models/generation", written by
`xingkong train` from config.yml's `generation:` section). The generator loads once per
process on first use; replies are generated in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.model_cache import ModelCache

logger = logging.getLogger(__name__)

GENERATION_DIR_ENV = "XINGKONG_GENERATION_DIR"
INTENTS_ENV = "XINGKONG_GENERATION_INTENTS"
SMALL_TALK_INTENTS = ("chitchat", "out_of_scope", "nlu_fallback")
DEFAULT_GENERATION_DIR = "models/generation"
STEER_BACK = "utter_steer_back"
RETRY_SECONDS = 60.0  # a model dir that failed to load is tried again after this

_GENERATORS = ModelCache()  # dir -> Generator


def generation_dir() -> str:
    return os.environ.get(GENERATION_DIR_ENV) or DEFAULT_GENERATION_DIR


def small_talk_intents() -> tuple[str, ...]:
    names = os.environ.get(INTENTS_ENV)
    if not names:
        return SMALL_TALK_INTENTS
    return tuple(n.strip() for n in names.split(",") if n.strip())


def protected_terms() -> list[str]:
    """Names the generator must never bring up on its own: the hotels and their cities."""
    from actions.catalog import CatalogError, get_catalog

    try:
        catalog = get_catalog()
    except CatalogError as exc:
        logger.warning("actions.fallback.no_catalog error=%s: hotel names are not filtered "
                       "beyond 'Starlight'", exc)
        return ["Starlight"]
    return ["Starlight", *(h.name for h in catalog.hotels), *catalog.cities()]


def load_generator(path: str) -> Any:
    """The Generator of the model directory `path`, loaded (the patch point for tests)."""
    from generation.generator import Generator

    return Generator(path, protected_terms=protected_terms()).load()


def get_generator(path: str | None = None) -> Any | None:
    """The cached Generator for `path` (default: generation_dir()); None when there is none
    (warned once, tried again after RETRY_SECONDS so a model trained meanwhile is found)."""
    path = path or generation_dir()

    def unavailable(exc: Exception, tried_before: bool) -> None:
        log = logger.debug if tried_before else logger.warning
        log("actions.fallback.no_generator dir=%s error=%s: %s. Small talk gets the canned "
            "responses until `xingkong train` builds it.", path, type(exc).__name__, exc)

    return _GENERATORS.get(path, lambda p: load_generator(p), RETRY_SECONDS, unavailable)


def reset_generators() -> None:
    _GENERATORS.clear()


def conversation_history(tracker: Tracker) -> list[str]:
    """The earlier turns as texts, oldest first, alternating and ending with the bot's turn
    (consecutive messages of one side joined); the latest user message is not included."""
    turns: list[tuple[str, str]] = []
    for event in tracker.events:
        side = event.get("event")
        text = (event.get("text") or "").strip()
        if side not in ("user", "bot") or not text:
            continue
        if turns and turns[-1][0] == side:
            turns[-1] = (side, f"{turns[-1][1]} {text}")
        else:
            turns.append((side, text))
    if turns and turns[-1][0] == "user":
        turns.pop()  # the message being answered
    while turns and turns[0][0] == "bot":
        turns.pop(0)  # the prompt alternates from a user turn
    return [text for _, text in turns]


class ActionGenerateReply(Action):
    """A generated small-talk reply and a steer back to the stay, or nothing (see above)."""

    def name(self) -> str:
        return "action_generate_reply"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        latest = tracker.latest_message or {}
        text = (latest.get("text") or "").strip()
        if not text or text.startswith("/"):
            return []
        intent = (latest.get("intent") or {}).get("name")
        if intent not in small_talk_intents():
            logger.info("actions.fallback.declined reason=not_small_talk intent=%s", intent)
            return []
        if tracker.active_loop.get("name") and tracker.get_slot("requested_slot"):
            logger.info("actions.fallback.declined reason=form_asks_slot form=%s",
                        tracker.active_loop.get("name"))
            return []
        generator = get_generator()
        if generator is None:
            return []
        try:
            reply = await asyncio.to_thread(generator.reply, text,
                                            conversation_history(tracker))
        except Exception:  # noqa: BLE001 - generation failed: decline, the chain goes on
            logger.exception("actions.fallback.failed")
            return []
        if reply.text is None:
            logger.info("actions.fallback.declined reason=all_candidates_dropped problems=%s",
                        sorted({p for c in reply.candidates for p in c.problems}))
            return []
        dispatcher.utter_message(text=reply.text, metadata=reply.metadata())
        dispatcher.utter_message(response=STEER_BACK)
        return []
