"""Long messages: a question inside what guests write around it.

Guests rarely send a bare question: "we're driving down from munich with the kids on friday,
is there parking at the hotel? thanks!". The models learn from short questions, so a share of
their training questions is also seen wrapped in such talk (`wrap`), one or two things said
before it and sometimes one after. The lines (guest_talk.txt) were written blind, from chat
habits alone: about the guest, never a fact of a hotel, and never a question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retrieval.qa_metrics import QAExample
    from retrieval.reranker import Group

TALK_FILE = Path(__file__).with_name("guest_talk.txt")
AFTER_MARK = "> "  # a line said after the question starts with this mark


@dataclass(frozen=True, slots=True)
class Talk:
    before: tuple[str, ...]
    after: tuple[str, ...]


@lru_cache(maxsize=1)
def load_talk(path: Path = TALK_FILE) -> Talk:
    """The lines of `path`: blank lines and `#` comments skipped."""
    before, after = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(AFTER_MARK):
            after.append(line[len(AFTER_MARK):].strip())
        else:
            before.append(line)
    return Talk(tuple(before), tuple(after))


def wrap(question: str, rng: random.Random, talk: Talk | None = None) -> str:
    """`question` after one thing said before it (two, a third of the time) and, a third
    of the time, followed by one said after it."""
    talk = talk or load_talk()
    said = rng.sample(talk.before, 2 if rng.random() < 0.33 else 1)
    q = question.strip()
    text = " ".join(_end(s) for s in said) + " " + q[:1].lower() + q[1:]
    if talk.after and rng.random() < 0.33:
        text += " " + rng.choice(talk.after)
    return text


def _end(line: str) -> str:
    """A line as a finished clause: guests end one with a full stop, a comma or nothing."""
    return line if line[-1:] in ".!,;:" else line + "."


def talk_copies(examples: list[QAExample], rng: random.Random,
                share: float) -> list[QAExample]:
    """A `share` of the answerable `examples`, each question wrapped, under its own id
    (`#talk`: a reader never holds it out)."""
    return [replace(e, id=f"{e.id}#talk", question=wrap(e.question, rng))
            for e in examples if not e.is_impossible and rng.random() < share]


def talk_groups(groups: list[Group], rng: random.Random, share: float) -> list[Group]:
    """Reranker rows with a `share` of their questions wrapped in place of the bare one."""
    return [(wrap(q, rng), answer, wrong) if rng.random() < share else (q, answer, wrong)
            for q, answer, wrong in groups]
