"""nlu/context.py: the dialogue context the NLU reads, and contexts mined from stories."""

from __future__ import annotations

from nlu.context import DialogueContext, mine_contexts, render_context

STORY = [
    {"intent": "greet"},
    {"action": "utter_greet"},
    {"intent": "book_room"},
    {"action": "booking_form"},
    {"active_loop": "booking_form"},
    {"slot_was_set": [{"requested_slot": "checkin_date"}]},
    {"intent": "inform"},
    {"action": "booking_form"},
    {"slot_was_set": {"requested_slot": "guests"}},
    {"intent": "stop"},
    {"action": "utter_ask_continue"},
    {"or": [{"intent": "deny"}, {"intent": "stop"}]},
    {"action": "action_deactivate_loop"},
    {"active_loop": None},
    {"action": "utter_anything_else"},
    {"intent": "affirm"},
]


def test_render_context_is_short_words() -> None:
    assert render_context(None) == "" and render_context(DialogueContext()) == ""
    assert render_context(DialogueContext("utter_anything_else")) == "anything else"
    form = DialogueContext("booking_form", "checkin_date", "booking_form")
    assert render_context(form) == "booking form asks checkin date"
    asked = DialogueContext("utter_ask_continue", "guests", "booking_form")
    assert render_context(asked) == "booking form asks guests; ask continue"
    assert DialogueContext().is_empty and not form.is_empty
    assert form.to_dict() == {"last_action": "booking_form", "requested_slot": "checkin_date",
                              "active_loop": "booking_form"}


def test_mine_contexts_pairs_each_intent_with_what_came_before() -> None:
    mined = mine_contexts([STORY])
    assert "greet" not in mined  # said before the bot did anything
    assert mined["book_room"] == [DialogueContext("utter_greet")]
    assert mined["inform"] == [DialogueContext("booking_form", "checkin_date", "booking_form")]
    asked = DialogueContext("utter_ask_continue", "guests", "booking_form")
    assert mined["deny"] == [asked]
    assert mined["stop"] == [DialogueContext("booking_form", "guests", "booking_form"), asked]
    # the loop ended: no requested slot any more; deactivation is not what the guest answers
    assert mined["affirm"] == [DialogueContext("utter_anything_else")]
