"""What a guest actually gets for a question: `xingkong test kb --through-nlu`.

Each question of a SQuAD-format file is typed into a fresh conversation of the trained
assistant (the real NLU, policies, fallback chain and custom actions, in process), and the
bot's reply is scored:

    answerable    right      a reply contains a gold answer (SQuAD-normalised), or one of the
                             test file's `alternatives`: the same fact where another document
                             states it (`right_gold_only` counts the gold answers alone)
                  wrong      a knowledge answer was given, without a gold answer in it
                  declined   the bot said it could not answer (or gave its out-of-scope /
                             fallback response)
                  other      the conversation went elsewhere (a form started, small talk...)
    unanswerable  declined is right; a knowledge answer is wrong; other is reported

The highlighted span (message metadata `knowledge.answer`) gets SQuAD F1 against the gold
answers. Messages of an out-of-domain file (`ood:` list) are sent the same way: what matters
is the share the bot does NOT answer from the knowledge base.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.project.project import Project
from bot.manager import DialogueManager, UserMessage
from bot.state.events import ACTION_LISTEN_NAME, ActionExecuted, UserUttered

DECLINES = ("utter_cannot_answer", "utter_out_of_scope", "utter_default", "utter_ask_rephrase",
            "action_default_fallback", "action_two_stage_fallback")


@dataclass(slots=True)
class GuestTurn:
    question: str
    golds: list[str]
    outcome: str  # right | wrong | declined | other
    intent: str | None
    confidence: float
    actions: list[str]
    reply: str
    span: str | None
    span_f1: float | None
    ms: float
    fallback: dict[str, Any] | None = None  # what the fallback chain tried, and why
    kb_alone: str | None = None   # the answerer alone on the question: right | wrong | declined
    kb_confidence: float | None = None  # ... and its confidence
    kb_best_right: bool | None = None  # ... and whether its best sentence, before the
    # confidence threshold, holds the answer (answerable questions)
    gold_only_right: bool | None = None  # the reply holds a gold answer, alternatives aside


@dataclass(slots=True)
class GuestReport:
    path: str
    answerable: int = 0
    unanswerable: int = 0
    right: float = 0.0          # share of answerable questions whose reply holds the answer
    right_gold_only: float = 0.0  # ... a gold answer, not counting the alternatives
    declined: float = 0.0       # share of unanswerable questions declined
    span_f1: float = 0.0        # mean span F1 over answerable questions (0 when not answered)
    answerable_outcomes: dict[str, int] = field(default_factory=dict)
    unanswerable_outcomes: dict[str, int] = field(default_factory=dict)
    intents: dict[str, int] = field(default_factory=dict)
    kb_alone_right: float = 0.0  # share of answerable questions the answerer alone gets right
    kb_alone_declined: float = 0.0  # share of unanswerable ones it declines
    # answerable questions the answerer alone gets right but the guest does not, by intent
    # and what happened ("book_room: booking_form", "ask_question: wrong", ...)
    lost: dict[str, int] = field(default_factory=dict)
    # answerable questions by where they are won or lost (LOSSES), with the answerer alone
    losses: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    turns: list[GuestTurn] = field(default_factory=list)


def contains_answer(reply: str, golds: Sequence[str]) -> bool:
    from retrieval.qa_metrics import normalize_answer

    said = f" {normalize_answer(reply)} "
    return any(f" {normalize_answer(g)} " in said for g in golds if normalize_answer(g))


def score_turn(question: str, golds: list[str], messages: list[dict[str, Any]],
               actions: list[str], parse: dict[str, Any], ms: float,
               fallback: dict[str, Any] | None = None,
               gold_only: list[str] | None = None) -> GuestTurn:
    """The reply scored against `golds` (gold answers and alternatives); `gold_only` (the
    gold answers alone, default `golds`) for `gold_only_right`."""
    from retrieval.qa_metrics import f1

    reply = " ".join(m.get("text") or "" for m in messages)
    knowledge = next(((m.get("metadata") or {}).get("knowledge") for m in messages
                      if (m.get("metadata") or {}).get("knowledge")), None)
    span = knowledge.get("answer") if knowledge else None
    said = [(m.get("metadata") or {}).get("utter_action") for m in messages]
    declined = knowledge is None and any(a in DECLINES for a in (*actions, *said))
    if golds:
        if contains_answer(reply, golds):
            outcome = "right"
        else:
            outcome = "wrong" if knowledge else ("declined" if declined else "other")
    else:
        outcome = "wrong" if knowledge else ("declined" if declined else "other")
    intent = (parse.get("intent") or {})
    turn = GuestTurn(question, golds, outcome, intent.get("name"),
                     round(float(intent.get("confidence") or 0.0), 4), actions, reply, span,
                     f1(span, golds) if golds else None, round(ms, 1), fallback)
    if golds:
        turn.gold_only_right = contains_answer(reply, golds if gold_only is None else gold_only)
    return turn


def score_alone(turn: GuestTurn, answer: Any, best: Any = None) -> None:
    """Mark `turn` with what the answerer alone (no NLU, no dialogue) does with its question;
    `best` is its answer before the confidence threshold (AnswerTrace.best)."""
    turn.kb_confidence = round(float(answer.confidence), 4)
    if turn.golds:
        turn.kb_best_right = best is not None and contains_answer(
            best.sentence or best.text or "", turn.golds)
    if answer.text is None:
        turn.kb_alone = "declined"
    elif turn.golds and contains_answer(answer.reply or "", turn.golds):
        turn.kb_alone = "right"
    else:
        turn.kb_alone = "wrong"


async def ask(manager: DialogueManager, question: str, golds: list[str],
               sender: str, gold_only: list[str] | None = None) -> GuestTurn:
    """One question typed into a fresh conversation (`sender`), and the reply scored."""
    started = time.perf_counter()
    result = await manager.handle_message(UserMessage(question, sender))
    ms = (time.perf_counter() - started) * 1000
    events = result.tracker.events
    user_at = max(i for i, e in enumerate(events) if isinstance(e, UserUttered))
    actions = [e.name for e in events[user_at:]
               if isinstance(e, ActionExecuted) and e.name != ACTION_LISTEN_NAME]
    parse = events[user_at].parse_data or {}
    fallback = next((d["fallback"] for d in result.diagnostics if "fallback" in d), None)
    return score_turn(question, golds, result.messages, actions, parse, ms, fallback,
                      gold_only)


def _questions(path: Path, limit: int | None) -> list[tuple[str, list[str], list[str]]]:
    """(question, gold answers and alternatives, gold answers) of a test file."""
    from retrieval.qa_metrics import load_qa

    return [(ex.question, ex.accepted_texts(), ex.answer_texts)
            for ex in load_qa(path, limit=limit)]


def _ood_messages(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [str(m) for m in data.get("ood") or []]


def _report(path: Path, turns: list[GuestTurn]) -> GuestReport:
    answerable = [t for t in turns if t.golds]
    unanswerable = [t for t in turns if not t.golds]
    report = GuestReport(str(path), len(answerable), len(unanswerable), turns=turns)
    if answerable:
        report.right = round(sum(t.outcome == "right" for t in answerable) / len(answerable), 4)
        report.right_gold_only = _share([bool(t.gold_only_right) for t in answerable])
        report.span_f1 = round(sum(t.span_f1 or 0.0 for t in answerable) / len(answerable), 4)
    if unanswerable:
        report.declined = round(
            sum(t.outcome == "declined" for t in unanswerable) / len(unanswerable), 4)
    report.answerable_outcomes = dict(collections.Counter(t.outcome for t in answerable))
    report.unanswerable_outcomes = dict(collections.Counter(t.outcome for t in unanswerable))
    report.intents = dict(collections.Counter(str(t.intent) for t in turns).most_common())
    alone = [t for t in turns if t.kb_alone is not None]
    if alone:
        report.kb_alone_right = _share([t.kb_alone == "right" for t in alone if t.golds])
        report.kb_alone_declined = _share([t.kb_alone == "declined" for t in alone
                                           if not t.golds])
        lost = [f"{t.intent}: {t.outcome if t.outcome == 'wrong' else ' '.join(t.actions)}"
                for t in alone if t.golds and t.kb_alone == "right" and t.outcome != "right"]
        report.lost = dict(collections.Counter(lost).most_common())
        counts = collections.Counter(loss_of(t) for t in alone if t.golds)
        report.losses = {k: counts[k] for k in LOSSES}
    times = sorted(t.ms for t in turns)
    report.p50_ms = times[len(times) // 2] if times else 0.0
    return report


LOSSES = ("right", "routing", "gate", "selection")


def loss_of(turn: GuestTurn) -> str:
    """Where an answerable question is won or lost: "right" (the reply holds the answer),
    "routing" (the answerer alone answers it right: the NLU and the dialogue lose it),
    "gate" (the answerer's best sentence holds the answer but its confidence declines it),
    "selection" (the best sentence does not hold it)."""
    if turn.outcome == "right":
        return "right"
    if turn.kb_alone == "right":
        return "routing"
    return "gate" if turn.kb_best_right else "selection"


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def _score_alone(turns: Sequence[GuestTurn], knowledge_dir: str) -> None:
    """Each question answered by the answerer alone, beside what the guest got."""
    from retrieval.answerer import load_answerer

    answerer = load_answerer(knowledge_dir).load()
    traces = answerer.trace_batch([t.question for t in turns])
    for turn, trace in zip(turns, traces):
        score_alone(turn, trace.answer, trace.best)


def evaluate_through_nlu(project: Project, test_paths: Sequence[Path], out: Path, *,
                         ood_path: Path | None = None, limit: int | None = None,
                         knowledge_dir: Path | None = None,
                         alone: bool = False) -> dict[str, Any]:
    """Send every question (and OOD message) through the trained assistant; write the JSON
    report to `out` and return its summary (per file: right, declined, span F1, outcomes).
    With `alone`, the answerer alone answers each question too: what the NLU and the dialogue
    lose (`lost`)."""
    from bot.wiring import build_runtime

    os.environ.setdefault("XINGKONG_KNOWLEDGE_DIR",
                          str(knowledge_dir or project.paths.models / "knowledge"))
    manager = build_runtime(project).manager
    files = {path: _questions(path, limit) for path in test_paths}
    ood = _ood_messages(ood_path) if ood_path is not None and ood_path.exists() else []

    async def run_all() -> tuple[dict[Path, list[GuestTurn]], list[GuestTurn]]:
        turns: dict[Path, list[GuestTurn]] = {}
        for n, (path, questions) in enumerate(files.items()):
            turns[path] = [await ask(manager, q, golds, f"kb-{n}-{i}", gold)
                           for i, (q, golds, gold) in enumerate(questions)]
        ood_turns = [await ask(manager, text, [], f"ood-{i}") for i, text in enumerate(ood)]
        return turns, ood_turns

    turns, ood_turns = asyncio.run(run_all())
    if alone:
        _score_alone([t for ts in turns.values() for t in ts],
                     os.environ["XINGKONG_KNOWLEDGE_DIR"])
    reports = [_report(path, t) for path, t in turns.items()]
    summary: dict[str, Any] = {"files": [
        {k: v for k, v in asdict(r).items() if k != "turns"} for r in reports]}
    if ood_turns:
        answered = sum(t.outcome == "wrong" for t in ood_turns)  # a KB answer to an OOD message
        summary["ood"] = {"path": str(ood_path), "messages": len(ood_turns),
                          "not_answered_from_kb": round(1 - answered / len(ood_turns), 4),
                          "answered": [t.question for t in ood_turns if t.outcome == "wrong"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    full = {**summary, "turns": {r.path: [asdict(t) for t in r.turns] for r in reports}}
    out.write_text(json.dumps(full, indent=1, ensure_ascii=False), encoding="utf-8")
    return summary
