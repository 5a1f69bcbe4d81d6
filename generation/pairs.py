"""Small talk written in a concierge's voice: (guest message, reply) pairs, said as they are
when the guest's message is near one of theirs.

    pairs = read_pairs(Path("data/smalltalk/concierge_pairs.yml"))
    save_pairs(pairs, out)                     # at training: MiniLM of every message,
                                               # pairs.npy + pairs.json next to the model

The file (YAML) is a list under `pairs:`, each item a `message` and a `reply`:

    pairs:
      - message: do you like rainy days?
        reply: I do, there's something cosy about the sound of rain.

A reply's closing offer of help ("Let me know if I can help with anything during your
stay.") is cut before it is indexed: the action steers back with its own line
(utter_steer_back). A pair the safety filter drops for its own message (a number, a price, a
hotel fact or name, a made-up persona, an unsafe word) or that promises a service is left
out, so a written reply never states what the knowledge base should answer. The concierge
filter's other checks (life story, prying, tone) are for students' replies, not these: "what
do you call a fake noodle? an impasta!" is a joke, not a prying question.

With `pair_reciprocal` (SamplingConfig) a pair is said only when the guest's message is at
least as near to its message as the nearest message of any other pair (reciprocal nearest
neighbours): a message that only half matches, nearer to another written message than to the
guest's, answers something else.

With `pair_same_kind` (kinds.py) a pair is said only to a message of its message's kind (a
question, a statement or a request; about the bot or not): "i feel lonely sometimes -> I'm
sorry you feel that way" does not answer "do you ever feel lonely?". The reciprocal check
then compares like with like: only a message of the same kind is a nearer neighbour.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from generation.concierge import concierge_problems
from generation.corpus import Conversation
from generation.errors import CorpusError
from generation.exemplars import ExemplarIndex
from generation.kinds import Kind, message_kind
from generation.safety import SafetyFilter

logger = logging.getLogger(__name__)

PAIRS_STEM = "pairs"  # pairs.npy, pairs.json in the model directory
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"  # the generator's (generator.DEFAULT_ENCODER)
_OFFER = re.compile(  # a closing offer of help: the action's steer-back line says it
    r"\b(?:let me know|i'm here if|i'm right here|i'm around|reach out|just say the word|"
    r"if there's anything|if anything comes up|how can i (?:make|help)|just ask|happy to help|"
    r"here to help|need a hand|anything i can)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The (message, reply) pairs of a pairs file; a CorpusError names a malformed item."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CorpusError(f"Cannot read the small-talk pairs {path}: {exc}") from exc
    items = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CorpusError(f"{path}: expected a list under 'pairs:' of items with a message "
                          "and a reply.")
    pairs = []
    for i, item in enumerate(items):
        message = item.get("message") if isinstance(item, dict) else None
        reply = item.get("reply") if isinstance(item, dict) else None
        if not isinstance(message, str) or not isinstance(reply, str) or not message.strip() \
                or not reply.strip():
            raise CorpusError(f"{path}: pair {i + 1} needs a non-empty 'message' and 'reply'.")
        pairs.append((message.strip(), reply.strip()))
    return pairs


def without_offer(reply: str) -> str:
    """`reply` without its closing sentences that offer help (one sentence is always kept)."""
    sentences = [s for s in _SENTENCE.findall(reply) if s.strip()]
    while len(sentences) > 1 and _OFFER.search(sentences[-1]):
        sentences.pop()
    return "".join(sentences).strip()


def pair_problems(reply: str, user_text: str, safety: SafetyFilter) -> list[str]:
    """Why a written `reply` must not be said to `user_text`: the safety filter's problems,
    and a promise of service."""
    return [*safety.problems(reply, user_text),
            *(p for p in concierge_problems(reply, user_text) if p == "promise")]


def fit_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs, their replies without a closing offer, that may be said to their message."""
    safety = SafetyFilter()
    cut = [(m, without_offer(r)) for m, r in pairs]
    kept = [(m, r) for m, r in cut if not pair_problems(r, m, safety)]
    if len(kept) < len(pairs):
        logger.info("generation.pairs.dropped %d of %d (safety filter or a promise)",
                    len(pairs) - len(kept), len(pairs))
    return kept


def pairs_index(encoder: Any, pairs: Sequence[tuple[str, str]], embed: Any = None
                ) -> ExemplarIndex:
    """The index of the fit pairs: each message embedded once, its reply beside it."""
    conversations = [Conversation(f"pairs{i}/0", (m, r))
                     for i, (m, r) in enumerate(fit_pairs(pairs))]
    return ExemplarIndex.of_pairs(encoder, conversations, embed)


def save_pairs(pairs: Sequence[tuple[str, str]], out: Path, encoder: Any = None) -> int:
    """Index the fit `pairs` into out/pairs.npy and out/pairs.json (`encoder` default:
    MiniLM); how many were indexed."""
    if encoder is None:
        from retrieval.embedder import get_embedder

        encoder = get_embedder(ENCODER, device="cpu")
    out.mkdir(parents=True, exist_ok=True)
    index = pairs_index(encoder, pairs)
    index.save(out, PAIRS_STEM)
    return len(index)


def pair_kinds(index: ExemplarIndex) -> list[Kind]:
    """The kind of each pair's message (kinds.py), in the index's order (none for an older
    index that saved no messages)."""
    if len(index.contexts) != len(index):
        return []
    return [message_kind(str(m)) for m in index.contexts]


def nearest_other(index: ExemplarIndex, kinds: Sequence[Kind] | None = None) -> np.ndarray:
    """(n,) each pair message's cosine to the nearest message of another pair (another text;
    of the same kind where `kinds` are given; -1 where there is none)."""
    vectors = np.asarray(index.vectors, dtype=np.float32)  # (n, D) unit rows
    if not len(vectors):
        return np.zeros(0, dtype=np.float32)
    texts = index.contexts if len(index.contexts) == len(vectors) else range(len(vectors))
    _, codes = np.unique(np.asarray([str(t) for t in texts]), return_inverse=True)
    likeness = vectors @ vectors.T  # (n, n)
    likeness[codes[:, None] == codes[None, :]] = -1.0  # itself, and its own text elsewhere
    if kinds is not None:
        if len(kinds) != len(vectors):
            raise ValueError(f"nearest_other: {len(kinds)} kinds for {len(vectors)} pairs.")
        _, kind_codes = np.unique(np.asarray([f"{k.act}/{k.to_bot}" for k in kinds]),
                                  return_inverse=True)
        likeness[kind_codes[:, None] != kind_codes[None, :]] = -1.0  # another kind
    return likeness.max(axis=1)
