"""nlu/typos.py: misspelt copies of training messages."""

from __future__ import annotations

import numpy as np

from nlu.typos import misspell, typo_copies, typo_copy


def test_misspell_is_one_edit_that_keeps_the_first_letter() -> None:
    rng = np.random.default_rng(0)
    for word in ["family", "book", "Lisbon"] * 100:
        out = misspell(word, rng)
        assert out != word  # every edit changes the word
        assert out[0] == word[0] and abs(len(out) - len(word)) <= 1


def test_typo_copy_edits_long_words_only() -> None:
    rng = np.random.default_rng(1)
    assert typo_copy("a big cat", rng) is None  # no word of four letters or more
    for _ in range(50):
        out = typo_copy("book a family room in Lisbon", rng)
        assert out is not None and out != "book a family room in Lisbon"
        words = out.split()
        assert len(words) == 6 and words[1] == "a" and words[4] == "in"


def test_typo_copies_cover_about_the_fraction_and_are_reproducible() -> None:
    texts = [f"please reserve a double room number {i}" for i in range(400)]
    first = typo_copies(texts, 0.25, np.random.default_rng(7))
    assert 60 <= len(first) <= 140
    assert all(texts[i] != copy for i, copy in first)
    assert first == typo_copies(texts, 0.25, np.random.default_rng(7))
    assert typo_copies(texts, 0.0, np.random.default_rng(7)) == []
