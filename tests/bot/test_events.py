"""Events: Rasa wire format, round trips, rasa_sdk output, legacy names and errors."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timezone

import pytest
from rasa_sdk import events as sdk

from bot.errors import BotError
from bot.state.events import (
    BOT_DATA_KEYS,
    EVENT_TYPES,
    ActionExecuted,
    ActionExecutionRejected,
    ActionReverted,
    ActiveLoop,
    AgentUttered,
    AllSlotsReset,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    DefinePrevUserUtteredFeaturization,
    EntitiesAdded,
    Event,
    EventError,
    FollowupAction,
    LoopInterrupted,
    ReminderCancelled,
    ReminderScheduled,
    Restarted,
    SessionStarted,
    SlotSet,
    StoryExported,
    UserUttered,
    UserUtteranceReverted,
    event_from_dict,
    events_from_list,
    events_to_list,
)

TS = 1_700_000_000.25

PARSE_DATA = {
    "intent": {"name": "book_room", "confidence": 0.97},
    "entities": [{"entity": "city", "start": 25, "end": 31, "value": "Lisbon",
                  "confidence_entity": 0.99, "extractor": "DIETClassifier"}],
    "text": "I want to book a room in Lisbon",
    "message_id": "8d4b0f6c",
    "metadata": {},
    "intent_ranking": [{"name": "book_room", "confidence": 0.97},
                       {"name": "inform", "confidence": 0.02}],
}

ONE_OF_EACH: list[Event] = [
    UserUttered("I want to book a room in Lisbon", PARSE_DATA, input_channel="rest",
                message_id="8d4b0f6c", timestamp=TS),
    BotUttered("Which city?", {"buttons": [{"title": "Lisbon", "payload": "/inform"}]},
               metadata={"utter_action": "utter_ask_city"}, timestamp=TS),
    ActionExecuted("booking_form", "RulePolicy", 1.0, timestamp=TS),
    SlotSet("city", "Lisbon", timestamp=TS),
    ActiveLoop("booking_form", timestamp=TS),
    LoopInterrupted(True, timestamp=TS),
    FollowupAction("action_submit_booking", timestamp=TS),
    ActionExecutionRejected("booking_form", "RulePolicy", 1.0, timestamp=TS),
    Restarted(timestamp=TS),
    UserUtteranceReverted(timestamp=TS),
    ActionReverted(timestamp=TS),
    AllSlotsReset(timestamp=TS),
    SessionStarted(timestamp=TS, metadata={"model_id": "m1"}),
    ReminderScheduled("remind_checkin", "2027-01-15T09:00:00+00:00", [{"entity": "hotel",
                      "value": "Starlight Lisbon"}], "checkin", False, timestamp=TS),
    ReminderCancelled("checkin", "remind_checkin", timestamp=TS),
    ConversationPaused(timestamp=TS),
    ConversationResumed(timestamp=TS),
    EntitiesAdded([{"entity": "number", "value": 2}], timestamp=TS),
    DefinePrevUserUtteredFeaturization(False, timestamp=TS),
    StoryExported("stories.yml", timestamp=TS),
    AgentUttered("hello from an agent", {"k": 1}, timestamp=TS),
]


def test_samples_cover_every_registered_type() -> None:
    assert {type(e) for e in ONE_OF_EACH} == set(EVENT_TYPES.values())
    assert all(EVENT_TYPES[cls.type_name] is cls for cls in EVENT_TYPES.values())


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: e.type_name)
def test_round_trip(event: Event) -> None:
    wire = event.to_dict()
    assert json.loads(json.dumps(wire)) == wire
    parsed = event_from_dict(wire)
    assert type(parsed) is type(event)
    assert parsed == event
    assert parsed.to_dict() == wire
    assert type(event).from_dict(wire) == event
    assert list(wire)[:3] == ["event", "timestamp", "metadata"]


def test_exact_wire_shapes() -> None:
    assert SlotSet("city", "Lisbon", timestamp=TS).to_dict() == {
        "event": "slot", "timestamp": TS, "metadata": {}, "name": "city", "value": "Lisbon"}
    assert ActionExecuted("action_listen", timestamp=TS).to_dict() == {
        "event": "action", "timestamp": TS, "metadata": {}, "name": "action_listen",
        "policy": None, "confidence": None, "action_text": None, "hide_rule_turn": False}
    assert UserUttered("hi", timestamp=TS).to_dict() == {
        "event": "user", "timestamp": TS, "metadata": {}, "text": "hi",
        "parse_data": {"intent": {}, "entities": [], "text": "hi", "message_id": None,
                       "metadata": {}},
        "input_channel": None, "message_id": None}
    assert BotUttered("hi", timestamp=TS).to_dict() == {
        "event": "bot", "timestamp": TS, "metadata": {}, "text": "hi",
        "data": dict.fromkeys(BOT_DATA_KEYS)}
    assert ReminderScheduled("r", datetime(2027, 1, 15, 9, tzinfo=timezone.utc), name="n",
                             timestamp=TS).to_dict() == {
        "event": "reminder", "timestamp": TS, "metadata": {}, "intent": "r",
        "date_time": "2027-01-15T09:00:00+00:00", "entities": None, "name": "n",
        "kill_on_user_msg": True}
    assert LoopInterrupted(True, timestamp=TS).to_dict() == {
        "event": "loop_interrupted", "timestamp": TS, "metadata": {}, "is_interrupted": True}
    assert ActiveLoop(None, timestamp=TS).to_dict()["name"] is None
    assert Restarted(timestamp=TS).to_dict() == {"event": "restart", "timestamp": TS,
                                                 "metadata": {}}


def test_defaults_timestamp_now_and_fresh_metadata() -> None:
    before = time.time()
    a, b = Restarted(), Restarted()
    assert before <= a.timestamp <= time.time()
    assert a.metadata == {} and a.metadata is not b.metadata
    assert isinstance(SlotSet("x", timestamp=3).timestamp, float)


def test_events_are_frozen() -> None:
    event = SlotSet("city", "Lisbon")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.value = "Paris"  # type: ignore[misc]


def test_to_dict_is_a_copy() -> None:
    event = UserUttered("hi", PARSE_DATA)
    wire = event.to_dict()
    wire["parse_data"]["entities"].clear()
    assert event.entities


def test_from_dict_does_not_alias_its_input() -> None:
    wire = {"event": "slot", "name": "guests", "value": [1, 2]}
    event = event_from_dict(wire)
    wire["value"].append(3)
    assert event.value == [1, 2]


def test_user_uttered_helpers() -> None:
    event = UserUttered("I want to book a room in Lisbon", PARSE_DATA)
    assert event.intent_name == "book_room"
    assert event.intent_confidence == 0.97
    assert event.entities[0]["value"] == "Lisbon"
    assert event.parse_data["intent_ranking"][1]["name"] == "inform"
    assert UserUttered("hi").intent_name is None
    assert UserUttered("hi").intent_confidence is None


def test_user_uttered_featurization_flag_follows_rasa() -> None:
    assert UserUttered("hi").use_text_for_featurization is True
    assert UserUttered(None, {"intent": {"name": "greet"}}).use_text_for_featurization is False
    assert UserUttered("hi", {"intent": {"name": "greet"}}).use_text_for_featurization is None
    assert "use_text_for_featurization" not in UserUttered("hi").to_dict()


def test_bot_uttered_from_response_and_message() -> None:
    event = BotUttered.from_response({"text": "Here", "image": "https://x/y.png",
                                      "utter_action": "utter_photo", "template_name": "t"})
    assert event.text == "Here"
    assert event.data["image"] == event.data["attachment"] == "https://x/y.png"
    assert event.metadata == {"utter_action": "utter_photo", "template_name": "t"}
    message = event.message()
    assert message["text"] == "Here" and message["image"] == "https://x/y.png"
    assert message["attachment"] is None and message["utter_action"] == "utter_photo"
    assert set(BOT_DATA_KEYS) <= set(message)


def test_bot_uttered_keeps_extra_data_keys() -> None:
    event = BotUttered("x", {"custom": {"a": 1}, "json_message": {"b": 2}})
    assert event.data["custom"] == {"a": 1} and event.data["json_message"] == {"b": 2}
    assert event_from_dict(event.to_dict()) == event


def test_rasa_aliases() -> None:
    assert SlotSet("a", 1).key == "a"
    assert ActionExecuted("utter_greet").action_name == "utter_greet"
    assert FollowupAction("f").action_name == "f"
    assert ActionExecutionRejected("form").action_name == "form"
    reminder = ReminderScheduled("r", "2027-01-15T09:00:00")
    assert reminder.trigger_date_time == datetime(2027, 1, 15, 9)
    assert reminder.kill_on_user_message is True
    assert reminder.name  # Rasa names unnamed reminders with a fresh id


SDK_EVENTS = [
    sdk.SlotSet("city", "Lisbon"),
    sdk.SlotSet("guests", None),
    sdk.ActiveLoop("booking_form"),
    sdk.ActiveLoop(None),
    sdk.LoopInterrupted(True),
    sdk.FollowupAction("action_submit_booking"),
    sdk.Restarted(),
    sdk.UserUtteranceReverted(),
    sdk.ActionReverted(),
    sdk.AllSlotsReset(),
    sdk.ReminderScheduled("EXTERNAL_checkin", datetime(2027, 1, 15, 9), name="checkin"),
    sdk.ReminderScheduled("EXTERNAL_checkin", datetime(2027, 1, 15, 9), entities={"a": "b"},
                          kill_on_user_message=False),
    sdk.ReminderCancelled("checkin"),
    sdk.ReminderCancelled(intent_name="EXTERNAL_checkin"),
    sdk.ConversationPaused(),
    sdk.ConversationResumed(),
    sdk.SessionStarted(),
    sdk.StoryExported(),
    sdk.BotUttered("Booked!", {"buttons": [{"title": "ok", "payload": "/affirm"}]},
                   {"utter_action": "utter_booking_confirmed"}),
    sdk.BotUttered(),
    sdk.ActionExecuted("action_check_booking", "RulePolicy", 1.0),
    sdk.ActionExecutionRejected("validate_booking_form"),
    sdk.UserUttered("/greet", {"intent": {"name": "greet", "confidence": 1.0}}),
    sdk.UserUttered("hello"),
    sdk.AgentUttered("agent here"),
]


@pytest.mark.parametrize("wire", SDK_EVENTS, ids=lambda d: d["event"])
def test_rasa_sdk_events_parse(wire: dict) -> None:
    assert wire["timestamp"] is None
    before = time.time()
    event = event_from_dict(wire)
    assert event.type_name == wire["event"]
    assert event.timestamp >= before  # a null timestamp means now
    for key, value in wire.items():
        if key not in ("event", "timestamp", "metadata", "data", "parse_data") and \
                value is not None:
            assert event.to_dict()[key] == value
    again = event_from_dict(event.to_dict())
    assert again == event and again.to_dict() == event.to_dict()


def test_rasa_sdk_values_are_kept() -> None:
    slot = event_from_dict(sdk.SlotSet("city", "Lisbon"))
    assert isinstance(slot, SlotSet) and (slot.name, slot.value) == ("city", "Lisbon")
    reminder = event_from_dict(sdk.ReminderScheduled("EXTERNAL_x", datetime(2027, 1, 15, 9),
                                                     kill_on_user_message=False))
    assert isinstance(reminder, ReminderScheduled)
    assert reminder.date_time == "2027-01-15T09:00:00" and reminder.kill_on_user_msg is False
    bot = event_from_dict(sdk.BotUttered("Hi", {"custom": {"x": 1}}, {"k": "v"}))
    assert isinstance(bot, BotUttered)
    assert bot.data["custom"] == {"x": 1} and bot.metadata == {"k": "v"}
    user = event_from_dict(sdk.UserUttered("/greet", {"intent": {"name": "greet"}},
                                           input_channel="socketio"))
    assert isinstance(user, UserUttered)
    assert user.intent_name == "greet" and user.input_channel == "socketio"
    deactivate = event_from_dict(sdk.ActiveLoop(None))
    assert isinstance(deactivate, ActiveLoop) and deactivate.name is None


def test_rasa_sdk_legacy_helpers() -> None:
    with pytest.deprecated_call():
        form = sdk.Form("booking_form")
    with pytest.deprecated_call():
        validation = sdk.FormValidation(False)
    assert event_from_dict(form).to_dict()["name"] == "booking_form"
    parsed = event_from_dict(validation)
    assert isinstance(parsed, LoopInterrupted) and parsed.is_interrupted is True


# A tracker's events as Rasa 3.x stores and serves them (GET /conversations/<id>/tracker).
RASA_EVENTS = [
    {"event": "action", "timestamp": 1700000000.11, "metadata": {"model_id": "f1e2"},
     "name": "action_session_start", "policy": None, "confidence": 1.0, "action_text": None,
     "hide_rule_turn": False},
    {"event": "session_started", "timestamp": 1700000000.12, "metadata": {"model_id": "f1e2"}},
    {"event": "action", "timestamp": 1700000000.13, "metadata": {"model_id": "f1e2"},
     "name": "action_listen", "policy": None, "confidence": None, "action_text": None,
     "hide_rule_turn": False},
    {"event": "user", "timestamp": 1700000001.5, "metadata": {"model_id": "f1e2"},
     "text": "I want to book a room in Lisbon", "parse_data": PARSE_DATA,
     "input_channel": "rest", "message_id": "8d4b0f6c"},
    {"event": "user_featurization", "timestamp": 1700000001.6,
     "metadata": {"model_id": "f1e2"}, "use_text_for_featurization": False},
    {"event": "action", "timestamp": 1700000001.7, "metadata": {"model_id": "f1e2"},
     "name": "booking_form", "policy": "RulePolicy", "confidence": 1.0, "action_text": None,
     "hide_rule_turn": True},
    {"event": "active_loop", "timestamp": 1700000001.8, "name": "booking_form"},
    {"event": "slot", "timestamp": 1700000001.8, "name": "city", "value": "Lisbon"},
    {"event": "slot", "timestamp": 1700000001.8, "name": "requested_slot",
     "value": "checkin_date"},
    {"event": "bot", "timestamp": 1700000001.9, "metadata": {"utter_action":
     "utter_ask_checkin_date", "model_id": "f1e2"}, "text": "When do you arrive?",
     "data": {"elements": None, "quick_replies": None, "buttons": None, "attachment": None,
              "image": None, "custom": None}},
    {"event": "action", "timestamp": 1700000002.0, "name": "action_listen",
     "policy": "RulePolicy", "confidence": 1.0, "action_text": None, "hide_rule_turn": True},
    {"event": "user", "timestamp": 1700000009.0, "text": "stop",
     "parse_data": {"intent": {"name": "stop", "confidence": 0.91}, "entities": [],
                    "text": "stop", "message_id": "aa01", "metadata": {}},
     "input_channel": "rest", "message_id": "aa01"},
    {"event": "action", "timestamp": 1700000009.1, "name": "booking_form",
     "policy": "RulePolicy", "confidence": 1.0},
    {"event": "action_execution_rejected", "timestamp": 1700000009.2, "name": "booking_form",
     "policy": "RulePolicy", "confidence": 1.0},
    {"event": "loop_interrupted", "timestamp": 1700000009.3, "is_interrupted": True},
    {"event": "action", "timestamp": 1700000009.4, "name": "utter_ask_continue",
     "policy": "TEDPolicy", "confidence": 0.88},
    {"event": "form", "timestamp": 1699000000.0, "name": None},
    {"event": "form_validation", "timestamp": 1699000000.0, "validate": True},
    {"event": "reminder", "timestamp": 1700000010.0, "intent": "EXTERNAL_reminder",
     "entities": None, "date_time": "2027-01-15T09:00:00.000000+01:00", "name": "r1",
     "kill_on_user_msg": True},
    {"event": "pause", "timestamp": 1700000011.0},
]


def test_rasa_tracker_events_parse() -> None:
    events = events_from_list(RASA_EVENTS)
    assert [e.type_name for e in events][:4] == ["action", "session_started", "action", "user"]
    assert events[3].intent_name == "book_room"  # type: ignore[attr-defined]
    assert events[3].parse_data["intent_ranking"][0]["name"] == "book_room"  # type: ignore
    assert events[5].hide_rule_turn is True  # type: ignore[attr-defined]
    assert events[-4] == ActiveLoop(None, timestamp=1699000000.0)
    assert events[-3] == LoopInterrupted(False, timestamp=1699000000.0)
    for wire, event in zip(RASA_EVENTS, events):
        assert event.timestamp == wire["timestamp"]
        if wire["event"] not in ("form", "form_validation"):
            assert event.to_dict()["event"] == wire["event"]
    assert events_from_list(events_to_list(events)) == events


def test_unknown_event_type() -> None:
    with pytest.raises(EventError) as info:
        event_from_dict({"event": "foo"})
    message = str(info.value)
    assert message.startswith("Unknown event type 'foo'. Valid: ")
    assert "slot" in message and "user" in message
    assert isinstance(info.value, BotError) and isinstance(info.value, ValueError)


def test_rasa_pro_session_ended_is_not_supported() -> None:
    with pytest.raises(EventError, match="Unknown event type 'session_ended'"):
        event_from_dict(sdk.SessionEnded())


@pytest.mark.parametrize(("wire", "fragment"), [
    ({"name": "x"}, "no 'event' key"),
    ({"event": 7}, "Unknown event type 7"),
    ({"event": "slot"}, "missing required key 'name'"),
    ({"event": "slot", "name": 3}, "'name' must be a string"),
    ({"event": "followup"}, "missing required key 'name'"),
    ({"event": "action"}, "needs 'name' or 'action_text'"),
    ({"event": "action", "name": "a", "hide_rule_turn": "yes"}, "'hide_rule_turn'"),
    ({"event": "slot", "name": "a", "timestamp": "yesterday"}, "'timestamp' must be a number"),
    ({"event": "slot", "name": "a", "metadata": []}, "'metadata' must be a dict"),
    ({"event": "user", "parse_data": "greet"}, "'parse_data' must be a dict"),
    ({"event": "user", "parse_data": {"entities": {}}}, "list 'entities'"),
    ({"event": "bot", "data": "x"}, "'data' must be a dict"),
    ({"event": "reminder", "intent": "i"}, "missing required key 'date_time'"),
    ({"event": "reminder", "intent": "i", "date_time": "soon"}, "not an ISO 8601"),
    ({"event": "entities", "entities": {"a": 1}}, "'entities' must be a list"),
    ({"event": "user_featurization"}, "missing required key"),
    ({"event": "loop_interrupted", "is_interrupted": "no"}, "'is_interrupted'"),
    ({"event": "action", "name": "a", "confidence": "high"}, "'confidence' must be a number"),
])
def test_malformed_events(wire: dict, fragment: str) -> None:
    with pytest.raises(EventError, match=fragment.replace("(", r"\(")):
        event_from_dict(wire)


def test_not_a_dict() -> None:
    with pytest.raises(EventError, match="must be a dict"):
        event_from_dict(["slot"])  # type: ignore[arg-type]
    with pytest.raises(EventError, match="list of dicts"):
        events_from_list({"event": "slot"})  # type: ignore[arg-type]


def test_class_from_dict_checks_the_type() -> None:
    with pytest.raises(EventError, match="Cannot parse a 'user' event as 'slot'"):
        SlotSet.from_dict({"event": "user", "name": "x"})
    assert SlotSet.from_dict({"name": "x"}).name == "x"  # "event" may be left out


def test_events_from_list_names_the_bad_index() -> None:
    with pytest.raises(EventError, match=r"Event #1: Unknown event type 'nope'"):
        events_from_list([{"event": "restart"}, {"event": "nope"}])


def test_null_bool_fields_take_rasa_defaults() -> None:
    assert event_from_dict({"event": "action", "name": "a", "hide_rule_turn": None}) \
        .hide_rule_turn is False  # type: ignore[attr-defined]
    assert event_from_dict({"event": "loop_interrupted"}).is_interrupted is False  # type: ignore
    assert event_from_dict({"event": "entities", "entities": None}).entities == []  # type: ignore


def test_confidences_become_plain_floats() -> None:
    class NumpyLikeFloat:
        def __float__(self) -> float:
            return 0.5

    event = ActionExecuted("a", "TEDPolicy", NumpyLikeFloat())  # type: ignore[arg-type]
    assert event.confidence == 0.5 and type(event.confidence) is float
    assert ActionExecutionRejected("f", confidence=1).confidence == 1.0
