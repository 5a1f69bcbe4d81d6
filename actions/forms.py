"""Slot validation for booking_form, cancel_form and change_form.

Each ``validate_<slot>`` method returns the cleaned value, or None (with a message to
the guest) to make the form ask again. Values are stored in plain shapes: canonical
city, hotel and room type names, ISO dates ("2027-03-03"), an int guest count.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions.bookings import (
    MAX_GUESTS,
    MAX_NIGHTS,
    BookingError,
    normalize_booking_id,
    open_store,
)
from actions.catalog import Catalog, get_catalog
from actions.dates import current_date, nights_said, only_a_date, parse_date, said_dates
from actions.values import (
    as_text,
    clean_guest_name,
    find_email,
    format_date,
    join_words,
    parse_guests,
    parse_room_type,
)

logger = logging.getLogger(__name__)

BOOKING_FORM_SLOTS = (
    "city",
    "hotel",
    "checkin_date",
    "checkout_date",
    "guests",
    "room_type",
    "guest_name",
    "email",
)
CANCEL_FORM_SLOTS = ("booking_id",)
CHANGE_FORM_SLOTS = ("booking_id", "checkin_date", "checkout_date")

Result = dict[str, Any]


def _pending(tracker: Tracker) -> set[str]:
    """Slots whose new values this validation call is checking."""
    return set(tracker.slots_to_validate())


def _say(dispatcher: CollectingDispatcher, text: str) -> None:
    dispatcher.utter_message(text=text)


def _cleaned(slot: str, value: Any, dispatcher: CollectingDispatcher, ask_again: str) -> Result:
    """{slot: value}; a value the cleaner rejected (None) asks the guest again first."""
    if value is None:
        _say(dispatcher, ask_again)
    return {slot: value}


def _quote(value: Any) -> str:
    text = as_text(value)
    return f'"{text[:40]}…"' if len(text) > 40 else f'"{text}"'


class DateRules:
    """Check-in and check-out checks shared by booking_form and change_form.

    Dates come from Duckling's normalised entities in the latest message when there are any
    (`said_dates`): a stay ("from the 8th to the 11th of October") fills check-in and
    check-out together, so do two dates in one message, and "for 3 nights" sets check-out.
    A date without a year is its next occurrence (on or after today, or after check-in).
    Values without a Duckling date (typed slot values, payloads) are parsed by hand.

    ``today`` may be set on the class or instance for tests; otherwise the
    XINGKONG_TODAY environment variable or the real date is used.
    """

    today: date | None = None

    def current_day(self) -> date:
        return self.today or current_date()

    def validate_checkin_date(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        today = self.current_day()
        previous = _previous_value(tracker, "checkin_date")
        if (tracker.get_slot("requested_slot") == "checkout_date" and previous
                and len(said_dates(tracker.latest_message)) <= 1
                and not any(d.is_stay for d in said_dates(tracker.latest_message))):
            # the form asked for check-out: one date labelled check-in is the answer to that
            return {"checkin_date": previous} | self._checkout(value, dispatcher, tracker,
                                                               previous)
        stay = _stay_said(tracker, value, today)
        day = stay[0] if stay else parse_date(as_text(value), today)
        if day is None:
            _say(
                dispatcher,
                f"Sorry, I couldn't read {_quote(value)} as a date. "
                'Try something like "March 3", "next Friday" or "2027-03-03".',
            )
            return {"checkin_date": None}
        if day < today:
            _say(
                dispatcher,
                f"{format_date(day)} is in the past. Check-in can be today or any later day.",
            )
            return {"checkin_date": None}
        result: Result = {"checkin_date": day.isoformat()}
        if stay and stay[1] is not None:
            return result | self._checkout_result(stay[1], day, dispatcher, None)
        old_checkout = tracker.get_slot("checkout_date")
        if old_checkout and "checkout_date" not in _pending(tracker):
            checkout = parse_date(as_text(old_checkout), today, day + timedelta(days=1))
            if checkout is None or not 1 <= (checkout - day).days <= MAX_NIGHTS:
                _say(
                    dispatcher,
                    "Your check-out date doesn't fit the new check-in date, "
                    "so I'll ask for it again.",
                )
                result["checkout_date"] = None
        return result

    def extract_checkout_date(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        """"3 nights" in answer to the check-out question: check-in plus the nights (a
        message with no date fills no slot from the domain's mappings)."""
        message = tracker.latest_message or {}
        if tracker.get_slot("requested_slot") != "checkout_date" or said_dates(message):
            return {}
        nights = nights_said(str(message.get("text") or ""))
        checkin = parse_date(as_text(tracker.get_slot("checkin_date")), self.current_day())
        if not nights or checkin is None:
            return {}
        return {"checkout_date": (checkin + timedelta(days=nights)).isoformat()}

    def validate_checkout_date(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        if (tracker.get_slot("requested_slot") == "checkin_date"
                and "checkin_date" not in _pending(tracker)
                and only_a_date(tracker.latest_message)):
            # the form asked for check-in: a bare date labelled check-out is the answer to that
            return ({"checkout_date": _previous_value(tracker, "checkout_date")}
                    | self.validate_checkin_date(value, dispatcher, tracker, domain))
        return self._checkout(value, dispatcher, tracker, tracker.get_slot("checkin_date"))

    def _checkout(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                  checkin_value: Any) -> Result:
        today = self.current_day()
        checkin = parse_date(as_text(checkin_value), today)
        floor = checkin + timedelta(days=1) if checkin else today + timedelta(days=1)
        stay = _stay_said(tracker, value, today, checkin)
        if stay and stay[1] is not None:
            day: date | None = stay[1]
            # Duckling's own reading, to tell a slip ("March 1" after March 3) from a long stay
            plain = said_dates(tracker.latest_message)[-1].options[0][0]
        else:
            day = parse_date(as_text(value), today, floor)
            plain = parse_date(as_text(value), today)
        if day is None:
            _say(
                dispatcher,
                f"Sorry, I couldn't read {_quote(value)} as a date. "
                'Try something like "March 7" or "2027-03-07".',
            )
            return {"checkout_date": None}
        if checkin is None:
            if day <= today:
                _say(dispatcher, "Check-out has to be after today. When will you leave?")
                return {"checkout_date": None}
            return {"checkout_date": day.isoformat()}
        return self._checkout_result(day, checkin, dispatcher, plain)

    def _checkout_result(self, day: date, checkin: date, dispatcher: CollectingDispatcher,
                         plain: date | None) -> Result:
        nights = (day - checkin).days
        # "March 1" after a March 3 check-in: a slip, not a stay of 363 nights
        if nights < 1 or (nights > MAX_NIGHTS and plain is not None and plain <= checkin):
            _say(
                dispatcher,
                f"Check-out has to be after check-in ({format_date(checkin)}). "
                "When will you leave?",
            )
            return {"checkout_date": None}
        if nights > MAX_NIGHTS:
            _say(
                dispatcher,
                f"That would be {nights} nights; we can book at most {MAX_NIGHTS} nights "
                "at a time. Please choose an earlier check-out date.",
            )
            return {"checkout_date": None}
        return {"checkout_date": day.isoformat()}


def _previous_value(tracker: Tracker, slot: str) -> Any:
    """The slot's value before the latest user message (the tracker's slots already hold
    what this message set)."""
    value = before = None
    for event in tracker.events:
        if event.get("event") == "user":
            before = value
        elif event.get("event") == "slot" and event.get("name") == slot:
            value = event.get("value")
    return before


def _stay_said(tracker: Tracker, value: Any, today: date,
               checkin: date | None = None) -> tuple[date, date | None] | None:
    """(check-in, check-out or None) from the dates Duckling read in the latest message, or
    None when it read none. Check-out comes from a stay, a second date, or "for N nights".
    With `checkin` known (validating check-out), the date the guest gave for it is the one
    after it."""
    message = tracker.latest_message or {}
    dates = said_dates(message)
    if not dates:
        return None
    text = str(message.get("text") or "")
    ranged = next((d for d in dates if d.is_stay), None)
    if ranged is not None:
        first, last = ranged.first_on_or_after(today)
        return first, last
    if checkin is not None:  # the first said date after check-in is the check-out
        later = [d.first_on_or_after(checkin + timedelta(days=1))[0] for d in dates]
        later = [d for d in later if d > checkin]
        return (checkin, later[0]) if later else (dates[0].first_on_or_after(today)[0], None)
    where = text.lower().find(as_text(value).lower()) if as_text(value) else -1
    own = next((i for i, d in enumerate(dates)
                if where >= 0 and d.start < where + len(as_text(value)) and where < d.end), 0)
    first = dates[own].first_on_or_after(today)[0]
    following = dates[own + 1:]
    if following:
        return first, following[0].first_on_or_after(first + timedelta(days=1))[0]
    nights = nights_said(text)
    return first, first + timedelta(days=nights) if nights else None


def check_booking_id(value: Any, dispatcher: CollectingDispatcher, action: str) -> str | None:
    """The id of an active booking named by ``value``, or None after telling why not."""
    booking_id = normalize_booking_id(as_text(value))
    if booking_id is None:
        _say(
            dispatcher,
            "Booking references look like SL-123456. Could you check yours and send it again?",
        )
        return None
    try:
        booking = open_store().get(booking_id)
    except BookingError:
        logger.exception("bookings store unavailable")
        _say(dispatcher, "I can't reach our bookings right now. Please try again in a moment.")
        return None
    if booking is None:
        _say(dispatcher, f"I can't find a booking with reference {booking_id}. Please check it.")
        return None
    if not booking.active:
        _say(dispatcher, f"Booking {booking_id} is already cancelled, so I can't {action} it.")
        return None
    return booking_id


class ValidateBookingForm(DateRules, FormValidationAction):
    def name(self) -> str:
        return "validate_booking_form"

    @property
    def catalog(self) -> Catalog:
        return get_catalog()

    def validate_city(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        catalog = self.catalog
        city = catalog.find_city(as_text(value))
        if city is None:
            _say(
                dispatcher,
                f"Sorry, we have no hotel in {as_text(value) or 'that city'}. "
                f"Our hotels are in {join_words(catalog.cities())}. Which city would you like?",
            )
            return {"city": None}
        result: Result = {"city": city}
        hotel = catalog.find_hotel(as_text(tracker.get_slot("hotel")))
        if hotel and hotel.city != city and "hotel" not in _pending(tracker):
            _say(dispatcher, f"{hotel.name} is in {hotel.city}, so let's pick a hotel in {city}.")
            result["hotel"] = None
        return result

    def validate_hotel(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        catalog = self.catalog
        city = catalog.find_city(as_text(tracker.get_slot("city")))
        hotel = catalog.find_hotel(as_text(value), city)
        if hotel is None:
            place = city or catalog.find_city(as_text(value))
            similar = catalog.hotels_like(as_text(value))
            if len(similar) > 1:
                names = join_words([h.name for h in similar], "or")
                _say(dispatcher, f"Do you mean {names}?")
            elif place:
                names = join_words([h.name for h in catalog.hotels_in(place)], "or")
                _say(dispatcher, f"In {place} you can choose {names}. Which hotel would you like?")
            else:
                names = join_words([h.name for h in catalog.hotels])
                _say(
                    dispatcher,
                    f"Sorry, I don't know a hotel called {_quote(value)}. Our hotels are {names}.",
                )
            return {"hotel": None}
        if city and hotel.city != city:
            names = join_words([h.name for h in catalog.hotels_in(city)], "or")
            _say(
                dispatcher,
                f"{hotel.name} is in {hotel.city}, not {city}. In {city} you can choose {names}.",
            )
            return {"hotel": None}
        result: Result = {"hotel": hotel.name}
        if city is None:
            result["city"] = hotel.city
        room = parse_room_type(tracker.get_slot("room_type"), catalog)
        if room and not hotel.offers(room) and "room_type" not in _pending(tracker):
            _say(
                dispatcher,
                f"{hotel.name} has no {room} rooms, so I'll ask for the room type again.",
            )
            result["room_type"] = None
        return result

    def validate_guests(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        guests = parse_guests(value)
        text = str((tracker.latest_message or {}).get("text") or "")
        if guests is not None and nights_said(text) == guests \
                and tracker.get_slot("requested_slot") != "guests":
            return {"guests": None}  # "for 3 nights" is the stay's length, not a head count
        if guests is None:
            _say(
                dispatcher,
                f"How many guests will stay? Please give a number from 1 to {MAX_GUESTS}.",
            )
            return {"guests": None}
        if not 1 <= guests <= MAX_GUESTS:
            _say(dispatcher, f"We can book 1 to {MAX_GUESTS} guests at a time. How many are you?")
            return {"guests": None}
        room_name = parse_room_type(tracker.get_slot("room_type"), self.catalog)
        room = self.catalog.room_type(room_name) if room_name else None
        if room and guests > room.max_guests and "room_type" not in _pending(tracker):
            _say(
                dispatcher,
                f"A {room.name} room sleeps at most {room.max_guests}. "
                f"How many guests will stay in it?",
            )
            return {"guests": None}
        return {"guests": guests}

    def validate_room_type(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        catalog = self.catalog
        hotel = catalog.find_hotel(as_text(tracker.get_slot("hotel")))
        offered = list(hotel.rooms) if hotel else list(catalog.room_types)
        name = parse_room_type(value, catalog)
        if name is None:
            _say(dispatcher, f"We have {join_words(offered, 'or')} rooms. Which would you like?")
            return {"room_type": None}
        if hotel and not hotel.offers(name):
            _say(
                dispatcher,
                f"{hotel.name} has no {name} rooms. It offers {join_words(offered, 'or')} rooms.",
            )
            return {"room_type": None}
        guests = parse_guests(tracker.get_slot("guests"))
        room = catalog.room_types[name]
        if guests and guests > room.max_guests:
            fitting = [r for r in offered if catalog.room_types[r].max_guests >= guests]
            if fitting:
                _say(
                    dispatcher,
                    f"A {name} room sleeps at most {room.max_guests}. For {guests} guests "
                    f"you can choose a {join_words(fitting, 'or')} room.",
                )
                return {"room_type": None}
            largest = max(catalog.room_types[r].max_guests for r in offered)
            _say(
                dispatcher,
                f"Our largest rooms sleep {largest} guests, so one booking can be for at most "
                f"{largest}. How many guests will stay in this room?",
            )
            return {"room_type": None, "guests": None}
        return {"room_type": name}

    def validate_guest_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        return _cleaned("guest_name", clean_guest_name(value), dispatcher,
                        "Which name should the booking be under? For example: Ana Ruiz.")

    def validate_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        return _cleaned("email", find_email(value), dispatcher,
                        "That doesn't look like an email address. Please send one like "
                        "ana@example.com.")


class ValidateCancelForm(FormValidationAction):
    def name(self) -> str:
        return "validate_cancel_form"

    def validate_booking_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        return {"booking_id": check_booking_id(value, dispatcher, "cancel")}


class ValidateChangeForm(DateRules, FormValidationAction):
    def name(self) -> str:
        return "validate_change_form"

    def validate_booking_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Result:
        return {"booking_id": check_booking_id(value, dispatcher, "change")}
