"""DialogueStateTracker: state derived by replaying events, with Rasa 3.x semantics."""

from __future__ import annotations

import json
import logging
import random

import pytest
from rasa_sdk.interfaces import Tracker as SdkTracker

from bot.errors import BotError
from bot.state.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActionReverted,
    ActiveLoop,
    AllSlotsReset,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    DefinePrevUserUtteredFeaturization,
    EntitiesAdded,
    Event,
    FollowupAction,
    LoopInterrupted,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUttered,
    UserUtteranceReverted,
)
from bot.state.tracker import DialogueStateTracker, TrackerError

SLOTS = {"city": None, "guests": 1.0, "room_type": None, "requested_slot": None}


def user(text: str, intent: str, entities: list[dict] | None = None, **kwargs) -> UserUttered:
    return UserUttered(text, {"intent": {"name": intent, "confidence": 0.9},
                              "entities": entities or []}, **kwargs)


def listen() -> ActionExecuted:
    return ActionExecuted("action_listen")


def session_start() -> list[Event]:
    return [ActionExecuted("action_session_start"), SessionStarted(), listen()]


def tracker(*events: Event, slots: dict | None = SLOTS) -> DialogueStateTracker:
    return DialogueStateTracker("ana", slots, events)


def test_fresh_tracker_state() -> None:
    t = DialogueStateTracker("ana", SLOTS)
    assert t.sender_id == "ana" and t.events == ()
    assert t.slots == SLOTS
    assert t.latest_message is None and t.latest_bot_utterance is None
    assert t.latest_action_name is None and t.latest_action == {}
    assert t.followup_action == "action_listen"  # as in Rasa
    assert t.is_paused is False
    assert t.active_loop == {} and t.active_loop_name is None
    assert t.latest_input_channel is None
    assert t.applied_events() == []


def test_slots_defaults_then_slot_sets() -> None:
    t = tracker(SlotSet("city", "Lisbon"), SlotSet("guests", 2.0))
    assert t.slots == {**SLOTS, "city": "Lisbon", "guests": 2.0}
    assert t.get_slot("city") == "Lisbon"
    assert t.get_slot("nope") is None


def test_unknown_slot_is_ignored_when_slots_are_known(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.state.tracker"):
        t = tracker(SlotSet("colour", "red"))
    assert "colour" not in t.slots
    assert "colour" in caplog.text


def test_without_slot_defaults_any_slot_is_accepted() -> None:
    t = tracker(SlotSet("colour", "red"), slots=None)
    assert t.slots == {"colour": "red"}
    t.update(AllSlotsReset())
    assert t.slots == {}


def test_slot_defaults_are_not_shared() -> None:
    defaults = {"items": []}
    t = DialogueStateTracker("a", defaults)
    t.slots["items"].append(1)  # a copy: the state is not changed
    assert t.slots == {"items": []}
    t.update(SlotSet("items", [1]))
    t.update(AllSlotsReset())
    assert t.slots == {"items": []}
    assert defaults == {"items": []}


def test_a_derived_value_is_kept_until_the_next_event() -> None:
    t = DialogueStateTracker("a", {}, [ActionExecuted("action_listen")])
    calls: list[int] = []

    def count() -> int:
        calls.append(len(t.events))
        return len(t.events)

    owner = object()
    assert t.derived(owner, count) == 1 and t.derived(owner, count) == 1
    assert len(calls) == 1
    other = t.copy()
    t.update(ActionExecuted("utter_greet"))
    assert t.derived(owner, count) == 2
    assert t.derived(object(), count) == 2 and len(calls) == 3  # another owner: computed
    other.update(SlotSet("x", 1))  # the copy went its own way
    assert other.derived(owner, lambda: "copy") == "copy"


def test_event_data_copies_are_deep() -> None:
    parse = {"intent": {"name": "greet"}, "entities": [{"entity": "x", "value": [1]}]}
    event = UserUttered("hi", parse_data=parse)
    wire = event.to_dict()
    wire["parse_data"]["entities"][0]["value"].append(2)
    assert event.parse_data["entities"][0]["value"] == [1]


def test_reset_slots_keeps_everything_else() -> None:
    t = tracker(*session_start(), user("hi", "greet"), SlotSet("city", "Lisbon"),
                ActionExecuted("utter_greet"), AllSlotsReset())
    assert t.slots == SLOTS
    assert t.latest_message.text == "hi"
    assert t.latest_action_name == "utter_greet"


def test_restart_resets_state_and_triggers_session_start() -> None:
    t = tracker(*session_start(), user("hi", "greet", input_channel="rest"),
                SlotSet("city", "Lisbon"), ActiveLoop("booking_form"), ConversationPaused(),
                ActionExecuted("action_restart"), Restarted())
    assert t.slots == SLOTS
    assert t.active_loop == {} and t.is_paused is False
    assert t.latest_message is None and t.latest_action_name is None
    assert t.followup_action == "action_session_start"
    assert t.applied_events() == []
    assert t.latest_input_channel == "rest"  # from all events, like Rasa
    assert t.idx_after_latest_restart() == len(t.events)
    assert t.events_after_latest_restart() == []
    t.update(ActionExecuted("action_session_start"))
    assert t.followup_action is None


def test_session_started_resets_state() -> None:
    t = tracker(*session_start(), user("hi", "greet"), SlotSet("city", "Lisbon"),
                ActionExecuted("action_session_start"), SessionStarted())
    assert t.slots == SLOTS
    assert t.latest_message is None
    assert t.followup_action == "action_listen"
    assert t.applied_events() == []
    assert len(t.events) == 7 and t.idx_after_latest_restart() == 0
    # carried-over slots come as SlotSets after SessionStarted
    t.update(SlotSet("city", "Lisbon"))
    assert t.get_slot("city") == "Lisbon"


def test_rewind_reverts_the_latest_user_message_and_the_listen_before_it() -> None:
    greet = user("hi", "greet")
    events = [*session_start(), greet, ActionExecuted("utter_greet"), listen(),
              user("blah", "out_of_scope"), SlotSet("city", "Mars"),
              ActionExecuted("action_default_fallback"), UserUtteranceReverted()]
    t = tracker(*events)
    assert t.latest_message == greet
    assert t.latest_action_name == "utter_greet"
    assert t.get_slot("city") is None
    assert t.applied_events() == events[2:5]  # what came before SessionStarted is cleared
    assert len(t.events) == len(events)  # history keeps everything


def test_undo_reverts_the_latest_action_and_what_followed() -> None:
    events = [*session_start(), user("hi", "greet"), ActionExecuted("utter_greet"),
              ActionExecuted("action_set_city"), SlotSet("city", "Lisbon"),
              BotUttered("Lisbon it is"), ActionReverted()]
    t = tracker(*events)
    assert t.latest_action_name == "utter_greet"
    assert t.get_slot("city") is None
    assert t.latest_bot_utterance is None
    assert t.applied_events() == events[2:5]


def test_rewind_after_restart_only_replays_the_new_conversation() -> None:
    t = tracker(*session_start(), user("hi", "greet"), SlotSet("city", "Lisbon"),
                Restarted(), listen(), user("again", "greet"), SlotSet("guests", 3.0),
                UserUtteranceReverted())
    assert t.slots == SLOTS  # nothing from before the restart comes back
    assert t.latest_message is None
    assert t.applied_events() == []


def test_pause_and_resume() -> None:
    t = tracker(ConversationPaused())
    assert t.is_paused
    t.update(ConversationResumed())
    assert not t.is_paused


def test_followup_action_is_cleared_by_actions_and_user_messages() -> None:
    t = tracker(FollowupAction("action_submit_booking"))
    assert t.followup_action == "action_submit_booking"
    t.update(ActionExecuted("action_submit_booking"))
    assert t.followup_action is None
    t.update(FollowupAction("utter_goodbye"))
    t.update(user("bye", "goodbye"))
    assert t.followup_action is None


def test_latest_message_action_and_bot_utterance() -> None:
    t = tracker(*session_start(), user("hi", "greet", input_channel="socketio"),
                ActionExecuted("utter_greet"), BotUttered("Hello!"),
                ActionExecuted(None, action_text="Hello!"))
    assert t.latest_message.intent_name == "greet"
    assert t.latest_bot_utterance.text == "Hello!"
    assert t.latest_action == {"action_text": "Hello!"}
    assert t.latest_action_name == "Hello!"
    assert t.latest_input_channel == "socketio"
    assert t.idx_after_latest_user_message() == 4


def test_latest_entity_values_with_roles_and_groups() -> None:
    entities = [{"entity": "date", "value": "May 3", "role": "checkin"},
                {"entity": "date", "value": "May 9", "role": "checkout"},
                {"entity": "date", "value": "today"},
                {"entity": "number", "value": 2, "group": "adults"}]
    t = tracker(listen(), user("from May 3 to May 9", "inform", entities))
    assert list(t.get_latest_entity_values("date", role="checkin")) == ["May 3"]
    assert list(t.get_latest_entity_values("date")) == ["today"]  # exact match, as Rasa 3
    assert list(t.get_latest_entity_values("number", group="adults")) == [2]
    assert list(t.get_latest_entity_values("city")) == []
    assert list(DialogueStateTracker("x").get_latest_entity_values("date")) == []


def test_entities_added_only_right_after_listen() -> None:
    t = tracker(listen(), user("two of us", "inform"), EntitiesAdded([{"entity": "number",
                                                                         "value": 2}]))
    assert list(t.get_latest_entity_values("number")) == [2]
    assert t.current_state()["latest_message"]["entities"] == [{"entity": "number", "value": 2}]
    t.update(ActionExecuted("utter_x"))
    t.update(EntitiesAdded([{"entity": "city", "value": "Rome"}]))
    assert list(t.get_latest_entity_values("city")) == []
    assert t.events[1].entities == []  # the stored event is not modified


def test_define_featurization_marks_the_latest_message() -> None:
    t = tracker(listen(), user("hi", "greet"), DefinePrevUserUtteredFeaturization(True))
    assert t.latest_message.use_text_for_featurization is True


class TestActiveLoop:
    def test_activation_records_the_trigger_message(self) -> None:
        t = tracker(listen(), user("book a room", "book_room"), ActionExecuted("booking_form"),
                    ActiveLoop("booking_form"))
        assert t.active_loop_name == "booking_form"
        loop = t.active_loop
        assert (loop["name"], loop["validate"], loop["rejected"]) == ("booking_form", True, False)
        assert loop["trigger_message"]["intent"]["name"] == "book_room"
        assert loop["trigger_message"]["text"] == "book a room"

    def test_deactivation(self) -> None:
        t = tracker(ActiveLoop("booking_form"), ActiveLoop(None))
        assert t.active_loop == {} and t.active_loop_name is None

    def test_interrupt_reject_and_resume(self) -> None:
        t = tracker(listen(), user("book", "book_room"), ActionExecuted("booking_form"),
                    ActiveLoop("booking_form"), listen(), user("stop", "stop"))
        t.update(ActionExecutionRejected("booking_form"))
        assert t.is_active_loop_rejected and t.active_loop["rejected"] is True
        t.update(ActionExecutionRejected("other_form"))  # not the active loop: no effect
        t.update(LoopInterrupted(True))
        assert t.is_active_loop_interrupted and t.active_loop["validate"] is False
        t.update(ActionExecuted("utter_ask_continue"))
        # any action ends the interruption (Rasa); only the loop's own run clears rejection
        assert t.active_loop["validate"] is True and t.active_loop["rejected"] is True
        t.update(LoopInterrupted(True))
        t.update(ActionExecuted("booking_form"))
        assert t.active_loop["validate"] is True and t.active_loop["rejected"] is False

    def test_loop_events_without_active_loop_do_nothing(self) -> None:
        t = tracker(LoopInterrupted(True), ActionExecutionRejected("booking_form"))
        assert t.active_loop == {}
        assert not t.is_active_loop_interrupted and not t.is_active_loop_rejected

    def test_should_not_be_set_is_not_an_active_loop(self) -> None:
        assert tracker(ActiveLoop("should_not_be_set")).active_loop_name is None


def form_conversation() -> list[Event]:
    """book_room -> form asks city -> user informs (happy path) -> form asks guests."""
    return [
        *session_start(), user("book a room", "book_room"), ActionExecuted("booking_form"),
        ActiveLoop("booking_form"), SlotSet("requested_slot", "city"), listen(),
        user("Lisbon", "inform", [{"entity": "city", "value": "Lisbon"}]),
        DefinePrevUserUtteredFeaturization(False),
        ActionExecuted("booking_form"), SlotSet("city", "Lisbon"),
        SlotSet("requested_slot", "guests"), listen(),
    ]


def test_applied_events_collapse_happy_loop_turns_like_rasa() -> None:
    events = form_conversation()
    t = tracker(*events)
    applied = t.applied_events()
    # The inform turn (listen, user, featurization) and the second form run are dropped,
    # slot sets are kept: the history looks like the form ran once, as stories write it.
    assert applied == [*events[2:7], *events[11:]]
    assert t.applied_events(collapse_loops=False) == events[2:]
    # the state is not collapsed
    assert t.latest_message.text == "Lisbon" and t.get_slot("city") == "Lisbon"


def test_applied_events_keep_unhappy_loop_turns() -> None:
    # As Rasa logs it: a rejected action gets no ActionExecuted, only the rejection.
    question = user("is breakfast included?", "ask_question")
    rerun = ActionExecuted("booking_form")
    events = [*form_conversation(), question, ActionExecutionRejected("booking_form"),
              LoopInterrupted(True), ActionExecuted("action_answer_question"), rerun, listen()]
    applied = tracker(*events).applied_events()
    assert question in applied and rerun in applied  # unhappy path: nothing collapsed
    assert applied[-6:] == events[-6:]


def test_get_last_event_for_and_last_executed_action_has() -> None:
    t = tracker(listen(), user("hi", "greet"), ActionExecuted("utter_greet"),
                ActionExecuted("utter_help"), listen())
    last = t.get_last_event_for(ActionExecuted, exclude_actions=["action_listen"])
    assert isinstance(last, ActionExecuted) and last.name == "utter_help"
    assert t.last_executed_action_has("utter_help")
    assert t.last_executed_action_has("utter_greet", skip=1)
    assert t.get_last_event_for(UserUttered).text == "hi"  # type: ignore[union-attr]
    assert t.get_last_event_for(Restarted) is None


def random_events(rng: random.Random, n: int) -> list[Event]:
    makers = [
        lambda: listen(),
        lambda: user(rng.choice(["hi", "Lisbon", "stop"]), rng.choice(["greet", "inform"])),
        lambda: ActionExecuted(rng.choice(["utter_greet", "booking_form", "action_x"])),
        lambda: SlotSet(rng.choice(list(SLOTS)), rng.randint(0, 9)),
        lambda: ActiveLoop(rng.choice(["booking_form", None])),
        lambda: LoopInterrupted(rng.random() < 0.5),
        lambda: ActionExecutionRejected("booking_form"),
        lambda: FollowupAction("utter_greet"),
        lambda: BotUttered("ok"),
        lambda: ConversationPaused(), lambda: ConversationResumed(),
        lambda: AllSlotsReset(), lambda: UserUtteranceReverted(), lambda: ActionReverted(),
        lambda: Restarted(), lambda: SessionStarted(),
        lambda: EntitiesAdded([{"entity": "city", "value": "Rome"}]),
    ]
    return [rng.choice(makers)() for _ in range(n)]


def state_without_followup(t: DialogueStateTracker) -> dict:
    state = t.current_state(include_events=False)
    state.pop("followup_action")  # a replay cannot see the follow-up a Restarted set
    return state


@pytest.mark.parametrize("seed", range(30))
def test_incremental_state_equals_replay_of_applied_events(seed: int) -> None:
    rng = random.Random(seed)
    t = DialogueStateTracker("ana", SLOTS)
    for event in random_events(rng, 60):
        t.update(event)
        replayed = DialogueStateTracker("ana", SLOTS, t.applied_events(collapse_loops=False))
        expected = state_without_followup(replayed)
        expected["latest_input_channel"] = t.latest_input_channel
        expected["latest_event_time"] = t.current_state(False)["latest_event_time"]
        assert state_without_followup(t) == expected
        rebuilt = DialogueStateTracker.from_events("ana", t.events, SLOTS)
        assert rebuilt.current_state() == t.current_state()


def test_current_state_shape() -> None:
    t = tracker(*session_start(), user("book in Lisbon", "book_room",
                                       [{"entity": "city", "value": "Lisbon"}],
                                       input_channel="rest"),
                ActionExecuted("booking_form"), ActiveLoop("booking_form"),
                SlotSet("city", "Lisbon"), SlotSet("requested_slot", "guests"),
                BotUttered("How many guests?"), listen())
    state = t.current_state()
    assert set(state) == {"sender_id", "slots", "latest_message", "latest_event_time",
                          "followup_action", "paused", "events", "latest_input_channel",
                          "active_loop", "latest_action", "latest_action_name"}
    assert state["sender_id"] == "ana"
    assert state["slots"]["city"] == "Lisbon"
    assert state["latest_message"]["text"] == "book in Lisbon"
    assert state["latest_message"]["intent"]["name"] == "book_room"
    assert state["latest_event_time"] == t.events[-1].timestamp
    assert state["followup_action"] is None and state["paused"] is False
    assert state["latest_input_channel"] == "rest"
    assert state["active_loop"]["name"] == "booking_form"
    assert state["latest_action"] == {"action_name": "action_listen"}
    assert state["latest_action_name"] == "action_listen"
    assert state["events"] == [e.to_dict() for e in t.events]
    json.dumps(state)


def test_current_state_of_a_fresh_tracker() -> None:
    state = DialogueStateTracker("x").current_state()
    assert state["latest_message"] == {"intent": {}, "entities": [], "text": None,
                                       "message_id": None, "metadata": {}}
    assert state["events"] == [] and state["latest_event_time"] is None
    assert state["active_loop"] == {} and state["latest_action"] == {}


def test_current_state_event_verbosity() -> None:
    t = tracker(listen(), user("a", "greet"), Restarted(), listen(), user("b", "greet"),
                ActionExecuted("utter_x"), ActionReverted())
    assert len(t.current_state(True)["events"]) == 7
    assert t.current_state("ALL")["events"] == t.current_state()["events"]
    assert t.current_state(False)["events"] is None
    assert t.current_state("none")["events"] is None
    assert [e["event"] for e in t.current_state("AFTER_RESTART")["events"]] == \
        ["action", "user", "action", "undo"]
    assert [e["event"] for e in t.current_state("APPLIED")["events"]] == ["action", "user"]
    with pytest.raises(TrackerError, match="include_events"):
        t.current_state("SOME")


def test_current_state_is_accepted_by_rasa_sdk() -> None:
    t = tracker(*session_start(), user("book for two in Lisbon", "book_room",
                                       [{"entity": "city", "value": "Lisbon"},
                                        {"entity": "date", "value": "May 3", "role": "checkin"}],
                                       input_channel="rest"),
                ActionExecuted("booking_form"), ActiveLoop("booking_form"),
                SlotSet("city", "Lisbon"), SlotSet("requested_slot", "guests"),
                BotUttered("How many guests?"), listen(), ConversationPaused())
    sdk_tracker = SdkTracker.from_dict(json.loads(json.dumps(t.current_state())))
    assert sdk_tracker.sender_id == "ana"
    assert sdk_tracker.get_slot("city") == "Lisbon"
    assert sdk_tracker.slots == t.slots
    assert sdk_tracker.latest_message["intent"]["name"] == "book_room"
    assert list(sdk_tracker.get_latest_entity_values("date", "checkin")) == ["May 3"]
    assert sdk_tracker.active_loop_name == "booking_form"
    assert sdk_tracker.active_loop["validate"] is True
    assert sdk_tracker.latest_action_name == "action_listen"
    assert sdk_tracker.get_latest_input_channel() == "rest"
    assert sdk_tracker.is_paused() is True
    assert sdk_tracker.followup_action is None
    assert len(sdk_tracker.events) == len(t.events)
    assert sdk_tracker.events_after_latest_restart() == sdk_tracker.events
    assert sdk_tracker.current_state()["latest_event_time"] == t.events[-1].timestamp


def test_from_dict_round_trip() -> None:
    t = tracker(*form_conversation(), ConversationPaused())
    dump = json.loads(json.dumps(t.current_state()))
    rebuilt = DialogueStateTracker.from_dict(dump, SLOTS)
    assert rebuilt == t
    assert rebuilt.current_state() == t.current_state()


def test_from_dict_errors() -> None:
    with pytest.raises(TrackerError, match="'events' list"):
        DialogueStateTracker.from_dict({"sender_id": "x", "events": None})
    with pytest.raises(TrackerError, match="sender_id"):
        DialogueStateTracker.from_dict({"events": []})
    with pytest.raises(BotError, match="Event #0: Unknown event type"):
        DialogueStateTracker.from_dict({"sender_id": "x", "events": [{"event": "nope"}]})


def test_from_events_accepts_dicts_and_events() -> None:
    t = DialogueStateTracker.from_events("x", [{"event": "slot", "name": "city",
                                                "value": "Rome"}, SlotSet("guests", 2.0)], SLOTS)
    assert t.get_slot("city") == "Rome" and t.get_slot("guests") == 2.0


def test_copy_is_independent() -> None:
    t = tracker(*form_conversation())
    c = t.copy()
    assert c == t and c.current_state() == t.current_state()
    c.update(SlotSet("city", "Rome"))
    c.update(ActiveLoop(None))
    assert t.get_slot("city") == "Lisbon" and t.active_loop_name == "booking_form"
    assert len(c.events) == len(t.events) + 2
    empty = t.init_copy()
    assert empty.events == () and empty.sender_id == "ana" and empty.slots == SLOTS


def test_returned_state_is_a_copy() -> None:
    t = tracker(ActiveLoop("booking_form"), SlotSet("city", "Rome"))
    t.slots["city"] = "Paris"
    t.active_loop["name"] = "other"
    t.current_state()["slots"]["city"] = "Oslo"
    assert t.get_slot("city") == "Rome" and t.active_loop_name == "booking_form"


def test_max_event_history() -> None:
    t = DialogueStateTracker("x", SLOTS, max_event_history=3)
    t.update_many([SlotSet("city", "Rome"), listen(), user("a", "greet"), listen(),
                   user("b", "greet")])
    assert len(t.events) == 3 and t.total_event_count == 5
    assert t.get_slot("city") == "Rome"  # state keeps the effect of dropped events
    assert t.copy().total_event_count == 5


def test_invalid_arguments() -> None:
    with pytest.raises(TrackerError, match="sender_id"):
        DialogueStateTracker("")
    with pytest.raises(TrackerError, match="max_event_history"):
        DialogueStateTracker("x", max_event_history=0)
    with pytest.raises(TrackerError, match="Event objects"):
        DialogueStateTracker("x").update({"event": "restart"})  # type: ignore[arg-type]


def test_equality_is_by_sender_and_events() -> None:
    events = form_conversation()
    assert tracker(*events) == tracker(*events)
    assert tracker(*events) != tracker(*events[:-1])
    assert DialogueStateTracker("a") != DialogueStateTracker("b")
    assert repr(tracker(*events)) == f"DialogueStateTracker(sender_id='ana', events={len(events)})"
