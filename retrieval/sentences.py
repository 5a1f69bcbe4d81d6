"""Sentence candidates: the units a knowledge answer is chosen from.

Every passage of the index is cut into sentences (or Markdown lines: list items and table rows
are one candidate each). A sentence keeps its place twice: `start`/`end` in its document, and
through `passages` every (passage slot, start in passage) that holds it, since overlapping
chunks share sentences. The text a sentence is embedded and searched with is its section title
and the sentence ("Pets Policy > Fees and limits: The pet fee is 25 EUR ..."), because many
sentences ("It costs 15 EUR.") only make sense under their heading.

    table = SentenceTable.from_passages(index.passages)
    table.sentences[0].text, table.by_passage[slot]     # sentence ids of a passage
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from retrieval.types import Passage

_BULLET = "-*+>#|"
_END = re.compile(r"[.!?][\"')\]]*(?=\s)")
_ABBREVIATION = re.compile(r"(?:\b(?:St|Dr|Mr|Mrs|Ms|Nr|No|approx|ca|incl|e\.g|i\.e|vs)|"
                           r"\b[A-Z])\.$")  # "St. Stephen's": no sentence ends there
# a sentence that refers back ("It costs 25 EUR.", "Taxis then drop guests ...", "Later
# cancellations are charged ...", "In winter the bar moves indoors ...") is searched
# with the sentence before it
_REFERS_BACK = re.compile(r"^(?:(?:it|its|they|their|them|this|these|that|those|there|here|"
                          r"he|she|his|her|such|instead|otherwise|later|after that|"
                          r"in (?:winter|summer))\b|\w+ (?:then|there)\b)", re.IGNORECASE)
MIN_CHARS = 3  # shorter lines ("---", "|") are no answers


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of a document: `text == document.text[start:end]`; `passages` maps the
    slots of the passages that contain it to its start inside that passage."""

    id: int
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    passages: dict[int, int] = field(default_factory=dict, compare=False, hash=False)
    lead: str = ""

    @property
    def search_text(self) -> str:
        """What the sentence encoder and BM25 see: section title, the sentence before it in
        its paragraph, then the sentence."""
        text = f"{self.lead} {self.text}" if self.lead else self.text
        return f"{self.title}: {text}" if self.title else text


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`: cut at line breaks and after ., ! or ? that
    a space follows; list, heading and table markers and surrounding whitespace are left out."""
    out: list[tuple[int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        cuts = [0, *(m.end() for m in _END.finditer(line)
                     if not _ABBREVIATION.search(line[:m.end()])), len(line)]
        for s, e in zip(cuts, cuts[1:]):
            while s < e and (line[s].isspace() or line[s] in _BULLET):
                s += 1
            while e > s and (line[e - 1].isspace() or line[e - 1] == "|"):
                e -= 1
            if e - s >= MIN_CHARS:
                out.append((offset + s, offset + e))
        offset += len(line)
    return out


class SentenceTable:
    """The sentences of a set of passages, each document sentence once."""

    def __init__(self, sentences: list[Sentence], by_passage: dict[int, list[int]],
                 following: dict[int, int] | None = None) -> None:
        self.sentences = sentences
        self.by_passage = by_passage
        # sentence id -> the sentence after it on the same line (its paragraph goes on)
        self.following = following or {}

    def __len__(self) -> int:
        return len(self.sentences)

    @classmethod
    def from_passages(cls, passages: Mapping[int, Passage] | Iterable[tuple[int, Passage]]
                      ) -> SentenceTable:
        items = sorted(passages.items() if isinstance(passages, Mapping) else passages,
                       key=lambda kv: (kv[1].doc_id, kv[1].start, kv[0]))
        found: dict[tuple[str, int, int], Sentence] = {}
        by_passage: dict[int, list[int]] = {}
        following: dict[int, int] = {}
        for slot, passage in items:
            ids = []
            before: tuple[int, int] | None = None
            for s, e in sentence_spans(passage.text):
                key = (passage.doc_id, passage.start + s, passage.start + e)
                sentence = found.get(key)
                same_line = before is not None and "\n" not in passage.text[before[1]:s]
                if sentence is None:
                    lead = ""
                    if before is not None and same_line and _REFERS_BACK.match(
                            passage.text[s:e]):
                        lead = passage.text[before[0]:before[1]]
                    sentence = Sentence(len(found), passage.doc_id, passage.title,
                                        passage.text[s:e], passage.start + s, passage.start + e,
                                        lead=lead)
                    found[key] = sentence
                sentence.passages[slot] = s
                if same_line:
                    following[ids[-1]] = sentence.id
                ids.append(sentence.id)
                before = (s, e)
            by_passage[slot] = ids
        return cls(list(found.values()), by_passage, following)

    def containing(self, doc_id: str, start: int, end: int) -> Sentence | None:
        """The sentence of `doc_id` that covers document characters [start, end), if any."""
        for sentence in self.sentences:
            if sentence.doc_id == doc_id and sentence.start <= start and end <= sentence.end:
                return sentence
        return None


def answer_sentences(table: SentenceTable, documents: Mapping[str, str], doc_id: str | None,
                     context: str, answers: Iterable[tuple[str, int]]) -> list[int]:
    """Ids of the sentences that hold the gold answers of a SQuAD example, found by position:
    `documents` maps document id to text, the context is looked up in its document (`doc_id`,
    else every document) and each answer start is moved into the document. An answer whose
    context is not in the knowledge base is skipped."""
    candidates = [doc_id] if doc_id in documents else list(documents)
    out: list[int] = []
    for doc in candidates:
        offset = documents[doc].find(context) if doc is not None else -1
        if offset < 0:
            continue
        for text, start in answers:
            sentence = table.containing(doc, offset + start, offset + start + len(text))
            if sentence is not None and sentence.id not in out:
                out.append(sentence.id)
        if out:
            break
    return out
