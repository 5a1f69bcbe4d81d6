"""What a hotel concierge would not say in small talk, and how much a reply sounds like one.

The corpus is students chatting (chitchat-dataset), so many of its replies, and the model's,
tell a life the bot does not have or do what a concierge must not in small talk:
  life story   school and student life ("this semester", "my roommate"), the speaker's own
               people and things ("my mom", "my job", "her passing"), past doings and plans
               ("i went hiking", "i have to work", "last week"), where it is ("here it's
               sunny")
  promise      a service offered or promised ("i will make it not spicy", "let me get you")
  prying       a question about the guest's own things that the guest did not bring up
               ("what instrument do you play?" after "i play the guitar": a new topic word)
  tone         cheer or laughter at the guest's bad news ("my flight got delayed" -> "haha
               that's awesome"), unless the guest laughs about it too
`concierge_problems(reply, user_text)` names them (SafetyFilter adds them to its own);
a reply that keeps to tastes and feelings ("i love rainy days") passes.

`PERSONA_REPLIES` are replies in the concierge's voice, written for this prior (short,
warm, general, no facts, no promises, no questions): `persona_similarity` is a candidate's
mean MiniLM cosine to its nearest three of them, which the reranker adds
(`SamplingConfig.persona_weight`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from generation.corpus import content_words

PERSONA_REPLIES = (
    "That sounds lovely, I hope you enjoy every minute of it.",
    "Oh, I know the feeling, a little rest usually helps.",
    "What a nice thing to hear, thanks for telling me.",
    "Ha, that's a good one!",
    "Sorry to hear that, I hope the rest of the day is kinder to you.",
    "That's wonderful news, congratulations!",
    "I think I'd pick the sea, there's something calming about it.",
    "Honestly, a quiet afternoon with a good book is hard to beat.",
    "That sounds like a real adventure.",
    "Oh, I'm a big fan of that too.",
    "Good for you, that takes patience.",
    "I can imagine, travelling can be tiring.",
    "That must have been beautiful to see.",
    "Music always makes the time go by a little faster.",
    "I'm always happy to chat for a moment.",
    "Fair enough, everyone has their favourites.",
    "That's a lovely way to spend an evening.",
    "Oh no, that sounds frustrating.",
    "Sunny mornings are hard to beat, I'd say.",
    "Nice choice, I like that one too.",
    "You're doing great, it gets easier with practice.",
    "I'd love that, it sounds like fun.",
    "I'm not sure, but I like to think so.",
    "That's a fun question, I'd have to think about it.",
)

# student life and the corpus's own places (BYU students: "mission", "provo")
_SCHOOL = re.compile(
    r"\b(?:semester|semesters|class|classes|homework|exams?|finals|midterms?|campus|college|"
    r"university|school|professor|professors|major|majoring|roommates?|dorm|lectures?|"
    r"assignments?|grades?|gpa|freshman|sophomore|graduat\w*|scholarship|teacher|teachers|"
    r"quiz|essay|thesis|internship|tuition|ward|church)\b")
# "my" + one of these is fine ("my favourite", "my pleasure"); anything else is the speaker's
# own life ("my mom", "my job", "my car")
_MY_FINE = frozenset("""
favourite favorite favourites favorites pleasure goodness gosh guess opinion vote mind heart
bet type kind taste choice day money go-to own thing things thoughts view pick list top
""".split())
_MY = re.compile(r"\bmy ([a-z'-]+)")
_STORY = (
    # past doings of the speaker
    r"\bi (?:just |finally |recently |also |actually |already )?(?:went|finished|graduated|"
    r"moved|grew up|visited|played|watched|bought|started|took|ate|met|lived|worked|studied|"
    r"learned|used to|had to|got back|got home|got a|got my|got to go|came back|was born|"
    r"talked|saw|told|tried|did|made|ran|drove|flew|left|lost|won|spent|slept|woke)\b",
    r"\bi(?:'ve| have) (?:been (?:to|in|doing|working|studying|going|busy|sick)|"
    r"got to|gotta|to)\b",
    r"\bi (?:only |also |just )?(?:have|had) (?:a|an|one|two|some|no|my) "
    r"(?!soft spot|feeling|hunch)",
    r"\b(?:just )?got (?:home|back)\b",
    r"\bi(?:'m| am) (?:going|gonna|about) to (?!be\b|say\b|guess\b|go with\b|pick\b)",
    r"\bi(?:'m| am) (?:from|in|at|back|off|working|studying|taking|doing|watching|reading|"
    r"eating|listening|playing|cooking|making|sick|married|engaged)\b",
    r"\b(?:i|we) (?:live|grew up|work|study)\b",
    r"\bi(?:'ll| will) be \w+ing\b",
    r"\bi was (?:\w+ing|on|at|in|just|literally)\b",
    r"\b(?:last|next|this) (?:night|week|weekend|month|year|summer|winter|fall|spring|"
    r"semester)\b",
    r"\b(?:yesterday|back home|where i live|at work|at home|here it(?:'s| is)?|it(?:'s|s| is) "
    r"\w+ here)\b",
    r"\b(?:me and|and i) (?:my|some)\b",
)
_PROMISE = (
    r"\b(?:i|we)(?:'ll| will|'m going to| am going to| can| could|'d be happy to| would be "
    r"happy to| shall) (?:make|get|bring|send|book|call|order|arrange|fix|cook|"
    r"take|give|show|find|help|put|prepare|reserve|check|look|grab|sort|set|do it|"
    r"do that)\b",
    r"\blet me\b",
    r"\bi promise\b",
)
# bad news from the guest ("my flight got delayed") is not met with cheer ("that's awesome")
_NEGATIVE = re.compile(
    r"\b(?:tired|exhausted|worst|awful|terrible|nervous|anxious|stressed|delayed|cancell?ed|"
    r"lost|miss|missing|sick|ill|sad|lonely|bored|sore|hurts?|hate|hates|ugh|scream|fed up|"
    r"arguing|fighting|snores?|snored|can't sleep|cant sleep|broke|broken|forgot|forget)\b")
_CHEERFUL = re.compile(
    r"\b(?:awesome|best|great|cool|fun|delightful|nice|lovely|amazing|wonderful|exciting|"
    r"yay|congrats|congratulations|good one|good time|haha\w*|lol)\b")
_LAUGHING = re.compile(r"\b(?:haha\w*|lol|lmao)\b|[\U0001F602\U0001F605\U0001F923]")
_PEOPLE = re.compile(r"\b(?:he|she|he's|she's|his|her|him|hers)\b")
# a question about the guest that brings up something of theirs ("your ...", "do you play")
_ASKS_GUEST = re.compile(
    r"\b(?:your|yours|do you|did you|are you|have you|were you|will you|can you|would you|"
    r"where|when|how old|how long|how many|what|which|who)\b")


# the corpus often drops the apostrophe: "im watching", "ive been"
_CONTRACTIONS = {"im": "i'm", "ive": "i've", "ill": "i'll", "id": "i'd", "ima": "i'm going to"}
_SPELLED = re.compile(r"\b(?:im|ive|ill|id|ima)\b")


def concierge_problems(reply: str, user_text: str) -> list[str]:
    """Why a concierge would not say `reply` to `user_text` ([] when it could)."""
    text = _SPELLED.sub(lambda m: _CONTRACTIONS[m.group(0)], reply.lower())
    user = user_text.lower()
    found = []
    if ((_SCHOOL.search(text) and not _SCHOOL.search(user))
            or any(m.group(1) not in _MY_FINE for m in _MY.finditer(text))
            or any(re.search(p, text) for p in _STORY)
            or (_PEOPLE.search(text) and not _PEOPLE.search(user) and not _MY.search(user))):
        # ("her passing was sad": someone of the bot's own, not the guest's "my cat")
        found.append("life story")
    if any(re.search(p, text) for p in _PROMISE):
        found.append("promise")
    if _prying(text, user_text):
        found.append("prying")
    if _NEGATIVE.search(user) and not _LAUGHING.search(user) and _CHEERFUL.search(text):
        found.append("tone")
    return found


def _prying(text: str, user_text: str) -> bool:
    """A question sentence about the guest with a topic word the guest did not say."""
    new = content_words(text) - content_words(user_text)
    for sentence in re.findall(r"[^.!?]*\?", text):
        if _ASKS_GUEST.search(sentence) and content_words(sentence) & new:
            return True
    return False


def is_question(text: str) -> bool:
    """The reply ends with a question (then the steer-back line asks another one)."""
    return text.rstrip().endswith("?")


def persona_vectors(encoder: Any) -> Any:
    """(len(PERSONA_REPLIES), D) unit rows."""
    vectors = np.asarray(encoder.encode(list(PERSONA_REPLIES)), dtype=np.float32)  # (P, D)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def persona_similarity(vectors: Any, persona: Any, nearest: int = 3) -> list[float]:
    """Each row of `vectors` (unit rows, (N, D)): its mean cosine to its `nearest` persona
    replies."""
    if not len(vectors):
        return []
    scores = np.asarray(vectors, dtype=np.float32) @ np.asarray(persona, dtype=np.float32).T
    k = min(nearest, scores.shape[1])
    top = -np.sort(-scores, axis=1)[:, :k]  # (N, k)
    return [float(v) for v in top.mean(axis=1)]


def word_count(text: str) -> int:
    return len(re.findall(r"[\w']+", text))

