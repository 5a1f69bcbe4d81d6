"""Is a message put as a question? An English surface test for the fallback chain.

A guest who asks "can i bring my dog to the lisbon hotel" or "booked a family room at the
prinsengracht, which part of the building is it in" asks for information, even when the NLU
files the message under a task (book_room, check_booking). The test is on the surface only:

    a question mark anywhere                       "garage price vienna?"
    a clause opening with a question word          "which floor ...", "..., is there a ..."
      (after fillers such as "hi", "ok so", "and")
    an asking phrase                               "wondering if", "need to know whether"
    a value asked for in a guest's shorthand       "garage price vienna", "spa opening hours",
                                                   "starlight amsterdam address pls"

It says nothing about WHAT is asked ("can i book a room for friday?" is a question too): the
fallback chain keeps the knowledge answer to such a message only when the knowledge base is
confident, and otherwise the task runs as predicted.

`is_request` tells one kind apart: a clause that asks the assistant to do something ("can
you cancel my rome booking", "could u move it to friday?"), unless what it asks for is
information ("can you tell me ...", "could you recommend ..."). Put under a task intent,
such a message is the task itself: the knowledge base came to 0.78 on "can you cancel my
Rome booking" (its sentence on how to cancel through the assistant), above the bar that its
other examples stay under. `asks_leave` marks "can i ...", "could we ...": leave to act,
which may be the task ("can i arrive a day later") or not ("can i bring my dog").
`intent_words` finds the words that mark an intent in its own examples ("cancel" for
cancel_booking): a question that names none of them and asks no leave is plainly not that
task, whatever the NLU filed it under.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

QUESTION_WORDS = frozenset("""
    what whats what's when whens when's where wheres where's which who whos who's whom whose
    why how hows how's
    is isnt isn't are arent aren't was were do does doesnt doesn't did dont don't
    can cant can't could will would wont won't should shall may might must
    have has any anything anywhere
""".split())
FILLERS = frozenset("""
    hi hello hey hiya ok okay so and also but btw oh um uh well quick question please pls
    plz sorry excuse me yes yeah no then just
""".split())
ASKING = re.compile(r"\b(wonder(ing)?|know (if|whether|when|where|what|how)|tell me|"
                    r"curious (if|whether|about))\b")
# the values a guest's shorthand asks for (session 12: "front desk hours comet inn" was filed
# under inform, "roof terrace opening hours prague" too, and started the booking form; session
# 23: "starlight amsterdam address pls", inform at 0.98)
VALUES = re.compile(r"\b(prices?|costs?|fees?|charges?|hours|opening times?|closing times?|"
                    r"timetable|rates?|deposit|age limit|minimum age|how much|how long|how far|"
                    r"address|phone number|wi-?fi password|directions|dress code)\b")
# "can you ...": asks the assistant to act, unless it asks for information
# (of a clause's words without FILLERS: "please", "just" and "ok so" are gone)
REQUEST = re.compile(r"^(can|could|would|will|cud) (you|u|ya)\b"
                     r"(?! (tell|say|explain|recommend|suggest|let|show|describe|know|advise|"
                     r"help me (find|understand)|give me (info|details|an idea))\b)")
LEAVE = re.compile(r"^(can|could|may|cud) (i|we)\b")
YOU = frozenset({"you", "u", "ya", "your", "ur", "yours", "yourself", "you're", "youre"})
CLAUSES = re.compile(r"[,.;:!\n]+|\s-\s|\bbut\b|\band\b")
WORD = re.compile(r"[a-z']+")


def clauses(text: str) -> list[str]:
    """The clauses of `text`, each as its lowercased words without FILLERS ("ok so is there
    a pool, and can you book it" -> ["is there a pool", "can you book it"])."""
    return [" ".join(w for w in WORD.findall(clause) if w not in FILLERS)
            for clause in CLAUSES.split(text.lower())]


def is_question(text: str) -> bool:
    """True when `text` is put as a question (see the module docstring)."""
    lowered = text.lower()
    if "?" in lowered or ASKING.search(lowered) or VALUES.search(lowered):
        return True
    return any(c.split(" ", 1)[0] in QUESTION_WORDS for c in clauses(lowered))


def is_request(text: str) -> bool:
    """True when a clause of `text` asks the assistant to do something (module docstring)."""
    return any(REQUEST.search(c) for c in clauses(text))


def asks_leave(text: str) -> bool:
    """True when a clause of `text` asks leave to act: "can i ...", "could we ..." (module
    docstring), not "how can i ..."."""
    return any(LEAVE.search(c) for c in clauses(text))


def to_bot(text: str) -> bool:
    """True when `text` speaks of the one it is said to ("have you been to paris?", "do u
    like vienna"): small talk with the bot, not a question about a place."""
    return bool(YOU & words_of(text))


def words_of(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def intent_words(examples: Iterable[tuple[str, str]], intents: Iterable[str], *,
                 share: float = 0.05, hold: float = 0.6) -> dict[str, frozenset[str]]:
    """Per intent of `intents`: the words found in at least `share` of its (text, intent)
    `examples`, of whose examples with that word it holds at least `hold` (book_room: book,
    room, reserve; cancel_booking: cancel). Each example counts a word once."""
    per_intent: dict[str, Counter[str]] = {}
    sizes: Counter[str] = Counter()
    overall: Counter[str] = Counter()
    for text, intent in examples:
        words = words_of(text)
        per_intent.setdefault(intent, Counter()).update(words)
        sizes[intent] += 1
        overall.update(words)
    out = {}
    for intent in intents:
        counts = per_intent.get(intent, Counter())
        out[intent] = frozenset(w for w, n in counts.items()
                                if n >= share * sizes[intent] and n >= hold * overall[w])
    return out
