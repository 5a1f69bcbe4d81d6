"""Misspelt copies of training messages, so a typo does not drop an intent's confidence.

Guests type fast: "famly room", "reservation" as "resrevation", "pls bokk". A fine-tuned
encoder sees a misspelt word as other word pieces and grows unsure, and the FallbackClassifier
then answers nlu_fallback. `typo_copies` makes copies of a share of the training messages with
one or two character edits (a letter dropped, doubled, swapped with the next, or replaced by a
neighbour on the keyboard) in words of four letters or more. The copies train the intent only:
the edits move the characters under the entity annotations.
"""

from __future__ import annotations

import re

import numpy as np

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
    words = [m for m in _WORD.finditer(text) if len(m.group()) >= MIN_WORD_LENGTH]
    if not words:
        return None
    k = int(rng.integers(1, min(max_edits, len(words)) + 1))
    chosen = sorted(rng.choice(len(words), size=k, replace=False).tolist(), reverse=True)
    out = text
    for index in chosen:  # from the end, so earlier offsets stay right
        match = words[index]
        out = out[:match.start()] + misspell(match.group(), rng) + out[match.end():]
    return out


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
