"""The sentence after the answer joins the reply when the reranker rates it as high."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from retrieval.answerer import Answer
from retrieval.follow import follows
from retrieval.sentence_ranker import CROSS_CLIP, Candidate
from retrieval.sentences import SentenceTable
from retrieval.types import Passage

DOC = ("Canal houses have steep stairs, and only the main building has a lift. Guests who "
       "need step-free access ask for a room in the main building. Breakfast is at eight.\n"
       "The bar closes at midnight.\n")


class WordOverlap:
    """Stands in for the reranker in these unit tests: a pair scores the number of the
    question's words the text holds (the real reranker is checked in test_answerer)."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def score(self, questions: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        self.pairs += list(zip(questions, texts))
        return np.array([float(len(set(re.findall(r"\w+", q.lower()))
                                   & set(re.findall(r"\w+", t.lower()))))
                         for q, t in zip(questions, texts)], dtype=np.float32)


def _table() -> SentenceTable:
    return SentenceTable.from_passages({0: Passage("p0", "h.md", "", DOC, 0, len(DOC))})


def _chosen(table: SentenceTable, text: str, score: float) -> Candidate:
    sid = next(s.id for s in table.sentences if s.text == text)
    return Candidate(sid, {"cross": score / CROSS_CLIP}, 0.5, "h.md")


def test_the_table_knows_the_sentence_after_each_one_on_its_line() -> None:
    table = _table()
    texts = {s.id: s.text for s in table.sentences}
    pairs = {texts[a]: texts[b] for a, b in table.following.items()}
    assert pairs == {
        texts[0]: "Guests who need step-free access ask for a room in the main building.",
        texts[1]: "Breakfast is at eight."}  # a new line ends the paragraph


def test_the_next_sentence_follows_only_when_it_scores_as_high() -> None:
    table, reranker = _table(), WordOverlap()
    ranker = SimpleNamespace(table=table)
    stairs = "Canal houses have steep stairs, and only the main building has a lift."
    question = "stairs look steep, which building should we ask for a room in"
    # the next sentence holds 6 of the question's words (building, ask, for, a, room, in)
    low = _chosen(table, stairs, 2.0)
    assert follows(reranker, ranker, [question], [low]) == [
        "Guests who need step-free access ask for a room in the main building."]
    high = _chosen(table, stairs, 9.0)   # the chosen sentence scored higher: nothing follows
    assert follows(reranker, ranker, [question], [high]) == [""]
    assert follows(reranker, ranker, [question], [high], margin=-9.0)[0].startswith("Guests")
    last = _chosen(table, "The bar closes at midnight.", -5.0)  # nothing after it
    unscored = Candidate(low.sentence, {}, 0.5, "h.md")  # no reranker score: nothing to compare
    reranker.pairs.clear()
    assert follows(reranker, ranker, ["q1", "q2", "q3"], [None, last, unscored]) == ["", "", ""]
    assert reranker.pairs == []  # and the reranker is not asked


def test_the_reply_reads_the_lead_the_sentence_and_what_follows() -> None:
    passage = "Boats leave at noon. It costs 25 EUR. Book at reception."
    at = passage.index("It costs")
    answer = Answer("25 EUR", 1.0, 0.0, "h.md", "p0", "Hotel", (at + 9, at + 15),
                    "It costs 25 EUR.", (at, at + 16), 0.9, passage, "price?",
                    "Boats leave at noon.", "Book at reception.")
    assert answer.reply == passage
    start, end = answer.span_in_reply
    assert answer.reply[start:end] == "25 EUR"
    assert replace(answer, lead="").reply == "It costs 25 EUR. Book at reception."
