"""The sentence selection reads how much of the question the sentence covers (cover_sent):
with the encoder and BM25 unable to tell two sentences apart, the one holding the question's
words, misspelt or not, is chosen."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from retrieval.sentence_ranker import DEFAULT_SELECTION, SentenceRanker
from retrieval.sentences import SentenceTable
from retrieval.spelling import TypoCorrector
from retrieval.types import Passage, SearchHit
from tests.fakes import FakeEmbedder

KB = ("Breakfast is served from 07:00 to 10:30.",
      "The rooftop swimming pool opens at 09:00.")


def test_the_sentence_that_covers_the_question_words_wins_a_tie() -> None:
    passages = {i: Passage(f"p{i}", f"d{i}.md", "", text, 0, len(text))
                for i, text in enumerate(KB)}
    table = SentenceTable.from_passages(passages)
    embedder = FakeEmbedder()
    vectors = np.ones((len(table), embedder.dimension)) / np.sqrt(embedder.dimension)
    ranker = SentenceRanker(table, passages, embedder, vectors)  # every cosine the same
    ranker.spelling = TypoCorrector([s.search_text for s in table.sentences], None)
    hits = [SearchHit(passages[0], 1.0, 1), SearchHit(passages[1], 1.0, 1)]
    question = "rooftopp swiming when?"  # BM25 matches no word of it, the cover two of them

    def best(selection: object) -> str:
        top = ranker.candidates([question], [hits], selection)[0][0]
        return table.sentences[top.sentence].text

    weights = dict(zip(DEFAULT_SELECTION.features, DEFAULT_SELECTION.weights))
    assert weights["cover_sent"] > 0
    assert best(DEFAULT_SELECTION).startswith("The rooftop")
    blind = replace(DEFAULT_SELECTION, weights=tuple(
        0.0 if f == "cover_sent" else w for f, w in weights.items()))
    assert best(blind).startswith("Breakfast")  # without it the tie goes to the first
