"""Whether a written pair's reply is grounded in what the guest said.

    borrowed_details("Homegrown tomatoes taste like summer.", "my garden is full of tomatoes",
                     "my garden is looking lovely")            # ["tomatoes"]
    opposite_moods("my exam went great", "my exam went awful")  # True

A pair is said when the guest's message is near the pair's own message (pairs.py), but near
is not the same: a reply may take up a detail of its own message that the guest never gave
("my garden is full of tomatoes" -> a reply about tomatoes, to a guest who spoke only of the
garden), or answer the opposite mood (cheer written for good news, to a guest with bad news).

- detail: a content word of the reply (not a mood word, not a vague one: "day", "love") that
  comes from the pair's message (the same stem: one opens or ends the other, "rain" of
  "raincoat"; with word vectors, a word at least `min_word_similarity` alike) and has no
  counterpart in the guest's message (the same test) is a borrowed detail.
- mood: a message's polarity from a small lexicon (+1 good news, -1 bad news, 0 neither), a
  word flipped by a negation just before it ("not happy"); a pair whose message has the
  opposite polarity of the guest's is not said.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from generation.corpus import content_words

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# words a reply uses for any topic: sharing them with its message is no detail of it
_VAGUE = frozenset("""
love loved lovely sounds sound feel feeling felt day days time times today always never
best better lot little bit make makes made keep keeps take takes say says said see seen
look looks want wants need needs try trying long new old first last every everyone
people person whole world life quite rather enough each other another same such own
""".split())
_SUFFIXES = ("ingly", "ings", "ing", "edly", "ed", "ies", "es", "s", "ly", "er", "est")
_POSITIVE = frozenset("""
love loved loves loving adore great amazing awesome wonderful fantastic happy happiest glad
excited exciting fun enjoy enjoyed enjoying beautiful lovely perfect brilliant delicious
proud relaxed relaxing congrats congratulations yay incredible gorgeous thrilled cheerful
good nice best cosy cozy peaceful stunning lucky celebrate celebrating grateful
""".split())
_NEGATIVE = frozenset("""
hate hated hates awful terrible horrible bad worst sad tired exhausted stressed stressful
nervous anxious worried bored boring annoying annoyed angry frustrated frustrating sick ill
meh ugh upset scared afraid lonely miss missed missing lost broke broken hurt hurts sore
pain rough disappointed disappointing homesick delayed cancelled canceled nightmare
exhausting sleepless cranky grumpy miserable gloomy dreadful rubbish migraine headache
snored snoring fuming furious overwhelmed terrified panicking freaking sunburnt sunburn hungover
""".split())
_NEGATIONS = frozenset("not no never nothing nobody don't dont doesn't doesnt didn't didnt "
                       "isn't isnt wasn't wasnt can't cant won't wont without hardly".split())
_MALE = frozenset("he him his himself son sons husband boyfriend dad father brother grandpa "
                  "grandad granddad uncle nephew boy boys guy man".split())
_FEMALE = frozenset("she her hers herself daughter daughters wife girlfriend mum mom mother "
                    "sister grandma granny nan nana aunt niece girl girls lady woman".split())
_HE = frozenset("he him his himself".split())
_SHE = frozenset("she her hers herself".split())
_RELATIVES = ("grandma|grandpa|granny|grandad|granddad|nana|nan|mum|mom|mummy|mommy|dad|daddy|"
              "mother|father|sister|brother|son|daughter|auntie|aunt|uncle")
_VOCATIVE = re.compile(rf"(?:^|,)\s*(?:{_RELATIVES})\s*(?:[!.?,]|$)", re.IGNORECASE)
_YOU_BOTH = re.compile(r"\b(?:you both|both of you|you two|the two of you)\b", re.IGNORECASE)
_TWO = re.compile(r"\b(?:we|we're|we've|we'll|our|ours|us|and i|me and|wife|husband|partner|"
                  r"girlfriend|boyfriend|fianc\w*|hubby|spouse|engaged|proposed|said yes|"
                  r"anniversary|honeymoon)\b", re.IGNORECASE)  # a guest speaking for two
_NEGATION_REACH = 3  # a negation flips a mood word at most this many words after it


def stem(word: str) -> str:
    """`word` without a plural, tense or adverb ending ("tomatoes" -> "tomato", "finishing"
    -> "finish"); at least three letters are kept."""
    word = word.lower().replace("\u2019", "'")
    word = word[:-2] if word.endswith("'s") else word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2]:  # "stopp" -> "stop"
        word = word[:-1]
    return word.rstrip("e") if len(word) > 3 else word


def same_word(a: str, b: str) -> bool:
    """Whether two words name one thing: one stem opens or ends the other ("rain", "rainy";
    "rain", "coat" and "raincoat"), or one of four letters or more is inside it."""
    x, y = sorted((stem(a), stem(b)), key=len)
    if len(x) < 3:
        return x == y
    return y.startswith(x) or y.endswith(x) or (len(x) >= 4 and x in y)


def borrowed_details(reply: str, message: str, guest: str,
                     similarity: Callable[[Sequence[str], Sequence[str]], Any] | None = None,
                     min_word_similarity: float = 1.0) -> list[str]:
    """The content words of `reply` (no mood word, no vague one) that come from the pair's
    `message` and have no counterpart in the `guest`'s message. With `similarity` (rows:
    words of the first list, columns: of the second, cosines) a word at least
    `min_word_similarity` alike counts as the same word both ways ("mouse" comes from
    "mice"; "movie" is the counterpart of "film")."""
    guest_words = sorted(content_words(guest))
    message_words = sorted(content_words(message))
    words = sorted(content_words(reply) - _VAGUE - _POSITIVE - _NEGATIVE)  # moods: polarity
    words = [w for w in words if not any(same_word(w, g) for g in guest_words)]
    if not words or not message_words:
        return []
    if min_word_similarity >= 1.0:
        similarity = None  # the same stem only
    to_message = (np.asarray(similarity(words, message_words)).max(axis=1)  # (len(words),)
                  if similarity is not None else np.zeros(len(words)))
    taken = [w for w, m in zip(words, to_message)
             if m >= min_word_similarity or any(same_word(w, x) for x in message_words)]
    if taken and guest_words and similarity is not None:
        to_guest = np.asarray(similarity(taken, guest_words)).max(axis=1)  # (len(taken),)
        taken = [w for w, a in zip(taken, to_guest) if a < min_word_similarity]
    return taken


def polarity(text: str) -> int:
    """+1 when `text` tells good news or a good mood, -1 bad news or a bad mood, 0 neither
    or both as much (a small lexicon; a negation just before a word flips it)."""
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    total = 0
    for i, word in enumerate(words):
        sign = 1 if word in _POSITIVE else -1 if word in _NEGATIVE else 0
        if sign and any(w in _NEGATIONS for w in words[max(0, i - _NEGATION_REACH):i]):
            sign = -sign
        if word in _NEGATIONS and "mood" in words[i + 1:i + 4]:  # "not in the mood"
            sign = -1
        if word == "killing" and words[i + 1:i + 2] == ["me"]:  # "my feet are killing me"
            sign = -1
        total += sign
    return (total > 0) - (total < 0)


_SORRY = re.compile(r"\b(?:sorry|condolences)\b", re.IGNORECASE)


def mood_clash(reply: str, message: str) -> bool:
    """Whether a `reply` meets the guest's `message` in the opposite mood: glad at bad news,
    sorry at good news."""
    mood = polarity(message)
    return polarity(reply) * mood < 0 or (mood > 0 and _SORRY.search(reply) is not None)


def opposite_moods(message: str, guest: str) -> bool:
    """Whether the pair's `message` and the `guest`'s have opposite polarities."""
    return polarity(message) * polarity(guest) < 0


_FUTURE = re.compile(
    r"\b(?:tomorrow|tmrw|tmr|tonight|tonite|next (?:week|month|year|weekend|time|summer|winter|"
    r"spring|autumn|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|this (?:evening|"
    r"weekend|afternoon|friday|saturday|sunday)|gonna|going to|will|i'll|we'll|plan to|"
    r"planning to|about to|later today|in (?:a|two|three|\d+) (?:days?|weeks?|months?|hours?)|"
    r"can'?t wait|upcoming|on (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b",
    re.IGNORECASE)
_PAST = re.compile(
    r"\b(?:yesterday|last (?:night|week|month|year|weekend|time|summer|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday)|ago|earlier today|was|were|went|did|gave|got|"
    r"ate|made|told|finished|proposed|passed|turned|saw|met|won|lost|missed|forgot|left|"
    r"finally)\b", re.IGNORECASE)
_LOOKS_BACK = re.compile(r"\b(?:was|were|went|had|did|made it|must have|sounds like it|"
                         r"congratulations|congrats|well done)\b", re.IGNORECASE)
_LOOKS_AHEAD = re.compile(r"\b(?:good luck|best of luck|fingers crossed|break a leg|hope it goes|"
                          r"you'll|you will|will be|can't wait|have fun|enjoy)\b", re.IGNORECASE)


def tense(text: str) -> int:
    """+1 when `text` speaks of what is to come ("tomorrow", "gonna"), -1 of what happened
    ("yesterday", "was", "finished"), 0 neither or both."""
    future, past = bool(_FUTURE.search(text)), bool(_PAST.search(text))
    return (future and not past) - (past and not future)


def time_clash(message: str, reply: str, guest: str) -> bool:
    """Whether the pair's `reply`, written for its `message`, looks back at news told of a
    plan by the `guest` (or ahead at a plan told of news)."""
    before, now = tense(message), tense(guest)
    if before < 0 < now:
        return bool(_LOOKS_BACK.search(reply))
    if now < 0 < before:
        return bool(_LOOKS_AHEAD.search(reply))
    return False


def person_problems(reply: str, guest: str) -> list[str]:
    """Why `reply` does not speak to the `guest` about the guest's people: "vocative" (it
    calls a relative by name: "Congratulations, grandma!"), "pronoun" (a she/he the guest's
    words do not allow: the guest spoke only of people of the other one), "you both" (the
    guest spoke for one)."""
    words = set(_WORD.findall(guest.lower().replace("\u2019", "'")))
    reply_words = set(_WORD.findall(reply.lower().replace("\u2019", "'")))
    problems = []
    if _VOCATIVE.search(reply):
        problems.append("vocative")
    male, female = bool(words & _MALE), bool(words & _FEMALE)
    if (reply_words & _SHE and male and not female) or \
            (reply_words & _HE and female and not male):
        problems.append("pronoun")
    if _YOU_BOTH.search(reply) and not _TWO.search(guest):
        problems.append("you both")
    return problems


class WordVectors:
    """MiniLM vectors of single words, each encoded once (up to `limit` kept) for the
    word-similarity counterparts of `borrowed_details`."""

    def __init__(self, encoder: Any, limit: int = 20000) -> None:
        self._encoder = encoder
        self._limit = limit
        self._vectors: dict[str, Any] = {}
        self._lock = threading.Lock()

    def similarity(self, rows: Sequence[str], columns: Sequence[str]) -> Any:
        """(len(rows), len(columns)) cosines of the words' vectors."""
        from generation.exemplars import encode

        with self._lock:
            new = sorted({*rows, *columns} - self._vectors.keys())
            if new:
                if len(self._vectors) + len(new) > self._limit:
                    self._vectors.clear()
                self._vectors.update(zip(new, encode(self._encoder, new)))
            a = np.stack([self._vectors[w] for w in rows])  # (R, D)
            b = np.stack([self._vectors[w] for w in columns])  # (C, D)
        return a @ b.T
