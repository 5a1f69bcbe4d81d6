"""Words, word pieces and candidate spans: what the span extractor and the BIO tagger share.

A word is a pre-token (letters joined by inner . @ - + /, one CJK ideograph, or one other
punctuation mark) with its char offsets and the word pieces it covers, so char offsets map to
pieces and back. Labels are (entity, role, group), written "date#checkin@1" as one name.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from nlu.errors import NLUTrainingError
from nlu.types import Example

logger = logging.getLogger(__name__)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # ideographs are one word each, as in BERT
_LETTERS = rf"(?:(?![{_CJK}])[\w\u0300-\u036f])+"  # letters, digits, combining accents
# A word: letters joined by inner . @ - + / (emails, SL-482913, 2027-01-15, 15/01/2027 stay
# whole), one CJK ideograph, or one other punctuation mark or symbol.
_WORD_RE = re.compile(rf"{_LETTERS}(?:[.@\-+/]{_LETTERS})*|[{_CJK}]|[^\w\s]")

SpanLabel = tuple[str, str | None, str | None]  # (entity, role, group)


@dataclass(frozen=True, slots=True)
class Word:
    """A pre-token: characters [start, end) of the text, word pieces [first_token, last_token]."""

    start: int
    end: int
    first_token: int
    last_token: int


@dataclass(frozen=True, slots=True)
class EncodedText:
    text: str
    token_ids: tuple[int, ...]  # word pieces, no special tokens
    words: tuple[Word, ...]  # only words that have at least one word piece


def split_words(text: str) -> list[tuple[int, int]]:
    """Char spans of the words (whitespace/punctuation pre-tokens, see _WORD_RE)."""
    return [match.span() for match in _WORD_RE.finditer(text)]


def align_words(text: str, offsets: list[tuple[int, int]]) -> tuple[Word, ...]:
    """Give each word the word pieces whose char offsets overlap it; a piece's word is read back
    the same way. Words with no piece (a zero-width space, say) are dropped."""
    spans = split_words(text)
    char_word = [-1] * len(text)
    for index, (start, end) in enumerate(spans):
        char_word[start:end] = [index] * (end - start)
    first, last = [-1] * len(spans), [-1] * len(spans)
    for token, (start, end) in enumerate(offsets):
        for index in {char_word[c] for c in range(start, end)} - {-1}:
            first[index] = token if first[index] < 0 else first[index]
            last[index] = token
    return tuple(Word(s, e, first[i], last[i]) for i, (s, e) in enumerate(spans) if first[i] >= 0)


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[EncodedText]:
    if not texts:
        return []
    encoding = tokenizer(
        texts,
        add_special_tokens=False,
        return_offsets_mapping=True,
        padding=False,
        truncation=False,
    )
    rows = zip(texts, encoding["input_ids"], encoding["offset_mapping"], strict=True)
    return [
        EncodedText(text, tuple(ids), align_words(text, [tuple(o) for o in offsets]))
        for text, ids, offsets in rows
    ]


def word_windows(words: tuple[Word, ...], max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Cut words into windows [w0, w1) of at most `max_tokens` pieces (a longer single word gets a
    window of its own, cropped). Neighbours share `overlap` words, so every span of up to
    overlap + 1 words lies whole inside some window."""
    windows: list[tuple[int, int]] = []
    w0 = 0
    while w0 < len(words):
        w1 = w0 + 1
        while w1 < len(words) and words[w1].last_token - words[w0].first_token < max_tokens:
            w1 += 1
        windows.append((w0, w1))
        if w1 == len(words):
            break
        w0 = max(w0 + 1, w1 - overlap)
    return windows


def enumerate_spans(start: int, stop: int, max_span_length: int) -> list[tuple[int, int]]:
    """All (i, j) with start <= i <= j < stop and j - i < max_span_length, by start then length."""
    return [(i, j) for i in range(start, stop) for j in range(i, min(i + max_span_length, stop))]


def label_name(label: SpanLabel) -> str:
    entity, role, group = label
    role_part = f"#{role}" if role is not None else ""
    return entity + role_part + (f"@{group}" if group is not None else "")


def collect_labels(examples: list[Example], component: str) -> list[SpanLabel]:
    """The sorted (entity, role, group) labels of the data; NLUTrainingError when there are none."""
    if not examples:
        raise NLUTrainingError(f"{component}: no training examples. Give at least one Example.")
    labels = {(e.entity, e.role, e.group) for ex in examples for e in ex.entities}
    if not labels:
        raise NLUTrainingError(
            f"{component}: none of the {len(examples)} training examples has an entity. Annotate "
            "entities in the NLU data, e.g. 'book a room in [Lisbon](city)', or leave the "
            "entity extractor out of the pipeline."
        )
    return sorted(labels, key=lambda lab: (lab[0], lab[1] or "", lab[2] or ""))


def gold_word_spans(example: Example, words: tuple[Word, ...]) -> list[tuple[int, int, SpanLabel]]:
    """Each gold entity as (first word, last word, label): the words its characters overlap."""
    spans = []
    for entity in example.entities:
        covered = [i for i, w in enumerate(words) if w.start < entity.end and entity.start < w.end]
        if covered:
            spans.append((covered[0], covered[-1], (entity.entity, entity.role, entity.group)))
        else:
            logger.warning("nlu.entities.unaligned entity=%s start=%d", entity.entity, entity.start)
    return spans


def split_validation(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    n_val = int(len(examples) * fraction)
    if n_val < 1 or n_val >= len(examples):
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_val])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]
