"""The forms read dates Duckling normalised (entity dicts in the latest message, as a rasa-sdk
action server gets them), with the real in-process Duckling on the actions' fixed today."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import pytest

from actions.dates import said_dates
from actions.forms import ValidateBookingForm, ValidateChangeForm
from nlu.duckling import DucklingConfig, DucklingEntityExtractor

TODAY_S = datetime(2027, 2, 1, 9, 0, tzinfo=timezone.utc).timestamp()  # conftest's TODAY
_DUCKLING = DucklingEntityExtractor(DucklingConfig(dimensions=("time", "number", "email")))


def _entities(text: str, luke: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [*(luke or []), *(e.to_dict() for e in _DUCKLING.extract(text, TODAY_S))]


def _validate(run: Any, helpers: Any, text: str, candidates: dict[str, Any],
              slots: dict[str, Any] | None = None, action: Any = None,
              form: str = "booking_form") -> tuple[dict[str, Any], str]:
    events, messages = run(action or ValidateBookingForm(), candidates=candidates, slots=slots,
                           text=text, entities=_entities(text), form=form)
    return helpers.slot_values(events), helpers.texts(messages)


def test_a_full_date_the_model_cut_short_is_read_whole(run: Any, helpers: Any) -> None:
    # the entity model took "March 2030"; Duckling read "the 14th of March 2030"
    slots, said = _validate(run, helpers, "the 14th of March 2030 please",
                            {"checkin_date": "March 2030"})
    assert slots == {"checkin_date": "2030-03-14"} and said == ""


def test_a_stay_fills_checkin_and_checkout_together(run: Any, helpers: Any) -> None:
    text = "from the 8th of October until the 11th of October"
    slots, _ = _validate(run, helpers, text, {"checkin_date": "8th of October"})
    assert slots == {"checkin_date": "2027-10-08", "checkout_date": "2027-10-11"}


def test_a_stay_with_both_roles_set_by_the_model(run: Any, helpers: Any) -> None:
    text = "from 8 to 11 October"
    slots, _ = _validate(run, helpers, text, {"checkin_date": "8", "checkout_date": "11 October"})
    assert slots == {"checkin_date": "2027-10-08", "checkout_date": "2027-10-11"}


def test_two_dates_are_checkin_then_checkout(run: Any, helpers: Any) -> None:
    # the model gave both the checkin role; the second date is still the check-out
    text = "arriving on the 14th of March and leaving on the 17th"
    slots, _ = _validate(run, helpers, text, {"checkin_date": "14th of March"})
    assert slots == {"checkin_date": "2027-03-14", "checkout_date": "2027-03-17"}


def test_nights_set_the_checkout(run: Any, helpers: Any) -> None:
    slots, _ = _validate(run, helpers, "this Friday for 3 nights", {"checkin_date": "Friday"})
    assert slots == {"checkin_date": "2027-02-05", "checkout_date": "2027-02-08"}


def test_a_date_without_a_year_is_the_next_one(run: Any, helpers: Any) -> None:
    slots, _ = _validate(run, helpers, "January 20th", {"checkin_date": "January 20th"})
    assert slots == {"checkin_date": "2028-01-20"}
    slots, _ = _validate(run, helpers, "the 2nd of March", {"checkout_date": "2nd of March"},
                         slots={"checkin_date": "2027-02-27"})
    assert slots == {"checkout_date": "2027-03-02"}


def test_checkout_before_checkin_is_refused(run: Any, helpers: Any) -> None:
    slots, said = _validate(run, helpers, "March 1", {"checkout_date": "March 1"},
                            slots={"checkin_date": "2027-03-03"})
    assert slots == {"checkout_date": None} and "after check-in" in said


def test_seconds_are_not_a_date(run: Any, helpers: Any) -> None:
    # Duckling also reads "in 4" (seconds from now) inside "checking in 4th of August"
    slots, _ = _validate(run, helpers, "checking in 4th of August",
                         {"checkin_date": "4th of August"})
    assert slots == {"checkin_date": "2027-08-04"}


def test_past_dates_are_refused(run: Any, helpers: Any) -> None:
    slots, said = _validate(run, helpers, "the 3rd of January 2027", {"checkin_date": "3rd"})
    assert slots == {"checkin_date": None} and "in the past" in said


def test_change_form_reads_a_stay_too(run: Any, helpers: Any) -> None:
    slots, _ = _validate(run, helpers, "move it to 5-9 April", {"checkin_date": "5-9 April"},
                         action=ValidateChangeForm(), form="change_form")
    assert slots == {"checkin_date": "2027-04-05", "checkout_date": "2027-04-09"}


def test_nights_are_not_a_head_count(run: Any, helpers: Any) -> None:
    events, _ = run(ValidateBookingForm(), candidates={"guests": 3}, text="for 3 nights",
                    entities=_entities("for 3 nights"), form="booking_form")
    assert helpers.slot_values(events) == {"guests": None}


def test_without_duckling_dates_the_text_is_parsed_by_hand(run: Any, helpers: Any) -> None:
    events, _ = run(ValidateBookingForm(), candidates={"checkin_date": "March 3"},
                    text="March 3", entities=[], form="booking_form")
    assert helpers.slot_values(events) == {"checkin_date": "2027-03-03"}


@pytest.mark.parametrize("entity", [
    {"entity": "time", "extractor": "DucklingEntityExtractor", "start": 0, "end": 5,
     "additional_info": {"type": "value", "grain": "month", "value": "2027-03-01T00:00:00Z"}},
    {"entity": "date", "extractor": "LukeSpanExtractor", "start": 0, "end": 5},
    {"entity": "time", "extractor": "DucklingEntityExtractor", "start": 0, "end": 5,
     "additional_info": {"type": "value", "grain": "day", "value": "not a date"}},
])
def test_not_a_day_is_ignored(entity: dict[str, Any]) -> None:
    assert said_dates({"entities": [entity]}) == []


def test_a_checkin_label_on_the_checkout_answer_is_read_as_checkout(run: Any, helpers: Any,
                                                                     domain: Any) -> None:
    # the form asked for check-out; the entity model labelled the one date "checkin"
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    text = "the 19th of February 2028"
    for candidates in ({"checkin_date": text},  # Duckling's time also filled check-out:
                       {"checkin_date": text, "checkout_date": "2028-02-19T00:00:00.000+00:00"}):
        state = helpers.tracker_state(slots={"checkin_date": "2028-02-15",
                                             "requested_slot": "checkout_date"},
                                      candidates=candidates, text=text,
                                      entities=_entities(text), form="change_form")
        state["events"].insert(0, {"event": "slot", "name": "checkin_date",
                                   "value": "2028-02-15"})
        slots = ValidateChangeForm().validate_checkin_date(
            text, CollectingDispatcher(), Tracker.from_dict(state), domain)
        assert slots == {"checkin_date": "2028-02-15", "checkout_date": "2028-02-19"}
    # the whole validation (both slots, check-out validated after check-in) agrees
    events = asyncio.run(ValidateChangeForm().run(CollectingDispatcher(),
                                                  Tracker.from_dict(state), domain))
    assert helpers.slot_values(events) == {"checkin_date": "2028-02-15",
                                           "checkout_date": "2028-02-19"}



@pytest.mark.parametrize("form, action", [("booking_form", ValidateBookingForm()),
                                          ("change_form", ValidateChangeForm())])
def test_nights_alone_answer_the_checkout_question(run: Any, helpers: Any, form: str,
                                                   action: Any) -> None:
    slots = {"checkin_date": "2027-03-14", "requested_slot": "checkout_date"}
    found, _ = _validate(run, helpers, "3 nights", {}, slots=slots, action=action, form=form)
    assert found == {"checkout_date": "2027-03-17"}
    found, _ = _validate(run, helpers, "3 nights", {}, action=action, form=form,
                         slots={"checkin_date": "2027-03-14", "requested_slot": "guests"})
    assert "checkout_date" not in found


def test_nights_past_the_limit_are_refused(run: Any, helpers: Any) -> None:
    slots = {"checkin_date": "2027-03-14", "requested_slot": "checkout_date"}
    found, said = _validate(run, helpers, "45 nights", {}, slots=slots)
    assert found == {"checkout_date": None} and "at most" in said


def test_a_checkout_label_on_the_checkin_answer_is_read_as_checkin(run: Any, helpers: Any
                                                                   ) -> None:
    # the form asked for check-in; the entity model labelled the bare date "checkout"
    text = "the 14th of May"
    found, _ = _validate(run, helpers, text, {"checkout_date": text},
                         slots={"requested_slot": "checkin_date"})
    assert found == {"checkin_date": "2027-05-14", "checkout_date": None}
    # said with its role in words, it stays the check-out
    text = "leaving on the 14th of May"
    found, _ = _validate(run, helpers, text, {"checkout_date": "the 14th of May"},
                         slots={"requested_slot": "checkin_date"})
    assert found == {"checkout_date": "2027-05-14"}
