"""Typos corrected to the knowledge base's words before the sentence selection
(retrieval.spelling), with a small word list standing in for the encoder's vocabulary."""

from __future__ import annotations

from collections.abc import Sequence

from retrieval.sentence_ranker import DEFAULT_SELECTION, SentenceRanker
from retrieval.sentences import SentenceTable
from retrieval.spelling import TypoCorrector, known_words
from retrieval.types import Passage, SearchHit
from tests.fakes import FakeEmbedder

KB = ("Breakfast is served from 07:00 to 10:30 at Cafe Sternstunde.",
      "The canal boat tour costs 25 EUR; the cancellation deadline is 18:00.",
      "Nova Grand Hotel has a partner garage.")
ENGLISH = frozenset("bring want could being wait cold breakfast canal hours the".split())


def english(words: Sequence[str]) -> list[bool]:
    return [w in ENGLISH for w in words]


def test_typos_become_the_kb_word_one_edit_away() -> None:
    speller = TypoCorrector(KB, english)
    assert speller.correct("Breakfaast hours at cafe sterntunde?") == \
        "breakfast hours at cafe sternstunde?"
    assert speller.correct("parking at the nova grnad") == "parking at the nova grand"
    assert speller.correct("garge price, nova grand") == "garage price, nova grand"


def test_known_words_short_words_and_far_words_stay() -> None:
    speller = TypoCorrector(KB, english)
    # "could" is one edit from nothing here, "want" is known, "boat" is a KB word, "cab" is
    # short; "helicopter" is no typo of any KB word
    for text in ("could i bring my dog", "i want the boat", "cab or bus", "helicopter pad"):
        assert speller.correct(text) == text
    assert speller.fix("sauna") == "sauna"


def test_of_several_kb_words_the_most_used_wins() -> None:
    speller = TypoCorrector([*KB, "The canal is quiet; canal boats leave hourly."], english)
    assert speller.fix("canel") == "canal"  # one edit from canal only ("cancel" is no KB word)
    assert speller.fix("cancellaton") == "cancellation"


def test_without_a_vocabulary_nothing_is_corrected() -> None:
    assert known_words(FakeEmbedder()) is None
    assert TypoCorrector(KB, None).correct("breakfaast") == "breakfaast"

    class Pieces:
        def token_lengths(self, words: Sequence[str]) -> list[int]:
            return [1 if w in ENGLISH else 3 for w in words]

    known = known_words(Pieces())
    assert known is not None and known(["bring", "grnad"]) == [True, False]


def test_the_selection_reads_the_corrected_question() -> None:
    passages = {i: Passage(f"p{i}", f"d{i}.md", f"Doc {i}", text, 0, len(text))
                for i, text in enumerate(KB)}
    table = SentenceTable.from_passages(passages)
    embedder = FakeEmbedder()
    vectors = embedder.encode([s.search_text for s in table.sentences])
    ranker = SentenceRanker(table, passages, embedder, vectors)
    hits = [SearchHit(passages[2], 1.0, 1), SearchHit(passages[0], 0.5, 2)]

    def best(spelling: TypoCorrector) -> str:
        ranker.spelling = spelling
        top = ranker.candidates(["breakfaast hours?"], [hits], DEFAULT_SELECTION)[0][0]
        return table.sentences[top.sentence].text

    texts = [s.search_text for s in table.sentences]
    assert best(TypoCorrector(texts, english)).startswith("Breakfast")
    assert not best(TypoCorrector(texts, None)).startswith("Breakfast")  # the typo misses it
