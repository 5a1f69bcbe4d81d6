"""cancel_form and change_form validation, through rasa_sdk."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from actions.bookings import open_store
from actions.forms import ValidateCancelForm, ValidateChangeForm

# --- cancel_form and change_form --------------------------------------------


def _book(**changes: Any) -> str:
    stay = {
        "hotel": "Starlight Berlin",
        "checkin": date(2027, 3, 3),
        "checkout": date(2027, 3, 5),
        "guests": 1,
        "room_type": "single",
        "guest_name": "Ana Ruiz",
        "email": "ana@example.com",
    }
    return open_store().create(**(stay | changes)).booking_id


@pytest.mark.parametrize("action", [ValidateCancelForm(), ValidateChangeForm()])
def test_booking_id_of_an_active_booking(check: Any, action: Any) -> None:
    booking_id = _book()
    form = action.form_name()
    slots, said = check({"booking_id": booking_id.lower()}, action=action, form=form)
    assert slots == {"booking_id": booking_id} and said == ""


@pytest.mark.parametrize("action", [ValidateCancelForm(), ValidateChangeForm()])
def test_booking_id_rejections(check: Any, action: Any) -> None:
    form = action.form_name()
    slots, said = check({"booking_id": "12345"}, action=action, form=form)
    assert slots == {"booking_id": None} and "look like SL-123456" in said
    slots, said = check({"booking_id": "SL-000001"}, action=action, form=form)
    assert slots == {"booking_id": None} and "can't find a booking with reference SL-000001" in said
    booking_id = _book()
    open_store().cancel(booking_id)
    slots, said = check({"booking_id": booking_id}, action=action, form=form)
    assert slots == {"booking_id": None} and "already cancelled" in said


def test_change_form_checks_dates_like_the_booking_form(check: Any) -> None:
    action, form = ValidateChangeForm(), "change_form"
    slots, _ = check(
        {"checkin_date": "March 10", "checkout_date": "March 12"}, action=action, form=form
    )
    assert slots == {"checkin_date": "2027-03-10", "checkout_date": "2027-03-12"}
    slots, said = check({"checkin_date": "2026-12-01"}, action=action, form=form)
    assert slots == {"checkin_date": None} and "in the past" in said
    slots, said = check(
        {"checkout_date": "2027-03-09"},
        slots={"checkin_date": "2027-03-10"},
        action=action,
        form=form,
    )
    assert slots == {"checkout_date": None} and "after check-in" in said


def test_only_the_forms_own_slots_are_validated(check: Any) -> None:
    # city is not a cancel_form slot, so validate_cancel_form leaves it alone
    slots, said = check({"city": "Atlantis"}, action=ValidateCancelForm(), form="cancel_form")
    assert slots == {} and said == ""
