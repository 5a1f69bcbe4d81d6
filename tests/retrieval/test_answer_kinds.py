"""The kind of answer a question asks for, whether a sentence holds one, and the questions
generated from both (sentence selection and calibration evidence), without models."""

from __future__ import annotations

import random

import pytest

from retrieval.answer_types import (MISSING_TEMPLATES, fits, missing_kind_questions,
                                    question_kinds, sentence_kinds)


@pytest.mark.parametrize(("question", "kinds"), [
    ("leonardo express ticket price?", {"price", "percent"}),
    ("how much does the CAT train cost", {"price", "percent"}),
    ("how much time do I need for the museum", {"duration"}),
    ("till what time is the bar open", {"time"}),
    ("how far is the station", {"number", "measure", "duration"}),
    ("can i pay in czech money or only euro?", set()),
    ("can i bring my dog?", set()),
])
def test_question_kinds(question: str, kinds: set[str]) -> None:
    assert question_kinds(question) == kinds


def test_a_sentence_fits_when_it_holds_an_expected_kind() -> None:
    price = question_kinds("what does parking cost?")
    assert fits(price, sentence_kinds("Parking costs 28 EUR per 24 hours.")) == 1.0
    assert fits(price, sentence_kinds("Breakfast is included in every rate.")) == 1.0
    assert fits(price, sentence_kinds("The Leonardo Express takes 32 minutes.")) == 0.0
    assert fits(question_kinds("how long is the ride"),
                sentence_kinds("Melk is about an hour away.")) == 1.0
    assert fits(frozenset(), sentence_kinds("Dogs are welcome.")) == 1.0


def test_missing_kind_questions_ask_what_no_passage_about_the_name_says() -> None:
    passages = ["The Leonardo Express takes 32 minutes to Termini.",
                "The Borghese Gallery opens at 09:00. Tickets cost 15 EUR for a 2-hour visit.",
                "Because Via Appia is long, take a bus because it is quicker."]
    out = missing_kind_questions(passages, random.Random(0), count=50)
    asked = {(kind, name) for q, kind in out for name in ("Leonardo Express",
                                                          "Borghese Gallery") if name in q}
    assert asked == {("price", "Leonardo Express"), ("time", "Leonardo Express")}
    assert not any("Via Appia" in q for q, _ in out)  # "Because" opens a sentence, not a name
    assert all(kind in MISSING_TEMPLATES for _, kind in out)
