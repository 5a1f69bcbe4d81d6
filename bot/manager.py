"""The dialogue manager: one user message in, bot messages out, the tracker saved.

    tracker = store.retrieve(sender_id)       (under the conversation's lock, from lock_store)
    session start if new or expired
    parse (`/intent` payloads skip the NLU) -> UserUttered, action_extract_slots
    loop: policies predict -> run action -> events, until action_listen or the cap
          (before a give-up action, the fallback chain's attempts may answer instead)
    store.save(tracker)
A failing action ends the turn with utter_error; every event before the failure is kept.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from bot.project.domain import Domain
from bot.errors import ActionError, ActionRejected, BotError
from bot.state.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActiveLoop,
    BotUttered,
    Event,
    LoopInterrupted,
    UserUttered,
)
from bot.runtime.executors import ActionExecutor
from bot.runtime.fallback_chain import FallbackChain
from bot.state.intent_payload import parse_intent_payload
from bot.storage.locks import InMemoryLockStore, LockStore
from bot.policies import PolicyEnsemble
from bot.runtime.responses import ResponseRenderer
from bot.runtime.resolve import action_for_name
from bot.runtime.runtime_actions import ActionContext, bot_event
from bot.state.slot_mapping import extract_slots
from bot.storage.stores import InMemoryTrackerStore, TrackerStore
from bot.state.tracker import DialogueStateTracker

logger = logging.getLogger(__name__)

ACTION_LISTEN = "action_listen"
MAX_TEXT_CHARS = 10_000

Parser = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class UserMessage:
    text: str
    sender_id: str
    input_channel: str = "rest"
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    metadata: dict[str, Any] = field(default_factory=dict)
    # A parse given with the message (as Rasa's UserMessage.parse_data): the NLU is skipped.
    parse_data: dict[str, Any] | None = None


@dataclass(slots=True)
class TurnResult:
    messages: list[dict[str, Any]]
    tracker: DialogueStateTracker
    diagnostics: list[dict[str, Any]] = field(default_factory=list)


class DialogueManager:
    def __init__(self, domain: Domain, policies: PolicyEnsemble, *,
                 parser: Parser | None = None,
                 store: TrackerStore | None = None,
                 executor: ActionExecutor | None = None,
                 renderer: ResponseRenderer | None = None,
                 max_predictions: int = 10,
                 lock_store: LockStore | None = None,
                 fallback: FallbackChain | None = None) -> None:
        self.domain = domain
        self.policies = policies
        self.parser = parser
        self.store = store if store is not None else InMemoryTrackerStore(domain.slot_defaults())
        self.executor = executor
        self.renderer = renderer if renderer is not None else ResponseRenderer(domain)
        self.max_predictions = max_predictions
        self.lock_store = lock_store if lock_store is not None else InMemoryLockStore()
        self._executor_names = executor.names() if executor is not None else set()
        known = set(domain.action_names) | (self._executor_names or set())
        self.fallback = fallback.available(known) if fallback is not None else None

    # public entry points ---------------------------------------------------------------------
    async def handle_message(self, message: UserMessage) -> TurnResult:
        async with self.lock(message.sender_id):
            tracker = await self.get_tracker(message.sender_id, message.input_channel)
            parse = (message.parse_data if message.parse_data is not None
                     else await self.parse(message.text))
            tracker.update(UserUttered(text=message.text, parse_data=parse,
                                       input_channel=message.input_channel,
                                       message_id=message.message_id, metadata=message.metadata))
            return await self._respond(tracker, message.input_channel, message.message_id)

    async def trigger_intent(self, sender_id: str, intent: str, entities: dict[str, Any],
                             channel: str = "rest") -> TurnResult:
        async with self.lock(sender_id):
            tracker = await self.get_tracker(sender_id, channel)
            ents = [{"entity": k, "value": v} for k, v in entities.items()]
            parse = {"intent": {"name": intent, "confidence": 1.0},
                     "intent_ranking": [{"name": intent, "confidence": 1.0}],
                     "entities": ents, "text": f"EXTERNAL: {intent}"}
            tracker.update(UserUttered(text=f"EXTERNAL: {intent}", parse_data=parse,
                                       input_channel=channel))
            return await self._respond(tracker, channel, None)

    async def execute_action(self, sender_id: str, action: str, policy: str | None = None,
                             confidence: float | None = None, channel: str = "rest") -> TurnResult:
        async with self.lock(sender_id):
            tracker = await self.get_tracker(sender_id, channel)
            messages: list[dict[str, Any]] = []
            # Like Rasa's /execute: run this one action, then wait for the user.
            await self._run_action(tracker, action, policy, confidence, channel, messages, None)
            self.store.save(tracker)
            return TurnResult(messages, tracker)

    async def update_tracker(self, sender_id: str, events: list[Event]) -> DialogueStateTracker:
        async with self.lock(sender_id):
            tracker = self.store.retrieve(sender_id) or self._new_tracker(sender_id)
            tracker.update_many(events)
            self.store.save(tracker)
            return tracker

    async def parse(self, text: str) -> dict[str, Any]:
        payload = parse_intent_payload(text)
        if payload is not None:
            if payload["intent"]["name"] not in self.domain.intent_names:
                logger.warning("dialogue.unknown_intent_payload intent=%s",
                               payload["intent"]["name"])
                payload["intent"] = {"name": "nlu_fallback", "confidence": 1.0}
            return payload
        if self.parser is None:
            return {"text": text, "intent": {"name": None, "confidence": 0.0}, "entities": [],
                    "intent_ranking": []}
        return await self.parser(text)

    async def get_tracker(self, sender_id: str, channel: str | None = None) -> DialogueStateTracker:
        """The sender's tracker, with a session started when it is new or expired."""
        tracker = self.store.retrieve(sender_id) or self._new_tracker(sender_id)
        if self._needs_session_start(tracker):
            messages: list[dict[str, Any]] = []
            await self._run_action(tracker, "action_session_start", None, None, channel,
                                   messages, None)
        return tracker

    def retrieve(self, sender_id: str) -> DialogueStateTracker:
        return self.store.retrieve(sender_id) or self._new_tracker(sender_id)

    # the turn --------------------------------------------------------------------------------
    async def _respond(self, tracker: DialogueStateTracker, channel: str | None,
                       message_id: str | None) -> TurnResult:
        messages: list[dict[str, Any]] = []
        diagnostics: list[dict[str, Any]] = []
        if tracker.is_paused:
            logger.info("dialogue.paused sender=%s", _hash(tracker.sender_id))
        else:
            tracker.update_many(extract_slots(tracker, self.domain))
            await self._prediction_loop(tracker, channel, messages, message_id, diagnostics)
        self.store.save(tracker)
        return TurnResult(messages, tracker, diagnostics)

    def predict_next(self, tracker: DialogueStateTracker) -> tuple[str, str, float,
                                                                     dict[str, Any]]:
        """The next action for the tracker as it stands: the follow-up action when one is set,
        else the ensemble's best vote (an action that just refused to run is not predicted
        again, like Rasa). Returns (action, policy, confidence, diagnostics); the winning
        prediction's events are applied to the tracker."""
        followup = tracker.followup_action
        if followup:
            return followup, "followup", 1.0, {"action": followup, "policy": "followup",
                                               "confidence": 1.0, "reason": "followup_action",
                                               "votes": []}
        last = tracker.events[-1] if tracker.events else None
        exclude = {last.name} if isinstance(last, ActionExecutionRejected) else None
        best, votes = self.policies.predict(tracker, self.domain, exclude=exclude)
        action = best.action or ACTION_LISTEN
        diagnostics = {"action": action, "policy": best.policy, "confidence": best.confidence,
                       "reason": best.diagnostics.get("reason"),
                       "votes": [{"policy": v.policy, "action": v.action,
                                  "confidence": v.confidence} for v in votes]}
        tracker.update_many(best.events)
        return action, best.policy, best.confidence, diagnostics

    async def _prediction_loop(self, tracker: DialogueStateTracker, channel: str | None,
                               messages: list[dict[str, Any]], message_id: str | None,
                               diagnostics: list[dict[str, Any]]) -> None:
        for _ in range(self.max_predictions):
            followup = tracker.followup_action
            action, policy, confidence, why = self.predict_next(tracker)
            if not followup:
                diagnostics.append(why)
                self.mark_interruption(tracker, action)
                chain = self.fallback
                if (chain is not None and chain.applies(tracker, action)
                        and await self._try_fallbacks(chain, tracker, channel, messages)):
                    return
            if action == ACTION_LISTEN:
                tracker.update(ActionExecuted(name=ACTION_LISTEN, policy=policy,
                                              confidence=confidence))
                return
            ok = await self._run_action(tracker, action, policy, confidence, channel, messages,
                                        message_id)
            if not ok or action == "action_session_start":
                # As Rasa: a session start (the follow-up of action_restart) ends the turn,
                # with its own action_listen; nothing is predicted for the empty tracker.
                return
        logger.warning("dialogue.prediction_cap sender=%s cap=%d", _hash(tracker.sender_id),
                       self.max_predictions)
        tracker.update(ActionExecuted(name=ACTION_LISTEN, policy="prediction_cap"))

    async def _run_action(self, tracker: DialogueStateTracker, name: str, policy: str | None,
                          confidence: float | None, channel: str | None,
                          messages: list[dict[str, Any]], message_id: str | None) -> bool:
        """Run one action; False when the turn must end (the action failed)."""
        started = time.perf_counter()
        try:
            action = action_for_name(name, self.domain, self._executor_names)
            ctx = ActionContext(tracker, self.domain, self.renderer, self.executor, channel)
            events = await action.run(ctx)
        except ActionRejected as exc:
            logger.info("dialogue.action.rejected action=%s message_id=%s", name, message_id)
            logger.debug("dialogue.action.rejected.detail %s", exc)
            tracker.update(ActionExecutionRejected(name=name, policy=policy, confidence=confidence))
            return True
        except (ActionError, BotError) as exc:
            logger.error("dialogue.action.failed action=%s message_id=%s sender=%s error=%s",
                         name, message_id, _hash(tracker.sender_id), exc, exc_info=True)
            self._fail(tracker, channel, messages)
            return False
        except Exception:  # noqa: BLE001 - stay up in the middle: the user still gets an answer
            logger.exception("dialogue.action.crashed action=%s message_id=%s", name, message_id)
            self._fail(tracker, channel, messages)
            return False
        tracker.update(ActionExecuted(name=name, policy=policy, confidence=confidence))
        for event in events:
            tracker.update(event)
            if isinstance(event, BotUttered):
                messages.append(_message(event, tracker.sender_id))
        logger.debug("dialogue.action.done action=%s ms=%.1f", name,
                     (time.perf_counter() - started) * 1000)
        return True

    async def _try_fallbacks(self, chain: FallbackChain, tracker: DialogueStateTracker,
                             channel: str | None, messages: list[dict[str, Any]]) -> bool:
        """Run the chain's attempts in order; the first that answers is kept (the form, if
        one is active, asks its question again) and ends the turn. Attempts that decline or
        fail leave no event behind, so the predicted action runs as if nothing happened."""
        for name in chain.attempts:
            try:
                action = action_for_name(name, self.domain, self._executor_names)
                ctx = ActionContext(tracker, self.domain, self.renderer, self.executor, channel)
                events = await action.run(ctx)
            except Exception as exc:  # noqa: BLE001 - a failed attempt is a declined attempt
                logger.warning("dialogue.fallback.failed action=%s error=%s: %s", name,
                               type(exc).__name__, exc)
                continue
            if not chain.answered(events):
                continue
            logger.info("dialogue.fallback.answered action=%s", name)
            tracker.update(ActionExecuted(name=name, policy="fallback_chain", confidence=1.0))
            for event in events:
                tracker.update(event)
                if isinstance(event, BotUttered):
                    messages.append(_message(event, tracker.sender_id))
            loop = tracker.active_loop_name
            if loop and not await self._run_action(tracker, loop, "fallback_chain", 1.0,
                                                   channel, messages, None):
                return True
            tracker.update(ActionExecuted(name=ACTION_LISTEN, policy="fallback_chain"))
            return True
        return False

    def _fail(self, tracker: DialogueStateTracker, channel: str | None,
              messages: list[dict[str, Any]]) -> None:
        rendered = self.renderer.render("utter_error", tracker.slots, channel)
        if rendered is not None:
            event = bot_event(rendered)
            tracker.update(ActionExecuted(name="utter_error", policy="error_handler"))
            tracker.update(event)
            messages.append(_message(event, tracker.sender_id))
        loop = tracker.active_loop_name
        if loop and tracker.is_active_loop_rejected:
            # Re-arm the form: its next input is read as an answer again.
            tracker.update(ActiveLoop(name=loop))
        tracker.update(ActionExecuted(name=ACTION_LISTEN, policy="error_handler"))

    def mark_interruption(self, tracker: DialogueStateTracker, action: str) -> None:
        """Right after the user spoke while a loop is active: another action interrupts the
        loop, and a loop resumed after it refused the turn must not validate this message."""
        loop = tracker.active_loop_name
        if not loop or tracker.latest_action_name != ACTION_LISTEN:
            return
        if action not in (loop, ACTION_LISTEN, "action_deactivate_loop") or (
                action == loop and tracker.is_active_loop_rejected):
            tracker.update(LoopInterrupted(is_interrupted=True))

    def _needs_session_start(self, tracker: DialogueStateTracker) -> bool:
        events = tracker.events
        if not any(isinstance(e, ActionExecuted) and e.name == "action_session_start"
                   for e in events):
            return True
        expiry_min = self.domain.session_config.session_expiration_time_min
        if expiry_min <= 0:
            return False
        last_user = next((e for e in reversed(events) if isinstance(e, UserUttered)), None)
        return last_user is not None and time.time() - last_user.timestamp > expiry_min * 60

    def _new_tracker(self, sender_id: str) -> DialogueStateTracker:
        return DialogueStateTracker(sender_id, self.domain.slot_defaults())

    def lock(self, sender_id: str) -> AbstractAsyncContextManager[None]:
        """The conversation's lock from the lock store: ``async with manager.lock(sender_id)``
        around every read-modify-save of a tracker."""
        return self.lock_store.lock(sender_id)


def _message(event: BotUttered, sender_id: str) -> dict[str, Any]:
    """A bot message in the REST channel's shape: as Rasa's output channels, empty parts
    (rasa_sdk's `custom: {}`, `elements: []`) are left out."""
    out: dict[str, Any] = {"recipient_id": sender_id}
    if event.text is not None:
        out["text"] = event.text
    for key, value in event.data.items():
        if value not in (None, "", [], {}):
            out[key] = value
    if event.metadata:
        out["metadata"] = dict(event.metadata)
    return out


def _hash(sender_id: str) -> str:
    return hashlib.sha256(sender_id.encode()).hexdigest()[:12]

