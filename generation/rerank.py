"""Choosing among sampled replies: quality checks, then a score that rewards relevance to
the user's message (cosine of MiniLM sentence embeddings) and, MMI-style, replies the context
made more likely than they are on their own (log p(reply | context) - log p(reply)), which
pushes down the generic "i don't know" that a small model prefers. For a concierge's voice
the score also counts a candidate's likeness to replies in that voice (`persona`,
concierge.py) and takes off for a reply that ends with a question (the steer-back line
asks the next one) and, per word, for long ones."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from generation.concierge import is_question, word_count
from generation.config import SamplingConfig
from generation.corpus import reply_key

DANGLING = {"and", "or", "but", "the", "a", "an", "to", "of", "with", "because", "so", "if",
            "my", "your", "i", "is", "are", "in", "for", "that", "like"}
_WORD = re.compile(r"[\w']+")


@dataclass(slots=True)
class Candidate:
    """One sampled reply with everything that decided its fate."""

    text: str
    finished: bool
    problems: list[str] = field(default_factory=list)
    relevance: float = 0.0
    mmi: float = 0.0
    likelihood: float = 0.0  # mean log p(reply | context) per token
    score: float = float("-inf")
    exemplar: str = ""  # the retrieved reply in its prompt ("" without one)
    retrieved: bool = False  # the candidate is that exemplar itself, not a sample
    context_similarity: float = 0.0  # retrieved: cosine of the turn it answered to the message
    persona: float = 0.0  # MiniLM likeness to replies in the concierge's voice (concierge.py)
    written: bool = False  # the reply of a pair written in the concierge's voice (pairs.py)

    @property
    def kept(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "problems": list(self.problems),
                "relevance": round(self.relevance, 4), "mmi": round(self.mmi, 4),
                "likelihood": round(self.likelihood, 4),
                "score": round(self.score, 4) if self.kept else None,
                "exemplar": self.exemplar, "retrieved": self.retrieved,
                "context_similarity": round(self.context_similarity, 4),
                "persona": round(self.persona, 4), "written": self.written}


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def quality_problems(text: str, finished: bool, user_text: str, config: SamplingConfig,
                     known_words: frozenset[str] = frozenset(),
                     generic: frozenset[str] = frozenset()) -> list[str]:
    """Why `text` is not a usable reply: cut off, too short or long, repetitive, an echo (or
    nearly one), (when `known_words` is given) a word that is no word of the corpus nor of
    the user's message, or one of the `generic` replies (reply_key form) that fit any
    message."""
    words = words_of(text)
    found = []
    if not finished:
        found.append("unfinished")
    if len(words) < config.min_words:
        found.append("too short")
    if len(words) > config.max_words:
        found.append("too long")
    if words and words[-1] in DANGLING and not text.rstrip().endswith(("?", "!", ".")):
        found.append("unfinished sentence")
    if _repetitive(words):
        found.append("repetition")
    said = set(words_of(user_text))
    if words and (words == words_of(user_text)
                  or (len(words) >= 3 and sum(w in said for w in words) >= 0.8 * len(words))):
        found.append("echo")  # the message said back, or nearly all of the reply's words
    if known_words and set(words) - known_words - set(words_of(user_text)):
        found.append("misspelt")  # one made-up word spoils a short reply
    if generic and reply_key(text) in generic:
        found.append("generic")
    return found


def _repetitive(words: Sequence[str]) -> bool:
    """A word three times in a row, or under 60% distinct word pairs in a longer reply."""
    if any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2)):
        return True
    pairs = list(zip(words, words[1:]))
    return len(pairs) >= 5 and len(set(pairs)) / len(pairs) < 0.6


def rank(candidates: Sequence[Candidate], config: SamplingConfig,
         min_logprob: float | None = None) -> list[Candidate]:
    """Score the kept candidates (relevance, mmi and likelihood already set), drop the
    off-topic ones, the fluency gate's (sampled ones less likely than `min_logprob`) and those
    scoring under `config.min_score`; return the kept ones best first."""
    kept = []
    for c in candidates:
        if c.kept and c.relevance < config.min_relevance:
            c.problems.append("off topic")
        if (c.kept and min_logprob is not None and c.likelihood < min_logprob
                and not c.retrieved):  # a person wrote it: fluent, if unlikely to the model
            c.problems.append("not fluent")
        if c.kept:
            c.score = (config.relevance_weight * c.relevance + config.mmi_weight * c.mmi
                       + config.likelihood_weight * c.likelihood
                       + config.context_weight * c.context_similarity
                       + config.persona_weight * c.persona
                       - config.question_penalty * is_question(c.text)
                       - config.word_penalty * word_count(c.text))
            if config.min_score is not None and c.score < config.min_score:
                c.problems.append("low score")
                continue
            kept.append(c)
    return sorted(kept, key=lambda c: c.score, reverse=True)
