"""SQuAD-format examples cut down to the one sentence the reader reads at answer time.

The knowledge answerer hands the reader a single chosen sentence, so a reader that first
learns reading comprehension from whole passages (`knowledge.reader.pretrain_qa`) spends
most of its steps on text it will never see that way: a 150-word passage is about five times
the word pieces of its sentence. Cut to sentences, an answerable question keeps the sentence
(or the run of sentences) that holds its answer; an unanswerable one gets the sentence of its
passage that shares the most words with it, the one a retriever would have chosen, which is
what the reader must learn to decline.

    short = sentence_examples(load_qa("data/qa_pretrain/house_qa.json"))
    pairs = sentence_triples(load_qa("data/qa_pretrain/house_qa.json"), random.Random(13))

`sentence_triples` gives the sentence encoder the same data: (question, its titled answer
sentence, another sentence of the same passage) for each answerable question, and
`rerank_groups` the reranker (retrieval.reranker): each question with its titled answer
sentence (None for an unanswerable one) and the other sentences of its passage that share
the most words with it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from retrieval.bm25 import tokenize
from retrieval.qa_metrics import QAExample
from retrieval.sentences import sentence_spans


def sentence_examples(examples: Sequence[QAExample]) -> list[QAExample]:
    """Each example with its context cut to a sentence (see the module docstring); an
    example whose answer no sentence covers keeps its whole context."""
    return [_cut(e) for e in examples]


def _cut(example: QAExample) -> QAExample:
    spans = sentence_spans(example.context)
    if not spans:
        return example
    if example.is_impossible:
        s, e = _most_alike(example.question, example.context, spans)
        return QAExample(example.id, example.question, example.context[s:e], (),
                         example.title)
    text, start = example.answers[0]
    end = start + len(text)
    covering = [(s, e) for s, e in spans if s < end and e > start]
    if not covering or covering[0][0] > start or covering[-1][1] < end:
        return example
    s, e = covering[0][0], covering[-1][1]
    return QAExample(example.id, example.question, example.context[s:e],
                     ((text, start - s),), example.title)


def _most_alike(question: str, context: str,
                spans: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The span sharing the most (stemmed, non-stop) words with the question; the first on a
    tie."""
    words = set(tokenize(question))
    return max(spans, key=lambda span: len(words & set(tokenize(context[span[0]:span[1]]))))


def sentence_triples(examples: Sequence[QAExample], rng: random.Random
                     ) -> list[tuple[str, str, str]]:
    """(question, "title: answer sentence", "title: another sentence of its passage") for
    each answerable example whose answer one run of sentences holds, as the sentence encoder
    sees KB sentences (retrieval.sentences.Sentence.search_text); the title is the article's,
    after any "source/" prefix."""
    out = []
    for whole in examples:
        if whole.is_impossible:
            continue
        cut = _cut(whole)
        others = [whole.context[s:e] for s, e in sentence_spans(whole.context)
                  if whole.context[s:e] != cut.context]
        if cut.context == whole.context or not others:
            continue
        title = whole.title.split("/", 1)[-1]
        out.append((cut.question, f"{title}: {cut.context}", f"{title}: {rng.choice(others)}"))
    return out


def rerank_groups(examples: Sequence[QAExample], negatives: int
                  ) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(question, "title: answer sentence" or None, up to `negatives` "title: sentence" of
    its passage without the answer, most words shared with the question first) per example
    whose answer one run of sentences holds, or that has no answer."""
    out = []
    for whole in examples:
        cut = _cut(whole)
        if not whole.is_impossible and cut.context == whole.context:
            continue
        words = set(tokenize(whole.question))
        others = [whole.context[s:e] for s, e in sentence_spans(whole.context)
                  if whole.is_impossible or whole.context[s:e] != cut.context]
        others.sort(key=lambda text: -len(words & set(tokenize(text))))
        title = whole.title.split("/", 1)[-1]
        answer = None if whole.is_impossible else f"{title}: {cut.context}"
        wrong = tuple(f"{title}: {text}" for text in others[:negatives])
        if wrong:
            out.append((whole.question, answer, wrong))
    return out
