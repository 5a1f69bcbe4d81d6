"""The training conversations: the open-domain chats of the `chitchat-dataset` package (MIT,
7,168 conversations by pairs of people) plus the assistant's own small talk, as plain text with
a speaker label per turn and one turn per line:

    User: if you could live anywhere, where would it be?
    Bot: somewhere by the sea, i think
    User: ...

The model learns to continue after "Bot:" and to end its turn with a newline (the turn
boundary the sampler stops at). Conversations are split into training and held-out ones by
a hash of their id, so the split never changes between runs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from generation.errors import CorpusError

logger = logging.getLogger(__name__)

USER = "User:"
BOT = "Bot:"
EXEMPLAR = "Hint:"  # a retrieved human reply the model may copy or adapt (exemplars.py)
_SPACES = re.compile(r"\s+")
_WORDS = re.compile(r"[\w']+")


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    turns: tuple[str, ...]  # speakers alternate, the first one is "User"


@dataclass(frozen=True, slots=True)
class Corpus:
    train: tuple[Conversation, ...]
    heldout: tuple[Conversation, ...]

    def stats(self) -> dict[str, int]:
        turns = [t for c in (*self.train, *self.heldout) for t in c.turns]
        return {"conversations": len(self.train) + len(self.heldout),
                "train_conversations": len(self.train), "heldout_conversations": len(self.heldout),
                "turns": len(turns), "words": sum(len(t.split()) for t in turns)}


def clean(text: str) -> str:
    """One line of text: newlines and runs of spaces become one space (a newline ends a turn)."""
    return _SPACES.sub(" ", text).strip()


_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")
_I = re.compile(r"\bi\b(?=$|[\s'.,!?])")


def truecase(text: str) -> str:
    """A reply of a lowercased model as a person writes it: sentences start with a capital,
    "i" (and i'm, i've, ...) is "I"."""
    text = _I.sub("I", text)
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def render(turns: Sequence[str], *, reply_next: bool = False, exemplar: str | None = None) -> str:
    """Turns as labelled lines, the last turn labelled "User" when `reply_next` (a prompt that
    ends with "Bot:" for the reply), else speakers alternate from "User"; an `exemplar` goes
    first, on a "Hint:" line."""
    offset = (len(turns) - 1) % 2 if reply_next else 0
    lines = [f"{BOT if (i + offset) % 2 else USER} {clean(t)}" for i, t in enumerate(turns)]
    if exemplar is not None:
        lines.insert(0, f"{EXEMPLAR} {clean(exemplar)}")
    if reply_next:
        lines.append(BOT)
        return "\n".join(lines)
    return "\n".join(lines) + "\n"


def chitchat_conversations(limit: int | None = None) -> list[Conversation]:
    """The conversations of the chitchat-dataset package: a turn is one person's consecutive
    messages joined; empty turns are dropped and the same speaker's turns merged."""
    import json
    from importlib.resources import files

    try:
        source = files("chitchat_dataset") / "dataset.json"
    except ModuleNotFoundError as exc:
        raise CorpusError("The chitchat-dataset package is not installed: "
                          "pip install chitchat-dataset (pinned in constraints.txt).") from exc
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorpusError(f"chitchat-dataset's {source} cannot be read: {exc}") from exc
    out = []
    for conv_id, conv in raw.items():
        turns: list[str] = []
        speakers: list[str] = []
        for message in conv.get("messages", []):
            text = clean(" ".join(u.get("text", "") for u in message))
            speaker = message[0].get("sender", "") if message else ""
            if not text:
                continue
            if speakers and speakers[-1] == speaker:
                turns[-1] = f"{turns[-1]} {text}"
            else:
                turns.append(text)
                speakers.append(speaker)
        if len(turns) >= 2:
            out.append(Conversation(str(conv_id), tuple(turns)))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise CorpusError("chitchat-dataset holds no conversations.")
    return out


def pair_conversations(pairs: Iterable[tuple[str, str]], prefix: str) -> list[Conversation]:
    """(user text, reply) pairs as two-turn conversations (the assistant's own small talk)."""
    return [Conversation(f"{prefix}-{i}", (clean(u), clean(r)))
            for i, (u, r) in enumerate(pairs) if clean(u) and clean(r)]


def split(conversations: Sequence[Conversation], heldout_fraction: float) -> Corpus:
    """Training and held-out conversations, by a stable hash of the id (of the conversation
    id before a "/": reply_pairs' pairs follow their conversation)."""
    train, heldout = [], []
    for conv in conversations:
        source = conv.id.split("/")[0]  # the pairs of one conversation stay on one side
        bucket = int.from_bytes(hashlib.sha1(source.encode()).digest()[:4], "little") / 2**32
        (heldout if bucket < heldout_fraction else train).append(conv)
    if not train or not heldout:
        raise CorpusError(f"{len(conversations)} conversations are too few to keep "
                          f"{heldout_fraction:.0%} held out; add conversations.")
    return Corpus(tuple(train), tuple(heldout))


def reply_key(text: str) -> str:
    """A reply reduced to its lowercased words ("Me too!!" and "me too" are one reply)."""
    return " ".join(_WORDS.findall(text.lower()))


# Words that say nothing about a topic: two turns sharing only these are not about one thing
FUNCTION_WORDS = frozenset("""
i me my mine you your yours we our us he him his she her it its they them their this that these
those a an the and or but so if of to in on at for with about from by as is are was were be been
being am do does did doing done have has had having will would can could should may might must
not no yes yeah yea yep nope oh ok okay well just really very too also what whats how hows why
where when who which there here then than now like lol haha hahaha im i'm you're youre it's that's
thats don't dont didn't i've i'll i'd got get go going know think sure good great cool nice one
some any all more much many lot lots thing things something anything out up down over again
back still even way right hey hi hello thanks thank please sorry gonna wanna kind pretty
""".split())


def content_words(text: str) -> set[str]:
    """The lowercased words of a text that say what it is about (3 letters or more, no
    FUNCTION_WORDS)."""
    return {w for w in _WORDS.findall(text.lower()) if len(w) > 2 and w not in FUNCTION_WORDS}


def topic_stems(text: str) -> set[str]:
    """The content words of a text, cut to 5 letters ("travel", "travelling" are one topic)."""
    return {w[:5] for w in content_words(text)}


def on_topic(context: str, reply: str) -> bool:
    """The reply takes up a content word of its context (a cheap sign it answers it)."""
    return bool(topic_stems(context) & topic_stems(reply))


def frequent_replies(conversations: Sequence[Conversation], top: int,
                     max_words: int = 14) -> list[str]:
    """The `top` most frequent replies (reply_key) of up to `max_words` words in
    `conversations`, most frequent first: the generic answers ("me too", "what about you",
    "how are you") a small model falls back on whatever it was told."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for conv in conversations:
        for turn in conv.turns[1:]:
            key = reply_key(turn)
            if key and len(key.split()) <= max_words:
                counts[key] += 1
    return [key for key, n in counts.most_common(top) if n > 1]


_DIGIT_OR_LINK = re.compile(r"\d|https?://|www\.|@")


def reply_pairs(conversations: Sequence[Conversation], *, max_reply_words: int = 14,
                max_context_words: int = 20, min_word_count: int = 5,
                max_same_reply: int = 20, lowercase: bool = True) -> list[Conversation]:
    """Short (previous turn, reply) pairs: what a small model can learn to say well in a few
    minutes. A reply is kept when it has 2 to `max_reply_words` words, no digits or links,
    and only words seen at least `min_word_count` times in `conversations` (typos, names and
    rare words go); its context (the turn before) has at most `max_context_words` words.
    Pairs are deduplicated and one reply text is kept at most `max_same_reply` times (a
    corpus of "lol" teaches nothing). Ids are "<conversation id>/<turn>"."""
    from collections import Counter

    def norm(text: str) -> str:
        text = clean(text)
        return text.lower() if lowercase else text

    counts: Counter[str] = Counter()
    for conv in conversations:
        for turn in conv.turns:
            counts.update(_WORDS.findall(turn.lower()))
    seen: set[tuple[str, str]] = set()
    per_reply: Counter[str] = Counter()
    out = []
    for conv in conversations:
        for i in range(1, len(conv.turns)):
            context, reply = norm(conv.turns[i - 1]), norm(conv.turns[i])
            words = _WORDS.findall(reply.lower())
            if not 2 <= len(words) <= max_reply_words or _DIGIT_OR_LINK.search(reply):
                continue
            if len(context.split()) > max_context_words:
                continue
            if any(counts[w] < min_word_count for w in words):
                continue
            key = (context, reply)
            if key in seen or per_reply[reply] >= max_same_reply:
                continue
            seen.add(key)
            per_reply[reply] += 1
            out.append(Conversation(f"{conv.id}/{i}", (context, reply)))
    return out
