"""Candidate spans worth classifying: fewer [MASK] entity tokens, same recall.

Every span of up to `max_span_length` words is a candidate in the plain LUKE extractor; most are
hopeless ("in Lisbon for", ", please"). `SpanPruner` learns three things from the training data
and drops the rest before spans become entity tokens:

- lengths: no span longer than the longest gold entity (in words);
- boundaries: no span that starts or ends on a punctuation mark or a stop word, unless some gold
  entity of the training data starts (or ends) on that very word ("the Ritz", "2 adults, 1 kid");
- nothing else: spans inside the message are otherwise all kept, so recall stays measurable.

`recall` reports which share of gold entities survive pruning (on any data set, e.g. the held-out
test set), the figure that says pruning costs no accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

from nlu.types import Example
from nlu.words import EncodedText, Word, gold_word_spans

# Function words of English that rarely start or end an entity. Data-driven exceptions (the
# boundary words of the gold entities) are added back per project.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me
more most my myself no nor not now of off on once only or other our ours ourselves out over own
please same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves i'm i'd i'll can't don't won't
""".split())


def _is_punctuation(word: str) -> bool:
    return len(word) == 1 and not word.isalnum()


@dataclass(frozen=True, slots=True)
class SpanPruner:
    """Which (first word, last word) spans of a message become entity candidates."""

    max_span_length: int  # words; the longest gold entity, capped by the config
    prune: bool = True  # False: every span up to max_span_length (the plain LUKE candidates)
    start_words: frozenset[str] = frozenset()  # stop words/punctuation that start a gold entity
    end_words: frozenset[str] = frozenset()  # ... that end one

    @classmethod
    def from_training(cls, examples: list[Example], encoded: list[EncodedText],
                      max_span_length: int, prune: bool = True) -> SpanPruner:
        """Lengths and boundary exceptions from the gold entities of `examples`."""
        longest, starts, ends = 1, set(), set()
        for example, text in zip(examples, encoded, strict=True):
            for first, last, _ in gold_word_spans(example, text.words):
                longest = max(longest, last - first + 1)
                starts.add(_word_text(text, text.words[first]))
                ends.add(_word_text(text, text.words[last]))
        blocked = [w for w in starts | ends if _blocked(w)]
        return cls(min(longest, max_span_length), prune,
                   frozenset(w for w in blocked if w in starts),
                   frozenset(w for w in blocked if w in ends))

    def candidates(self, text: EncodedText, n_words: int | None = None) -> list[tuple[int, int]]:
        """Spans (i, j), i <= j, over the first `n_words` words (all by default)."""
        n = len(text.words) if n_words is None else n_words
        if not self.prune:
            return [(i, j) for i in range(n) for j in range(i, min(i + self.max_span_length, n))]
        lowered = [_word_text(text, w) for w in text.words[:n]]
        can_start = [not _blocked(w) or w in self.start_words for w in lowered]
        can_end = [not _blocked(w) or w in self.end_words for w in lowered]
        return [(i, j) for i in range(n) if can_start[i]
                for j in range(i, min(i + self.max_span_length, n)) if can_end[j]]

    def to_dict(self) -> dict[str, object]:
        return {"max_span_length": self.max_span_length, "prune": self.prune,
                "start_words": sorted(self.start_words), "end_words": sorted(self.end_words)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SpanPruner:
        return cls(int(data["max_span_length"]), bool(data["prune"]),  # type: ignore[arg-type]
                   frozenset(data["start_words"]), frozenset(data["end_words"]))  # type: ignore[arg-type]


def recall(pruner: SpanPruner, examples: list[Example],
           encoded: list[EncodedText]) -> dict[str, float]:
    """Share of gold entities whose word span is a candidate, and candidates per message
    (pruned and unpruned), on `examples` (e.g. tests/nlu_test.yml)."""
    gold = kept = spans = full = 0
    everything = SpanPruner(pruner.max_span_length, prune=False)
    for example, text in zip(examples, encoded, strict=True):
        candidates = set(pruner.candidates(text))
        spans, full = spans + len(candidates), full + len(everything.candidates(text))
        for first, last, _ in gold_word_spans(example, text.words):
            gold += 1
            kept += (first, last) in candidates
    n = max(1, len(examples))
    return {"gold_entities": gold, "recall": kept / gold if gold else 1.0,
            "spans_per_message": spans / n, "unpruned_spans_per_message": full / n}


def _word_text(text: EncodedText, word: Word) -> str:
    return text.text[word.start:word.end].lower()


def _blocked(word: str) -> bool:
    return _is_punctuation(word) or word in STOP_WORDS
