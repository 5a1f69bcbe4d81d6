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
   without it the price does not answer the question;
3. tight: a span of the asked kind longer than TIGHT_WORDS words is cut to the typed answer
   in it, with its unit ("30 EUR, and leaving at any time up to 18:00" -> "30 EUR" for "what
   is the fee"): the rest is another fact of the sentence;
4. bound: a number or time keeps the word before it that bounds it ("250 people" -> "up to
   250 people", "22:00" -> "by 22:00", "25 kg" -> "no more than 25 kg"): without it the
   answer says something else;
5. whole: a span never starts or ends inside a word or a number ("000" of "40,000 points" ->
   "40,000", "00" of "22:00" -> "22:00"): the reader's spans are word pieces, and a number's
   pieces split at its comma or colon (session 17).

Measured with session 7's reader on the KB sentence that holds the gold answer (span F1,
the reader's best span -> this choice): qa.json held out 0.706 -> 0.717, a fixed half of
the guest questions 0.598 -> 0.655, the guest-voice dev set (tests/kb_dev.json) 0.627 -> 0.654.
Rules 3 and 4 (session 9, session 8's reader on the gold sentence, span F1 of rules 1-2 ->
with 4 -> with 3 and 4): guest_questions.json 0.635 -> 0.660 -> 0.664, kb_dev 0.647 -> 0.661
-> 0.662, the blind dev set kb_dev5 0.677 -> 0.702 -> 0.719, all of qa.json (written in the
reader's own style: no bounds) 0.868 -> 0.866 -> 0.865. Cutting every kind-fitting span to its
typed answer lost (guest 0.640, dev 0.649), and so did a conditional logit over the n-best
(reader score, kind, length, clause marks, question words) fitted on one of these sets: each
fit gained where it was fitted and lost up to 0.04 on another.
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
TIGHT_WORDS = 6  # a span of the asked kind longer than this is cut to its typed answer
_BOUND = re.compile(r"\b(?:up to|about|around|approximately|roughly|at least|at most|no more than|"
                    r"more than|less than|fewer than|over|under|only|by|until|from) $", re.I)
_NUMBER_START = re.compile(r"(?:\d|(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
                           r"twelve|fifteen|twenty|thirty|forty|fifty|hundred|half|midnight|"
                           r"noon)\b)", re.I)


def kind_fits(span: Span, expected: frozenset[str],
              typed: Sequence[tuple[str, int, int]]) -> bool:
    """Whether `span` holds a whole typed answer of an expected kind."""
    return any(kind in expected and span.start <= a and b <= span.end for kind, a, b in typed)


def whole(sentence: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) grown to whole words and numbers: over letters and digits that touch it,
    and over a digit group joined by "," "." or ":" ("40,000", "22:00", "0.40")."""
    def joined(i: int) -> bool:  # sentence[i] is a separator between two digits
        return (0 < i < len(sentence) - 1 and sentence[i] in ",.:"
                and sentence[i - 1].isdigit() and sentence[i + 1].isdigit())

    while start > 0 and (sentence[start - 1].isalnum() and sentence[start].isalnum()
                         or joined(start - 1) or joined(start)):
        start -= 1
    while end < len(sentence) and (sentence[end - 1].isalnum() and sentence[end].isalnum()
                                   or joined(end) or joined(end - 1)):
        end += 1
    return start, end


def with_unit(sentence: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) grown over the unit that follows a price ("... per 24 hours")."""
    if _PRICE_END.search(sentence[start:end]):
        unit = _PER_UNIT.match(sentence, end)
        if unit is not None:
            return start, unit.end()
    return start, end


def with_bound(sentence: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) grown back over the word that bounds a number or time ("up to 250")."""
    if _NUMBER_START.match(sentence, start):
        bound = _BOUND.search(sentence[:start])
        if bound is not None:
            return bound.start(), end
    return start, end


def tight(span: Span, expected: frozenset[str], typed: Sequence[tuple[str, int, int]],
          sentence: str) -> tuple[int, int]:
    """The first typed answer of an expected kind inside a long `span`, else the span."""
    if len(sentence[span.start:span.end].split()) <= TIGHT_WORDS:
        return span.start, span.end
    inside = sorted((a, b) for kind, a, b in typed
                    if kind in expected and span.start <= a and b <= span.end)
    return inside[0] if inside else (span.start, span.end)


def choose_span(question: str, sentence: str,
                spans: Sequence[Span]) -> tuple[int, int] | None:
    """(start, end) in `sentence` of the span to highlight among the reader's `spans`
    (best first), None when there is none."""
    if not spans:
        return None
    expected = question_kinds(question)
    typed = typed_answers(sentence) if expected else []
    fitting = next((s for s in spans if kind_fits(s, expected, typed)), None)
    start, end = (tight(fitting, expected, typed, sentence) if fitting is not None
                  else (spans[0].start, spans[0].end))
    return with_bound(sentence, *with_unit(sentence, *whole(sentence, start, end)))
