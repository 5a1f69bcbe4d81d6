"""nlu/typos.py: misspelt copies of training messages."""

from __future__ import annotations

import numpy as np

from nlu.types import Entity, Example
from nlu.typos import misspell, typo_copies, typo_copy, typo_examples


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


def test_typo_examples_move_the_entities_with_the_edits() -> None:
    text = "a family room in Lisbon from the 3rd of September"
    entities = (Entity(2, 8, "family", "room_type"), Entity(17, 23, "Lisbon", "city"),
                Entity(29, 49, "the 3rd of September", "date", "checkin"))
    example = Example(text, "book_room", entities)
    copies = typo_examples([example] * 200, 1.0, np.random.default_rng(3))
    assert len(copies) == 200 and any(c.text.split()[1] != "family" for _, c in copies)
    for index, copy in copies:
        assert index < 200 and copy.intent == "book_room" and copy.text != text
        # each entity covers the same words, misspelt or not, and keeps its label and value
        assert [copy.text[e.start:e.end].split()[0][0] for e in copy.entities] == ["f", "L", "t"]
        assert [len(copy.text[e.start:e.end].split()) for e in copy.entities] == [1, 1, 4]
        assert copy.text[copy.entities[1].start - 3:copy.entities[1].start] == "in "
        assert [(e.entity, e.role, e.value) for e in copy.entities] == \
            [(e.entity, e.role, e.value) for e in entities]
        assert copy.text[copy.entities[2].end:] == ""
    assert typo_examples([Example("a big cat", "x")], 1.0, np.random.default_rng(0)) == []


def test_a_misspelt_entity_word_comes_with_a_misspelt_word_outside_the_entities() -> None:
    """The counter-example: "a [famly](room_type) rom", never "a [famly](room_type) room"
    alone, so a garbled word where a room type goes is not a room type by itself."""
    text = "book a family room"
    example = Example(text, "book_room", (Entity(7, 13, "family", "room_type"),))
    copies = typo_examples([example] * 300, 1.0, np.random.default_rng(5))
    garbled_entity = [c for _, c in copies if c.text[c.entities[0].start:c.entities[0].end]
                      != "family"]
    assert len(garbled_entity) > 50
    for copy in garbled_entity:
        words = copy.text.split()
        assert words[0] != "book" or words[3] != "room"  # an outside word is misspelt too
        assert copy.text[copy.entities[0].start:copy.entities[0].end] == words[2]
    # a message whose long words are all entity words still gets its copies
    alone = Example("Lisbon", "inform", (Entity(0, 6, "Lisbon", "city"),))
    assert len(typo_examples([alone] * 20, 1.0, np.random.default_rng(5))) == 20
