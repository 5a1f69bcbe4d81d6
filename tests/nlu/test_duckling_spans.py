"""Duckling's `time` mentions against counts and ages (`guard_times`) and against the learned
date spans (`align_entities`) and as the answer to a form's date question
(`requested_entities`), on the real in-process Duckling core."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest

from actions.dates import said_dates
from nlu.context import DialogueContext
from nlu.duckling import DucklingConfig, DucklingEntityExtractor
from nlu.errors import NLUModelError
from nlu.interpreter import NLUInterpreter
from nlu.types import Entity

REF = datetime(2027, 2, 1, 9, 0, tzinfo=timezone.utc).timestamp()  # a Monday
DIMS = ("time", "number", "email")


def duckling(**options: Any) -> DucklingEntityExtractor:
    return DucklingEntityExtractor(DucklingConfig(dimensions=DIMS, locale="en_GB",
                                                  timezone="UTC", **options))


def times(text: str, **options: Any) -> list[str]:
    return [text[e.start:e.end] for e in duckling(**options).extract(text, REF)
            if e.entity == "time"]


class Spans:
    """The learned model at its patch point: fixed spans, found by their text."""

    def __init__(self, *spans: tuple[str, str, str | None]) -> None:
        self.spans = spans

    def extract_batch(self, texts: list[str]) -> list[list[Entity]]:
        out = []
        for span, name, role in self.spans:
            at = texts[0].index(span)
            out.append(Entity(at, at + len(span), span, name, role=role,
                              extractor="JointIntentEntity"))
        return [out]


def parse(text: str, *spans: tuple[str, str, str | None]) -> dict[str, Any]:
    extractor = duckling(guard_times=True, align_entities=("date",))
    return NLUInterpreter({}, None, Spans(*spans), {}, {}, {}, duckling=extractor).parse(
        text, reference_time=REF)


@pytest.mark.parametrize("text", [
    "two adults and two kids aged 4 to 11",
    "between 2 and 3 people",
    "3 to 4 guests",
    "kids, ages 8-12",
    "we are 4 - 2 adults and 2 kids",
    "arriving at 2",
    "arriving at four",
    "let us leave it like that for now",
])
def test_counts_and_ages_are_no_times(text: str) -> None:
    assert times(text, guard_times=True) == []


def test_without_the_guard_duckling_answers_as_in_rasa() -> None:
    assert times("two adults and two kids aged 4 to 11") == ["4 to 11"]


@pytest.mark.parametrize("text, kept", [
    ("tomorrow at 3pm", "tomorrow at 3pm"),
    ("the 14th of March 2030", "the 14th of March 2030"),
    ("a room for tonight", "tonight"),
    ("check in 22/11/2027", "22/11/2027"),
    ("at half past four on Friday", "at half past four on Friday"),
    ("in Gdansk next weekend", "next weekend"),
    ("can I check in now", "now"),
])
def test_real_dates_and_times_stay(text: str, kept: str) -> None:
    assert times(text, guard_times=True) == [kept]


def test_an_implausible_reading_is_shortened_and_its_count_comes_back() -> None:
    text = "a family of 4 from 20 to 23 July"
    found = duckling(guard_times=True).extract(text, REF)
    assert [(e.entity, text[e.start:e.end]) for e in found] == [
        ("number", "4"), ("time", "from 20 to 23 July")]
    assert found[1].value == {"from": "2027-07-20T00:00:00.000+00:00",
                              "to": "2027-07-24T00:00:00.000+00:00"}
    assert times("tomorrow at 2", guard_times=True) == ["tomorrow"]


def test_a_learned_date_takes_the_whole_duckling_mention() -> None:
    entities = parse("a room on September 5 2027 please", ("September 5", "date", "checkin"))
    assert len(entities["entities"]) == 1
    date = entities["entities"][0]
    assert (date["entity"], date["role"], date["value"], date["start"], date["end"]) == (
        "date", "checkin", "September 5 2027", 10, 26)
    assert date["extractor"] == "JointIntentEntity"
    assert date["processors"] == ["DucklingEntityExtractor"]
    assert date["additional_info"]["value"] == "2027-09-05T00:00:00.000+00:00"
    assert [(d.start, d.options[0][0].isoformat()) for d in said_dates(entities)] == [
        (10, "2027-09-05")]


def test_a_leading_preposition_goes_an_article_stays_where_the_model_put_it() -> None:
    assert parse("on the 1st of August", ("1st of August", "date", None))[
        "entities"][0]["value"] == "1st of August"
    assert parse("on the 1st of August", ("the 1st of August", "date", None))[
        "entities"][0]["value"] == "the 1st of August"
    assert parse("from the 8th", ("from the 8th", "date", "checkin"))[
        "entities"][0]["value"] == "the 8th"


def test_a_stay_over_two_learned_dates_is_read_date_by_date() -> None:
    text = "from April 2, 2031 to April 6, 2031"
    got = parse(text, ("April 2", "date", "checkin"), ("April 6, 2031", "date", "checkout"))
    assert [(e["value"], e["role"]) for e in got["entities"]] == [
        ("April 2, 2031", "checkin"), ("April 6, 2031", "checkout")]
    assert got["entities"][0]["additional_info"]["from"]["value"][:10] == "2031-04-02"
    assert got["entities"][1]["additional_info"]["value"][:10] == "2031-04-06"
    assert [d.options[0] for d in said_dates(got)] == [
        (date(2031, 4, 2), date(2031, 4, 6)), (date(2031, 4, 6), None)]


def test_a_year_said_once_holds_for_the_whole_stay() -> None:
    got = parse("from the 2nd to the 5th of January 2028", ("the 2nd", "date", None),
                ("the 5th of January 2028", "date", "checkout"))
    assert [e["value"] for e in got["entities"]] == ["the 2nd", "the 5th of January 2028"]
    assert said_dates(got)[0].options[0] == (date(2028, 1, 2), date(2028, 1, 5))


def test_a_stay_with_one_learned_date_stays_beside_it() -> None:
    text = "from the 8th of October until the 11th of October"
    got = parse(text, ("8th of October", "date", "checkin"))
    assert sorted(e["entity"] for e in got["entities"]) == ["date", "time"]
    date = next(e for e in got["entities"] if e["entity"] == "date")
    assert date["value"] == "8th of October" and "additional_info" not in date
    assert said_dates(got)[0].is_stay


def test_without_align_entities_date_and_time_stand_side_by_side() -> None:
    interpreter = NLUInterpreter({}, None, Spans(("September 5", "date", None)), {}, {}, {},
                                 duckling=duckling())
    got = interpreter.parse("on September 5 2027", reference_time=REF)["entities"]
    assert sorted((e["entity"], e["value"]) for e in got) == [
        ("date", "September 5"), ("time", "2027-09-05T00:00:00.000+00:00")]


@pytest.mark.parametrize("params, message", [
    ({"guard_times": "yes"}, "guard_times must be true or false"),
    ({"align_entities": "date"}, "align_entities must be a list"),
])
def test_bad_options_name_the_key(params: dict[str, Any], message: str) -> None:
    with pytest.raises(NLUModelError, match=message):
        DucklingConfig.from_params(params)


def test_options_are_read_from_config() -> None:
    config = DucklingConfig.from_params({"guard_times": True, "align_entities": ["date"]})
    assert config.guard_times and config.align_entities == ("date",)


def test_pieces_of_one_date_become_one_entity() -> None:
    text = "move it to May 2, 2030 until May 5, 2030"
    got = parse(text, ("May 2, 2030", "date", "checkin"), ("May 5", "date", "checkout"),
                ("2030", "date", "checkin"))
    assert [(e["value"], e["role"]) for e in got["entities"]] == [
        ("May 2, 2030", "checkin"), ("May 5, 2030", "checkout")]
    assert said_dates(got)[0].options[0] == (date(2030, 5, 2), date(2030, 5, 5))
    one = parse("on September 5 2027", ("September", "date", None), ("5 2027", "date", None))
    assert [e["value"] for e in one["entities"]] == ["September 5 2027"]


def test_pieces_joined_by_of_are_one_date() -> None:
    got = parse("from the 2nd to the 5th of january 2028", ("the 2nd", "date", "checkin"),
                ("the 5th", "date", "checkout"), ("january 2028", "date", "checkout"))
    assert [(e["value"], e["role"]) for e in got["entities"]] == [
        ("the 2nd", "checkin"), ("the 5th of january 2028", "checkout")]
    assert said_dates(got)[0].options[0] == (date(2028, 1, 2), date(2028, 1, 5))
    # two dates with "of" between them are not one date: each keeps its own
    two = parse("the 3rd of the 4th", ("the 3rd", "date", None), ("the 4th", "date", None))
    assert [e["value"] for e in two["entities"] if e["entity"] == "date"] == ["the 3rd", "the 4th"]


def test_a_leading_in_is_left_out_like_on() -> None:
    got = parse("checking in August 1, 2030 and out August 3, 2030",
                ("August 1, 2030", "date", "checkin"), ("August 3, 2030", "date", "checkout"))
    assert [(e["start"], e["value"]) for e in got["entities"]] == [
        (12, "August 1, 2030"), (35, "August 3, 2030")]


def answer(text: str, context: DialogueContext | None, *spans: tuple[str, str, str | None],
           **options: Any) -> list[dict[str, Any]]:
    """The entities of `text` said in `context`, with `requested_entities` for the two dates."""
    extractor = duckling(guard_times=True, align_entities=("date",), requested_entities={
        "checkin_date": "date", "checkout_date": "date"}, **options)
    interpreter = NLUInterpreter({}, None, Spans(*spans), {}, {}, {}, duckling=extractor)
    return interpreter.parse(text, context, reference_time=REF)["entities"]


ASKED_CHECKIN = DialogueContext("booking_form", "checkin_date", "booking_form")


@pytest.mark.parametrize("text, span", [
    ("14th of march 2027", "14th of march 2027"),
    ("on the 19th of feb 2028.", "the 19th of feb 2028"),
    ("next friday", "next friday"),
    ("2027-05-03", "2027-05-03"),
])
def test_a_whole_message_date_answers_the_date_the_form_asked_for(text: str, span: str) -> None:
    got = answer(text, ASKED_CHECKIN)
    assert [(e["entity"], e["value"], text[e["start"]:e["end"]]) for e in got] == [
        ("date", span, span)]
    assert got[0]["additional_info"]["grain"] == "day"
    assert len(said_dates({"entities": got})) == 1  # the form reads Duckling's reading


def test_a_question_action_asks_too_rasa_style() -> None:
    got = answer("march 18 2027", DialogueContext("utter_ask_checkout_date"))
    assert [(e["entity"], e["value"]) for e in got] == [("date", "march 18 2027")]


@pytest.mark.parametrize("text, context, spans", [
    ("14th of march 2027", None, ()),  # no context: Rasa's output
    ("14th of march 2027", DialogueContext("booking_form", "guests", "booking_form"), ()),
    ("14th of march 2027", DialogueContext("utter_anything_else"), ()),
    ("i'd say the 14th of march 2027", ASKED_CHECKIN, ()),  # more than the date
    ("at 3pm", ASKED_CHECKIN, ()),  # a clock time is no day
    ("from march 3 to march 7 2028", ASKED_CHECKIN, ()),  # a stay
])
def test_anything_else_keeps_duckling_time(text: str, context: DialogueContext | None,
                                            spans: tuple[tuple[str, str, str | None], ...]
                                            ) -> None:
    assert "date" not in [e["entity"] for e in answer(text, context, *spans)]


def test_what_the_model_found_wins() -> None:
    got = answer("the 14th of march 2027", ASKED_CHECKIN, ("the 14th", "date", "checkin"))
    assert [(e["entity"], e["value"], e["role"]) for e in got] == [
        ("date", "the 14th of march 2027", "checkin")]  # align_entities' extent, its role
    no_option = NLUInterpreter({}, None, Spans(), {}, {}, {}, duckling=duckling(
        align_entities=("date",))).parse("14th of march 2027", ASKED_CHECKIN,
                                         reference_time=REF)["entities"]
    assert [e["entity"] for e in no_option] == ["time"]


def test_requested_entities_must_map_slots_to_entities() -> None:
    with pytest.raises(NLUModelError, match="requested_entities must map slot names"):
        DucklingConfig.from_params({"requested_entities": ["checkin_date"]})
    config = DucklingConfig.from_params({"requested_entities": {"checkin_date": "date"}})
    assert config.requested_entities == {"checkin_date": "date"}


class CountingSpans(Spans):
    labels = [("number", None), ("date", "checkin")]  # the model knows numbers as an entity


def counts(text: str, context: DialogueContext | None, *spans: tuple[str, str, str | None]
           ) -> list[Any]:
    extractor = duckling(requested_entities={"guests": "number"})
    interpreter = NLUInterpreter({}, None, CountingSpans(*spans), {}, {}, {}, duckling=extractor)
    entities = interpreter.parse(text, context, reference_time=REF)["entities"]
    return [e["value"] for e in entities if e["entity"] == "number"]


ASKED_GUESTS = DialogueContext("booking_form", "guests", "booking_form")


def test_the_one_number_answers_the_count_the_form_asked_for() -> None:
    assert counts("only one guest", ASKED_GUESTS) == [1]
    assert counts("for 2", DialogueContext("utter_ask_guests")) == [2]
    # not asked: the model decides what a number is (it tagged none)
    assert counts("only one guest", None) == []
    assert counts("only one guest", ASKED_CHECKIN) == []
    # two numbers stay the model's to tell apart
    assert counts("2 adults and 1 child", ASKED_GUESTS) == []
    assert counts("2 adults and 1 child", ASKED_GUESTS, ("2", "number", None)) == [2]
