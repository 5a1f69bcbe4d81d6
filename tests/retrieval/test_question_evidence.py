"""Word and place evidence for the answer confidence (retrieval.question_evidence), on a small
hand-made knowledge base: two hotels in two cities, a city guide and a policy."""

from __future__ import annotations

import pytest

from retrieval.question_evidence import (EVIDENCE_FEATURES, QuestionEvidence, asked_part,
                                        content_words)
from retrieval.sentences import SentenceTable
from retrieval.types import Passage

DOCS = {
    "hotels/starlight_rome.md": ("Starlight Rome > Facilities",
                                 "The rooftop pool in Rome is open from May to September. "
                                 "Parking in the garage costs 30 EUR per day."),
    "hotels/aurora_riverside.md": ("Aurora Riverside > Rooms",
                                   "The lift at the Aurora in Lisbon stops at the third floor."),
    "hotels/starlight_lisbon.md": ("Starlight Lisbon > Rooms",
                                   "Family rooms in Lisbon face the quiet courtyard."),
    "cities/lisbon.md": ("Lisbon city guide > Getting around",
                         "Tram 28 climbs through Alfama."),
    "cities/rome.md": ("Rome city guide > Sights", "The Pantheon is a short walk away."),
    "policies/pets.md": ("Pets Policy > Fees", "The pet fee is 25 EUR per night."),
}


@pytest.fixture(scope="module")
def evidence() -> QuestionEvidence:
    passages = {slot: Passage(f"p{slot}", doc, title, text, 0, len(text))
                for slot, (doc, (title, text)) in enumerate(DOCS.items())}
    return QuestionEvidence(SentenceTable.from_passages(passages))


def sentence(evidence: QuestionEvidence, words: str) -> int:
    return next(s.id for s in evidence.table.sentences if words in s.text)


def test_content_words_drop_stop_and_chat_words() -> None:
    assert content_words("Hi! could you tell me, how deep is the rooftop pool? thanks") == \
        ["deep", "rooftop", "pool"]
    assert content_words("ok thanks") == []


def test_a_word_the_sentence_lacks_lowers_its_cover(evidence: QuestionEvidence) -> None:
    pool = sentence(evidence, "rooftop pool")
    asked = evidence.features("when is the rooftop pool open in rome", pool)
    deep = evidence.features("how deep is the rooftop pool in rome", pool)
    assert set(asked) == set(EVIDENCE_FEATURES)
    assert asked["cover_sent"] == pytest.approx(1.0)
    assert deep["cover_sent"] < 1.0 and deep["cover_kb"] < 1.0  # "deep" is nowhere in the KB
    assert all(0.0 <= v <= 1.0 for v in deep.values())


@pytest.mark.parametrize(("message", "asked"), [
    ("we land late with two tired kids. is there parking?", "is there parking?"),
    ("ok so how much is the pet fee", "how much is the pet fee"),
    ("my dog is a big boy, 30 kilos, which rooms take dogs", "which rooms take dogs"),
    ("garage price rome", "garage price rome"),                    # no clause asks: all of it
    ("we love rome and the pantheon, is that ok?",                  # the asking clause has no
     "we love rome and the pantheon, is that ok?"),                 # content word: all of it
    ("when does the pool open and how much is parking in rome",
     "when does the pool open how much is parking in rome"),
])
def test_the_asked_part_is_the_clauses_that_ask(message: str, asked: str) -> None:
    assert asked_part(message) == asked


def test_the_asked_clause_is_covered_apart_from_the_talk_around_it(
        evidence: QuestionEvidence) -> None:
    pool = sentence(evidence, "rooftop pool")
    long = evidence.features("my kids love swimming and diving lessons, when is the rooftop "
                             "pool open in rome", pool)
    assert long["cover_sent"] < 0.6 and long["cover_ask"] == pytest.approx(1.0)
    short = evidence.features("when is the rooftop pool open in rome", pool)
    assert short["cover_ask"] == short["cover_sent"] == pytest.approx(1.0)


def test_words_match_despite_typos_and_endings(evidence: QuestionEvidence) -> None:
    pool = sentence(evidence, "rooftop pool")
    typo = evidence.features("rooftp pool opening monhts in rome?", pool)
    assert typo["cover_sent"] == pytest.approx(evidence.features(
        "rooftop pool opening months in rome?", pool)["cover_sent"])
    assert evidence.matches("garages") == frozenset({"garage"})
    assert evidence.matches("bar") == frozenset()  # short words only match exactly


def test_a_sentence_without_question_words_is_fully_covered(evidence: QuestionEvidence) -> None:
    assert evidence.features("ok?", 0)["cover_sent"] == 1.0


def test_place_clash_names_another_city_or_hotel(evidence: QuestionEvidence) -> None:
    pool = sentence(evidence, "rooftop pool")
    lift = sentence(evidence, "lift")
    family = sentence(evidence, "Family rooms")
    assert evidence.features("rooftop pool in rome?", pool)["place_clash"] == 0.0
    assert evidence.features("rooftop pool in lisbn?", pool)["place_clash"] == 1.0  # a typo
    assert evidence.features("is there a pool?", pool)["place_clash"] == 0.0  # no place named
    # a hotel named: its city's guide is fine, another hotel in the same city is not
    assert evidence.features("does the aurora have a lift", lift)["place_clash"] == 0.0
    assert evidence.features("family rooms at the aurora?", family)["place_clash"] == 1.0
    tram = sentence(evidence, "Tram 28")
    assert evidence.features("tram near the aurora?", tram)["place_clash"] == 0.0
    # a policy is about no place
    fee = sentence(evidence, "pet fee")
    assert evidence.features("pet fee in rome?", fee)["place_clash"] == 0.0
    assert evidence.named_places("aurora or starlight rome?") == (
        {"lisbon", "rome"}, {"hotels/aurora_riverside.md"})
    assert evidence.named_places("a pool in rome?") == ({"rome"}, set())  # the city alone


ALIAS_DOCS = {
    "hotels/starlight_amsterdam.md": ("Starlight Amsterdam > Location",
                                      "The hotel stands on the Prinsengracht in Amsterdam, "
                                      "off the Leidsestraat. "
                                      "Dinner is served at Het Anker on Monday."),
    "hotels/the_comet_inn.md": ("The Comet Inn > Location",
                                "The inn is in the Jordaan in Amsterdam, open on Monday. "
                                "Ask the Prinsengracht tour desk."),
    "cities/amsterdam.md": ("Amsterdam city guide > Food", "Try the anker bread at markets."),
    "policies/children.md": ("Children > Rooms", "The Comet Inn has no family rooms. "
                             "Cots are free at every hotel."),
}


def alias_evidence(known=None) -> QuestionEvidence:
    passages = {slot: Passage(f"p{slot}", doc, title, text, 0, len(text))
                for slot, (doc, (title, text)) in enumerate(ALIAS_DOCS.items())}
    return QuestionEvidence(SentenceTable.from_passages(passages), known)


def test_a_name_written_in_one_hotel_document_names_that_hotel() -> None:
    evidence = alias_evidence()
    # the Jordaan is only the inn's; the Prinsengracht is in both hotels' documents; "anker"
    # is written in lower case elsewhere; Monday is in both
    assert evidence.named_places("is the jordaan hotel quiet?") == (
        {"amsterdam"}, {"hotels/the_comet_inn.md"})
    assert evidence.named_places("the prinsengracht hotel?")[1] == set()
    assert evidence.named_places("dinner at anker?")[1] == set()
    # a word the encoder's vocabulary holds whole is no name
    common = alias_evidence(lambda words: [w == "jordaan" for w in words])
    assert common.named_places("is the jordaan hotel quiet?")[1] == set()


def test_a_sentence_naming_another_hotel_clashes() -> None:
    evidence = alias_evidence()
    named = evidence.named_places("family rooms at the leidsestraat hotel?")
    inn = sentence(evidence, "no family rooms")
    cots = sentence(evidence, "Cots are free")
    assert evidence.sentence_clash(inn, named) == 1.0
    assert evidence.sentence_clash(cots, named) == 0.0      # it names no hotel
    assert evidence.sentence_clash(inn, evidence.named_places("family rooms?")) == 0.0
    assert evidence.sentence_clash(inn, evidence.named_places("comet inn family rooms")) == 0.0
