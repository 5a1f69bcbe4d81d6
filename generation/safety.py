"""The safety filter: a generated reply must not state hotel facts nor say anything unsafe.

A reply is dropped when it holds, and the user's message does not:
  number       digits or a number word ("two", "fifty", ...)
  price        a currency sign or word, price, cost, fee
  time / date  8 pm, 10:30, o'clock, noon, midnight, weekday and month names
  email, url, booking id
  hotel name   any of `protected_terms` (the hotels and cities of the catalog)
and always when it holds
  hotel fact   a hotel service or booking word (pool, breakfast, reservation, ...): those
               questions belong to the knowledge base, not to a language model
  persona      a made-up life story ("my wife", "i'm a student"): the bot is a bot
  unsafe       profanity, sexual, violent or self-harm words
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

NUMBER_WORDS = (
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred hundreds thousand thousands million millions billion dozen half"
).split()
PRICE_WORDS = ("price prices priced cost costs costing fee fees euro euros eur dollar dollars "
               "usd pound pounds gbp cash cheap expensive discount charge charged free").split()
TIME_WORDS = "o'clock noon midnight".split()
DATE_WORDS = (
    "monday tuesday wednesday thursday friday saturday sunday weekend january february april "
    "june july august september october november december tomorrow yesterday tonight"
).split()  # "may" and "march" are verbs far more often than months
HOTEL_FACT_WORDS = (
    "pool spa gym sauna breakfast dinner restaurant buffet parking wifi wi-fi shuttle "
    "check-in checkin check-out checkout suite suites minibar refund refunds cancellation "
    "reservation reservations booking bookings booked upgrade upgrades included vacancy "
    "vacancies reception lobby concierge housekeeping"
).split()
HOTEL_FACT_PHRASES = ("we have", "we offer", "our hotel", "our hotels", "our rooms", "the hotel",
                      "room service", "your room", "your stay")
PERSONA_PATTERNS = (
    r"\bmy (?:wife|husband|girlfriend|boyfriend|kids?|children|son|daughter|mom|mum|dad|"
    r"mother|father|brother|sister|family|roommate|parents|job|boss|class|classes|major)\b",
    r"\bi(?:'m| am) (?:a |an )?(?:student|girl|boy|man|woman|guy|human|person|freshman|"
    r"sophomore|junior|senior|married|single|mormon|teacher|nurse|engineer)\b",
    r"\bi (?:live|grew up|work|study|go to school) (?:in|at)\b",
    r"\bbyu\b|\bprovo\b|\butah\b|\bmission\b",
)
UNSAFE_STEMS = (
    "fuck shit bitch asshole bastard dick cunt piss crap slut whore porn sex nude naked "
    "rape kill murder suicide gun drug weed cocaine heroin nigg fag retard nazi hitler terror "
    "bomb blood die dead hate stupid idiot dumb ugly"
).split()

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_URL = re.compile(r"https?://|www\.|\.(?:com|org|net|io)\b", re.IGNORECASE)
_BOOKING_ID = re.compile(r"\b[a-z]{2,4}-?\d{3,}\b", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_CLOCK = re.compile(r"\d\s*(?:a\.?m\b|p\.?m\b)|\d:\d\d", re.IGNORECASE)
_CURRENCY = re.compile(r"[$€£¥]")
_WORD = re.compile(r"[a-z][a-z'.-]*[a-z.]|[a-z]")


def _words(text: str) -> set[str]:
    return {w.strip(".") or w for w in _WORD.findall(text.lower())}


@dataclass(frozen=True, slots=True)
class SafetyFilter:
    """Checks one reply against the user's message (see the module docstring)."""

    protected_terms: tuple[str, ...] = ()  # hotel and city names, matched case-insensitively

    @classmethod
    def with_terms(cls, terms: Iterable[str]) -> SafetyFilter:
        return cls(tuple(sorted({t.strip().lower() for t in terms if t and t.strip()})))

    def problems(self, reply: str, user_text: str) -> list[str]:
        """Why `reply` must not be said ([] when it may)."""
        text, user = reply.lower(), user_text.lower()
        words, user_words = _words(text), _words(user)
        new = words - user_words
        found = []
        digits = set(_DIGITS.findall(text)) - set(_DIGITS.findall(user))
        if digits or new & set(NUMBER_WORDS):
            found.append("number")
        if (_CURRENCY.search(text) and not _CURRENCY.search(user)) or new & set(PRICE_WORDS):
            found.append("price")
        if new & set(TIME_WORDS) or (_CLOCK.search(text) and not _CLOCK.search(user)):
            found.append("time")
        if new & set(DATE_WORDS):
            found.append("date")
        if _EMAIL.search(text) and not _EMAIL.search(user):
            found.append("email")
        if _URL.search(text):
            found.append("url")
        if _BOOKING_ID.search(text) and not _BOOKING_ID.search(user):
            found.append("booking id")
        if any(_has_phrase(text, t) and not _has_phrase(user, t) for t in self.protected_terms):
            found.append("hotel name")
        if words & set(HOTEL_FACT_WORDS) or any(_has_phrase(text, p) for p in HOTEL_FACT_PHRASES):
            found.append("hotel fact")
        if any(re.search(p, text) for p in PERSONA_PATTERNS):
            found.append("persona")
        if any(w.startswith(stem) for w in words for stem in UNSAFE_STEMS):
            found.append("unsafe")
        return found


def _has_phrase(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None
