"""A small Okapi BM25 index over passages, kept in memory and updated incrementally, and
reciprocal rank fusion (RRF) to combine its ranking with the dense one.

Tokens are lowercased word characters with English stop words dropped and a light plural
stemmer ("rooms" -> "room", "ferries" -> "ferry"); IDF is the non-negative Lucene form
log(1 + (N - df + 0.5) / (df + 0.5)). Keys are the integer ids the dense index uses.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"\w+", re.UNICODE)
STOP_WORDS = frozenset("""
a an and are as at be but by can could do does for from had has have how i if in into is it
its me my of on or our so than that the their them then there these they this to was we were
what when where which who whom why will with would you your
""".split())


def tokenize(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


class BM25:
    """Okapi BM25 with parameters `k1` (term-frequency saturation) and `b` (length norm)."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._lengths: dict[int, int] = {}
        self._terms: dict[int, Counter[str]] = {}
        self._postings: dict[str, dict[int, int]] = {}
        self._total = 0

    def __len__(self) -> int:
        return len(self._lengths)

    def add(self, keys: Sequence[int], texts: Sequence[str]) -> None:
        """Index `texts` under `keys`; a key already present is replaced."""
        if len(keys) != len(texts):
            raise ValueError(f"{len(keys)} keys for {len(texts)} texts")
        self.remove(k for k in keys if k in self._lengths)
        for key, text in zip(keys, texts):
            counts = Counter(tokenize(text))
            self._terms[key] = counts
            self._lengths[key] = sum(counts.values())
            self._total += self._lengths[key]
            for term, tf in counts.items():
                self._postings.setdefault(term, {})[key] = tf

    def remove(self, keys: Iterable[int]) -> None:
        for key in list(keys):
            counts = self._terms.pop(key, None)
            if counts is None:
                continue
            self._total -= self._lengths.pop(key)
            for term in counts:
                posting = self._postings[term]
                del posting[key]
                if not posting:
                    del self._postings[term]

    def search(self, queries: Sequence[str], top_k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to `top_k` (key, score) pairs with score > 0, best first."""
        n = len(self._lengths)
        if n == 0:
            return [[] for _ in queries]
        avgdl = self._total / n or 1.0
        out = []
        for query in queries:
            scores: dict[int, float] = {}
            for term in set(tokenize(query)):
                posting = self._postings.get(term)
                if not posting:
                    continue
                idf = math.log(1.0 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
                for key, tf in posting.items():
                    norm = self.k1 * (1.0 - self.b + self.b * self._lengths[key] / avgdl)
                    scores[key] = scores.get(key, 0.0) + idf * tf * (self.k1 + 1.0) / (tf + norm)
            out.append(heapq.nlargest(top_k, scores.items(), key=lambda kv: (kv[1], -kv[0])))
        return out


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], *, k: int = 60,
                           weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """Fuse ranked key lists: score(key) = sum_i w_i / (k + rank_i(key)), ranks from 1."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def fuse(dense: Sequence[tuple[int, float]], sparse: Sequence[tuple[int, float]], *,
         k: int = 60) -> list[tuple[int, float, float | None, float | None]]:
    """RRF of a dense and a sparse ranking: (key, fused score, dense score, sparse score)."""
    dense_scores, sparse_scores = dict(dense), dict(sparse)
    fused = reciprocal_rank_fusion([list(dense_scores), list(sparse_scores)], k=k)
    return [(key, score, dense_scores.get(key), sparse_scores.get(key)) for key, score in fused]
