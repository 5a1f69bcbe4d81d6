"""The fallback chain: before the demo gives up on a message, the knowledge base may answer.

The knowledge action here is a stand-in at the executor (the network edge of an action
server): it answers questions about breakfast and declines everything else with
utter_cannot_answer, as the real action does below its confidence threshold. The NLU is a
fixed parse per message, so each test says exactly what the classifier decided.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.project.project import Project
from bot.errors import ConfigError
from bot.manager import DialogueManager, TurnResult, UserMessage
from bot.policies import PolicyEnsemble
from bot.runtime.executors import InProcessExecutor
from bot.runtime.fallback_chain import FallbackChain
from bot.state.events import ActionExecuted

ANSWER = "Breakfast is served from 7:00 to 10:30."
UNSURE_ANSWER = "The spa is on the lower ground floor."


class KnowledgeAtTheEdge:
    """The demo's actions in-process, with action_answer_question answered at the edge."""

    def __init__(self) -> None:
        self.inner = InProcessExecutor("actions")
        self.asked: list[str] = []

    def names(self) -> set[str] | None:
        return (self.inner.names() or set()) | {"action_answer_question"}

    async def run(self, action_call: dict[str, Any]) -> dict[str, Any]:
        if action_call["next_action"] != "action_answer_question":
            return await self.inner.run(action_call)
        question = action_call["tracker"]["latest_message"]["text"]
        self.asked.append(question)
        if "spa" in question:  # answered, but the knowledge base is not sure
            return {"events": [], "responses": [{
                "text": UNSURE_ANSWER, "metadata": {"knowledge": {"answer": "lower ground floor",
                                                                  "confidence": 0.6}}}]}
        if "breakfast" not in question:
            return {"events": [], "responses": [{"response": "utter_cannot_answer"}]}
        return {"events": [], "responses": [{
            "text": ANSWER, "metadata": {"knowledge": {"answer": "7:00 to 10:30",
                                                       "confidence": 0.9}}}]}

    async def close(self) -> None:
        await self.inner.close()


def parser_for(parses: dict[str, tuple[str, float]]) -> Any:
    async def parse(text: str) -> dict[str, Any]:
        name, confidence = parses[text]
        return {"text": text, "intent": {"name": name, "confidence": confidence},
                "intent_ranking": [{"name": name, "confidence": confidence}],
                "entities": ENTITIES.get(text, [])}
    return parse


PARSES = {
    "when is breakfast at your place": ("out_of_scope", 0.9),
    "what's the weather on mars": ("out_of_scope", 0.95),
    "is breakfast any good, thinking of booking": ("book_room", 0.45),
    "yes breakfast": ("affirm", 0.3),
    "i want to book a room": ("book_room", 0.98),
    "can i get breakfast at the lisbon hotel": ("book_room", 0.97),
    "can i book breakfast for tomorrow": ("book_room", 0.97),
    "is there a spa in lisbon": ("book_room", 0.97),
    "any tascas in lisbon open on mondays": ("book_room", 0.97),
    "breakfast room for two please": ("book_room", 0.97),
    "does my booking include breakfast?": ("check_booking", 0.95),
    "is breakfast served on friday": ("ask_question", 0.96),
    "is the pool open on friday": ("ask_question", 0.96),
    "is your spa nice": ("chitchat", 0.95),
    "is breakfast fun": ("chitchat", 0.95),
    "can you book breakfast for me in lisbon?": ("book_room", 0.97),
    "is there a spa room to book in lisbon": ("book_room", 0.97),
    "can we use the spa in lisbon": ("book_room", 0.97),
    "does the lisbon hotel do shoe shining?": ("chitchat", 0.9),
    "have you ever been to lisbon?": ("chitchat", 0.9),
    "lisbon is lovely": ("chitchat", 0.9),
    "what is the weather in lisbon in november": ("out_of_scope", 0.9),
    "is the spa in lisbon nice?": ("chitchat", 0.95),
}
LISBON = [{"entity": "city", "value": "lisbon", "start": 0, "end": 6}]  # offsets aside
ENTITIES = {
    "does the lisbon hotel do shoe shining?": LISBON,
    "have you ever been to lisbon?": LISBON,
    "lisbon is lovely": LISBON,
    "what is the weather in lisbon in november": LISBON,
    "is the spa in lisbon nice?": LISBON,
    "can i get breakfast at the lisbon hotel": [
        {"entity": "city", "value": "Lisbon", "start": 20, "end": 26}],
    "can i book breakfast for tomorrow": [
        {"entity": "date", "role": "checkin", "value": "tomorrow", "start": 25, "end": 33}],
    "is breakfast served on friday": [
        {"entity": "date", "role": "checkin", "value": "2030-01-04", "start": 23, "end": 29}],
    "is the pool open on friday": [
        {"entity": "date", "role": "checkin", "value": "2030-01-04", "start": 19, "end": 25}],
}


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> KnowledgeAtTheEdge:
    monkeypatch.setenv("XINGKONG_BOOKINGS_DB", str(tmp_path / "bookings.sqlite"))
    monkeypatch.setenv("XINGKONG_TODAY", "2030-01-01")
    return KnowledgeAtTheEdge()


def manager(demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge,
            chain: FallbackChain | None) -> DialogueManager:
    return DialogueManager(demo.domain, ensemble, parser=parser_for(PARSES), executor=executor,
                           fallback=chain)


def actions(result: TurnResult) -> list[str]:
    events = result.tracker.events[result.tracker.idx_after_latest_user_message():]
    return [e.name for e in events if isinstance(e, ActionExecuted) and e.name != "action_listen"]


def texts(result: TurnResult) -> list[str]:
    return [m.get("text") or "" for m in result.messages]


async def say(bot: DialogueManager, text: str) -> TurnResult:
    return await bot.handle_message(UserMessage(text, "guest"))


async def test_the_knowledge_base_answers_before_the_bot_gives_up(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    result = await say(manager(demo, ensemble, executor, FallbackChain()),
                       "when is breakfast at your place")
    assert texts(result) == [ANSWER]
    assert actions(result) == ["action_answer_question"]
    assert result.messages[0]["metadata"]["knowledge"]["answer"] == "7:00 to 10:30"


async def test_off_topic_still_gets_the_out_of_scope_response_and_no_trace(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    result = await say(manager(demo, ensemble, executor, FallbackChain()),
                       "what's the weather on mars")
    assert executor.asked == ["what's the weather on mars"]
    assert actions(result) == ["utter_out_of_scope"]
    assert set(texts(result)) <= {v["text"] for v in demo.domain.responses["utter_out_of_scope"]}


async def test_without_a_chain_nothing_changes(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    result = await say(manager(demo, ensemble, executor, None), "when is breakfast at your place")
    assert executor.asked == []
    assert actions(result) == ["utter_out_of_scope"]


async def test_inside_a_form_the_question_is_asked_again_after_the_answer(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    bot = manager(demo, ensemble, executor, FallbackChain())
    await say(bot, "i want to book a room")
    result = await say(bot, "when is breakfast at your place")
    assert texts(result)[0] == ANSWER
    assert actions(result) == ["action_answer_question", "booking_form"]
    assert result.tracker.active_loop_name == "booking_form"
    asked_again = {v["text"] for v in demo.domain.responses["utter_ask_city"]}
    assert texts(result)[1] in asked_again


async def test_an_unsure_intent_is_tried_only_when_configured_and_not_kept(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    off = await say(manager(demo, ensemble, executor, FallbackChain()),
                    "is breakfast any good, thinking of booking")
    assert actions(off)[0] == "booking_form"
    on = manager(demo, ensemble, executor, FallbackChain(below=0.6))
    assert actions(await say(on, "is breakfast any good, thinking of booking")) == [
        "action_answer_question"]
    executor.asked.clear()
    only_unsure = manager(demo, ensemble, executor, FallbackChain(below=0.6, give_up=()))
    await say(only_unsure, "yes breakfast")  # affirm is kept: short answers are never re-routed
    assert executor.asked == []


async def test_intent_payloads_are_never_re_routed(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    result = await say(manager(demo, ensemble, executor, FallbackChain()), "/out_of_scope")
    assert executor.asked == []
    assert actions(result) == ["utter_out_of_scope"]


def test_a_chain_without_any_available_attempt_is_off() -> None:
    assert FallbackChain().available({"utter_greet"}) is None
    assert FallbackChain().available({"action_answer_question"}) == FallbackChain()


@pytest.mark.parametrize("section, message", [
    ({"attemps": []}, "unknown key 'fallback.attemps'"),
    ({"below": 2}, "fallback.below must be a confidence in [0, 1]"),
    ({"below": "high"}, "fallback.below must be a number"),
    ({"give_up": "utter_default"}, "fallback.give_up must be a list of names"),
])
def test_config_errors_name_the_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        FallbackChain.from_config(section, "config.yml: fallback")


def test_a_question_declined_inside_the_knowledge_action_counts_as_declined() -> None:
    from bot.kb_through_nlu import score_turn

    parse = {"intent": {"name": "ask_question", "confidence": 0.9}}
    declined = [{"text": "I'm not sure.", "metadata": {"utter_action": "utter_cannot_answer"}}]
    turn = score_turn("wifi password?", [], declined, ["action_answer_question"], parse, 5.0)
    assert turn.outcome == "declined"
    answered = [{"text": ANSWER, "metadata": {"knowledge": {"answer": "7:00 to 10:30"}}}]
    right = score_turn("breakfast?", ["7:00 to 10:30"], answered, ["action_answer_question"],
                       parse, 5.0)
    assert right.outcome == "right" and right.span_f1 == 1.0 and right.gold_only_right
    # the same fact stated in another document (a test file's alternative) is right too,
    # and `gold_only_right` says the gold answer alone would not have counted it
    other = [{"text": "Breakfast runs 7:00-10:30 daily.",
              "metadata": {"knowledge": {"answer": "7:00-10:30 daily"}}}]
    turn = score_turn("breakfast?", ["from 7 to 10:30", "7:00-10:30 daily"], other,
                      ["action_answer_question"], parse, 5.0, gold_only=["from 7 to 10:30"])
    assert turn.outcome == "right" and turn.span_f1 == 1.0 and turn.gold_only_right is False


def test_answerable_questions_are_counted_where_they_are_won_or_lost() -> None:
    from types import SimpleNamespace

    from bot.kb_through_nlu import GuestTurn, _report, score_alone

    def turn(outcome: str, sentence: str | None, threshold_passed: bool) -> GuestTurn:
        t = GuestTurn("breakfast?", ["7:00 to 10:30"], outcome, "ask_question", 0.9, [], "",
                      None, None, 5.0)
        best = SimpleNamespace(sentence=sentence, text=sentence, reply=sentence, confidence=0.4)
        said = best if threshold_passed else SimpleNamespace(sentence=None, text=None,
                                                               reply=None, confidence=0.4)
        score_alone(t, said, best if sentence else None)
        return t

    turns = [turn("right", ANSWER, True),            # right
             turn("other", ANSWER, True),            # routing: right alone, a form started
             turn("declined", ANSWER, False),        # gate: right sentence, not confident
             turn("declined", "Pets are welcome.", False),  # selection
             turn("declined", None, False)]          # selection: no sentence at all
    report = _report(Path("kb.json"), turns)
    assert report.losses == {"right": 1, "routing": 1, "gate": 1, "selection": 2}
    assert report.lost == {"ask_question: ": 1}


# ---------------------------------------------------------------- questions filed as tasks
TASK_QUESTIONS = FallbackChain(questions=("book_room", "check_booking"))


def test_question_shapes() -> None:
    from bot.runtime.question_shape import is_question

    for text in ("can i bring my dog", "hi! how far is the metro", "garage price vienna?",
                 "booked a family room, which part of the building is it in",
                 "ok so is there a pool", "wondering if the bar is open late",
                 "any trams near the hotel", "what's the wifi password",
                 "garage price vienna", "front desk hours comet inn", "spa opening times",
                 "starlight amsterdam address pls", "nova grand phone number"):
        assert is_question(text), text
    for text in ("i want to book a room", "book me a double in lisbon for friday",
                 "cancel SL-482913 please", "two adults", "a double for three nights",
                 "the island of man"):  # "is" inside a word or a clause is no question
        assert not is_question(text), text


def test_requests_to_the_assistant_are_told_apart_from_questions() -> None:
    from bot.runtime.question_shape import is_request

    for text in ("can you cancel my Rome booking", "could u move it to friday?",
                 "please can you cancel it", "ok so can you book me a room",
                 "we land late, could you please hold the room"):
        assert is_request(text), text
    for text in ("can you tell me the pool hours", "would you know the opening hours",
                 "hi, could you please tell me how long you keep my data",
                 "can you recommend a restaurant near the lisbon hotel", "can i cancel my stay",
                 "how do i cancel my booking", "what can you do", "is breakfast included"):
        assert not is_request(text), text


async def test_a_request_filed_as_a_task_keeps_the_task_however_sure_the_knowledge_base(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    result = await say(manager(demo, ensemble, executor, TASK_QUESTIONS),
                       "can you book breakfast for me in lisbon?")  # 0.9 sure, yet a request
    assert executor.asked == []
    assert actions(result)[0] == "booking_form"


def test_the_words_that_mark_an_intent_and_asking_leave() -> None:
    from bot.runtime.question_shape import asks_leave, intent_words

    examples = [("i want to book a room", "book_room"), ("book me a double", "book_room"),
                ("a room for two please", "book_room"), ("cancel it", "cancel_booking"),
                ("is there a room safe", "ask_question"), ("two adults", "inform")]
    words = intent_words(examples, ["book_room", "cancel_booking", "inform"],
                         share=0.5, hold=0.6)
    # "room": 2 of book_room's 3 examples, 2 of the 3 with it; "two": 1 of inform's 2
    assert words == {"book_room": frozenset({"book", "room", "a"}),
                     "cancel_booking": frozenset({"cancel", "it"}),
                     "inform": frozenset({"adults"})}
    for text in ("can i arrive a day later", "ok so could we pay by card",
                 "we have twins, can we get two cots"):
        assert asks_leave(text), text
    for text in ("how can i get to the hotel", "is there a pool", "can you cancel it"):
        assert not asks_leave(text), text


PLAIN_QUESTIONS = replace(TASK_QUESTIONS, plain_questions=("book_room",),
                          plain_question_confidence=0.5).with_task_words(
    [("i want to book one room", "book_room"), ("book me the double room", "book_room"),
     ("is breakfast served", "ask_question"), ("is a room safe there", "ask_question")])


async def test_a_question_plainly_not_the_task_is_answered_at_the_lower_bar(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    bot = manager(demo, ensemble, executor, PLAIN_QUESTIONS)
    result = await say(bot, "is there a spa in lisbon")  # the knowledge base 0.6 sure
    assert texts(result) == [UNSURE_ANSWER]
    record = next(d["fallback"] for d in result.diagnostics if "fallback" in d)
    assert record["reason"] == "plain_question"
    for text in ("is there a spa room to book in lisbon",  # names the task's words
                 "can we use the spa in lisbon"):          # asks leave
        await say(bot, "/restart")
        result = await say(bot, text)
        assert actions(result)[0] == "booking_form", text
        assert UNSURE_ANSWER not in texts(result)


async def test_a_plain_question_the_knowledge_base_declines_gets_the_decline_not_the_form(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    """Plainly not the task it was filed under, a question the knowledge base cannot answer
    gets its decline (with the offer of a person), not the booking form's first question."""
    declines = {v["text"] for v in demo.domain.responses["utter_cannot_answer"]}
    bot = manager(demo, ensemble, executor, PLAIN_QUESTIONS)
    result = await say(bot, "any tascas in lisbon open on mondays")
    assert actions(result) == ["action_answer_question"]
    assert set(texts(result)) <= declines and texts(result)
    assert result.tracker.active_loop_name is None
    record = next(d["fallback"] for d in result.diagnostics if "fallback" in d)
    assert record["reason"] == "plain_question" and record["answered"] is None
    assert record["declined"] == "action_answer_question"
    # not plain (a question filed under a task, the knowledge base unsure): the task runs
    result = await say(manager(demo, ensemble, executor, TASK_QUESTIONS),
                       "any tascas in lisbon open on mondays")
    assert actions(result)[0] == "booking_form"


async def test_a_question_filed_as_a_task_gets_a_confident_knowledge_answer(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    result = await say(manager(demo, ensemble, executor, TASK_QUESTIONS),
                       "can i get breakfast at the lisbon hotel")  # a city is no booking detail
    assert texts(result) == [ANSWER]
    assert actions(result) == ["action_answer_question"]
    assert result.tracker.active_loop_name is None
    record = next(d["fallback"] for d in result.diagnostics if "fallback" in d)
    assert record == {"reason": "question", "tried": ["action_answer_question"],
                      "answered": "action_answer_question"}
    checked = await say(manager(demo, ensemble, executor, TASK_QUESTIONS),
                        "does my booking include breakfast?")
    assert actions(checked) == ["action_answer_question"]


async def test_an_unsure_knowledge_answer_leaves_the_task_to_run(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    result = await say(manager(demo, ensemble, executor, TASK_QUESTIONS),
                       "is there a spa in lisbon")
    assert executor.asked == ["is there a spa in lisbon"]
    assert actions(result)[0] == "booking_form"
    assert UNSURE_ANSWER not in texts(result)
    executor.asked.clear()
    not_configured = await say(manager(demo, ensemble, executor, FallbackChain()),
                               "can i get breakfast at the lisbon hotel")
    assert actions(not_configured)[0] == "booking_form" and executor.asked == []


async def test_booking_details_statements_and_forms_keep_the_task(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    bot = manager(demo, ensemble, executor, TASK_QUESTIONS)
    for text in ("can i book breakfast for tomorrow",  # a check-in date: a booking
                 "breakfast room for two please"):     # not put as a question
        assert actions(await say(bot, text))[0] == "booking_form"
        assert executor.asked == []
        await say(bot, "/restart")
    await say(bot, "i want to book a room")
    await say(bot, "can i get breakfast at the lisbon hotel")  # the form asks for the city
    assert executor.asked == []


@pytest.mark.parametrize("section, message", [
    ({"question_confidence": 1.5}, "fallback.question_confidence must be a confidence"),
    ({"questions": "book_room"}, "fallback.questions must be a list of names"),
    ({"plain_question_confidence": -0.1}, "fallback.plain_question_confidence must be a"),
    ({"questions": ["book_room"], "plain_questions": ["inform"]},
     "fallback.plain_questions names 'inform', which fallback.questions does not"),
])
def test_question_keys_are_checked(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        FallbackChain.from_config(section, "config.yml: fallback")


async def test_small_talk_filed_sure_gets_a_knowledge_answer_only_at_question_confidence(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    """chitchat's canned response is a give-up; the knowledge base answers the message only
    as sure as a question filed under a task ("how's the weather" once got a sentence about
    a terrace "in good weather" at 0.64)."""
    chain = FallbackChain(give_up=("utter_chitchat",), questions=("chitchat",))
    unsure = await say(manager(demo, ensemble, executor, chain), "is your spa nice")
    assert executor.asked == ["is your spa nice"]
    assert actions(unsure) == ["utter_chitchat"] and UNSURE_ANSWER not in texts(unsure)
    record = next(d["fallback"] for d in unsure.diagnostics if "fallback" in d)
    assert record == {"reason": "give_up_filed", "tried": ["action_answer_question"],
                      "answered": None}
    sure = await say(manager(demo, ensemble, executor, chain), "is breakfast fun")
    assert texts(sure) == [ANSWER]
    plain = FallbackChain(give_up=("utter_chitchat",))  # chitchat not among `questions`
    assert texts(await say(manager(demo, ensemble, executor, plain), "is your spa nice")) == [
        UNSURE_ANSWER]


async def test_a_question_about_a_named_place_gets_the_decline_not_small_talk(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    """Giving up on a question that names a city, does not speak to the bot and was filed as
    chitchat, the knowledge base's "not sure" is said (it offers a person), not chitchat's
    canned reply; small talk with the bot, statements, out_of_scope and chains without
    `place_questions` are as before."""
    chain = FallbackChain(give_up=("utter_chitchat", "utter_out_of_scope"),
                          questions=("chitchat",), place_questions=("city",))
    declines = {v["text"] for v in demo.domain.responses["utter_cannot_answer"]}
    for question in ("does the lisbon hotel do shoe shining?",):
        result = await say(manager(demo, ensemble, executor, chain), question)
        assert actions(result) == ["action_answer_question"]
        assert set(texts(result)) <= declines and texts(result)
        record = next(d["fallback"] for d in result.diagnostics if "fallback" in d)
        assert record["answered"] is None and record["declined"] == "action_answer_question"
        assert result.tracker.latest_action_name == "action_listen"
    for small_talk in ("have you ever been to lisbon?", "lisbon is lovely"):
        result = await say(manager(demo, ensemble, executor, chain), small_talk)
        assert actions(result) == ["utter_chitchat"]
    # filed as out_of_scope: its own reply declines already
    result = await say(manager(demo, ensemble, executor, chain),
                       "what is the weather in lisbon in november")
    assert actions(result) == ["utter_out_of_scope"]
    off = replace(chain, place_questions=())
    result = await say(manager(demo, ensemble, executor, off),
                       "does the lisbon hotel do shoe shining?")
    assert actions(result) == ["utter_chitchat"]


async def test_a_question_about_a_named_place_is_answered_at_the_knowledge_bases_own_bar(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    """Filed, sure, as chitchat, a question about a place is not small talk: the knowledge
    answer counts as for any give-up, not only at question_confidence."""
    chain = FallbackChain(give_up=("utter_chitchat",), questions=("chitchat",),
                          place_questions=("city",))
    result = await say(manager(demo, ensemble, executor, chain), "is the spa in lisbon nice?")
    assert texts(result) == [UNSURE_ANSWER]
    record = next(d["fallback"] for d in result.diagnostics if "fallback" in d)
    assert record["reason"] == "give_up" and record["answered"] == "action_answer_question"
    held = await say(manager(demo, ensemble, executor, replace(chain, place_questions=())),
                     "is the spa in lisbon nice?")
    assert actions(held) == ["utter_chitchat"]


def test_a_written_reply_answers_small_talk_filed_sure() -> None:
    from bot.state.events import BotUttered

    chain = FallbackChain(questions=("chitchat",))
    written = [BotUttered(text="Jet lag is cruel.", metadata={"generated": True})]
    knowledge = [BotUttered(text=UNSURE_ANSWER, metadata={"knowledge": {"confidence": 0.6}})]
    assert chain.answered(written, "give_up_filed")
    assert not chain.answered(knowledge, "give_up_filed")
    assert not chain.answered(written, "question")
    assert chain.answered(knowledge, "give_up")


# ---------------------------------------------------------------- questions inside a form
async def test_a_question_the_form_would_read_is_answered_first_when_configured(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    # The booking form asks for the city; the question's date fills checkin_date (that
    # mapping reads every intent), so the form takes the message and no rule answers it.
    question = "is breakfast served on friday"
    before = manager(demo, ensemble, executor, FallbackChain())
    await say(before, "i want to book a room")
    taken = await say(before, question)
    assert actions(taken) == ["booking_form"] and executor.asked == []

    bot = manager(demo, ensemble, executor, FallbackChain(digressions=("ask_question",)))
    await say(bot, "i want to book a room")
    result = await say(bot, question)
    assert texts(result)[0] == ANSWER
    assert actions(result) == ["action_answer_question", "booking_form"]
    assert result.tracker.active_loop_name == "booking_form"
    asked_again = {v["text"] for v in demo.domain.responses["utter_ask_city"]}
    assert texts(result)[1] in asked_again  # interrupted: the form asks, reading nothing
    record = next(d["fallback"] for d in result.diagnostics if "fallback" in d)
    assert record["reason"] == "digression"


async def test_a_declined_question_inside_a_form_leaves_the_form_to_read_it(
        demo: Project, ensemble: PolicyEnsemble, executor: KnowledgeAtTheEdge) -> None:
    bot = manager(demo, ensemble, executor, FallbackChain(digressions=("ask_question",)))
    await say(bot, "i want to book a room")
    result = await say(bot, "is the pool open on friday")
    assert executor.asked == ["is the pool open on friday"]
    assert actions(result) == ["booking_form"]
    assert all(m.get("metadata", {}).get("knowledge") is None for m in result.messages)
