"""The generator in the fallback chain of the demo (bot/runtime/fallback_chain.py, config.yml
`fallback:`): rules and forms first, then the knowledge answer, then a generated reply, then
the canned response. The real in-process actions run, action_generate_reply on the tiny GPT-2
trained on five chat pairs (tests/conftest.py); the knowledge action is a stand-in at the
executor that answers only breakfast questions; the NLU is a fixed parse per message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bot.runtime.fallback_chain", reason="the fallback chain (branch kbroute)")

import actions.fallback as fallback  # noqa: E402
from bot.project.project import Project  # noqa: E402
from bot.manager import DialogueManager, TurnResult, UserMessage  # noqa: E402
from bot.policies import PolicyEnsemble  # noqa: E402
from bot.runtime.executors import InProcessExecutor  # noqa: E402
from bot.runtime.fallback_chain import FallbackChain  # noqa: E402
from bot.state.events import ActionExecuted  # noqa: E402
from generation import Generator  # noqa: E402
from tests.fakes import FakeEmbedder  # noqa: E402

ANSWER = "Breakfast is served from 7:00 to 10:30."
PARSES = {
    "do you like music": ("chitchat", 0.9),
    "do you like rainy days": ("out_of_scope", 0.9),
    "when is breakfast at your place": ("out_of_scope", 0.9),
    "i want to book a room": ("book_room", 0.98),
    "hmm a room maybe": ("book_room", 0.45),
}


class KnowledgeAtTheEdge:
    """The demo's actions in-process, with action_answer_question answered at the edge."""

    def __init__(self) -> None:
        self.inner = InProcessExecutor("actions")

    def names(self) -> set[str] | None:
        return (self.inner.names() or set()) | {"action_answer_question"}

    async def run(self, action_call: dict[str, Any]) -> dict[str, Any]:
        if action_call["next_action"] != "action_answer_question":
            return await self.inner.run(action_call)
        if "breakfast" not in action_call["tracker"]["latest_message"]["text"]:
            return {"events": [], "responses": [{"response": "utter_cannot_answer"}]}
        return {"events": [], "responses": [{"text": ANSWER}]}

    async def close(self) -> None:
        await self.inner.close()


async def _parse(text: str) -> dict[str, Any]:
    name, confidence = PARSES[text]
    return {"text": text, "intent": {"name": name, "confidence": confidence},
            "intent_ranking": [{"name": name, "confidence": confidence}], "entities": []}


# The chain a project with a generation model configures (config.yml's comment says so).
GENERATION_CHAIN = {
    "attempts": ["action_answer_question", "action_generate_reply"],
    "give_up": ["utter_chitchat", "utter_out_of_scope", "utter_default",
                "action_default_fallback"],
    "below": 0.6,
}


@pytest.fixture
def bot(demo: Project, ensemble: PolicyEnsemble, trained_tiny_generator: Path,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DialogueManager:
    monkeypatch.setenv("XINGKONG_BOOKINGS_DB", str(tmp_path / "bookings.sqlite"))
    monkeypatch.setenv(fallback.GENERATION_DIR_ENV, str(trained_tiny_generator))
    monkeypatch.setattr(fallback, "load_generator", lambda path: Generator(
        path, encoder=FakeEmbedder(), protected_terms=fallback.protected_terms()).load())
    fallback.reset_generators()
    chain = FallbackChain.from_config(GENERATION_CHAIN, "config.yml: fallback")
    yield DialogueManager(demo.domain, ensemble, parser=_parse, executor=KnowledgeAtTheEdge(),
                          fallback=chain)
    fallback.reset_generators()


def actions(result: TurnResult) -> list[str]:
    events = result.tracker.events[result.tracker.idx_after_latest_user_message():]
    return [e.name for e in events if isinstance(e, ActionExecuted) and e.name != "action_listen"]


def texts(result: TurnResult) -> list[str]:
    return [m.get("text") or "" for m in result.messages]


async def say(bot: DialogueManager, text: str, sender: str = "guest") -> TurnResult:
    return await bot.handle_message(UserMessage(text, sender))


def test_the_demo_chain_tries_the_knowledge_base_then_small_talk(demo: Project) -> None:
    # The demo ships with the written pairs' arm on (no language model): the KB first, then
    # small talk, and small talk only where the bot would give up, the canned chitchat
    # response included.
    section = demo.config.sections["fallback"]
    assert section["attempts"] == ["action_answer_question", "action_generate_reply"]
    assert "utter_chitchat" in section["give_up"]
    assert demo.config.sections["generation"]["train"] == {"language_model": False}


async def test_small_talk_gets_a_generated_reply_and_a_steer_back(
        bot: DialogueManager, demo: Project) -> None:
    result = await say(bot, "do you like music")
    assert actions(result) == ["action_generate_reply"]
    assert texts(result)[0] == "Yes I love music a lot"
    assert result.messages[0]["metadata"]["generated"] is True
    steer = {v["text"] for v in demo.domain.responses["utter_steer_back"]}
    assert texts(result)[1] in steer
    out_of_scope = await say(bot, "do you like rainy days", "another guest")
    assert texts(out_of_scope)[0] == "I love rainy days with a good book"


async def test_the_knowledge_answer_comes_before_generation(bot: DialogueManager) -> None:
    result = await say(bot, "when is breakfast at your place")
    assert texts(result) == [ANSWER] and actions(result) == ["action_answer_question"]


async def test_without_a_generator_the_canned_response_stays(
        bot: DialogueManager, demo: Project, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv(fallback.GENERATION_DIR_ENV, str(tmp_path / "missing"))
    monkeypatch.setattr(fallback, "load_generator", lambda path: Generator(path).load())
    fallback.reset_generators()
    result = await say(bot, "do you like music")
    assert actions(result) == ["utter_chitchat"]
    assert set(texts(result)) <= {v["text"] for v in demo.domain.responses["utter_chitchat"]}


async def test_never_inside_a_slot_question(bot: DialogueManager, demo: Project) -> None:
    await say(bot, "i want to book a room")
    result = await say(bot, "do you like music")
    assert "action_generate_reply" not in actions(result)
    assert not any((m.get("metadata") or {}).get("generated") for m in result.messages)
    assert result.tracker.active_loop_name == "booking_form"


async def test_an_unsure_booking_request_is_not_chatted_away(bot: DialogueManager) -> None:
    result = await say(bot, "hmm a room maybe")
    assert "booking_form" in actions(result)
    assert not any((m.get("metadata") or {}).get("generated") for m in result.messages)


async def test_written_pairs_alone_answer_near_small_talk_and_decline_the_rest(
        bot: DialogueManager, demo: Project, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # language_model: false (the demo's option): no GPT-2, only the written pairs' index
    from generation import SamplingConfig, TrainingConfig, train_generator

    out = tmp_path / "pairs_only"
    train_generator([], out, training=TrainingConfig(language_model=False),
                    sampling=SamplingConfig(pair_min_score=0.99, pair_relevance_weight=0.0),
                    written_pairs=[("do you like rainy days", "I do, rain is very calming.")],
                    encoder=FakeEmbedder(), progress=False)
    monkeypatch.setenv(fallback.GENERATION_DIR_ENV, str(out))
    fallback.reset_generators()
    result = await say(bot, "do you like rainy days")
    assert actions(result) == ["action_generate_reply"]
    assert texts(result)[0] == "I do, rain is very calming."
    assert result.messages[0]["metadata"]["generation"]["written"] is True
    assert texts(result)[1] in {v["text"] for v in demo.domain.responses["utter_steer_back"]}
    far = await say(bot, "do you like music", "another guest")
    assert actions(far) == ["utter_chitchat"]  # declined: the canned response, as before
