"""Which part of the answer sentence to highlight: the reader's n-best spans, re-scored by
the kind of answer the question asks for.

The reader (trained on a few hundred KB questions) often ranks a span of the wrong kind
first ("how much is parking?" -> "24 hours" over "32 EUR"), or a neighbour of the answer
("closes at 22:00" -> "22:00" and "00"). Two rules, written from what a kind of answer is:

1. kind: the highlight is the reader's best-ranked span (of its n-best) that holds a whole
   typed answer of a kind the question asks for (retrieval.answer_types: a price for "how
   much", a time for "until when", ...); the reader's best span when none does or the
   question asks for no kind;
2. unit: a price is read with its unit ("32 EUR" -> "32 EUR per 24 hours", "15 EUR a day"):
   without it the price does not answer the question.

Measured with session 7's reader on the KB sentence that holds the gold answer (span F1,
the reader's best span -> this choice): qa.json held out 0.706 -> 0.717, a fixed half of
the guest questions 0.598 -> 0.655, the guest-voice dev set (tests/kb_dev.json) 0.627 -> 0.654.
A conditional logit over the 5 best spans (reader score, kind), fitted on the first two,
gave the kind a weight worth 10.8 logits; any bonus from 3 logits up chose the same spans,
so the rule is plain preference. The unit alone adds 0.006 to 0.025 on each set.

    start, end = choose_span("how much is parking?", sentence.text, result.spans)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from retrieval.answer_types import question_kinds, typed_answers
from retrieval.reader import Span

_PRICE_END = re.compile(r"(?:\d(?:[.,]?\d)*\s?(?:EUR|euros?)|€\s?\d+(?:[.,]\d+)?)$", re.I)
_PER_UNIT = re.compile(r" (?:per|a|an|each) (?:[\d,.]+ )?[A-Za-z]+(?: (?:per|a) [A-Za-z]+)?")


def kind_fits(span: Span, expected: frozenset[str],
              typed: Sequence[tuple[str, int, int]]) -> bool:
    """Whether `span` holds a whole typed answer of an expected kind."""
    return any(kind in expected and span.start <= a and b <= span.end for kind, a, b in typed)


def with_unit(sentence: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) grown over the unit that follows a price ("... per 24 hours")."""
    if _PRICE_END.search(sentence[start:end]):
        unit = _PER_UNIT.match(sentence, end)
        if unit is not None:
            return start, unit.end()
    return start, end


def choose_span(question: str, sentence: str,
                spans: Sequence[Span]) -> tuple[int, int] | None:
    """(start, end) in `sentence` of the span to highlight among the reader's `spans`
    (best first), None when there is none."""
    if not spans:
        return None
    expected = question_kinds(question)
    typed = typed_answers(sentence) if expected else []
    best = next((s for s in spans if kind_fits(s, expected, typed)), spans[0])
    return with_unit(sentence, best.start, best.end)
