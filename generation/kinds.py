"""The kind of a small-talk message: its speech act and whether it is about the bot.

    message_kind("do you ever feel lonely?")   # Kind(act="question", to_bot=True)
    message_kind("i feel lonely sometimes")    # Kind(act="statement", to_bot=False)

`small_talk(text)` says whether a language model may answer it at all (no jobs, no questions
about the world). A written pair (pairs.py) answers one kind of message: "I'm sorry you feel
that way" fits the guest's statement, not a question whether the bot feels lonely. Plain rules
on the words:

- act: a question has a "?" or opens with a question word or an auxiliary ("what", "do",
  "are", "would", after a filler like "so" or "honestly"), is a hypothetical put to the bot
  ("if you could ..."), a short "this or that" or a "best ..." asked for ("best film ever
  made"); a request opens with an imperative ("tell me", "recommend") or asks the bot
  to do something ("can you tell me"); anything else is a statement.
- to_bot: the message names the bot (you, your, u, ur, yourself); a question with neither
  "you" nor "i" ("tea or coffee person?", "is water wet") asks the bot too, a request
  always does, and "do you think i should ..." asks about the guest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

QUESTION, STATEMENT, REQUEST = "question", "statement", "request"

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_YOU = frozenset("you your yours yourself u ur urs urself ya you're youre you've youve you'd "
                 "youd you'll youll u're u've u'd u'll".split())
_ASKS = frozenset("what whats what's which who whos who's whose whom why how hows how's when "
                  "where wheres where's do does did dont don't doesnt doesn't are is am was "
                  "were have has had can could would will should shall may might isnt isn't "
                  "arent aren't wanna ever any".split())
_ORDERS = frozenset("tell give recommend suggest help show teach sing say name describe explain "
                    "share pick choose guess surprise cheer entertain make let lets let's "
                    "please".split())
_POLITE = frozenset("can could would will".split())  # "can you tell me ..." asks for a deed
_FILLERS = frozenset("so wait honestly ok okay hey hi but and well also btw seriously oh hmm um "
                     "yo random quick question real talk lol omg just".split())
_WH = frozenset("what whats what's which who whos who's whose whom why how hows how's when where "
                "wheres where's".split())
_PRONOUNS = frozenset("you u ya i we they he she it that this there anyone anybody someone "
                      "anything people your ur my".split())
_LOOSE = frozenset("have has had were".split())  # open statements too ("had a blast")
_CLAUSE = re.compile(r"[,.;:!\u2026]+|\s-+\s")
_TOPS = frozenset("best worst fav fave favorite favourite top".split())  # "best film ever made"
_YOU_ASK = frozenset("ever like into enjoy think know got play watch".split())  # "u ever ..."
_I = frozenset("i my me mine myself we our us i'm im i've ive i'd i'll we're".split())


@dataclass(frozen=True)
class Kind:
    act: str  # QUESTION, STATEMENT or REQUEST
    to_bot: bool  # about the bot (you, your, u, ur), not the guest or the world

    def fits(self, other: Kind) -> bool:
        """Whether a reply written for a message of this kind may answer `other`."""
        return self == other


def message_kind(text: str) -> Kind:
    """The speech act of `text` and whether it names the bot."""
    lowered = text.lower().replace("\u2019", "'")
    words = _WORD.findall(lowered)
    you = any(w in _YOU for w in _asked(words))
    to_bot = you or not any(w in _I for w in words)  # a question or request, unless on "me"
    clauses = [_content(_WORD.findall(c)) for c in _CLAUSE.split(lowered)]
    clauses = [c for c in clauses if c]
    first = clauses[0] if clauses else []
    head = (first + ["", "", ""])[:3]
    if head[0] in _ORDERS or (head[0] in _POLITE and head[1] in ("you", "u")
                              and head[2] in _ORDERS) or asks_job(text):
        return Kind(REQUEST, True)
    if "?" in text or (first and _asks(first, opening=True)) \
            or any(_asks(c, opening=False) for c in clauses[1:]) \
            or (head[0] in ("you", "u") and head[1] in _YOU_ASK) \
            or (head[0] == "if" and you) or _choice(words) \
            or (head[0] in _TOPS and not any(w in _I for w in words)):
        return Kind(QUESTION, to_bot)
    return Kind(STATEMENT, you)


_TASKS = frozenset("write translate convert summarize summarise debug draft fix calculate compute "
                   "solve find list plan code generate create compose define check search "
                   "look order send remind set draw spell count rewrite correct proofread "
                   "outline quiz".split())  # imperatives of jobs, not of chat ("tell me a joke")
_ADVICE = frozenset("tips tip advice suggestions recommendations ideas".split())
# errands asked with "me" or "us" after them ("get me a taxi", "bring us two coffees");
# "trust me", "wish me luck" and "call me crazy" ask none
_ERRANDS = frozenset("get buy bring book reserve fetch grab pay ship deliver email text drive "
                     "take pick".split())


def small_talk(text: str) -> bool:
    """Whether `text` is small talk a language model may answer: a statement that asks for
    no job ("i just landed", not "write me a poem" or "convert 150 pounds to kilograms"), or a
    question put to the bot ("do you like jazz?"). A request ("can you fix my code"), a
    question about the world ("whats the capital of peru") or asking for advice ("should i
    buy bitcoin", "how do i change a tyre") is not: a small model invents the answer."""
    kind = message_kind(text)
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    content = _content(words)
    head = (content + ["", "", ""])[:3]
    asked = head[0] in _POLITE and head[1] in ("you", "u")  # "can you ...", "could u ..."
    if kind.act == REQUEST or head[0] in _TASKS or (asked and (
            head[2] in _TASKS or any(w in ("me", "us") for w in content[2:5]))):
        return False  # a job: "can you book me a flight", "could u get us tickets"
    if any(w in _ADVICE for w in words):  # "my toddler won't sleep, any tips"
        return False
    if kind.act == STATEMENT:
        return True
    return any(w in _YOU for w in words)  # "how do i ...", "should i ...": advice, not chat


def asks_job(text: str) -> bool:
    """Whether `text` asks the bot for a job done ("order me a burger", "get me a taxi",
    "can you book me a flight"), not for chat ("tell me a joke", "give me a compliment",
    "trust me, the view was amazing"): a job's imperative (_TASKS), or an errand's verb
    (_ERRANDS) with "me" or "us" after it. message_kind calls it a request, so only a
    written pair for a request may answer it ("draw me something"), and small_talk
    keeps it from the language model."""
    words = _content(_WORD.findall(text.lower().replace("\u2019", "'")))
    polite = len(words) > 2 and words[0] in _POLITE and words[1] in ("you", "u")
    verb, after = (words[2], words[3:4]) if polite else ((words or [""])[0], words[1:2])
    if verb in _TASKS:
        return after != ["at"]  # "look at that sunset" is chat
    return verb in _ERRANDS and after in (["me"], ["us"])


def _asked(words: list[str]) -> list[str]:
    """`words` without "you think" ("do you think i should ..." asks about the guest)."""
    out: list[str] = []
    for w in words:
        if w == "think" and out and out[-1] in ("you", "u", "ya"):
            out.pop()
        else:
            out.append(w)
    return out


def _content(words: list[str]) -> list[str]:
    """`words` without the fillers they open with ("so", "honestly", "lol")."""
    while words and words[0] in _FILLERS:
        words = words[1:]
    return words


def _asks(clause: list[str], opening: bool) -> bool:
    """Whether a clause is put as a question: a question word ("what", "where"; not "what a"),
    or an auxiliary before a pronoun ("is that", "do u"; at the opening any word but after
    "have", "had": "have a nice day" is no question)."""
    first, second = (clause + [""])[:2]
    if first in _WH:
        return first != "what" or second not in ("a", "an")  # "what a day" exclaims
    if first == "r" or first not in _ASKS:
        return first == "r" and second in ("u", "you", "ya")
    return second in _PRONOUNS or (opening and first not in _LOOSE)


def _choice(words: list[str]) -> bool:
    """A short "this or that" with no first person ("planes or trains", "cute or cosy")."""
    return "or" in words and len(words) <= 6 and not any(w in _I for w in words)
