"""The demo's booking_form through the DialogueManager with the real demo actions in-process.

The demo actions read their bookings database from XINGKONG_BOOKINGS_DB and "today" from
XINGKONG_TODAY (actions/dates.py), so both point into the test. action_answer_question (the
knowledge-base answer) is not part of the actions package: a stand-in that answers with
utter_cannot_answer plays it, as a knowledge base that does not know the answer would.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.project.project import Project
from bot.project.domain import REQUESTED_SLOT
from bot.errors import ActionError
from bot.state.events import ActionExecuted, ActionExecutionRejected
from bot.runtime.executors import InProcessExecutor
from bot.manager import DialogueManager, TurnResult, UserMessage
from bot.policies import PolicyEnsemble

REPO = Path(__file__).resolve().parents[2]
TODAY = "2030-01-01"
LISBON = '/book_room{"hotel": "Starlight Lisbon"}'

BUG_RESUME_AFTER_REJECTION = (
    "engine bug: after the form rejected `/stop`, RulePolicy excludes the active loop after "
    "every later action_listen while `rejected` is set, so the rule `utter_ask_continue, "
    "affirm -> booking_form` cannot fire; MemoizationPolicy predicts booking_form, which "
    "rejects `/affirm` again, and the ensemble re-predicts the rejected action until the "
    "prediction cap (no LoopInterrupted is set for the resumed form either)"
)
BUG_STUCK_AFTER_FAILED_INTERRUPTION = (
    "engine bug: the form rejected `/ask_question`, then action_answer_question failed and "
    "the turn ended with utter_error before the rule could run the form again, so the loop "
    "stays `rejected`; RulePolicy never predicts a rejected loop after action_listen, so every "
    "later answer gets the core fallback (twice per message) and even stop/affirm cannot "
    "resume the form"
)
BUG_FORM_SUBMIT_RULE = (
    "engine bug: the rule 'booking form filled, read the booking back' never matches after a "
    "multi-turn form (its condition state {loop:booking_form} before `action: booking_form` "
    "is kept in RuleEntry.states, but the collapsed live history has loop:none there), so the "
    "core fallback follows the last answer and its UserUtteranceReverted undoes the form"
)


class KnowledgeStandIn:
    """InProcessExecutor("actions") plus action_answer_question, which the package lacks.

    With `down` set, the knowledge base cannot be reached, as an executor reports it."""

    def __init__(self) -> None:
        self.inner = InProcessExecutor("actions")
        self.questions = 0
        self.down = False

    def names(self) -> set[str] | None:
        return (self.inner.names() or set()) | {"action_answer_question"}

    async def run(self, action_call: dict[str, Any]) -> dict[str, Any]:
        if action_call["next_action"] == "action_answer_question":
            self.questions += 1
            if self.down:
                raise ActionError("Action 'action_answer_question': the knowledge base at "
                                  "http://127.0.0.1:9/ did not answer within 10s.")
            return {"events": [], "responses": [{"response": "utter_cannot_answer"}]}
        return await self.inner.run(action_call)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
def bookings_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "bookings.sqlite"
    monkeypatch.setenv("XINGKONG_BOOKINGS_DB", str(db))
    monkeypatch.setenv("XINGKONG_TODAY", TODAY)
    monkeypatch.setenv("XINGKONG_HOTELS", str(REPO / "data" / "hotels.yml"))
    return db


@pytest.fixture
def executor(bookings_db: Path) -> KnowledgeStandIn:
    return KnowledgeStandIn()


@pytest.fixture
def manager(demo: Project, ensemble: PolicyEnsemble,
            executor: KnowledgeStandIn) -> DialogueManager:
    return DialogueManager(demo.domain, ensemble, executor=executor)


async def say(manager: DialogueManager, text: str) -> TurnResult:
    return await manager.handle_message(UserMessage(text, "guest"))


def turn_actions(result: TurnResult) -> list[str]:
    tracker = result.tracker
    return [e.name for e in tracker.events[tracker.idx_after_latest_user_message():]
            if isinstance(e, ActionExecuted) and e.name != "action_listen"]


def turn_rejections(result: TurnResult) -> list[str]:
    tracker = result.tracker
    return [e.name for e in tracker.events[tracker.idx_after_latest_user_message():]
            if isinstance(e, ActionExecutionRejected)]


def texts(result: TurnResult) -> list[str]:
    return [m.get("text") or "" for m in result.messages]


def variations(demo: Project, response: str) -> set[str]:
    return {v["text"] for v in demo.domain.responses[response] if "text" in v}


def booking_rows(db: Path) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT hotel, city, checkin, checkout, guests, room_type, guest_name, email, status "
            "FROM bookings").fetchall()


async def test_the_form_starts_from_the_first_message(demo: Project,
                                                      manager: DialogueManager) -> None:
    result = await say(manager, LISBON)
    assert turn_actions(result) == ["booking_form"]
    tracker = result.tracker
    assert tracker.active_loop_name == "booking_form"
    assert tracker.get_slot("hotel") == "Starlight Lisbon"
    assert tracker.get_slot("city") == "Lisbon"  # the validation action filled it in
    assert tracker.get_slot(REQUESTED_SLOT) == "checkin_date"
    assert texts(result)[-1] in variations(demo, "utter_ask_checkin_date")


async def test_a_past_checkin_date_is_rejected_and_asked_again(
        demo: Project, manager: DialogueManager) -> None:
    await say(manager, LISBON)

    result = await say(manager, '/inform{"date": "2029-12-24"}')
    assert turn_actions(result) == ["booking_form"]
    said = texts(result)
    assert len(said) == 2
    assert "is in the past" in said[0]
    assert said[1] in variations(demo, "utter_ask_checkin_date")
    tracker = result.tracker
    assert tracker.get_slot("checkin_date") is None
    assert tracker.get_slot(REQUESTED_SLOT) == "checkin_date"
    assert tracker.active_loop_name == "booking_form"

    result = await say(manager, '/inform{"date": "March 5, 2030"}')
    assert result.tracker.get_slot("checkin_date") == "2030-03-05"
    assert result.tracker.get_slot(REQUESTED_SLOT) == "checkout_date"
    assert texts(result) and texts(result)[-1] in variations(demo, "utter_ask_checkout_date")


async def test_small_talk_mid_form_is_answered_and_the_same_slot_asked_again(
        demo: Project, manager: DialogueManager) -> None:
    await say(manager, LISBON)

    result = await say(manager, "/chitchat")
    assert turn_rejections(result) == ["booking_form"]
    assert turn_actions(result) == ["utter_chitchat", "booking_form"]
    said = texts(result)
    assert said[0] in variations(demo, "utter_chitchat")
    assert said[1] in variations(demo, "utter_ask_checkin_date")
    assert len(said) == 2  # no validation message: the interruption was not validated
    assert result.tracker.get_slot(REQUESTED_SLOT) == "checkin_date"
    assert result.tracker.active_loop_name == "booking_form"

    result = await say(manager, '/inform{"date": "2030-03-05"}')
    assert turn_actions(result) == ["booking_form"]
    assert result.tracker.get_slot("checkin_date") == "2030-03-05"


async def test_a_question_mid_form_is_answered_and_the_form_resumes(
        demo: Project, manager: DialogueManager, executor: KnowledgeStandIn) -> None:
    await say(manager, LISBON)
    await say(manager, '/inform{"date": "2030-03-05"}')

    result = await say(manager, "/ask_question")
    assert turn_actions(result) == ["action_answer_question", "booking_form"]
    assert executor.questions == 1
    said = texts(result)
    assert said[0] in variations(demo, "utter_cannot_answer")
    assert said[1] in variations(demo, "utter_ask_checkout_date")
    assert result.tracker.get_slot(REQUESTED_SLOT) == "checkout_date"
    assert result.tracker.get_slot("checkin_date") == "2030-03-05"

    result = await say(manager, '/inform{"date": "2030-03-08"}')
    assert result.tracker.get_slot("checkout_date") == "2030-03-08"
    assert result.tracker.get_slot(REQUESTED_SLOT) == "guests"


async def test_a_failed_question_mid_form_ends_the_turn_with_utter_error(
        demo: Project, manager: DialogueManager, executor: KnowledgeStandIn) -> None:
    await say(manager, LISBON)
    executor.down = True
    result = await say(manager, "/ask_question")
    assert len(texts(result)) == 1
    assert texts(result)[0] in variations(demo, "utter_error")
    assert turn_actions(result) == ["utter_error"]
    tracker = result.tracker
    assert tracker.active_loop_name == "booking_form"
    assert tracker.get_slot(REQUESTED_SLOT) == "checkin_date"
    assert tracker.latest_message is not None
    assert tracker.latest_message.intent_name == "ask_question"  # the message is kept


async def test_the_form_takes_the_next_answer_after_a_failed_question(
        demo: Project, manager: DialogueManager, executor: KnowledgeStandIn) -> None:
    await say(manager, LISBON)
    executor.down = True
    await say(manager, "/ask_question")
    executor.down = False

    result = await say(manager, '/inform{"date": "2030-03-05"}')
    assert turn_actions(result) == ["booking_form"]
    assert result.tracker.get_slot("checkin_date") == "2030-03-05"
    assert texts(result)[-1] in variations(demo, "utter_ask_checkout_date")


async def test_stop_then_deny_leaves_the_form(demo: Project, manager: DialogueManager,
                                              bookings_db: Path) -> None:
    await say(manager, LISBON)

    result = await say(manager, "/stop")
    assert turn_actions(result) == ["utter_ask_continue"]
    assert texts(result)[0] in variations(demo, "utter_ask_continue")
    assert result.tracker.active_loop_name == "booking_form"

    result = await say(manager, "/deny")
    assert turn_actions(result) == ["action_deactivate_loop", "utter_form_stopped"]
    assert texts(result)[0] in variations(demo, "utter_form_stopped")
    tracker = result.tracker
    assert tracker.active_loop_name is None
    assert tracker.active_loop == {}
    assert tracker.get_slot(REQUESTED_SLOT) is None
    assert booking_rows(bookings_db) == []

    result = await say(manager, "/thank")  # an ordinary conversation again
    assert turn_actions(result) == ["utter_you_are_welcome"]


async def test_stop_then_affirm_resumes_the_form(demo: Project,
                                                 manager: DialogueManager) -> None:
    await say(manager, LISBON)
    await say(manager, "/stop")

    result = await say(manager, "/affirm")
    assert turn_actions(result) == ["booking_form"]
    assert len(texts(result)) == 1
    assert texts(result)[0] in variations(demo, "utter_ask_checkin_date")
    assert result.tracker.get_slot(REQUESTED_SLOT) == "checkin_date"

    result = await say(manager, '/inform{"date": "2030-03-05"}')
    assert result.tracker.get_slot("checkin_date") == "2030-03-05"


async def test_a_full_booking_lands_in_sqlite(demo: Project, manager: DialogueManager,
                                              bookings_db: Path) -> None:
    answers = [
        '/book_room{"city": "Lisbon"}',
        '/inform{"hotel": "Aurora Riverside"}',
        '/inform{"date": "2030-05-14"}',
        '/inform{"date": "2030-05-17"}',
        '/inform{"number": 2}',
        '/inform{"room_type": "twin"}',
        '/inform{"person": "Marta Oliveira"}',
    ]
    for answer in answers:
        result = await say(manager, answer)
        assert turn_actions(result) == ["booking_form"], answer
    result = await say(manager, '/inform{"email": "marta.oliveira@example.com"}')
    assert turn_actions(result) == ["booking_form", "utter_confirm_booking"]
    assert result.tracker.active_loop_name is None

    result = await say(manager, "/affirm")
    assert turn_actions(result) == ["action_submit_booking", "utter_anything_else"]
    booking_id = result.tracker.get_slot("booking_id")
    assert booking_id and booking_id.startswith("SL-")
    assert booking_id in texts(result)[0]
    assert booking_rows(bookings_db) == [(
        "Aurora Riverside", "Lisbon", "2030-05-14", "2030-05-17", 2, "twin", "Marta Oliveira",
        "marta.oliveira@example.com", "active")]
