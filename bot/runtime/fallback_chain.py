"""Before the bot gives up, it tries the actions that may still answer: the fallback chain.

    rules / stories / forms  ->  give-up action predicted (utter_out_of_scope, utter_default, ...)
                                  or an unsure intent outside a form
                                  or a question put as a task intent (see `questions`)
                                  or a question inside a form that the form would take
                                     (see `digressions`)
                             ->  try action_answer_question (a confident knowledge-base answer)
                             ->  try the next attempt (e.g. a generated small-talk reply)
                             ->  the action as predicted

Rules and stories keep the control: the chain only steps in where they already chose to give up
(or where the NLU was unsure and no form is asking, or where a guest asked a question the NLU
filed under a task, or asked a question the active form was about to read as an answer), and an
attempt that declines leaves no trace in the tracker (except where the predicted action would
misread the message: a question plainly not its intent's task, `plain_questions`, and a question
about a place, `place_questions`, given up on; there the first attempt's decline is said instead
of the task's form or the canned reply). An attempt "answers" when it utters a message that is
not one of `declines` (the knowledge action utters utter_cannot_answer when it is not
confident); for a question filed under a task, only a knowledge answer at `question_confidence`
or above counts (message metadata `knowledge.confidence`), so the task still runs unless the
knowledge base is sure; the same bar holds for a knowledge answer when the bot gives up on a
message the NLU filed, sure, under one of `questions` (chitchat's canned response: "how's the
weather" is small talk, not a question for the knowledge base, whose bar sentence about a
terrace "in good weather" came close), while another attempt (a written small-talk reply)
answers as usual. After an answer inside a form the form is interrupted: it asks its question
again without reading the question as an answer.

config.yml, all keys optional; without a `fallback:` section there is no chain and a Rasa
project behaves exactly as before:

    fallback:
      attempts: [action_answer_question]     # tried in this order
      give_up: [utter_out_of_scope, utter_default, action_default_fallback]
      below: 0.6       # outside forms, a message whose intent is under this confidence is
                       # tried too (0 turns it off); `keep` intents never are
      keep: [affirm, deny, inform, stop, greet, goodbye, thank]
      declines: [utter_cannot_answer, utter_knowledge_building]
      questions: [book_room, check_booking]  # these intents' question-shaped messages
                       # (bot/runtime/question_shape.py) that do not ask the assistant to
                       # act ("can you cancel my booking?"), with no entity outside
                       # `question_entities` are tried first, outside forms (default: none)
      question_confidence: 0.8   # ... and the knowledge answer is kept only at this confidence
      question_entities: [hotel, city]       # entities a question may name
      plain_questions: [book_room]   # of `questions`: a question of these intents that
                       # names none of the words marking the intent's own examples
                       # (question_shape.intent_words) and asks no leave ("can i ...") is
                       # plainly not the task ("any tascas near aurora open on mondays?";
                       # default: none) ...
      plain_question_confidence: 0.5  # ... and is answered at this confidence (default:
                       # question_confidence); where no attempt answers, an attempt's
                       # decline is said instead of the task
      digressions: [ask_question]   # inside a form, these intents are tried first when the
                       # form (not a rule) is predicted for them (default: none)
      place_questions: [hotel, city]   # a question that names one of these entities and
                       # does not speak to the bot is about the place: where the bot gives
                       # up on it, the attempts answer as for any give-up (no
                       # question_confidence), and if none does and the NLU filed it under
                       # one of `questions`, an attempt's decline is said instead of the
                       # canned reply (default: none)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.errors import ConfigError
from bot.runtime.question_shape import (asks_leave, intent_words, is_question, is_request,
                                        to_bot, words_of)
from bot.state.events import ACTION_LISTEN_NAME, BotUttered, Event, UserUttered
from bot.state.tracker import DialogueStateTracker

NAME_LISTS = ("attempts", "give_up", "keep", "declines", "questions", "question_entities",
              "digressions", "plain_questions", "place_questions")
CONFIDENCES = ("below", "question_confidence", "plain_question_confidence")
KEYS = NAME_LISTS + CONFIDENCES

# Why the chain stepped in (the prediction's diagnostics say it, under "fallback").
GIVE_UP, UNSURE, QUESTION, DIGRESSION = "give_up", "unsure", "question", "digression"
PLAIN = "plain_question"  # a QUESTION that is plainly not its intent's task (plain_questions)
FILED = "give_up_filed"  # giving up on a message the NLU filed, sure, under a `questions` intent


@dataclass(frozen=True, slots=True)
class FallbackChain:
    attempts: tuple[str, ...] = ("action_answer_question",)
    give_up: tuple[str, ...] = ("utter_out_of_scope", "utter_default", "action_default_fallback")
    below: float = 0.0  # off unless configured: an unsure intent alone changes nothing
    keep: tuple[str, ...] = ("affirm", "deny", "inform", "stop", "greet", "goodbye", "thank")
    # the knowledge action's "no": not sure, or its model still being built
    declines: tuple[str, ...] = ("utter_cannot_answer", "utter_knowledge_building")
    questions: tuple[str, ...] = ()  # off unless configured: a task intent is trusted
    # A wrong answer instead of a booking costs more than a missed answer: a high bar.
    question_confidence: float = 0.8
    question_entities: tuple[str, ...] = ("hotel", "city")
    digressions: tuple[str, ...] = ()  # off unless configured: the form reads every message
    plain_questions: tuple[str, ...] = ()  # off unless configured
    plain_question_confidence: float | None = None  # None: question_confidence
    # a question naming one of these entities (a hotel, a city), not said to the bot, is
    # about the place: never FILED, and declined honestly where the bot gives up on it
    place_questions: tuple[str, ...] = ()  # off unless configured
    # the words that mark each of `plain_questions` in the NLU data (with_task_words)
    task_words: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in CONFIDENCES:
            value = getattr(self, key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"fallback.{key} must be a confidence in [0, 1], got {value}.")
        stray = [name for name in self.plain_questions if name not in self.questions]
        if stray:
            raise ConfigError(f"fallback.plain_questions names '{stray[0]}', which "
                              f"fallback.questions does not: list it there too.")

    @classmethod
    def from_config(cls, section: Mapping[str, Any], at: str) -> FallbackChain:
        unknown = [key for key in section if key not in KEYS]
        if unknown:
            raise ConfigError(f"{at}: unknown key 'fallback.{unknown[0]}'. "
                              f"Available: {', '.join(KEYS)}.")
        values: dict[str, Any] = {}
        for key in NAME_LISTS:
            if key in section:
                names = section[key]
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise ConfigError(f"{at}: fallback.{key} must be a list of names, "
                                      f"got {type(names).__name__}.")
                values[key] = tuple(names)
        for key in CONFIDENCES:
            if key in section:
                value = section[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{at}: fallback.{key} must be a number in [0, 1].")
                values[key] = float(value)
        return cls(**values)

    def with_task_words(self, examples: Iterable[tuple[str, str]]) -> FallbackChain:
        """This chain knowing the words that mark each of `plain_questions` in the (text,
        intent) NLU `examples` (question_shape.intent_words)."""
        if not self.plain_questions:
            return self
        return replace(self, task_words=intent_words(examples, self.plain_questions))

    def available(self, known: Iterable[str]) -> FallbackChain | None:
        """This chain with only the attempts the project can run (None when none is left)."""
        names = set(known)
        attempts = tuple(a for a in self.attempts if a in names)
        if not attempts:
            return None
        return replace(self, attempts=attempts)

    def reason(self, tracker: DialogueStateTracker, action: str) -> str | None:
        """Why the chain steps in before `action`, the first one predicted after a typed user
        message: GIVE_UP (the bot is about to give up; FILED when the NLU filed the message
        under one of `questions` at `below` or more, unless it is a question about a place,
        `about_place`), UNSURE (the NLU was unsure and no form is asking), QUESTION (a question
        filed under a task intent, no form asking), DIGRESSION (a `digressions` intent the
        active form is predicted to read); None when it does not. A QUESTION filed under one of
        `plain_questions` that names none of that intent's task words and asks no leave is
        PLAIN."""
        if tracker.latest_action_name != ACTION_LISTEN_NAME or action in self.attempts:
            return None
        user = _latest_user(tracker)
        text = (user.text or "").strip() if user is not None else ""
        if not text or text.startswith("/"):  # `/intent` payloads say exactly what they mean
            return None
        parse = (user.parse_data if user is not None else None) or {}
        intent = parse.get("intent") or {}
        name = intent.get("name")
        sure = float(intent.get("confidence") or 0.0) >= self.below
        if action in self.give_up:
            filed = name in self.questions and sure and not self.about_place(user)
            return FILED if filed else GIVE_UP
        loop = tracker.active_loop_name
        if loop is not None:
            return DIGRESSION if action == loop and name in self.digressions else None
        if not sure and name not in self.keep:
            return UNSURE
        if name in self.questions and is_question(text) and not is_request(text) and all(
                e.get("entity") in self.question_entities for e in parse.get("entities") or []):
            plain = (name in self.plain_questions and not asks_leave(text)
                     and not self.task_words.get(name, frozenset()) & words_of(text))
            return PLAIN if plain else QUESTION
        return None

    def said_decline(self, events: Iterable[Event]) -> bool:
        """Whether an attempt's `events` utter one of `declines`."""
        return any(isinstance(e, BotUttered)
                   and (e.metadata or {}).get("utter_action") in self.declines for e in events)

    def about_place(self, user: UserUttered | None) -> bool:
        """Whether the guest's message is a question about a place: it names a
        `place_questions` entity ("does nova grand do shoe shining", "weather in vienna in
        november?") and does not speak to the bot ("have you been to paris?" is small talk)."""
        if not self.place_questions or user is None or not user.text:
            return False
        entities = (user.parse_data or {}).get("entities") or []
        return (any(e.get("entity") in self.place_questions for e in entities)
                and is_question(user.text) and not to_bot(user.text))

    def says_decline(self, tracker: DialogueStateTracker, reason: str) -> bool:
        """True when no attempt answered and the bot should say an attempt's decline ("I
        couldn't find a reliable answer ... pass you to a person?") rather than what it
        predicted: for a PLAIN question, plainly not its intent's task, that task's form
        would misread it ("any tascas near aurora open on mondays" filed under book_room
        asked for a check-in date); and for a question about a place (`about_place`) given
        up on that the NLU filed under one of `questions` (chitchat in the demo), a canned
        small-talk reply would. Filed as out_of_scope, a question keeps its out-of-scope
        reply, a decline already ("how do i get a tax refund as a freelancer in germany")."""
        if reason == PLAIN:
            return True
        user = _latest_user(tracker)
        intent = ((user.parse_data or {}).get("intent") or {}) if user is not None else {}
        return (reason == GIVE_UP and intent.get("name") in self.questions
                and self.about_place(user))

    def applies(self, tracker: DialogueStateTracker, action: str) -> bool:
        """True when the chain steps in before `action` (see `reason`)."""
        return self.reason(tracker, action) is not None

    def answered(self, events: Iterable[Event], reason: str = GIVE_UP) -> bool:
        """An attempt answered when it uttered anything other than a declining response; for
        a QUESTION, only a knowledge answer at `question_confidence` or above (a PLAIN one:
        `plain_question_confidence`); for FILED, a knowledge answer only at
        `question_confidence`, anything else as usual."""
        said = [e for e in events if isinstance(e, BotUttered)
                and (e.metadata or {}).get("utter_action") not in self.declines]
        if reason not in (QUESTION, PLAIN, FILED):
            return bool(said)
        bar = (self.plain_question_confidence if reason == PLAIN
               and self.plain_question_confidence is not None else self.question_confidence)
        sure = any(_knowledge_confidence(e) >= bar for e in said)
        if reason in (QUESTION, PLAIN):
            return sure
        from_knowledge = any(_knowledge_confidence(e) >= 0.0 for e in said)
        return sure if from_knowledge else bool(said)


def _latest_user(tracker: DialogueStateTracker) -> UserUttered | None:
    return next((e for e in reversed(tracker.events) if isinstance(e, UserUttered)), None)


def _knowledge_confidence(event: BotUttered) -> float:
    knowledge = (event.metadata or {}).get("knowledge")
    if not isinstance(knowledge, Mapping):
        return -1.0
    confidence = knowledge.get("confidence")
    return float(confidence) if isinstance(confidence, (int, float)) else -1.0
