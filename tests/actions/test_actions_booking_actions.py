"""action_submit_booking, action_check_booking, action_cancel_booking, action_change_booking."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from actions.booking_actions import (
    ActionCancelBooking,
    ActionChangeBooking,
    ActionCheckBooking,
    ActionSubmitBooking,
)
from actions.bookings import open_store
from actions.forms import BOOKING_FORM_SLOTS

FILLED = {
    "city": "Lisbon",
    "hotel": "Starlight Lisbon",
    "checkin_date": "2027-03-03",
    "checkout_date": "2027-03-07",
    "guests": 2.0,
    "room_type": "double",
    "guest_name": "Ana Ruiz",
    "email": "ana@example.com",
}


def _submit(run: Any, slots: dict[str, Any] | None = None) -> tuple[list, list]:
    return run(ActionSubmitBooking(), slots=FILLED if slots is None else slots)


def test_submit_stores_the_booking(run: Any, helpers: Any) -> None:
    events, messages = _submit(run)
    slots = helpers.slot_values(events)
    booking_id = slots.pop("booking_id")
    assert slots == dict.fromkeys(BOOKING_FORM_SLOTS)  # the form starts clean next time
    booking = open_store().get(booking_id)
    assert booking is not None
    assert (booking.hotel, booking.city, booking.room_type, booking.guests) == (
        "Starlight Lisbon",
        "Lisbon",
        "double",
        2,
    )
    assert (booking.checkin, booking.checkout) == (date(2027, 3, 3), date(2027, 3, 7))
    assert (booking.guest_name, booking.email, booking.price_total) == (
        "Ana Ruiz",
        "ana@example.com",
        560.0,
    )
    [message] = messages
    assert message["response"] == "utter_booking_confirmed"
    assert message["booking_id"] == booking_id
    assert message["price_total"] == "560 EUR" and message["nights"] == 4


def test_two_bookings_get_two_ids(run: Any, helpers: Any) -> None:
    first = helpers.slot_values(_submit(run)[0])["booking_id"]
    second = helpers.slot_values(_submit(run)[0])["booking_id"]
    assert first != second


@pytest.mark.parametrize(
    "changes",
    [
        {"email": None},
        {"checkin_date": None},
        {"guests": None},
        {"hotel": "Hilton"},
        {"room_type": "suite", "hotel": "The Comet Inn"},
    ],
)
def test_submit_with_bad_slots_is_not_saved(run: Any, changes: dict[str, Any]) -> None:
    events, messages = _submit(run, FILLED | changes)
    assert events == []
    assert [m["response"] for m in messages] == ["utter_error"]


def test_submit_when_the_store_is_broken(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    monkeypatch.setenv("XINGKONG_BOOKINGS_DB", str(folder))
    events, messages = _submit(run)
    assert events == []
    assert [m["response"] for m in messages] == ["utter_error"]


def _booking_id(run: Any, helpers: Any) -> str:
    return helpers.slot_values(_submit(run)[0])["booking_id"]


def test_check_by_slot(run: Any, helpers: Any) -> None:
    booking_id = _booking_id(run, helpers)
    events, messages = run(ActionCheckBooking(), slots={"booking_id": booking_id})
    assert helpers.slot_values(events) == {"booking_id": booking_id}
    said = helpers.texts(messages)
    assert said == (
        f"Booking {booking_id} is active: Starlight Lisbon in Lisbon, a double room for "
        "2 guests, from Wed 3 March 2027 to Sun 7 March 2027 (4 nights), 560 EUR in total, "
        "under the name Ana Ruiz."
    )


def test_check_by_entity_wins_over_the_slot(run: Any, helpers: Any) -> None:
    booking_id = _booking_id(run, helpers)
    entity = {"entity": "booking_id", "value": booking_id.lower(), "start": 0, "end": 9}
    events, messages = run(
        ActionCheckBooking(),
        slots={"booking_id": "SL-999999"},
        entities=[entity],
        text=f"what about {booking_id.lower()}",
        intent="check_booking",
    )
    assert helpers.slot_values(events) == {"booking_id": booking_id}
    assert "is active" in helpers.texts(messages)


def test_check_by_text(run: Any, helpers: Any) -> None:
    booking_id = _booking_id(run, helpers)
    _, messages = run(ActionCheckBooking(), text=f"status of {booking_id} please")
    assert booking_id in helpers.texts(messages)


def test_check_unknown_id(run: Any, helpers: Any) -> None:
    events, messages = run(ActionCheckBooking(), slots={"booking_id": "SL-000000"})
    assert helpers.slot_values(events) == {"booking_id": None}
    assert "can't find a booking with reference SL-000000" in helpers.texts(messages)


def test_check_without_an_id_asks_for_it(run: Any) -> None:
    events, messages = run(ActionCheckBooking(), text="where is my booking")
    assert events == []
    assert [m["response"] for m in messages] == ["utter_ask_booking_id"]


def test_cancel(run: Any, helpers: Any) -> None:
    booking_id = _booking_id(run, helpers)
    events, messages = run(ActionCancelBooking(), slots={"booking_id": booking_id})
    assert helpers.slot_values(events) == {"booking_id": None}
    [message] = messages
    assert message["response"] == "utter_booking_cancelled"
    assert message["booking_id"] == booking_id and message["status"] == "cancelled"
    assert open_store().get(booking_id).status == "cancelled"

    _, messages = run(ActionCheckBooking(), slots={"booking_id": booking_id})
    assert f"Booking {booking_id} is cancelled" in helpers.texts(messages)
    _, messages = run(ActionCancelBooking(), slots={"booking_id": booking_id})
    assert "already cancelled" in helpers.texts(messages)


def test_cancel_unknown_or_missing_id(run: Any, helpers: Any) -> None:
    events, messages = run(ActionCancelBooking(), slots={"booking_id": "SL-000000"})
    assert helpers.slot_values(events) == {"booking_id": None}
    assert "can't find a booking with reference SL-000000" in helpers.texts(messages)
    _, messages = run(ActionCancelBooking())
    assert [m["response"] for m in messages] == ["utter_ask_booking_id"]


def test_change(run: Any, helpers: Any) -> None:
    booking_id = _booking_id(run, helpers)
    slots = {"booking_id": booking_id, "checkin_date": "2027-04-10", "checkout_date": "2027-04-13"}
    events, messages = run(ActionChangeBooking(), slots=slots)
    assert helpers.slot_values(events) == dict.fromkeys(slots)
    [message] = messages
    assert message["response"] == "utter_booking_changed"
    assert (message["checkin_date"], message["checkout_date"]) == ("2027-04-10", "2027-04-13")
    assert message["checkin"] == "Sat 10 April 2027" and message["price_total"] == "420 EUR"
    booking = open_store().get(booking_id)
    assert (booking.checkin, booking.checkout, booking.price_total) == (
        date(2027, 4, 10),
        date(2027, 4, 13),
        420.0,
    )


def test_change_refusals(run: Any, helpers: Any) -> None:
    booking_id = _booking_id(run, helpers)
    bad = {"booking_id": booking_id, "checkin_date": "2027-04-10", "checkout_date": "2027-04-09"}
    events, messages = run(ActionChangeBooking(), slots=bad)
    assert helpers.slot_values(events) == dict.fromkeys(bad)
    assert "couldn't move booking" in helpers.texts(messages)
    assert open_store().get(booking_id).checkin == date(2027, 3, 3)

    unknown = bad | {"booking_id": "SL-000000", "checkout_date": "2027-04-12"}
    _, messages = run(ActionChangeBooking(), slots=unknown)
    assert "can't find a booking with reference SL-000000" in helpers.texts(messages)

    open_store().cancel(booking_id)
    _, messages = run(ActionChangeBooking(), slots=unknown | {"booking_id": booking_id})
    assert "is cancelled" in helpers.texts(messages)
