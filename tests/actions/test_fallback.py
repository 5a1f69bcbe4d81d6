"""action_generate_reply through rasa_sdk's ActionExecutor, on the tiny GPT-2 trained on five
chat pairs (tests/conftest.py): a generated reply marked `generated`, then the steer back; it
declines (utters nothing) without a model, inside a form's slot question, for a `/intent`
payload and when every candidate is dropped."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk.executor import ActionExecutor

import actions.fallback as fallback
from generation import Generator
from tests.fakes import FakeEmbedder


@pytest.fixture
def generating(trained_tiny_generator: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(fallback.GENERATION_DIR_ENV, str(trained_tiny_generator))
    monkeypatch.setattr(fallback, "load_generator", lambda path: Generator(
        path, encoder=FakeEmbedder(), protected_terms=fallback.protected_terms()).load())
    fallback.reset_generators()
    yield trained_tiny_generator
    fallback.reset_generators()


def _call(text: str, *, form: str | None = None, requested: str | None = None,
          history: list[dict[str, Any]] | None = None, intent: str = "chitchat") -> dict[str, Any]:
    executor = ActionExecutor()
    executor.register_action(fallback.ActionGenerateReply())
    parse = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    events = [*(history or []), {"event": "user", "text": text, "parse_data": parse}]
    tracker = {"sender_id": "guest", "slots": {"requested_slot": requested},
               "latest_message": parse, "paused": False, "events": events,
               "followup_action": None, "active_loop": {"name": form} if form else {},
               "latest_action_name": "action_listen"}
    body = {"next_action": "action_generate_reply", "sender_id": "guest", "tracker": tracker,
            "domain": {"responses": {"utter_steer_back": [{"text": "Back to your stay?"}]}},
            "version": "3.6.21"}
    result = asyncio.run(executor.run(json.loads(json.dumps(body))))
    assert result is not None
    return json.loads(result.model_dump_json(by_alias=True))


def test_a_generated_reply_is_marked_and_steers_back(generating: Path) -> None:
    out = _call("do you like music")
    assert out["events"] == []
    reply, steer = out["responses"]
    assert reply["text"] == "Yes I love music a lot"  # trained lowercased, said truecased
    assert reply["metadata"]["generated"] is True
    assert reply["metadata"]["generation"]["kept"] >= 1
    assert steer["response"] == fallback.STEER_BACK


def test_only_small_talk_intents_get_a_generated_reply(generating: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert _call("do you like music", intent="nlu_fallback")["responses"]
    assert _call("do you like music", intent="out_of_scope")["responses"]
    assert _call("do you like music", intent="book_room")["responses"] == []
    monkeypatch.setenv(fallback.INTENTS_ENV, "book_room, other")
    assert _call("do you like music", intent="book_room")["responses"]
    assert _call("do you like music")["responses"] == []


def test_it_declines_inside_a_slot_question_and_for_payloads(generating: Path) -> None:
    assert _call("do you like music", form="booking_form", requested="city")["responses"] == []
    assert _call("/chitchat")["responses"] == []
    assert _call("   ")["responses"] == []


def test_it_declines_when_every_candidate_is_dropped(generating: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the learnt reply is "i love rainy days with a good book": with "book" a protected name
    # it is dropped, and so is every other learnt reply (one protected word in each)
    assert _call("do you like rainy days")["responses"][0]["metadata"]["generated"] is True
    monkeypatch.setattr(fallback, "protected_terms",
                        lambda: ["book", "music", "read", "hello", "good"])
    fallback.reset_generators()
    assert _call("do you like rainy days")["responses"] == []


def test_without_a_model_it_declines_and_warns_once(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(fallback.GENERATION_DIR_ENV, str(tmp_path / "missing"))
    fallback.reset_generators()
    with caplog.at_level(logging.WARNING, logger="actions.fallback"):
        assert _call("do you like music")["responses"] == []
        assert _call("how are you doing")["responses"] == []
    fallback.reset_generators()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "missing" in warnings[0].getMessage()


def test_history_alternates_and_ends_with_the_bot() -> None:
    from rasa_sdk import Tracker

    events = [{"event": "bot", "text": "welcome"}, {"event": "user", "text": "hi"},
              {"event": "bot", "text": "hello"}, {"event": "bot", "text": "how can i help"},
              {"event": "slot", "name": "x", "value": 1}, {"event": "user", "text": "music?"}]
    tracker = Tracker("guest", {}, {}, events, False, None, {}, "action_listen")
    assert fallback.conversation_history(tracker) == ["hi", "hello how can i help"]


def test_protected_terms_are_the_hotels_and_cities() -> None:
    terms = fallback.protected_terms()
    assert "Starlight" in terms and "Starlight Lisbon" in terms and "Lisbon" in terms
