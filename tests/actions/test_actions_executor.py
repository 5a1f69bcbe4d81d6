"""The actions as a rasa-sdk action server runs them: ActionExecutor and webhook payloads."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk.executor import ActionExecutor

import actions
from actions import forms

ACTION_NAMES = [
    "action_cancel_booking",
    "action_change_booking",
    "action_check_booking",
    "action_submit_booking",
    "validate_booking_form",
    "validate_cancel_form",
    "validate_change_form",
]


@pytest.fixture(scope="module")
def executor() -> ActionExecutor:
    server = ActionExecutor()
    server.register_package("actions")
    return server


@pytest.fixture
def call(executor: ActionExecutor, domain: dict[str, Any], helpers: Any) -> Any:
    """POST-like: build a webhook body, send it through JSON, run it, return the JSON reply."""

    def _call(action: str, **state: Any) -> dict[str, Any]:
        body = {
            "next_action": action,
            "sender_id": "tester",
            "tracker": helpers.tracker_state(**state),
            "domain": domain,
            "version": "3.6.21",
        }
        payload = json.loads(json.dumps(body))
        result = asyncio.run(executor.run(payload))
        return json.loads(result.model_dump_json(by_alias=True))

    return _call


def test_the_package_registers_every_action(executor: ActionExecutor) -> None:
    names = sorted(action.name for action in executor.list_actions())
    assert [name for name in names if name in ACTION_NAMES] == ACTION_NAMES
    assert "action_answer_question" in names  # actions/knowledge.py


def test_public_names_are_sorted_and_exported() -> None:
    assert actions.__all__ == sorted(actions.__all__)
    for name in actions.__all__:
        assert hasattr(actions, name)


def test_a_booking_conversation_over_the_webhook(call: Any, helpers: Any) -> None:
    reply = call(
        "validate_booking_form",
        candidates={"city": "lisbn", "checkin_date": "March 3"},
        text="a room in lisbn from March 3",
        form="booking_form",
    )
    assert helpers.slot_values(reply["events"]) == {"city": "Lisbon", "checkin_date": "2027-03-03"}
    assert reply["responses"] == []

    reply = call(
        "validate_booking_form",
        slots={"city": "Lisbon", "checkin_date": "2027-03-03"},
        candidates={"checkout_date": "March 1"},
        text="until March 1",
        form="booking_form",
    )
    assert helpers.slot_values(reply["events"]) == {"checkout_date": None}
    assert "after check-in" in reply["responses"][0]["text"]

    filled = {
        "city": "Lisbon",
        "hotel": "Starlight Lisbon",
        "checkin_date": "2027-03-03",
        "checkout_date": "2027-03-05",
        "guests": 2.0,
        "room_type": "twin",
        "guest_name": "Ana Ruiz",
        "email": "ana@example.com",
    }
    reply = call("action_submit_booking", slots=filled, text="yes", intent="affirm")
    booking_id = helpers.slot_values(reply["events"])["booking_id"]
    assert reply["responses"][0]["response"] == "utter_booking_confirmed"
    assert reply["responses"][0]["booking_id"] == booking_id

    entity = {"entity": "booking_id", "value": booking_id, "start": 0, "end": 9}
    reply = call("action_check_booking", text=booking_id, entities=[entity], intent="check_booking")
    assert "Starlight Lisbon" in reply["responses"][0]["text"]

    reply = call(
        "validate_cancel_form",
        candidates={"booking_id": booking_id},
        text=booking_id,
        form="cancel_form",
    )
    assert helpers.slot_values(reply["events"]) == {"booking_id": booking_id}

    reply = call("action_cancel_booking", slots={"booking_id": booking_id}, intent="affirm")
    assert reply["responses"][0]["response"] == "utter_booking_cancelled"
    assert helpers.slot_values(reply["events"]) == {"booking_id": None}


def test_change_over_the_webhook(call: Any, helpers: Any) -> None:
    filled = {
        "hotel": "Starlight Prague",
        "checkin_date": "2027-05-01",
        "checkout_date": "2027-05-03",
        "guests": 4,
        "room_type": "family",
        "guest_name": "Jan Novak",
        "email": "jan@example.cz",
    }
    booking_id = helpers.slot_values(call("action_submit_booking", slots=filled)["events"])[
        "booking_id"
    ]
    reply = call(
        "validate_change_form",
        candidates={"booking_id": booking_id, "checkin_date": "May 8", "checkout_date": "May 9"},
        form="change_form",
    )
    slots = helpers.slot_values(reply["events"])
    assert slots == {
        "booking_id": booking_id,
        "checkin_date": "2027-05-08",
        "checkout_date": "2027-05-09",
    }
    reply = call("action_change_booking", slots=slots)
    assert reply["responses"][0]["response"] == "utter_booking_changed"
    assert reply["responses"][0]["price_total"] == "170 EUR"


@pytest.fixture
def real_domain() -> dict[str, Any]:
    path = repo_root() / "domain.yml"
    if not path.is_file():
        pytest.skip("domain.yml is not there yet")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def test_the_project_domain_declares_what_the_actions_use(real_domain: dict[str, Any]) -> None:
    assert set(ACTION_NAMES) <= set(real_domain["actions"])
    used = {
        "utter_booking_confirmed",
        "utter_booking_not_saved",
        "utter_booking_cancelled",
        "utter_booking_changed",
        "utter_ask_booking_id",
        "utter_error",
    }
    assert used <= set(real_domain["responses"])
    domain_forms = real_domain["forms"]
    assert tuple(domain_forms["booking_form"]["required_slots"]) == forms.BOOKING_FORM_SLOTS
    assert tuple(domain_forms["cancel_form"]["required_slots"]) == forms.CANCEL_FORM_SLOTS
    assert tuple(domain_forms["change_form"]["required_slots"]) == forms.CHANGE_FORM_SLOTS
    room_values = set(real_domain["slots"]["room_type"]["values"])
    assert room_values == set(actions.get_catalog().room_types)


def test_validation_with_the_project_domain(
    executor: ActionExecutor, real_domain: dict[str, Any], helpers: Any
) -> None:
    body = {
        "next_action": "validate_booking_form",
        "sender_id": "tester",
        "tracker": helpers.tracker_state(
            candidates={"hotel": "comet inn", "guests": "two of us"}, form="booking_form"
        ),
        "domain": real_domain,
        "version": "3.6.21",
    }
    result = asyncio.run(executor.run(json.loads(json.dumps(body))))
    assert helpers.slot_values(result.events) == {
        "hotel": "The Comet Inn",
        "city": "Amsterdam",
        "guests": 2,
    }
