"""Does the chosen sentence speak about what the question asks? Word-level evidence for the
answer confidence.

A guest's question that the knowledge base cannot answer usually still finds a close
sentence ("how deep is the rooftop pool?" -> the sentence about the rooftop pool): the
encoder cosine is high, the reader finds some span. What gives it away is a word of the
question that the sentence does not cover ("deep"), or one the whole knowledge base never
uses ("hairdryer", "madrid"), or a place: the question names one hotel or city and the
sentence is about another. Per question and answer sentence (EVIDENCE_FEATURES):

* `cover_sent`, `cover_doc`, `cover_kb`: the share of the question's content words found in
  the sentence (with its section title), in its document, anywhere in the knowledge base,
  each word weighted by its IDF over the KB's sentences (a word the KB never uses weighs as
  much as the rarest one). Words match typo-tolerantly: the same light stem, one edit
  apart (a letter dropped, added, changed, or two swapped), or the same first six letters;
* `place_clash`: 1.0 when the question names a city or hotel of the KB and the sentence's
  document is about another one (policy documents are about no place).
* `cover_ask`: `cover_sent` of the clauses that ask (`asked_part`): in a long message the
  words of the question itself, not of what the guest says around it ("bringing our two
  labradors to berlin, they're big boys, is there a weight limit"). Session 27, the confidence
  refitted with it (benchmarks/kb_gate.py): AUC on the long-message dev set
  (tests/kb_dev3.json) 0.843 -> 0.862 and right at 85 % declined 0.585 -> 0.605, kb_dev
  0.850 -> 0.854 (0.544 -> 0.559), kb_dev2 0.908 -> 0.904 and kb_test 0.899 (both 0.722 and
  0.770 as before); its threshold rose 0.22 -> 0.24.

Content words are lower-case words of three letters or more, minus BM25's stop words and
CHAT_WORDS (how guests frame a question in a chat: greetings, thanks, "wondering", "tell").
Places: each city guide's city, each hotel document's name (its words other than the chain's
"Starlight", "Hotel", "Inn", "The") and its city (the KB city its text names most).

    evidence = QuestionEvidence(table)
    evidence.features("how deep is the rooftop pool in barcelona", sentence_id)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

from retrieval.bm25 import STOP_WORDS
from retrieval.sentences import SentenceTable

EVIDENCE_FEATURES = ("cover_sent", "cover_doc", "cover_kb", "place_clash", "cover_ask")
_WORD = re.compile(r"[a-zà-ÿ]+")
KnownWords = Callable[[Sequence[str]], list[bool]]  # is each word one piece of the tokenizer
_WORD_CASED = re.compile(r"[A-Za-zÀ-ÿ]+")
PREFIX_CHARS = 6  # words sharing their first six letters match ("cancelled", "cancellation")
MIN_FUZZY_CHARS = 5  # shorter words match only exactly (by stem): "bar" is not "car"
# How guests wrap a question in a chat, written from general chat habits (no test set read):
# they carry no topic, so a sentence that lacks them is no less an answer.
CHAT_WORDS = frozenset("""
hi hello hey hiya morning evening afternoon thanks thank thx cheers please pls plz ok okay
yes yeah yep sure guys folks dear sir madam wondering wonder wondered know knowing tell
telling let want wanted wants need needs needed like would could should might must may
shall just quick question questions ask asking asked anyone someone somebody anybody maybe
really also actually already still again very much many lot lots bit any some something
anything thing things way kind sort info information details detail help possible able
get got getting go going gonna wanna planning plan plans think thought hoping hope
guess say said does did done doing make made mine ours yours his her him she he its
about after before over under just only even ever every each other another more most
whats thats theres wheres hows whos cant dont wont isnt arent im ive
""".split())
# a clause asks when it ends with "?" or opens, after fillers, with one of these words
ASKING_OPENERS = frozenset("""
what whats when where which who whose why how is are was were do does did can could will
would should may any have has
""".split())
_FILLERS = frozenset("hi hello hey ok okay so and also but btw oh um well please pls just then"
                     .split())
_CLAUSE_CUT = re.compile(r"(?<=[.?!;,])\s+|\s+(?:and|but|so)\s+", re.IGNORECASE)
_CHAIN_WORDS = frozenset({"starlight", "hotel", "hotels", "inn", "the", "city", "guide"})


def asked_part(text: str) -> str:
    """The clauses of `text` that ask (ASKING_OPENERS, or "?"): "we land late with two kids.
    is there parking?" -> "is there parking?"; all of `text` when no clause asks or the
    asking ones hold no content word ("..., is that ok")."""
    clauses = [c.strip() for c in _CLAUSE_CUT.split(text) if c and c.strip()]
    asking = []
    for clause in clauses:
        words = [w for w in _WORD.findall(clause.lower()) if w not in _FILLERS]
        if clause.endswith("?") or (words and words[0] in ASKING_OPENERS):
            asking.append(clause)
    part = " ".join(asking)
    return part if asking and content_words(part) else text


def _stem(word: str) -> str:
    """A light stem: "rooms" -> "room", "ferries" -> "ferry", "booked" -> "book"."""
    if word.endswith(("ss", "us", "is")):
        return word
    for suffix in ("ies", "es", "s", "ing", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[:-len(suffix)]
            return stem + "y" if suffix == "ies" else stem
    return word


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def one_edit(a: str, b: str) -> bool:
    """Whether `a` and `b` are at most one edit apart: a letter dropped, added or changed,
    or two neighbours swapped."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        swapped = (i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i]
                   and a[i + 2:] == b[i + 2:])
        return a[i + 1:] == b[i + 1:] or swapped
    return a[i + 1:] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1:]


def content_words(text: str) -> list[str]:
    """The question's words that carry its topic, in order, each once."""
    seen: list[str] = []
    for w in _WORD.findall(text.lower()):
        if len(w) >= 3 and w not in STOP_WORDS and w not in CHAT_WORDS and w not in seen:
            seen.append(w)
    return seen


class QuestionEvidence:
    """The KB's vocabulary (per sentence, per document, overall) and places, built from the
    sentence table once; `features` scores one question against one sentence."""

    def __init__(self, table: SentenceTable, known: KnownWords | None = None) -> None:
        self.table = table
        self.sentence_words: list[frozenset[str]] = []
        doc_words: dict[str, set[str]] = {}
        df: Counter[str] = Counter()
        for s in table.sentences:
            words = frozenset(_stem(w) for w in _WORD.findall(f"{s.title}: {s.text}".lower()))
            self.sentence_words.append(words)
            doc_words.setdefault(s.doc_id, set()).update(words)
            df.update(words)
        self.doc_words = {d: frozenset(w) for d, w in doc_words.items()}
        self.vocab = frozenset(df)
        n = max(1, len(table))
        self.idf = {w: math.log(1 + n / c) for w, c in df.items()}
        self.max_idf = math.log(1 + n)
        self._by_delete: dict[str, set[str]] = {}
        self._by_prefix: dict[str, set[str]] = {}
        for w in self.vocab:
            if len(w) >= MIN_FUZZY_CHARS - 1:
                for d in _deletes(w) | {w}:
                    self._by_delete.setdefault(d, set()).add(w)
            if len(w) >= PREFIX_CHARS:
                self._by_prefix.setdefault(w[:PREFIX_CHARS], set()).add(w)
        self.doc_place, self.place_words = _places(table, known)
        self._sentence_hotels: dict[int, frozenset[str]] = {}

    def matches(self, word: str) -> frozenset[str]:
        """The KB stems `word` stands for: its own stem, or words one edit or a shared
        six-letter prefix away (MIN_FUZZY_CHARS letters or more)."""
        stem = _stem(word)
        if stem in self.vocab:
            return frozenset({stem})
        found: set[str] = set()
        if len(word) >= MIN_FUZZY_CHARS:
            for form in {stem, word}:
                for key in _deletes(form) | {form}:
                    found |= {w for w in self._by_delete.get(key, ()) if one_edit(form, w)}
            if len(stem) >= PREFIX_CHARS:
                found |= self._by_prefix.get(stem[:PREFIX_CHARS], set())
        return frozenset(found)

    def features(self, question: str, sentence_id: int) -> dict[str, float]:
        """EVIDENCE_FEATURES of `sentence_id` as the answer to `question`."""
        doc_id = self.table.sentences[sentence_id].doc_id
        cover_sent, cover_doc, cover_kb = self.cover(question, sentence_id)
        asked = asked_part(question)
        return {"cover_sent": cover_sent, "cover_doc": cover_doc, "cover_kb": cover_kb,
                "place_clash": self.place_clash(question, doc_id),
                "cover_ask": cover_sent if asked == question else
                self.cover(asked, sentence_id)[0]}

    def cover(self, text: str, sentence_id: int) -> tuple[float, float, float]:
        """The IDF-weighted shares of `text`'s content words found in the sentence, its
        document and the KB (1.0 each when it has none)."""
        in_sentence = self.sentence_words[sentence_id]
        in_doc = self.doc_words[self.table.sentences[sentence_id].doc_id]
        total = cover_sent = cover_doc = cover_kb = 0.0
        for word in content_words(text):
            found = self.matches(word)
            weight = max((self.idf[w] for w in found), default=self.max_idf)
            total += weight
            cover_kb += weight if found else 0.0
            cover_doc += weight if found & in_doc else 0.0
            cover_sent += weight if found & in_sentence else 0.0
        if not total:
            return 1.0, 1.0, 1.0
        return cover_sent / total, cover_doc / total, cover_kb / total

    def named_places(self, question: str) -> tuple[set[str], set[str]]:
        """(cities, hotel documents) the question names, typo-tolerantly."""
        cities: set[str] = set()
        hotels: set[str] = set()
        for word in _WORD.findall(question.lower()):
            if len(word) < 4 or word in STOP_WORDS:
                continue
            for key in self.matches(word) | {_stem(word)}:
                for kind, name in self.place_words.get(key, ()):
                    (cities if kind == "city" else hotels).add(name)
        cities |= {self.doc_place[h][0] for h in hotels if self.doc_place.get(h)}
        return cities, hotels

    def sentence_clash(self, sentence_id: int, named: tuple[set[str], set[str]]) -> float:
        """1.0 when the question names a hotel (`named`: its `named_places`) and the sentence
        names hotels, none of them that one ("Nova Grand Hotel offers suites for families."
        for a question about Starlight Amsterdam)."""
        hotels = named[1]
        if not hotels:
            return 0.0
        if sentence_id not in self._sentence_hotels:
            text = self.table.sentences[sentence_id].text
            self._sentence_hotels[sentence_id] = frozenset(self.named_places(text)[1])
        mine = self._sentence_hotels[sentence_id]
        return 1.0 if mine and not mine & hotels else 0.0

    def place_clash(self, question: str, doc_id: str,
                    named: tuple[set[str], set[str]] | None = None) -> float:
        """1.0 when the question names a place and `doc_id` is about another one (`named`:
        the question's `named_places`, when known)."""
        place = self.doc_place.get(doc_id)
        if place is None:
            return 0.0
        cities, hotels = named if named is not None else self.named_places(question)
        if not cities and not hotels:
            return 0.0
        city, hotel = place
        if city not in cities:
            return 1.0
        return 1.0 if hotels and hotel is not None and hotel not in hotels else 0.0


def _places(table: SentenceTable, known: KnownWords | None = None
            ) -> tuple[dict[str, tuple[str, str | None]], dict[str, set[tuple[str, str]]]]:
    """Per document its (city, hotel document or None) when it is about a place, and per
    stemmed name word the places it names ("city", city) or ("hotel", document id)."""
    heads: dict[str, str] = {}
    text: dict[str, list[str]] = {}
    for s in table.sentences:
        heads.setdefault(s.doc_id, s.title.split(" > ")[0])
        text.setdefault(s.doc_id, []).append(s.text.lower())
    words: dict[str, set[tuple[str, str]]] = {}
    cities = {doc: re.sub(r"\s+city guide$", "", head, flags=re.I).lower()
              for doc, head in heads.items() if re.search(r"city guide$", head, re.I)}
    for city in set(cities.values()):
        for w in _WORD.findall(city):
            words.setdefault(_stem(w), set()).add(("city", city))
    place: dict[str, tuple[str, str | None]] = {doc: (city, None) for doc, city in cities.items()}
    for doc, head in heads.items():
        if doc in cities or doc.split("/")[0] != "hotels":
            continue
        body = " ".join(text[doc])
        counts = {city: len(re.findall(rf"\b{re.escape(city)}\b", body))
                  for city in set(cities.values())}
        city = max(sorted(counts), key=lambda c: counts[c], default=None)
        if city is None or not counts[city]:
            continue
        place[doc] = (city, doc)
        for w in _WORD.findall(head.lower()):
            if w not in _CHAIN_WORDS and w not in STOP_WORDS and w != city:
                words.setdefault(_stem(w), set()).add(("hotel", doc))
    for w, doc in _hotel_aliases(table, place, known).items():
        words.setdefault(w, set()).add(("hotel", doc))
    return place, words


def _hotel_aliases(table: SentenceTable, place: dict[str, tuple[str, str | None]],
                   known: KnownWords | None = None) -> dict[str, str]:
    """Names that point to one hotel though they are not in its title: a street, a district,
    a restaurant ("the hotel on Prinsengracht", "dinner at Sal e Seda"). A stemmed word that
    is capitalised inside a sentence of exactly one hotel document, never written in lower
    case anywhere in the knowledge base and, when `known` can say, not a word the encoder's
    vocabulary holds whole ("Monday", "French", "Rome" are no hotel's names)."""
    hotels = {doc for doc, (_, hotel) in place.items() if hotel is not None}
    owners: dict[str, set[str]] = {}
    written: dict[str, str] = {}  # stem -> the word as written (lower case)
    lower: set[str] = set()
    for s in table.sentences:
        for i, m in enumerate(_WORD_CASED.finditer(s.text)):
            w = m.group()
            if w.islower():
                lower.add(_stem(w))
            elif i > 0 and w[0].isupper() and len(w) >= 4 and s.doc_id in hotels:
                owners.setdefault(_stem(w.lower()), set()).add(s.doc_id)
                written.setdefault(_stem(w.lower()), w.lower())
    cities = {_stem(w) for city, _ in place.values() for w in _WORD.findall(city)}
    names = {w: next(iter(docs)) for w, docs in owners.items()
             if len(docs) == 1 and w not in lower and w not in _CHAIN_WORDS
             and w not in STOP_WORDS and w not in cities}
    if known is not None and names:
        whole = dict(zip(names, known([written[w] for w in names])))
        names = {w: doc for w, doc in names.items() if not whole[w]}
    return names

