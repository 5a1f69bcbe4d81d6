"""The kind of a small-talk message (generation/kinds.py): speech act and whom it is about."""

from __future__ import annotations

import pytest

from generation.kinds import (QUESTION, REQUEST, STATEMENT, Kind, asks_job, message_kind,
                              small_talk)


@pytest.mark.parametrize("text, act, to_bot", [
    ("do you ever feel lonely?", QUESTION, True),
    ("i feel lonely sometimes", STATEMENT, False),
    ("dont you wish you could travel", QUESTION, True),
    ("i wish i could travel more often", STATEMENT, False),
    ("whats ur favourite animal", QUESTION, True),  # no "?" needed
    ("honestly, do u enjoy this job", QUESTION, True),  # after a filler
    ("i'm grumpy today. do u ever get grumpy", QUESTION, True),  # a later clause asks
    ("learning piano at 35, is that silly", QUESTION, True),
    ("if u could rename the moon", QUESTION, True),
    ("u ever get a vacation", QUESTION, True),
    ("r u a bird person", QUESTION, True),
    ("tea or coffee person?", QUESTION, True),  # neither "you" nor "i": asks the bot
    ("planes or trains", QUESTION, True),
    ("best film ever made", QUESTION, True),
    ("best day of my life", STATEMENT, False),
    ("is it weird that i talk to my plants?", QUESTION, False),  # about the guest
    ("do you think i should learn to dance", QUESTION, False),
    ("do you think people are friendlier in small towns?", QUESTION, True),
    ("had a great day at the beach", STATEMENT, False),  # "had" opens a statement
    ("have you been to rome", QUESTION, True),
    ("what a day", STATEMENT, False),  # an exclamation
    ("ur really helpful", STATEMENT, True),
    ("you're very charming for a bot", STATEMENT, True),
    ("tell me a joke", REQUEST, True),  # a request is always to the bot
    ("can you tell me a joke", REQUEST, True),
    ("please recommend a book", REQUEST, True),
    ("order me a burger", REQUEST, True),  # a job: only a pair for a request answers it
    ("get me a taxi", REQUEST, True),
    ("look at that sunset", STATEMENT, False),
    ("trust me, the view was amazing", STATEMENT, False),
    ("", STATEMENT, False),
])
def test_message_kind(text: str, act: str, to_bot: bool) -> None:
    assert message_kind(text) == Kind(act, to_bot)


def test_a_kind_fits_only_itself() -> None:
    question = message_kind("do you like rainy days?")
    assert question.fits(message_kind("what's your favourite season?"))
    assert not question.fits(message_kind("i love rainy days"))
    assert not question.fits(message_kind("should i cut my hair short?"))
    assert not question.fits(message_kind("tell me about rainy days"))


@pytest.mark.parametrize("text", [
    "i just landed and i'm exhausted", "the sunset from the plane was amazing",
    "do you like thunderstorms?", "what's your favourite animal?",
    "do you think aliens exist", "book club is next tuesday and im not ready"])
def test_small_talk_a_model_may_answer(text: str) -> None:
    assert small_talk(text)


@pytest.mark.parametrize("text", [
    "write me a poem about the ocean", "whats the capital of peru",
    "convert 150 pounds to kilograms", "can you fix my python code",
    "tell me how to file my taxes", "should i put my savings into bitcoin",
    "how do i change a flat tire", "is bitcoin a good investment right now",
    "quiz me on the periodic table", "my toddler won't sleep through the night, any tips",
    "can you book me a flight to rome", "can u buy me two concert tickets for saturday"])
def test_jobs_world_questions_and_advice_are_no_small_talk(text: str) -> None:
    assert not small_talk(text)


@pytest.mark.parametrize("text", [
    "order me a burger", "get me a taxi", "find me a good sushi place", "bring us two coffees",
    "so get us a table at lumiere", "can you book me a flight to rome", "draw me something",
    "can u buy me two concert tickets for saturday"])
def test_jobs_asked_of_the_bot(text: str) -> None:
    assert asks_job(text) and not small_talk(text)


@pytest.mark.parametrize("text", [
    "tell me a joke", "give me a compliment", "can you tell me a joke", "trust me, it was fun",
    "wish me luck", "call me crazy but i love airports", "will u marry me", "look at that sunset",
    "can you keep me company while i wait", "not me crying at a cartoon again", "get well soon",
    "i could really go for a burger"])
def test_chat_that_asks_no_job(text: str) -> None:
    assert not asks_job(text)
