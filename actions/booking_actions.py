"""Actions that make, show, cancel and move bookings in the bookings store."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.bookings import (
    Booking,
    BookingCancelledError,
    BookingError,
    BookingNotFoundError,
    BookingStoreError,
    normalize_booking_id,
    open_store,
)
from actions.catalog import CatalogError, get_catalog
from actions.dates import current_date, parse_date
from actions.forms import BOOKING_FORM_SLOTS, CHANGE_FORM_SLOTS
from actions.values import as_text, format_date, format_price, parse_guests

logger = logging.getLogger(__name__)


def booking_details(booking: Booking) -> dict[str, Any]:
    """Template variables for responses about ``booking``."""
    try:
        currency = get_catalog().currency
    except CatalogError:
        currency = "EUR"
    return {
        "booking_id": booking.booking_id,
        "hotel": booking.hotel,
        "city": booking.city,
        "checkin_date": booking.checkin.isoformat(),
        "checkout_date": booking.checkout.isoformat(),
        "checkin": format_date(booking.checkin),
        "checkout": format_date(booking.checkout),
        "nights": booking.nights,
        "guests": booking.guests,
        "room_type": booking.room_type,
        "guest_name": booking.guest_name,
        "email": booking.email,
        "status": booking.status,
        "price_total": format_price(booking.price_total, currency),
    }


def describe_booking(booking: Booking) -> str:
    """One paragraph about a booking, for action_check_booking."""
    details = booking_details(booking)
    nights = "1 night" if booking.nights == 1 else f"{booking.nights} nights"
    guests = "1 guest" if booking.guests == 1 else f"{booking.guests} guests"
    return (
        f"Booking {booking.booking_id} is {booking.status}: {booking.hotel} in {booking.city}, "
        f"a {booking.room_type} room for {guests}, from {details['checkin']} to "
        f"{details['checkout']} ({nights}), {details['price_total']} in total, "
        f"under the name {booking.guest_name}."
    )


def requested_booking_id(tracker: Tracker) -> str | None:
    """The booking id the guest just named, else the one in the booking_id slot."""
    for value in tracker.get_latest_entity_values("booking_id"):
        found = normalize_booking_id(as_text(value))
        if found:
            return found
    text = (tracker.latest_message or {}).get("text") or ""
    return normalize_booking_id(text) or normalize_booking_id(
        as_text(tracker.get_slot("booking_id"))
    )


def _slot_date(tracker: Tracker, slot: str) -> date:
    value = as_text(tracker.get_slot(slot))
    try:
        return date.fromisoformat(value)
    except ValueError:
        found = parse_date(value, current_date())
        if found is None:
            raise BookingError(f"slot {slot} holds no date") from None
        return found


def _reset(slots: tuple[str, ...]) -> list[EventType]:
    return [SlotSet(slot, None) for slot in slots]


class ActionSubmitBooking(Action):
    def name(self) -> str:
        return "action_submit_booking"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            guests = parse_guests(tracker.get_slot("guests"))
            if guests is None:
                raise BookingError("slot guests holds no number")
            booking = open_store().create(
                hotel=as_text(tracker.get_slot("hotel")),
                checkin=_slot_date(tracker, "checkin_date"),
                checkout=_slot_date(tracker, "checkout_date"),
                guests=guests,
                room_type=as_text(tracker.get_slot("room_type")),
                guest_name=as_text(tracker.get_slot("guest_name")),
                email=as_text(tracker.get_slot("email")),
            )
        except BookingError as exc:
            # the reason may quote slot values the guest typed: keep it out of INFO+
            logger.warning("booking not saved (%s)", type(exc).__name__)
            logger.debug("booking not saved: %s", exc)
            dispatcher.utter_message(response="utter_error")
            return []
        dispatcher.utter_message(response="utter_booking_confirmed", **booking_details(booking))
        return [*_reset(BOOKING_FORM_SLOTS), SlotSet("booking_id", booking.booking_id)]


class ActionCheckBooking(Action):
    def name(self) -> str:
        return "action_check_booking"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        booking_id = requested_booking_id(tracker)
        if booking_id is None:
            dispatcher.utter_message(response="utter_ask_booking_id")
            return []
        try:
            booking = open_store().get(booking_id)
        except BookingError:
            logger.exception("bookings store unavailable")
            dispatcher.utter_message(response="utter_error")
            return []
        if booking is None:
            dispatcher.utter_message(
                text=f"I can't find a booking with reference {booking_id}. "
                "Please check the reference and try again."
            )
            return [SlotSet("booking_id", None)]
        dispatcher.utter_message(text=describe_booking(booking))
        return [SlotSet("booking_id", booking_id)]


class ActionCancelBooking(Action):
    def name(self) -> str:
        return "action_cancel_booking"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        booking_id = normalize_booking_id(as_text(tracker.get_slot("booking_id")))
        booking_id = booking_id or requested_booking_id(tracker)
        if booking_id is None:
            dispatcher.utter_message(response="utter_ask_booking_id")
            return []
        try:
            booking = open_store().cancel(booking_id)
        except BookingNotFoundError:
            dispatcher.utter_message(text=f"I can't find a booking with reference {booking_id}.")
        except BookingCancelledError:
            dispatcher.utter_message(text=f"Booking {booking_id} was already cancelled.")
        except BookingError:
            logger.exception("cancelling %s failed", booking_id)
            dispatcher.utter_message(response="utter_error")
        else:
            dispatcher.utter_message(response="utter_booking_cancelled", **booking_details(booking))
        return [SlotSet("booking_id", None)]


class ActionChangeBooking(Action):
    def name(self) -> str:
        return "action_change_booking"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        booking_id = normalize_booking_id(as_text(tracker.get_slot("booking_id")))
        if booking_id is None:
            dispatcher.utter_message(response="utter_ask_booking_id")
            return _reset(CHANGE_FORM_SLOTS)
        try:
            booking = open_store().change_dates(
                booking_id,
                _slot_date(tracker, "checkin_date"),
                _slot_date(tracker, "checkout_date"),
            )
        except BookingNotFoundError:
            dispatcher.utter_message(text=f"I can't find a booking with reference {booking_id}.")
        except BookingCancelledError:
            dispatcher.utter_message(
                text=f"Booking {booking_id} is cancelled, so its dates can't change."
            )
        except BookingStoreError:
            logger.exception("changing %s failed", booking_id)
            dispatcher.utter_message(response="utter_error")
        except BookingError as exc:
            logger.debug("changing %s failed: %s", booking_id, exc)
            dispatcher.utter_message(text=f"Sorry, I couldn't move booking {booking_id}: {exc}.")
        else:
            dispatcher.utter_message(response="utter_booking_changed", **booking_details(booking))
        return _reset(CHANGE_FORM_SLOTS)
