"""The grounding check of written pairs (generation/grounding.py): a reply that takes a detail
of its own pair's message the guest did not give, a pair of the opposite mood, a reply that
looks back at news told of a plan, or one that speaks to or of another person than the
guest's, is not said; the next pair is, or the turn declines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generation import Generator, SamplingConfig, TrainingConfig, train_generator
from generation.errors import GenerationConfigError
from generation.grounding import (WordVectors, borrowed_details, mood_clash, opposite_moods,
                                  person_problems, polarity, same_word, stem, tense, time_clash)
from tests.fakes import FakeEmbedder


def test_stems_and_same_words() -> None:
    assert stem("tomatoes") == stem("tomato") == "tomato"
    assert stem("gardening") == "garden" and stem("stopped") == "stop"
    assert same_word("garden", "gardens") and same_word("rain", "raincoat")
    assert same_word("coat", "raincoat")  # a compound's end
    assert not same_word("tea", "coffee") and not same_word("it", "its")


def test_a_reply_word_from_its_own_message_needs_a_counterpart_in_the_guests() -> None:
    reply = "Homegrown tomatoes taste like summer."
    message = "my garden is full of tomatoes"
    assert borrowed_details(reply, message, "my garden is looking lovely") == ["tomatoes"]
    assert borrowed_details(reply, message, "i grew a tomato in my garden") == []
    # a word of the reply that its message never said is no borrowed detail ("summer")
    assert borrowed_details("Summer gardens are the best.", message, "my garden") == []
    # mood and vague words are left to the mood check ("lovely", "day")
    assert borrowed_details("What a lovely day.", "a lovely day in the park", "hello") == []


def _similarity(table: dict[frozenset[str], float]):  # type: ignore[no-untyped-def]
    def similarity(rows: list[str], columns: list[str]) -> np.ndarray:
        return np.array([[1.0 if a == b else table.get(frozenset((a, b)), 0.0)
                          for b in columns] for a in rows])
    return similarity


def test_word_similarity_finds_counterparts_and_borrowed_words() -> None:
    alike = _similarity({frozenset(("film", "movie")): 0.8,
                         frozenset(("gloves", "hands")): 0.7})
    reply, message = "Any film with a good ending.", "best film ever"
    assert borrowed_details(reply, message, "best movie you know") == ["film"]  # stems only
    assert borrowed_details(reply, message, "best movie you know", alike, 0.65) == []
    assert borrowed_details(reply, message, "best movie you know", alike, 0.9) == ["film"]
    # "gloves" comes from "hands" by likeness alone, and the guest said neither
    assert borrowed_details("Warm gloves help.", "my hands are cold", "brr, cold outside",
                            alike, 0.65) == ["gloves"]
    assert borrowed_details("Warm gloves help.", "my hands are cold", "brr, cold outside",
                            alike, 1.0) == []


def test_polarity_reads_a_small_lexicon_and_negations() -> None:
    assert polarity("my exam went great") == 1
    assert polarity("my exam went awful") == -1
    assert polarity("i'm not happy with it") == -1
    assert polarity("not bad at all") == 1
    assert polarity("i'm not in the mood") == -1
    assert polarity("what time is it") == 0
    assert opposite_moods("my exam went great", "my exam went awful")
    assert not opposite_moods("my exam went great", "what about exams")  # neutral: no clash
    assert not opposite_moods("so tired", "exhausted today")
    assert polarity("my feet are killing me") == -1
    assert polarity("had a migraine since lunch") == -1


@pytest.mark.parametrize(("reply", "message", "clash"), [
    ("I'm so glad you're feeling great.", "i feel sick and tired today", True),
    ("I'm so sorry to hear that.", "i'm so happy, we won the final!", True),
    ("I'm so sorry to hear that.", "i feel sick and tired today", False),
    ("That's wonderful news!", "my son scored his first goal, so proud", False),
    ("Rain is soothing.", "what's the weather like", False),
])
def test_a_reply_in_the_opposite_mood_clashes(reply: str, message: str, clash: bool) -> None:
    assert mood_clash(reply, message) is clash


def test_tense_and_a_reply_that_looks_the_wrong_way() -> None:
    assert tense("my best friend gets married next week") == 1
    assert tense("gonna try oysters tonight") == 1
    assert tense("my best friend's wedding was yesterday and i gave a speech") == -1
    assert tense("i love dogs") == 0
    assert tense("i was going to swim tomorrow") == 0  # both: no clash either way
    news = "my best friend's wedding was yesterday and i gave a speech"
    plan = "my best friend gets married next week, panicking about the speech"
    assert time_clash(news, "How lovely! I'm sure the speech was a hit.", plan)
    assert time_clash("i proposed last night", "Congratulations to you both!",
                      "proposing to my girlfriend tomorrow")
    assert not time_clash("i just got my first tattoo!", "Exciting! I hope you love it.",
                          "getting my first tattoo on wednesday")  # tense-neutral
    assert time_clash("big exam tomorrow", "Good luck, you'll do great!", "had my exam yesterday")
    assert not time_clash(news, "How lovely! I'm sure the speech was a hit.",
                          "gave the best man speech at my brother's wedding yesterday")


def test_a_reply_speaks_to_the_guest_about_the_guests_people() -> None:
    assert person_problems("Congratulations, grandma! What a joyful moment.",
                           "my grandma just turned 90") == ["vocative"]
    assert person_problems("Maybe the views will win her over.",
                           "my teenage son hasnt looked up from his phone") == ["pronoun"]
    assert person_problems("Maybe the views will win her over.",
                           "my teenager is on her phone") == []
    assert person_problems("Maybe the views will win them over.", "my son is on his phone") == []
    assert person_problems("Congratulations to you both!", "my best friend is pregnant") == \
        ["you both"]
    assert person_problems("Congratulations to you both!", "my wife is pregnant") == []
    assert person_problems("Congratulations to you both!", "got engaged!!! she said yes") == []
    assert person_problems("Cheers, friend. Glad you liked it.", "ha nice") == []


def test_word_vectors_encode_each_word_once() -> None:
    encoder = FakeEmbedder()
    words = WordVectors(encoder)
    first = words.similarity(["tea", "cake"], ["tea"])
    assert first.shape == (2, 1) and first[0, 0] == pytest.approx(1.0, abs=1e-5)
    seen = encoder.encoded
    words.similarity(["cake"], ["tea", "cake"])
    assert encoder.encoded == seen  # both cached


GARDEN = [("my garden is full of tomatoes", "Homegrown tomatoes taste like summer."),
          ("my garden is my happy place", "A garden is a lovely thing to tend."),
          ("i passed my driving test, so happy", "Congratulations, that's a great feeling."),
          ("my driving test went badly, i'm sad", "I'm sorry, you'll get it next time.")]


def _garden(tmp_path: Path, **sampling: object) -> Generator:
    encoder = FakeEmbedder()
    train_generator([], tmp_path / "gen", training=TrainingConfig(language_model=False),
                    sampling=SamplingConfig(), written_pairs=GARDEN, encoder=encoder,
                    progress=False)
    loose: dict[str, object] = {"pair_min_score": -2.0, "pair_relevance_weight": 0.0,
                                "pair_reciprocal": False}
    return Generator(tmp_path / "gen", encoder=encoder,
                     sampling=SamplingConfig(**{**loose, **sampling}))  # type: ignore[arg-type]


def test_a_pair_that_borrows_a_detail_gives_way_to_the_next(tmp_path: Path) -> None:
    guest = "my garden is full of flowers"  # nearest to the tomatoes' message
    plain = _garden(tmp_path, pair_grounded=False, pair_same_mood=False)
    assert plain.reply(guest).text == GARDEN[0][1]
    grounded = _garden(tmp_path)  # the defaults check both
    assert grounded.load().sampling.pair_grounded and grounded.sampling.pair_same_mood
    assert grounded.reply(guest).text == GARDEN[1][1]
    assert grounded.ungrounded(0, guest) == ["detail tomatoes"]
    assert grounded.reply("my garden is full of tomatoes").text == GARDEN[0][1]


def test_a_pair_of_the_opposite_mood_is_not_said(tmp_path: Path) -> None:
    guest = "i passed my driving test, meh"  # no good news: no congratulations
    plain = _garden(tmp_path, pair_same_mood=False)
    assert plain.reply(guest).text == GARDEN[2][1]
    assert _garden(tmp_path).reply(guest).text == GARDEN[3][1]
    only = _garden(tmp_path, pair_same_mood=True, pair_min_score=0.9)  # no other near enough
    assert only.reply(guest).text is None  # declined: the canned response follows


TIMES = [("my big maths exam was yesterday and i nailed it", "Well done, that was a big one!"),
         ("exam tomorrow", "Good luck, you'll do great.")]


def test_a_reply_for_news_is_not_said_to_a_plan(tmp_path: Path) -> None:
    encoder = FakeEmbedder()
    train_generator([], tmp_path / "gen", training=TrainingConfig(language_model=False),
                    sampling=SamplingConfig(), written_pairs=TIMES, encoder=encoder,
                    progress=False)

    def generator(**sampling: object) -> Generator:
        loose: dict[str, object] = {"pair_min_score": -2.0, "pair_relevance_weight": 0.0,
                                    "pair_reciprocal": False, "pair_same_mood": False}
        return Generator(tmp_path / "gen", encoder=encoder,
                         sampling=SamplingConfig(**{**loose, **sampling}))  # type: ignore[arg-type]

    guest = "my big maths exam is tomorrow and i hope i nail it"
    assert generator(pair_same_time=False).reply(guest).text == TIMES[0][1]  # nearest
    checked = generator().load()
    row = list(checked._pairs.replies).index(TIMES[0][1])  # type: ignore[union-attr]
    assert checked.ungrounded(row, guest) == ["time"]
    assert checked.reply(guest).text == TIMES[1][1]


def test_the_word_similarity_is_checked() -> None:
    with pytest.raises(GenerationConfigError, match="pair_word_similarity"):
        SamplingConfig(pair_word_similarity=1.5)
