"""The dialogue manager hands the NLU what the bot just asked (nlu/context.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.state.events import ActionExecuted, ActiveLoop, BotUttered, SlotSet, UserUttered
from bot.manager import DialogueManager, UserMessage, dialogue_context
from bot.state.tracker import DialogueStateTracker
from nlu.context import DialogueContext


async def test_parser_gets_the_context_of_each_turn(
        make_tiny_manager: Callable[..., DialogueManager]) -> None:
    seen: list[DialogueContext | None] = []

    async def parser(text: str, context: DialogueContext | None = None) -> dict[str, Any]:
        seen.append(context)
        return {"text": text, "intent": {"name": "greet", "confidence": 0.95}, "entities": [],
                "intent_ranking": [{"name": "greet", "confidence": 0.95}]}

    manager = make_tiny_manager(parser=parser)
    await manager.handle_message(UserMessage("hi", "ana"))
    await manager.handle_message(UserMessage("hello again", "ana"))
    assert seen[0] == DialogueContext()
    assert seen[1] == DialogueContext("utter_greet")


async def test_a_parser_without_context_still_works(
        make_tiny_manager: Callable[..., DialogueManager]) -> None:
    async def parser(text: str) -> dict[str, Any]:
        return {"text": text, "intent": {"name": "greet", "confidence": 0.95}, "entities": [],
                "intent_ranking": []}

    result = await make_tiny_manager(parser=parser).handle_message(UserMessage("hi", "bo"))
    assert result.messages


def test_context_inside_a_form_names_the_requested_slot() -> None:
    tracker = DialogueStateTracker("ana", {"requested_slot": None})
    tracker.update_many([
        ActionExecuted("action_listen"), UserUttered("book", {"intent": {"name": "book_room"}}),
        ActionExecuted("booking_form"), ActiveLoop("booking_form"),
        SlotSet("requested_slot", "checkin_date"), BotUttered("When?"),
        ActionExecuted("action_listen"),
    ])
    assert dialogue_context(tracker) == DialogueContext("booking_form", "checkin_date",
                                                        "booking_form")
    tracker.update_many([UserUttered("stop", {"intent": {"name": "stop"}}),
                         ActionExecuted("validate_booking_form"),
                         ActionExecuted("utter_ask_continue"), ActionExecuted("action_listen")])
    assert dialogue_context(tracker) == DialogueContext("utter_ask_continue", "checkin_date",
                                                        "booking_form")


def test_training_contexts_come_from_the_demo_stories_and_rules(demo: Any) -> None:
    from bot.training.fingerprints import fingerprints
    from bot.training.nlu import _step_dicts
    from nlu.context import mine_contexts

    mined = mine_contexts(_step_dicts(s.steps) for s in [*demo.data.stories, *demo.data.rules])
    assert DialogueContext("utter_confirm_booking") in mined["affirm"]
    assert any(c.active_loop == "booking_form" and c.requested_slot for c in mined["stop"])
    # stories shape the NLU fingerprint only when the classifier reads the context
    assert any(getattr(c.params, "use_context", False) for c in demo.config.pipeline)
    assert fingerprints(demo)["nlu"]


def test_slot_mappings_shape_the_nlu_fingerprint_when_it_reads_the_context(demo: Any) -> None:
    """answer_contexts reads the slots' from_entity mappings: a changed mapping retrains."""
    from dataclasses import replace

    from bot.training.fingerprints import fingerprints

    slots = dict(demo.domain.slots)
    slots["hotel"] = replace(slots["hotel"], mappings=({"type": "from_entity", "entity": "city"},))
    changed = replace(demo, domain=replace(demo.domain, slots=slots))
    assert fingerprints(changed)["nlu"] != fingerprints(demo)["nlu"]
    assert fingerprints(changed)["core"] != fingerprints(demo)["core"]  # the domain, as before
