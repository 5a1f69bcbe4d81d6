"""Guests' typos corrected to the knowledge base's own words before the sentence selection.

Guests type fast: "breakfaast", "nova grnad", "sterntunde", "untill". The sentence encoder cuts
such a word into unrelated word pieces and BM25 matches it to nothing, so the question loses
the very word that names its topic. A question word is replaced by a KB word when

* it has at least MIN_CHARS letters and is no word of the KB,
* it is no word the encoder knows whole (its tokenizer keeps it as one word piece: "bring",
  "want" and "could" stay as they are, however close "being", "wait" and "cold" are), and
* a KB word is one edit away (a letter dropped, added or changed, or two neighbours swapped);
  of several, the one the KB uses most (then the first in alphabetical order).

Without a way to tell known words (an encoder without `token_lengths`) nothing is corrected:
every English word the KB does not use would be a typo then.

    speller = TypoCorrector([s.search_text for s in table.sentences], known_words(encoder))
    speller.correct("aurora breakfaast hours")      # "aurora breakfast hours"
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from retrieval.question_evidence import KnownWords, one_edit

MIN_CHARS = 5  # shorter words have too many neighbours one edit away ("cab", "car", "bar")
KNOWN_CACHE = 20_000  # words remembered as known or not (cleared when full)
_WORD = re.compile(r"[A-Za-z]+")


def known_words(encoder: Any) -> KnownWords | None:
    """Whether each word is one word piece of `encoder`'s tokenizer (a word it knows whole),
    or None when the encoder cannot say (no `token_lengths`)."""
    lengths = getattr(encoder, "token_lengths", None)
    if lengths is None:
        return None
    return lambda words: [n == 1 for n in lengths(list(words))]


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


class TypoCorrector:
    """The KB's words with their counts and a delete index for one-edit look-ups."""

    def __init__(self, texts: Iterable[str], known: KnownWords | None) -> None:
        self.counts = Counter(w for t in texts for w in _WORD.findall(t.lower()))
        self.known = known
        self._known_cache: dict[str, bool] = {}
        self._by_delete: dict[str, set[str]] = {}
        for w in self.counts:
            if len(w) >= MIN_CHARS - 1:
                for key in _deletes(w) | {w}:
                    self._by_delete.setdefault(key, set()).add(w)

    def correct(self, text: str) -> str:
        """`text` with each typo replaced by its KB word (lower case); the rest unchanged."""
        if self.known is None:
            return text
        words = {m.group(0).lower() for m in _WORD.finditer(text)}
        fixes = {w: self.fix(w) for w in self._unknown(words)}
        fixes = {w: f for w, f in fixes.items() if f != w}
        if not fixes:
            return text
        return _WORD.sub(lambda m: fixes.get(m.group(0).lower(), m.group(0)), text)

    def fix(self, word: str) -> str:
        """The KB word one edit from `word` that the KB uses most, or `word` itself."""
        near = {w for key in _deletes(word) | {word} for w in self._by_delete.get(key, ())
                if one_edit(word, w)}
        return max(sorted(near), key=lambda w: self.counts[w]) if near else word

    def _unknown(self, words: Iterable[str]) -> list[str]:
        """The words that may be typos: long enough, not in the KB, not known whole."""
        ask = sorted(w for w in words if len(w) >= MIN_CHARS and w not in self.counts)
        todo = [w for w in ask if w not in self._known_cache]
        if todo and self.known is not None:
            if len(self._known_cache) + len(todo) > KNOWN_CACHE:
                self._known_cache.clear()
            self._known_cache.update(zip(todo, self.known(todo)))
        return [w for w in ask if not self._known_cache.get(w, False)]
