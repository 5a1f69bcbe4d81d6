"""Misspelt copies of training messages, so a typo does not drop an intent's confidence.

Guests type fast: "famly room", "reservation" as "resrevation", "pls bokk". A fine-tuned
encoder sees a misspelt word as other word pieces and grows unsure, and the FallbackClassifier
then answers nlu_fallback. `typo_copies` makes copies of a share of the training messages with
one or two character edits (a letter dropped, doubled, swapped with the next, or replaced by a
neighbour on the keyboard) in words of four letters or more, entity words included ("famly
room" is still a room type). `typo_examples` moves the entity annotations with the edits, so the
copies train the entity spans as well as the intent.

A copy that misspells an entity word also misspells a word outside the entities when the
message has one ("a [doble](room_type) rom"): copies that garble only entity words teach the
span head that any garbled word where a room type goes is one (session 6's model read "bok a
rom in barcelona" with a room type "rom"). Side by side, the garbled word that is no entity is
the counter-example.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from nlu.types import Example

MIN_WORD_LENGTH = 4  # shorter words ("a", "the", "room") keep their spelling: too few letters
_WORD = re.compile(r"[A-Za-z]+")
_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    key: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _KEYBOARD for i, key in enumerate(row)
}


def misspell(word: str, rng: np.random.Generator) -> str:
    """One character edit of `word`; its first letter is kept (people rarely miss it)."""
    i = int(rng.integers(1, len(word)))
    kind = int(rng.integers(4))
    if kind == 0:  # dropped
        return word[:i] + word[i + 1:]
    if kind == 1:  # doubled
        return word[:i] + word[i] + word[i:]
    if kind == 2 and i < len(word) - 1 and word[i] != word[i + 1]:  # swapped with the next
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    options = _NEIGHBOURS.get(word[i].lower(), "")
    if not options:
        return word[:i] + word[i + 1:]
    letter = options[int(rng.integers(len(options)))]
    return word[:i] + (letter.upper() if word[i].isupper() else letter) + word[i + 1:]


def typo_copy(text: str, rng: np.random.Generator, max_edits: int = 2) -> str | None:
    """`text` with one to `max_edits` of its long words misspelt; None when it has none."""
    edited = _edit(text, rng, max_edits)
    return None if edited is None else edited[0]


def typo_copies(texts: list[str], fraction: float, rng: np.random.Generator
                ) -> list[tuple[int, str]]:
    """(index into `texts`, misspelt copy) for about `fraction` of the texts."""
    out = []
    for index, text in enumerate(texts):
        if rng.random() < fraction:
            copy = typo_copy(text, rng)
            if copy is not None and copy != text:
                out.append((index, copy))
    return out


def typo_examples(examples: list[Example], fraction: float, rng: np.random.Generator
                  ) -> list[tuple[int, Example]]:
    """(index into `examples`, misspelt copy) for about `fraction` of the examples; each copy's
    entities cover the same words as before the edits (a misspelt entity word stays inside
    its entity)."""
    out = []
    for index, example in enumerate(examples):
        if rng.random() < fraction:
            edited = _edit(example.text, rng, 2, [(e.start, e.end) for e in example.entities])
            if edited is None or edited[0] == example.text:
                continue
            text, edits = edited
            entities = tuple(replace(e, start=_moved(e.start, edits), end=_moved(e.end, edits))
                             for e in example.entities)
            out.append((index, replace(example, text=text, entities=entities)))
    return out


_Edits = list[tuple[int, int]]  # (end of the edited word in the original text, length change)


def _edit(text: str, rng: np.random.Generator, max_edits: int,
          entities: list[tuple[int, int]] | None = None) -> tuple[str, _Edits] | None:
    """`entities`: (start, end) spans; when every chosen word is inside one and a long word
    outside them exists, one of the chosen is swapped for an outside word (the counter-example)."""
    words = [m for m in _WORD.finditer(text) if len(m.group()) >= MIN_WORD_LENGTH]
    if not words:
        return None
    k = int(rng.integers(1, min(max_edits, len(words)) + 1))
    chosen = rng.choice(len(words), size=k, replace=False).tolist()
    if entities:
        inside = {i for i, m in enumerate(words)
                  if any(s <= m.start() and m.end() <= e for s, e in entities)}
        outside = [i for i in range(len(words)) if i not in inside]
        if outside and all(i in inside for i in chosen):
            extra = outside[int(rng.integers(len(outside)))]
            chosen = [*chosen[:max_edits - 1], extra]
    chosen = sorted(chosen, reverse=True)
    out, edits = text, []
    for index in chosen:  # from the end, so earlier offsets stay right
        match = words[index]
        new = misspell(match.group(), rng)
        out = out[:match.start()] + new + out[match.end():]
        edits.append((match.end(), len(new) - len(match.group())))
    return out, edits


def _moved(offset: int, edits: _Edits) -> int:
    """Where an offset of the original text is after the edits: a word's start stays (the
    first letter is never edited), an offset at or after an edited word's end moves with it."""
    return offset + sum(change for end, change in edits if offset >= end)
