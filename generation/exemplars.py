"""Retrieve and refine (Weston et al. 2018): the replies people gave to turns like the user's,
put in the prompt as an exemplar the model copies or adapts.

    index = ExemplarIndex.build(encoder, pairs)        # at training: MiniLM of every context
    index.save(out)                                    # exemplars.npy + exemplars.json
    index = ExemplarIndex.load(out)
    index.search(encoder.encode(["do you like board games?"]), k=4)   # [[(row, cosine)...]]

A training pair is rendered after its exemplar, the reply given to the nearest other context
of the index (never one of its own conversation), and the model learns when to take it up:

    Hint: i love monopoly, what about you?
    User: do you play any games?
    Bot: i like board games, monopoly is my favourite

The index keeps only replies fit to be said (no generic reply, nothing the safety filter
drops for any user), so an exemplar never primes a hotel fact or a made-up life story.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generation.concierge import concierge_problems
from generation.config import SamplingConfig
from generation.corpus import Conversation, on_topic, reply_key
from generation.errors import ModelLoadError
from generation.rerank import quality_problems
from generation.safety import SafetyFilter

logger = logging.getLogger(__name__)

VECTORS_FILE = "exemplars.npy"  # (n, D) float16 unit rows: the contexts' MiniLM embeddings
TEXTS_FILE = "exemplars.json"  # {"encoder", "sources", "replies", "contexts" (newer indexes)}
_CHUNK = 1024  # queries scored at a time: (1024, n) float32 scores


@dataclass(frozen=True, slots=True)
class ExemplarIndex:
    """Contexts' embeddings with the reply each got; `sources` is the conversation a pair came
    from (a pair is never its own exemplar's conversation)."""

    vectors: Any  # (n, D) float32, unit rows
    replies: tuple[str, ...]
    sources: tuple[str, ...]
    encoder: str = ""
    contexts: tuple[str, ...] = ()  # the turn each reply answered (empty in older indexes)

    def __len__(self) -> int:
        return len(self.replies)

    @classmethod
    def build(cls, encoder: Any, pairs: Sequence[Conversation], generic: Sequence[str] = ()
              ) -> ExemplarIndex:
        """The index of the `pairs` whose reply may be said (exemplar_pairs)."""
        return cls.of_pairs(encoder, exemplar_pairs(pairs, generic))

    @classmethod
    def of_pairs(cls, encoder: Any, pairs: Sequence[Conversation], embed: Any = None
                 ) -> ExemplarIndex:
        """The index of exactly these `pairs`; each distinct context is embedded once, by
        `embed(encoder, texts)` (default: encode)."""
        contexts = sorted({p.turns[0] for p in pairs})
        vectors = (embed or encode)(encoder, contexts)
        row = {text: i for i, text in enumerate(contexts)}
        return cls(vectors[[row[p.turns[0]] for p in pairs]] if pairs else vectors,
                   tuple(p.turns[1] for p in pairs), tuple(p.id.split("/")[0] for p in pairs),
                   str(getattr(encoder, "name", "")), tuple(p.turns[0] for p in pairs))

    def search(self, queries: Any, k: int, exclude: Sequence[str] | None = None
               ) -> list[list[tuple[int, float]]]:
        """The `k` nearest rows (row, cosine) of each query vector, best first; with
        `exclude` (one source per query) rows of that source are skipped."""
        queries = np.asarray(queries, dtype=np.float32)  # (Q, D)
        if not len(self) or k < 1:
            return [[] for _ in range(len(queries))]
        import torch

        codes, excluded = None, None
        if exclude is not None:  # sources as integers: comparing strings cost minutes
            names, inverse = np.unique(np.asarray(self.sources), return_inverse=True)
            number = {name: i for i, name in enumerate(names.tolist())}
            codes = torch.from_numpy(inverse.astype(np.int64))  # (n,)
            excluded = torch.tensor([number.get(e, -1) for e in exclude])  # (Q,)
        index = torch.from_numpy(np.ascontiguousarray(self.vectors))  # (n, D)
        out: list[list[tuple[int, float]]] = []
        for start in range(0, len(queries), _CHUNK):
            scores = torch.from_numpy(queries[start:start + _CHUNK]) @ index.T  # (q, n)
            if codes is not None and excluded is not None:
                own = codes[None, :] == excluded[start:start + _CHUNK, None]  # (q, n)
                scores.masked_fill_(own, float("-inf"))
            # Not topk: the same vector in two rows can score a last bit apart (the matrix
            # product sums rows in different orders), so rank on 5 decimals, ties in the
            # index's order, on every CPU.
            keys = torch.round(scores, decimals=5)
            rows = torch.sort(keys, dim=1, descending=True, stable=True).indices[:, :k]  # (q, k)
            values = torch.gather(scores, 1, rows)
            out.extend([[(r, v) for r, v in zip(row, value) if v != float("-inf")]
                        for row, value in zip(rows.tolist(), values.tolist())])
        return out

    def save(self, out: Path, stem: str = "exemplars") -> None:
        """<stem>.npy and <stem>.json in `out` (the written pairs' index: pairs.*)."""
        np.save(out / f"{stem}.npy", self.vectors.astype(np.float16))
        (out / f"{stem}.json").write_text(json.dumps({"encoder": self.encoder,
                                                  "sources": list(self.sources),
                                                  "replies": list(self.replies),
                                                  "contexts": list(self.contexts)}),
                                      encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, stem: str = "exemplars") -> ExemplarIndex | None:
        """The index saved in `directory` under `stem`, or None when it has none (a model
        trained without exemplars)."""
        vectors_path, texts_path = directory / f"{stem}.npy", directory / f"{stem}.json"
        if not vectors_path.is_file():
            return None
        try:
            vectors = np.load(vectors_path).astype(np.float32)
            texts = json.loads(texts_path.read_text(encoding="utf-8"))
            replies, sources = tuple(texts["replies"]), tuple(texts["sources"])
            contexts = tuple(texts.get("contexts") or ())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"Unreadable exemplar index in {directory}: {exc}. Run "
                                 "`xingkong train generation --force`.") from exc
        if (vectors.ndim != 2 or len(vectors) != len(replies) or len(sources) != len(replies)
                or len(contexts) not in (0, len(replies))):
            raise ModelLoadError(f"The exemplar index in {directory} is inconsistent "
                                 f"({vectors.shape} vectors, {len(replies)} replies). Run "
                                 "`xingkong train generation --force`.")
        return cls(vectors, replies, sources, str(texts.get("encoder", "")), contexts)


def exemplar_pairs(pairs: Sequence[Conversation], generic: Sequence[str] = ()
                   ) -> list[Conversation]:
    """The pairs whose reply may serve as an exemplar: not one of the `generic` replies (they
    fit anything, so say nothing about the topic) and nothing the safety filter drops whatever
    the user said (numbers, prices, dates, hotel words, life stories, unsafe words). One
    pair per (context, reply)."""
    dropped = frozenset(generic)
    safety = SafetyFilter()
    seen: set[tuple[str, str]] = set()
    kept = []
    for pair in pairs:
        context, reply = pair.turns[0], pair.turns[1]
        if (context, reply) in seen or reply_key(reply) in dropped:
            continue
        if safety.problems(reply, ""):
            continue
        seen.add((context, reply))
        kept.append(pair)
    return kept


def retrieval_pairs(pairs: Sequence[Conversation], generic: Sequence[str] = (),
                    limit: int | None = None, seed: int = 0) -> list[Conversation]:
    """The exemplar_pairs of a retrieve-only index (TrainingConfig.retrieval_index) whose reply
    passes the sampler's own quality checks (a human reply said as it is must be finished,
    2-14 words, not repetitive) and a concierge could say (concierge.py: no life story,
    promise or prying question; 29k of the 39k pairs), with at most `limit` distinct
    contexts: first the pairs whose reply takes up a content word of its context (it
    answered that turn, not the conversation), then the others in a seeded random order."""
    config = SamplingConfig()
    fit = [p for p in exemplar_pairs(pairs, generic)
           if not quality_problems(p.turns[1], True, p.turns[0], config)
           and not concierge_problems(p.turns[1], p.turns[0])]
    answering = [p for p in fit if on_topic(p.turns[0], p.turns[1])]
    rest = [p for p in fit if not on_topic(p.turns[0], p.turns[1])]
    random.Random(seed).shuffle(rest)
    if limit is None:
        return answering + rest
    contexts: set[str] = set()
    kept = []
    for pair in answering + rest:
        if pair.turns[0] not in contexts and len(contexts) == limit:
            continue
        contexts.add(pair.turns[0])
        kept.append(pair)
    return kept


def encode(encoder: Any, texts: Sequence[str]) -> Any:
    """(len(texts), D) float32 unit rows; empty texts allowed."""
    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)  # (N, D)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
