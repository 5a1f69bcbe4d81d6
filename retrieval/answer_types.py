"""What kind of answer a question asks for, and whether a sentence holds one.

"leonardo express ticket price?" asks for a price: a sentence about the Leonardo Express that
gives its travel time, not a price, does not answer it, however close the two are in meaning.
The kinds are those of `question_gen.PATTERNS` (price, time, duration, measure, percent, name,
number). A question's kinds come from its wording (QUESTION_KINDS: "how much ... cost" ->
price, "what time", "until when" -> time, "how long" -> duration, "how many" -> number or
measure); a sentence's kinds are the typed answers found in it (`question_gen.answers_in`),
plus those EXTRA_KINDS finds (something free or included is a price). A question whose wording
names no kind ("can i bring my dog?") expects nothing, and every sentence fits it.

    fits(question_kinds("how much is parking?"),
         sentence_kinds("Parking costs 28 EUR per 24 hours."))     # 1.0 (0.0: it does not)
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from retrieval.question_gen import answers_in

# (kinds that answer it, what the question says); the first matching rule wins, order matters
# ("how much time" is a duration, not a price).
QUESTION_KINDS: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = (
    (frozenset({"duration"}), re.compile(r"\bhow (?:long|much time|many (?:minutes|hours|"
                                         r"days|nights))\b", re.I)),
    (frozenset({"price", "percent"}), re.compile(
        r"\bhow much\b(?!.*\b(?:luggage|weight|kg|space)\b)|\b(?:price|prices|cost|costs|"
        r"fee|fees|charge|charged|expensive|cheap|cheaper)\b", re.I)),
    (frozenset({"time"}), re.compile(r"\b(?:what time|till when|until when|how late|how "
                                     r"early|opening (?:hours|times)|open(?:ing)? hours)\b",
                                     re.I)),
    (frozenset({"percent"}), re.compile(r"\b(?:percent|percentage|discount)\b|%", re.I)),
    (frozenset({"number", "measure", "duration"}), re.compile(
        r"\bhow (?:many|far|big|heavy|deep|high|tall|old)\b", re.I)),
)
# kinds question_gen's patterns (made to cut generated answers) leave out: anything free is
# a price, "an hour" a duration, a number word a number
EXTRA_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("price", re.compile(r"\b(?:free|included|includes|no charge|no extra charge|"
                         r"complimentary|at no cost|without charge)\b", re.I)),
    ("duration", re.compile(r"\b(?:an?|half an?|one) (?:hour|minute|day|night|week|month|"
                            r"year)\b|\bovernight\b", re.I)),
    ("number", re.compile(r"\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                          r"twenty|thirty|forty|fifty|hundred|dozen)\b", re.I)),
)


def question_kinds(question: str) -> frozenset[str]:
    """The answer kinds that can answer `question`; empty when its wording names none."""
    for kinds, pattern in QUESTION_KINDS:
        if pattern.search(question):
            return kinds
    return frozenset()


def typed_answers(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every typed answer in `text` (question_gen's patterns and
    EXTRA_KINDS: "free" is a price)."""
    out = [(kind, start, start + len(found)) for kind, start, found in answers_in(text)]
    out += [(kind, m.start(), m.end()) for kind, pattern in EXTRA_KINDS
            for m in pattern.finditer(text)]
    return out


def sentence_kinds(text: str) -> frozenset[str]:
    """The kinds of the typed answers in a sentence (price also when something is free)."""
    return frozenset(kind for kind, _, _ in typed_answers(text))


def fits(expected: frozenset[str], kinds: frozenset[str]) -> float:
    """1.0 when the sentence holds an answer of an expected kind or nothing is expected,
    else 0.0."""
    return 1.0 if not expected or expected & kinds else 0.0


# Questions about a name of the KB asking for a kind of answer that no passage naming it
# holds ("how much does the Leonardo Express cost?" where the KB gives only its travel time):
# the unanswerable questions closest to answerable ones. Written from how guests ask, not
# from a test set.
MISSING_TEMPLATES = {
    "price": ("how much does {name} cost?", "what's the price for {name}?",
              "{name}, how much is it?", "how much are tickets for {name}"),
    "time": ("what time does {name} open?", "until what time is {name} open?",
             "{name} opening hours?"),
    "duration": ("how long does {name} take?", "how long should we plan for {name}?"),
}


def missing_kind_questions(passages: Sequence[str], rng: random.Random, *,
                           count: int = 60) -> list[tuple[str, str]]:
    """Up to `count` (question, kind) pairs: a name found in `passages` (question_gen's
    capitalised names) asked about for a kind of answer that no passage naming it holds."""
    kinds = [sentence_kinds(text) for text in passages]
    lower = set(re.findall(r"\b[a-z]+\b", " ".join(passages)))
    # a name, not a sentence start ("Because Kaerntner Strasse") or a list ("Gold and Platinum")
    names = sorted({name for text in passages for kind, _, name in answers_in(text)
                    if kind == "name" and name.split()[0].lower() not in lower
                    and not re.search(r" (?:and|&|or) ", name)})
    held = {name: set().union(*(k for text, k in zip(passages, kinds) if name in text))
            for name in names}
    pairs = [(name, kind) for name in names for kind in MISSING_TEMPLATES
             if kind not in held[name]]
    rng.shuffle(pairs)
    return [(rng.choice(MISSING_TEMPLATES[kind]).format(name=name), kind)
            for name, kind in pairs[:count]]
