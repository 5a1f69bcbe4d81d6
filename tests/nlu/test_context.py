"""nlu/context.py: the dialogue context the NLU reads, and contexts mined from stories."""

from __future__ import annotations

from nlu.context import DialogueContext, add_topic_switches, answer_contexts, mine_contexts, \
    opening_intents, render_context, restated_tasks, task_answers

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


RULES = [
    [{"intent": "chitchat"}, {"action": "utter_chitchat"}],
    [{"intent": "goodbye"}, {"action": "utter_goodbye"}],
    [{"intent": "book_room"}, {"action": "booking_form"}, {"active_loop": "booking_form"}],
    # a condition first: stopping is said inside the form, not at any time
    [{"active_loop": "booking_form"}, {"intent": "stop"}, {"action": "utter_ask_continue"}],
    [{"action": "utter_anything_else"}, {"intent": "deny"}, {"action": "utter_goodbye"}],
]


def test_opening_intents_are_what_unconditioned_rules_begin_with() -> None:
    assert opening_intents(RULES) == {"chitchat", "goodbye", "book_room"}
    assert opening_intents([[{"or": [{"intent": "greet"}, {"intent": "thank"}]}], []]) == \
        {"greet", "thank"}


def test_topic_switches_pair_openers_with_every_open_context() -> None:
    chat = [{"intent": "greet"}, {"action": "utter_greet"}, {"intent": "chitchat"},
            {"action": "utter_chitchat"}, {"intent": "goodbye"}]
    mined = mine_contexts([STORY, chat])
    assert mined["book_room"] == [DialogueContext("utter_greet")]
    switched = add_topic_switches(mined, RULES)
    # after small talk a guest may start a booking: the stories alone never show it
    assert DialogueContext("utter_chitchat") in switched["book_room"]
    assert DialogueContext("utter_greet") in switched["chitchat"]
    # a form's question is not an open context, and answers keep their own contexts
    assert all(c.active_loop is None for c in switched["book_room"])
    assert switched["inform"] == mined["inform"] and switched["deny"] == mined["deny"]
    assert switched["stop"] == mined["stop"]
    assert mined["book_room"] == [DialogueContext("utter_greet")]  # the input is not changed


def test_a_rule_said_inside_a_form_gets_the_form_asking() -> None:
    # "stop" inside the cancel form: the rule's condition is the only context it has
    stop_rule = [{"active_loop": "cancel_form"}, {"intent": "stop"},
                 {"action": "utter_ask_continue"}]
    story = [{"intent": "cancel_booking"}, {"action": "cancel_form"},
             {"active_loop": "cancel_form"},
             {"slot_was_set": [{"requested_slot": "booking_id"}]}, {"intent": "inform"}]
    mined = mine_contexts([story, stop_rule])
    assert mined["stop"] == [DialogueContext("cancel_form", None, "cancel_form"),
                             DialogueContext("cancel_form", "booking_id", "cancel_form")]
    assert render_context(mined["stop"][0]) == "cancel form"
    # a conditioned rule that starts with the bot keeps the context of that action
    go_on = [{"active_loop": "cancel_form"}, {"action": "utter_ask_continue"},
             {"intent": "affirm"}]
    assert mine_contexts([go_on])["affirm"] == [
        DialogueContext("utter_ask_continue", None, "cancel_form")]
    # without a condition a first user step still has no context
    assert "chitchat" not in mine_contexts([RULES[0]])


CANCEL = [
    {"intent": "cancel_booking"},
    {"action": "cancel_form"},
    {"active_loop": "cancel_form"},
    {"slot_was_set": {"requested_slot": "booking_id"}},
    {"intent": "inform"},
    {"action": "cancel_form"},
    {"slot_was_set": {"requested_slot": None}},
    {"active_loop": None},
    {"action": "utter_confirm_cancel"},
    {"intent": "affirm"},
    {"action": "action_cancel_booking"},
    {"action": "utter_anything_else"},
]


def test_task_answers_are_replies_to_a_completed_form_that_carry_out_its_task() -> None:
    declined = [*CANCEL[:9], {"intent": "deny"}, {"action": "utter_cancel_aborted"}]
    assert task_answers([CANCEL, declined]) == {"utter_confirm_cancel": {"affirm": "cancel_booking"}}
    # a stopped form (action_deactivate_loop) asks nothing to confirm; an intent after the
    # form's re-activation is no task
    assert task_answers([STORY]) == {}


def test_a_reply_naming_its_task_is_the_task_where_the_task_can_be_asked() -> None:
    answers = task_answers([CANCEL])
    anything_else = DialogueContext("utter_anything_else")
    contexts = {"cancel_booking": [anything_else], "check_booking": [anything_else],
                "affirm": [DialogueContext("utter_confirm_cancel"), anything_else]}
    examples = [("ya just cancel it", "affirm"), ("yes", "affirm"),
                ("no dont cancel it", "deny"), ("cancel my booking", "cancel_booking"),
                ("check my booking", "check_booking")]
    confirm = DialogueContext("utter_confirm_cancel")
    assert restated_tasks(examples, answers, contexts) == {
        "ya just cancel it": [(anything_else, "cancel_booking"), (confirm, "affirm")]}
    # "booking" is check_booking's word too: no reply is the task by it
    assert restated_tasks([*examples, ("yes, that booking", "affirm")], answers,
                          contexts).keys() == {"ya just cancel it"}


def test_an_answer_naming_a_slot_is_trained_where_the_form_asks_for_it() -> None:
    asks_hotel = DialogueContext("booking_form", "hotel", "booking_form")
    asks_checkin = DialogueContext("booking_form", "checkin_date", "booking_form")
    asks_nothing = DialogueContext("booking_form", None, "booking_form")
    contexts = {"inform": [asks_hotel, asks_checkin, asks_nothing],
                "chitchat": [asks_hotel], "book_room": [DialogueContext("utter_greet")]}
    mappings = {"hotel": [{"type": "from_entity", "entity": "hotel",
                           "not_intent": ["chitchat"]}],
                "checkin_date": [{"type": "from_text"},
                                 {"type": "from_entity", "entity": "date", "role": "checkin"}]}
    examples = [("[rome](hotel) then", "inform", [("hotel", None)]),
                ("[the 8th](date) and [rome](hotel)", "inform", [("date", "checkin"), ("hotel", None)]),
                ("the [8th](date)", "inform", [("date", "checkout")]),  # another role
                ("the cheapest", "inform", []),
                ("is [rome](hotel) nice", "chitchat", [("hotel", None)]),  # not_intent
                ("book [rome](hotel)", "book_room", [("hotel", None)])]  # no form asks
    assert answer_contexts(examples, contexts, mappings) == {
        "[rome](hotel) then": [asks_hotel],
        "[the 8th](date) and [rome](hotel)": [asks_hotel, asks_checkin]}
