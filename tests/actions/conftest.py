"""Shared set-up for the action tests: the real catalogue, a fresh bookings db, a fixed today."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.forms import (
    BOOKING_FORM_SLOTS,
    CANCEL_FORM_SLOTS,
    CHANGE_FORM_SLOTS,
    ValidateBookingForm,
)

REPO = Path(__file__).resolve().parents[2]
HOTELS_FILE = REPO / "data" / "hotels.yml"
TODAY = date(2027, 2, 1)  # a Monday

SLOT_NAMES = (*BOOKING_FORM_SLOTS, "booking_id")

# the parts of domain.yml the actions read, shaped as Rasa sends them
DOMAIN: dict[str, Any] = {
    "version": "3.1",
    "intents": ["inform", "book_room", "check_booking", "cancel_booking", "change_booking"],
    "entities": ["city", "hotel", "date", "number", "room_type", "person", "email", "booking_id"],
    "slots": {
        name: {
            "type": "float" if name == "guests" else "text",
            "influence_conversation": False,
            "mappings": [{"type": "from_entity", "entity": name}],
        }
        for name in SLOT_NAMES
    },
    # the forms' slots as the actions declare them (test_actions_executor checks that
    # domain.yml agrees)
    "forms": {
        "booking_form": {"required_slots": list(BOOKING_FORM_SLOTS)},
        "cancel_form": {"required_slots": list(CANCEL_FORM_SLOTS)},
        "change_form": {"required_slots": list(CHANGE_FORM_SLOTS)},
    },
    "responses": {
        "utter_booking_confirmed": [{"text": "Booked! Your reference is {booking_id}."}],
        "utter_booking_not_saved": [{"text": "Sorry, I could not save the booking."}],
        "utter_booking_cancelled": [{"text": "Booking {booking_id} is cancelled."}],
        "utter_booking_changed": [{"text": "Moved to {checkin_date} - {checkout_date}."}],
        "utter_ask_booking_id": [{"text": "What is your booking reference?"}],
        "utter_error": [{"text": "Something went wrong."}],
    },
    "actions": [
        "validate_booking_form",
        "validate_cancel_form",
        "validate_change_form",
        "action_submit_booking",
        "action_check_booking",
        "action_cancel_booking",
        "action_change_booking",
    ],
}


@pytest.fixture(autouse=True)
def action_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the actions at the real catalogue, a fresh db and a fixed today."""
    db = tmp_path / "state" / "bookings.sqlite"
    monkeypatch.setenv("XINGKONG_HOTELS", str(HOTELS_FILE))
    monkeypatch.setenv("XINGKONG_BOOKINGS_DB", str(db))
    monkeypatch.setenv("XINGKONG_TODAY", TODAY.isoformat())
    return db


@pytest.fixture
def domain() -> dict[str, Any]:
    return copy.deepcopy(DOMAIN)


def tracker_state(
    slots: dict[str, Any] | None = None,
    candidates: dict[str, Any] | None = None,
    text: str = "",
    entities: list[dict[str, Any]] | None = None,
    intent: str = "inform",
    form: str | None = None,
) -> dict[str, Any]:
    """A tracker dump as Rasa sends it to the action server.

    ``slots`` were set earlier; ``candidates`` are the values the form just extracted
    and that the validation action must check (SlotSet events at the end).
    """
    values = dict.fromkeys(SLOT_NAMES) | (slots or {}) | (candidates or {})
    parse_data = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.98},
        "entities": entities or [],
        "intent_ranking": [{"name": intent, "confidence": 0.98}],
    }
    events: list[dict[str, Any]] = [
        {"event": "action", "name": "action_listen", "timestamp": 1.0},
        {"event": "user", "text": text, "parse_data": parse_data, "timestamp": 2.0},
    ]
    if form:
        events.append({"event": "active_loop", "name": form, "timestamp": 3.0})
    events += [
        {"event": "slot", "name": name, "value": value, "timestamp": 4.0}
        for name, value in (candidates or {}).items()
    ]
    return {
        "sender_id": "tester",
        "slots": values,
        "latest_message": parse_data,
        "events": events,
        "paused": False,
        "followup_action": None,
        "active_loop": {"name": form} if form else {},
        "latest_action_name": "action_listen",
    }


Run = Callable[..., tuple[list[dict[str, Any]], list[dict[str, Any]]]]


@pytest.fixture
def run(domain: dict[str, Any]) -> Run:
    """Run an action on a tracker built by tracker_state; return (events, messages)."""

    def _run(action: Action, **state: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        tracker = Tracker.from_dict(tracker_state(**state))
        dispatcher = CollectingDispatcher()
        events = asyncio.run(_call(action, dispatcher, tracker, domain))
        return events, dispatcher.messages

    return _run


async def _call(
    action: Action, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
) -> list[dict[str, Any]]:
    result = action.run(dispatcher, tracker, domain)
    if asyncio.iscoroutine(result):
        result = await result
    return list(result or [])


def slot_values(events: list[dict[str, Any]]) -> dict[str, Any]:
    """{slot: value} for the SlotSet events (the last one wins)."""
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] or "" for m in messages)


@pytest.fixture
def helpers() -> SimpleNamespace:
    """slot_values, texts and tracker_state for test modules (no cross-module imports)."""
    return SimpleNamespace(slot_values=slot_values, texts=texts, tracker_state=tracker_state)


@pytest.fixture
def check(run: Any, helpers: Any) -> Any:
    """Validate candidates with a form action; return ({slot: value}, all message text)."""

    def _check(
        candidates: dict[str, Any],
        slots: dict[str, Any] | None = None,
        action: Any = None,
        form: str = "booking_form",
    ) -> tuple[dict[str, Any], str]:
        events, messages = run(
            action or ValidateBookingForm(), candidates=candidates, slots=slots, form=form
        )
        return helpers.slot_values(events), helpers.texts(messages)

    return _check
