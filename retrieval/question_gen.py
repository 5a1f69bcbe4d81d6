"""Training questions generated from the knowledge-base sentences themselves.

Answerable questions. In every sentence, typed answers are found by pattern (prices, clock
times, durations, measures, percentages, other numbers, capitalised names); each becomes

* a cloze question: the clause holding the answer with the answer replaced by a wh-phrase of
  its type ("A 30-minute walk costs how much?"),
* wh-template questions about the sentence's topic (its section heading and the place the
  document is about): "how much is dog walking at starlight vienna?",
* a keyword question: the topic and the clause's content words, as guests type into a box.

Every generated answer occurs verbatim in its sentence (`answer_start` is its offset there).
Guest-voice variants (lower case, no question mark, a greeting or a "please", one typo) are
applied by `guest_voice` to any question, generated or written.

Unanswerable questions come from general knowledge, not from the KB: hotel facilities and
services a hotel might have, asked about in the same templates, kept only when none of their
words occurs anywhere in the knowledge base, plus far off-topic questions.

The templates are written from how hotel guests generally ask; no test set was read to make
them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from retrieval.bm25 import STOP_WORDS
from retrieval.sentences import Sentence

_NUM = r"(?:\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|" \
       r"twenty|thirty|forty|forty-five|sixty|ninety)"
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("price", re.compile(r"(?:\b\d+(?:[.,]\d+)?\s?(?:EUR|euros?)\b|€\s?\d+(?:[.,]\d+)?)", re.I)),
    ("time", re.compile(r"\b\d{1,2}[:.]\d{2}(?:\s?(?:to|and|until|-|–)\s?\d{1,2}[:.]\d{2})?"
                        r"|\b(?:noon|midnight)\b")),
    ("duration", re.compile(rf"\b{_NUM}(?:[- ](?:to|or)[- ]{_NUM})?[- ](?:minutes?|hours?|days?"
                            rf"|nights?|weeks?|months?|years?)\b", re.I)),
    ("measure", re.compile(rf"\b{_NUM}\s?(?:kg|km|metres|meters|m|square metres|m2|floors?|"
                           r"people|guests|rooms|seats|pieces|bags)\b", re.I)),
    ("percent", re.compile(r"\b\d+\s?(?:%|per cent|percent)", re.I)),
    ("name", re.compile(r"\b(?:[A-Z][\w'’&-]+)(?:\s(?:de|da|del|van|of|the|and|&)?\s?"
                        r"[A-Z][\w'’-]+)+")),
    ("number", re.compile(r"\b\d+\b")),
)
WH = {"price": ("how much", "what price", "what does it cost"),
      "time": ("what time", "when", "from what time"),
      "duration": ("how long", "how many minutes", "how much time"),
      "measure": ("how much", "how many", "how big"),
      "percent": ("what percentage", "how much of a discount", "what percent"),
      "name": ("what", "which place", "what is the name of the place"),
      "number": ("how many", "what number", "how much")}
TEMPLATES = {
    "price": ("how much is {topic}{at}?", "what does {topic} cost{at}?",
              "{topic} price{at}?", "what do you charge for {topic}{at}?",
              "is {topic} expensive{at}? how much"),
    "time": ("what time is {topic}{at}?", "when is {topic}{at}?", "{topic} hours{at}?",
             "until what time {topic}{at}?"),
    "duration": ("how long is {topic}{at}?", "how long does {topic} take{at}?",
                 "{topic}{at}, how long?"),
    "measure": ("how much {topic}{at}?", "what is the limit for {topic}{at}?",
                "how many for {topic}{at}?"),
    "percent": ("what discount is there for {topic}{at}?", "{topic} percentage{at}?"),
    "name": ("which {topic}{at}?", "what {topic} do you recommend{at}?",
             "tell me about {topic}{at}"),
    "number": ("how many {topic}{at}?", "what is the number for {topic}{at}?"),
}
ABSENT_FACILITIES = (
    "casino", "bowling alley", "golf simulator", "ski storage", "helipad", "cinema room",
    "nightclub", "tennis court", "squash court", "karaoke room", "barber shop", "hairdresser",
    "pharmacy", "jacuzzi", "hot tub", "playground", "yoga classes", "billiard table",
    "laundromat", "cash machine", "sim cards", "umbrella rental", "microwave", "bathtub",
    "netflix", "tesla charger", "piano bar", "water slide", "climbing wall", "sushi bar",
    "petting zoo", "wine cellar tours", "cooking classes", "dry sauna for dogs", "shoe shine",
    "currency exchange", "typewriter", "bitcoin payments", "horse riding", "diving lessons",
)
ABSENT_TEMPLATES = ("is there a {x}{at}?", "do you have {x}{at}?", "how much is the {x}{at}?",
                    "what time does the {x} open{at}?", "can i book the {x}{at}?",
                    "where is the {x}{at}?")
OFF_TOPIC = (
    "what's the weather on mars", "who won the football last night", "tell me a joke",
    "how do i fix my car's gearbox", "what is the capital of australia",
    "can you do my maths homework", "what's the meaning of life", "recommend a good novel",
    "how many moons does jupiter have", "what's the best phone to buy this year",
    "translate good morning into japanese", "how do i bake sourdough bread",
    "what is the stock price of apple today", "who is the president of brazil",
    "write me a poem about cats", "how do vaccines work",
)
_OPENERS = frozenset("The A An Our Your Its In On At From For Guests Every Each This Please "
                     "If When Children Breakfast".split())
GREETINGS = ("hi, ", "hello! ", "hey ", "quick question: ", "excuse me, ", "good morning, ",
             "sorry to bother you, ", "can you tell me ", "i was wondering ", "")
CLOSINGS = (" thanks", " please", " thx", "??", " :)", "")


@dataclass(frozen=True, slots=True)
class Generated:
    """A generated question. For an answerable one, `answer` is `sentence.text[start:...]`."""

    question: str
    sentence: int | None
    answer: str | None
    start: int | None
    kind: str


def answers_in(text: str) -> list[tuple[str, int, str]]:
    """(kind, start, answer) of the typed answers in a sentence, earlier patterns first; an
    answer inside an earlier one is skipped."""
    taken: list[tuple[int, int]] = []
    out = []
    for kind, pattern in PATTERNS:
        for m in pattern.finditer(text):
            s, e = m.span()
            if any(s < te and ts < e for ts, te in taken):
                continue
            if kind == "name" and text[s:e].split()[0] in _OPENERS:  # "The Rijksmuseum ..."
                s = s + len(text[s:e].split()[0]) + 1
                if " " not in text[s:e]:
                    continue
            taken.append((s, e))
            out.append((kind, s, text[s:e]))
    return out


def place_of(sentence: Sentence) -> str:
    """The place a sentence's document is about ("Starlight Vienna", "Amsterdam"), or "" for
    a document about a topic (one in a folder named policies, or titled "... Policy")."""
    head = sentence.title.split(" > ")[0]
    if sentence.doc_id.split("/")[0] == "policies" or re.search(r"policy$", head, re.I):
        return ""
    return re.sub(r"\s+city guide$", "", head, flags=re.I)


def topic_of(title: str) -> str:
    """The section heading of a sentence title, lower case, or the document title."""
    parts = title.split(" > ")
    return (parts[-1] if len(parts) > 1 else re.sub(r"\s+policy$", "", parts[0], flags=re.I)
            ).lower()


def content_words(text: str, limit: int = 6) -> list[str]:
    words = [w for w in re.findall(r"[a-z][a-z'-]+", text.lower()) if w not in STOP_WORDS]
    return words[:limit]


def _clause(text: str, start: int, end: int) -> tuple[str, int]:
    """The clause around text[start:end] (cut at ; : , and sentence ends) and its offset."""
    left = max(text.rfind(c, 0, start) for c in ";:,")
    right = [i for i in (text.find(c, end) for c in ";:,") if i >= 0]
    s = left + 1 if left >= 0 else 0
    e = min(right) if right else len(text)
    return text[s:e].strip().rstrip("."), s + len(text[s:e]) - len(text[s:e].lstrip())


def generate_answerable(sentences: Iterable[Sentence], rng: random.Random, *,
                        per_answer: int = 2) -> list[Generated]:
    """Cloze, wh-template and keyword questions for the typed answers of each sentence."""
    out = []
    for sentence in sentences:
        place, topic = place_of(sentence), topic_of(sentence.title)
        at = f" at {place}" if place and rng.random() < 0.7 else (f" in {place}" if place else "")
        for kind, start, answer in answers_in(sentence.text):
            end = start + len(answer)
            clause, offset = _clause(sentence.text, start, end)
            wh = rng.choice(WH[kind])
            cloze = (clause[:start - offset] + wh + clause[end - offset:]).strip()
            keywords = " ".join(content_words(clause.replace(answer, " ")))
            options = [cloze[0].lower() + cloze[1:] + "?",
                       rng.choice(TEMPLATES[kind]).format(topic=topic, at=at),
                       f"{place.lower() + ' ' if place else ''}{keywords} {wh}?"]
            for question in rng.sample(options, min(per_answer, len(options))):
                out.append(Generated(question, sentence.id, answer, start, kind))
    return out


def generate_unanswerable(kb_text: str, places: Sequence[str], rng: random.Random, *,
                          count: int = 120) -> list[Generated]:
    """Questions about facilities absent from the KB text, and off-topic ones."""
    lowered = kb_text.lower()
    absent = [x for x in ABSENT_FACILITIES if not any(
        re.search(rf"\b{re.escape(w)}", lowered) for w in x.split() if w not in STOP_WORDS)]
    out = [Generated(q, None, None, None, "off_topic") for q in OFF_TOPIC]
    while len(out) < count and absent:
        place = rng.choice([*places, ""])
        at = f" at {place.lower() if rng.random() < 0.5 else place}" if place else ""
        question = rng.choice(ABSENT_TEMPLATES).format(x=rng.choice(absent), at=at)
        out.append(Generated(question, None, None, None, "absent"))
    return out


def guest_voice(question: str, rng: random.Random, *, greet: bool = True) -> str:
    """A guest's way of typing `question`: some of lower case, no question mark, a greeting
    (unless `greet` is False) or closing, one swapped letter pair."""
    q = question.strip()
    if rng.random() < 0.5:
        q = q.lower()
    if rng.random() < 0.4:
        q = q.rstrip("?")
    if rng.random() < 0.4 and greet:
        q = rng.choice(GREETINGS) + q[:1].lower() + q[1:]
    if rng.random() < 0.2:
        q += rng.choice(CLOSINGS)
    if rng.random() < 0.25:
        words = q.split(" ")
        long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
        if long:
            i = rng.choice(long)
            w = words[i]
            k = rng.randrange(1, len(w) - 2)
            words[i] = w[:k] + w[k + 1] + w[k] + w[k + 2:]
            q = " ".join(words)
    return q


# Guest rephrasing: how guests put a question in a chat box, not how a KB writer does. Each
# rewrite keeps the question's content words; none was written from a test set.
_DROPS = ((r"^(?:what|which) (?:is|are) (?:the )?", "", ""),
          (r"^(?:is|are) there (?:an? |any )?", "", "?"),
          (r"^do you (?:have|offer) (?:an? |any )?", "", " available?"),
          (r"^how much (?:is|are|does|do) (?:the |an? )?(.*?)(?: cost)?$", r"\1", " price?"),
          (r"^what time (?:is|are|does|do) (?:the )?(.*?)(?: open| start| close)?$", r"\1",
           " time?"),
          (r"^(?:can|may) i (?:bring|have|get|use) (?:an? |my )?", "", " ok?"))
_INDIRECT = ((r"^is there\b", "if there is"), (r"^are there\b", "if there are"),
             (r"^can i\b", "if i can"), (r"^can we\b", "if we can"), (r"^do you\b", "if you"),
             (r"^is it\b", "if it is"), (r"^is the\b", "if the"), (r"^are the\b", "if the"),
             (r"^does the\b", "if the"), (r"^do i\b", "if i"), (r"^may i\b", "if i may"),
             (r"^what\b", "what"), (r"^how\b", "how"), (r"^when\b", "when"),
             (r"^where\b", "where"), (r"^which\b", "which"), (r"^who\b", "who"))
STATEMENTS = ("need to know {q}", "i'd like to know {q}", "wondering {q}",
              "can you tell me {q}", "just checking {q}", "i want to find out {q}",
              "pls let me know {q}")
FILLERS = ("hi quick q ", "hey, ", "hello there! ", "ok so ", "hi! ", "um ", "one thing - ",
           "sorry, another question. ", "hi there, ", "question: ", "morning! ")
CONTEXTS = ("we're staying 3 nights next month. ", "travelling with my partner. ",
            "booked already. ", "first time visiting. ", "coming for a weekend in may. ",
            "family of four here. ", "arriving late on friday. ",
            "planning a trip for my parents. ")
AFTERWORDS = (" before i book", " thanks in advance", ", asking for my mum", " cheers",
              " thank you!", ", trying to plan", "")
_CHAT = ((r"\byou\b", "u"), (r"\bplease\b", "pls"), (r"\bare\b", "r"), (r"'", ""),
         (r"\bthe\b ", ""), (r"\band\b", "&"))


def guest_rephrase(question: str, rng: random.Random) -> str:
    """`question` as a guest might type it: one structural rewrite (the question words
    dropped, an indirect statement "need to know if ...", or a context clause before it),
    chat spelling, then `guest_voice`'s noise (case, punctuation, greeting, a typo)."""
    q = question.strip().rstrip("?").strip()
    roll = rng.random()
    if roll < 0.3:
        for pattern, replacement, tail in _DROPS:
            short = re.sub(pattern, replacement, q, count=1, flags=re.I)
            if short != q and len(short.split()) >= 2:
                q = short + (tail or rng.choice(("?", "", " ?")))
                break
        else:
            q += "?"
    elif roll < 0.6:
        lowered = q[:1].lower() + q[1:]
        for pattern, replacement in _INDIRECT:
            if re.match(pattern, lowered, re.I):
                lowered = re.sub(pattern, replacement, lowered, count=1, flags=re.I)
                break
        q = rng.choice(STATEMENTS).format(q=lowered)
    elif roll < 0.8:
        q = rng.choice(CONTEXTS) + q[:1].lower() + q[1:] + "?"
    else:
        q += "?"
    greeted = rng.random() < 0.3
    if greeted:
        q = rng.choice(FILLERS) + q[:1].lower() + q[1:]
    if rng.random() < 0.3:
        q = q.rstrip("?") + rng.choice(AFTERWORDS)
    if rng.random() < 0.25:
        pattern, replacement = rng.choice(_CHAT)
        q = re.sub(pattern, replacement, q, count=1, flags=re.I)
    q = _typo(q, rng) if rng.random() < 0.3 else q
    return guest_voice(q, rng, greet=not greeted)


def _typo(text: str, rng: random.Random) -> str:
    """One dropped or doubled letter in a word longer than four letters."""
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not long:
        return text
    i = rng.choice(long)
    w, k = words[i], rng.randrange(1, len(words[i]) - 1)
    words[i] = w[:k] + w[k + 1:] if rng.random() < 0.5 else w[:k] + w[k] + w[k:]
    return " ".join(words)
