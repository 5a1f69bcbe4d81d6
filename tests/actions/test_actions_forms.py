"""Every validation rule of booking_form, through rasa_sdk."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from actions.forms import ValidateBookingForm

# --- city -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "city"), [("Lisbon", "Lisbon"), ("lisbn", "Lisbon"), ("PARIS", "Paris")]
)
def test_known_city(check: Any, text: str, city: str) -> None:
    slots, said = check({"city": text})
    assert slots == {"city": city} and said == ""


def test_unknown_city_lists_our_cities(check: Any) -> None:
    slots, said = check({"city": "New York"})
    assert slots == {"city": None}
    assert "no hotel in New York" in said
    assert "Amsterdam, Barcelona, Berlin, Lisbon, Paris, Prague, Rome and Vienna" in said


def test_new_city_clears_a_hotel_elsewhere(check: Any) -> None:
    slots, said = check({"city": "Paris"}, slots={"hotel": "Starlight Lisbon"})
    assert slots == {"city": "Paris", "hotel": None}
    assert "Starlight Lisbon is in Lisbon" in said


# --- hotel ------------------------------------------------------------------


def test_hotel_given_first_sets_the_city(check: Any) -> None:
    slots, said = check({"hotel": "starlight lisboa"})
    assert slots == {"hotel": "Starlight Lisbon", "city": "Lisbon"} and said == ""


def test_hotel_in_the_chosen_city(check: Any) -> None:
    slots, _ = check({"hotel": "the comet inn"}, slots={"city": "Amsterdam"})
    assert slots == {"hotel": "The Comet Inn"}


def test_partial_hotel_name_resolved_by_city(check: Any) -> None:
    slots, _ = check({"hotel": "Starlight"}, slots={"city": "Rome"})
    assert slots == {"hotel": "Starlight Rome"}


def test_hotel_outside_the_chosen_city(check: Any) -> None:
    slots, said = check({"hotel": "Starlight Rome"}, slots={"city": "Lisbon"})
    assert slots == {"hotel": None}
    assert "Starlight Rome is in Rome, not Lisbon" in said
    assert "Starlight Lisbon or Aurora Riverside" in said


def test_unknown_hotel(check: Any) -> None:
    slots, said = check({"hotel": "Hilton"})
    assert slots == {"hotel": None}
    assert 'don\'t know a hotel called "Hilton"' in said and "The Comet Inn" in said


def test_ambiguous_hotel_asks_which(check: Any) -> None:
    slots, said = check({"hotel": "Starlight"})
    assert slots == {"hotel": None}
    assert said.startswith("Do you mean Starlight Lisbon") and "Starlight Prague?" in said


def test_city_name_as_hotel_lists_its_hotels(check: Any) -> None:
    slots, said = check({"hotel": "Paris"})
    assert slots == {"hotel": None}
    assert "In Paris you can choose Starlight Paris or Nova Grand Hotel" in said


def test_city_and_hotel_in_one_message(check: Any) -> None:
    slots, _ = check({"city": "amsterdam", "hotel": "comet inn"})
    assert slots == {"city": "Amsterdam", "hotel": "The Comet Inn"}
    slots, said = check({"city": "Paris", "hotel": "Starlight Lisbon"})
    assert slots == {"city": "Paris", "hotel": None} and "not Paris" in said


def test_new_hotel_drops_a_room_type_it_lacks(check: Any) -> None:
    slots, said = check({"hotel": "The Comet Inn"}, slots={"room_type": "suite"})
    assert slots == {"hotel": "The Comet Inn", "city": "Amsterdam", "room_type": None}
    assert "no suite rooms" in said


# --- dates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("March 3", "2027-03-03"),
        ("2027-03-03", "2027-03-03"),
        ("03/03/2027", "2027-03-03"),
        ("tomorrow", "2027-02-02"),
        ("today", "2027-02-01"),
        ("next Friday", "2027-02-05"),
        ("this weekend", "2027-02-06"),
        ("Jan 15", "2028-01-15"),
    ],
)
def test_checkin_is_stored_as_iso(check: Any, text: str, iso: str) -> None:
    slots, said = check({"checkin_date": text})
    assert slots == {"checkin_date": iso} and said == ""


def test_checkin_in_the_past(check: Any) -> None:
    slots, said = check({"checkin_date": "2027-01-31"})
    assert slots == {"checkin_date": None}
    assert "Sun 31 January 2027 is in the past" in said


def test_checkin_that_is_not_a_date(check: Any) -> None:
    slots, said = check({"checkin_date": "whenever"})
    assert slots == {"checkin_date": None}
    assert 'couldn\'t read "whenever" as a date' in said


def test_checkout_after_checkin(check: Any) -> None:
    slots, said = check({"checkout_date": "March 7"}, slots={"checkin_date": "2027-03-03"})
    assert slots == {"checkout_date": "2027-03-07"} and said == ""


def test_checkout_on_or_before_checkin(check: Any) -> None:
    for text in ("2027-03-03", "2027-03-01", "March 1", "march 3rd"):
        slots, said = check({"checkout_date": text}, slots={"checkin_date": "2027-03-03"})
        assert slots == {"checkout_date": None}
        assert "after check-in (Wed 3 March 2027)" in said


def test_at_most_thirty_nights(check: Any) -> None:
    slots, _ = check({"checkout_date": "April 2"}, slots={"checkin_date": "2027-03-03"})
    assert slots == {"checkout_date": "2027-04-02"}
    slots, said = check({"checkout_date": "April 3"}, slots={"checkin_date": "2027-03-03"})
    assert slots == {"checkout_date": None}
    assert "31 nights" in said and "at most 30" in said


def test_yearless_checkout_follows_a_late_checkin(check: Any) -> None:
    slots, _ = check({"checkout_date": "Jan 2"}, slots={"checkin_date": "2027-12-29"})
    assert slots == {"checkout_date": "2028-01-02"}


def test_checkout_without_checkin_must_be_after_today(check: Any) -> None:
    slots, said = check({"checkout_date": "today"})
    assert slots == {"checkout_date": None} and "after today" in said
    slots, _ = check({"checkout_date": "in 3 days"})
    assert slots == {"checkout_date": "2027-02-04"}


def test_checkout_that_is_not_a_date(check: Any) -> None:
    slots, said = check({"checkout_date": "later"}, slots={"checkin_date": "2027-03-03"})
    assert slots == {"checkout_date": None} and "couldn't read" in said


def test_both_dates_in_one_message(check: Any) -> None:
    slots, _ = check({"checkin_date": "March 3", "checkout_date": "March 6"})
    assert slots == {"checkin_date": "2027-03-03", "checkout_date": "2027-03-06"}


def test_later_checkin_drops_a_checkout_that_no_longer_fits(check: Any) -> None:
    slots, said = check({"checkin_date": "March 10"}, slots={"checkout_date": "2027-03-07"})
    assert slots == {"checkin_date": "2027-03-10", "checkout_date": None}
    assert "ask for it again" in said
    slots, said = check({"checkin_date": "March 4"}, slots={"checkout_date": "2027-03-07"})
    assert slots == {"checkin_date": "2027-03-04"} and said == ""


def test_today_can_be_set_on_the_action(check: Any) -> None:
    action = ValidateBookingForm()
    action.today = date(2027, 6, 1)
    slots, said = check({"checkin_date": "March 3"}, action=action)
    assert slots == {"checkin_date": "2028-03-03"}
    slots, said = check({"checkin_date": "2027-03-03"}, action=action)
    assert slots == {"checkin_date": None} and "in the past" in said


# --- guests -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "guests"),
    [
        ("2", 2),
        (2.0, 2),
        (3, 3),
        ("two", 2),
        ("two of us", 2),
        ("a couple", 2),
        ("just me", 1),
        ("me and my husband", 2),
        ("2 adults and 1 child", 3),
        ("family of four", 4),
        ("eight", 8),
    ],
)
def test_guests(check: Any, value: Any, guests: int) -> None:
    slots, said = check({"guests": value})
    assert slots == {"guests": guests} and said == ""


@pytest.mark.parametrize("value", ["0", "9", "twelve", 20.0])
def test_guests_out_of_range(check: Any, value: Any) -> None:
    slots, said = check({"guests": value})
    assert slots == {"guests": None} and "1 to 8 guests" in said


@pytest.mark.parametrize("value", ["lots", "2.5", ""])
def test_guests_not_a_number(check: Any, value: Any) -> None:
    slots, said = check({"guests": value})
    assert slots == {"guests": None} and "number from 1 to 8" in said


def test_guests_beyond_the_room_capacity(check: Any) -> None:
    slots, said = check({"guests": "3"}, slots={"room_type": "double"})
    assert slots == {"guests": None} and "double room sleeps at most 2" in said
    slots, _ = check({"guests": "4"}, slots={"room_type": "family"})
    assert slots == {"guests": 4}


# --- room type --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "room"),
    [("double", "double"), ("Suite", "suite"), ("king", "double"), ("two beds", "twin")],
)
def test_room_type(check: Any, value: str, room: str) -> None:
    slots, said = check({"room_type": value}, slots={"hotel": "Starlight Paris", "guests": 2})
    assert slots == {"room_type": room} and said == ""


def test_room_type_the_hotel_lacks(check: Any) -> None:
    slots, said = check({"room_type": "suite"}, slots={"hotel": "The Comet Inn"})
    assert slots == {"room_type": None}
    assert "The Comet Inn has no suite rooms. It offers single, double or twin rooms." in said


def test_unknown_room_type(check: Any) -> None:
    slots, said = check({"room_type": "penthouse"}, slots={"hotel": "Aurora Riverside"})
    assert slots == {"room_type": None}
    assert "We have single, double, twin or family rooms" in said


def test_room_too_small_for_the_guests(check: Any) -> None:
    slots, said = check({"room_type": "double"}, slots={"hotel": "Starlight Rome", "guests": 3})
    assert slots == {"room_type": None}
    assert "For 3 guests you can choose a family or suite room" in said


def test_no_room_fits_the_party(check: Any) -> None:
    slots, said = check({"room_type": "suite"}, slots={"hotel": "Starlight Rome", "guests": 6})
    assert slots == {"room_type": None, "guests": None}
    assert "largest rooms sleep 4" in said


def test_room_and_guests_in_one_message(check: Any) -> None:
    # the room is the one that is wrong: keep the guests, ask for the room
    slots, said = check({"guests": "3", "room_type": "double"}, slots={"hotel": "Starlight Rome"})
    assert slots == {"guests": 3, "room_type": None} and "family or suite" in said


# --- name and email ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Ana Ruiz", "Ana Ruiz"),
        ("my name is ana ruiz", "Ana Ruiz"),
        ("I'm John", "John"),
        ("It's María José, thanks", "María José"),
    ],
)
def test_guest_name(check: Any, value: str, name: str) -> None:
    slots, said = check({"guest_name": value})
    assert slots == {"guest_name": name} and said == ""


@pytest.mark.parametrize("value", ["", "   ", "12345", "my name is", "ana@example.com"])
def test_guest_name_rejected(check: Any, value: str) -> None:
    slots, said = check({"guest_name": value})
    assert slots == {"guest_name": None} and "Which name should the booking be under" in said


@pytest.mark.parametrize(
    ("value", "email"),
    [
        ("ana@example.com", "ana@example.com"),
        ("my email is Ana.Ruiz@Example.COM", "Ana.Ruiz@example.com"),
        ("j.doe+hotels@mail.co.uk", "j.doe+hotels@mail.co.uk"),
    ],
)
def test_email(check: Any, value: str, email: str) -> None:
    slots, said = check({"email": value})
    assert slots == {"email": email} and said == ""


@pytest.mark.parametrize(
    "value", ["ana", "ana@", "ana@example", "ana@@example.com", "a b@c.com d@e.com"]
)
def test_email_rejected(check: Any, value: str) -> None:
    slots, said = check({"email": value})
    assert slots == {"email": None} and "doesn't look like an email address" in said


def test_a_whole_form_in_one_message(check: Any) -> None:
    candidates = {
        "city": "lisbn",
        "hotel": "aurora",
        "checkin_date": "3rd of March",
        "checkout_date": "Mar 7th",
        "guests": "two",
        "room_type": "twin",
        "guest_name": "ana ruiz",
        "email": "ana@example.com",
    }
    slots, said = check(candidates)
    assert said == ""
    assert slots == {
        "city": "Lisbon",
        "hotel": "Aurora Riverside",
        "checkin_date": "2027-03-03",
        "checkout_date": "2027-03-07",
        "guests": 2,
        "room_type": "twin",
        "guest_name": "Ana Ruiz",
        "email": "ana@example.com",
    }
