"""The dialogue manager: one user message in, bot messages out, the tracker saved.

    parse (`/intent` payloads skip the NLU)
    lock (lock_store: a ticket lock; the grant carries a fencing token)
    tracker, version = store.load(sender_id)     (store I/O on a thread pool, with a deadline)
    a message id already stored: answer with its stored bot messages, done (a retry)
    session start if new or expired; UserUttered, action_extract_slots
    loop: policies predict -> run action -> events, until action_listen or the cap
          (before a give-up action, the fallback chain's attempts may answer instead)
    store.save(tracker, expected_version=version, fence=token)   (refused when stale)
A failing action ends the turn with utter_error; every event before the failure is kept.
Every route that changes a conversation goes through ``_turn``, the one place that locks,
reads and saves.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bot.project.domain import Domain
from bot.errors import ActionError, ActionRejected, BotError
from bot.state.events import (
    ACTION_LISTEN_NAME,
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
from bot.storage.blocking import DEFAULT_IO_TIMEOUT_S, run_blocking
from bot.storage.locks import InMemoryLockStore, LockStore
from bot.policies import PolicyEnsemble
from bot.runtime.responses import ResponseRenderer
from bot.runtime.resolve import action_for_name
from bot.runtime.runtime_actions import ActionContext, bot_event
from bot.state.slot_mapping import extract_slots
from bot.storage.stores import InMemoryTrackerStore, TrackerStore
from bot.state.tracker import DialogueStateTracker
from nlu.context import DialogueContext

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 10_000

# parser(text) or parser(text, context=DialogueContext): what the bot just asked, for an NLU
# that reads it (nlu/context.py)
Parser = Callable[..., Awaitable[dict[str, Any]]]


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
                 fallback: FallbackChain | None = None,
                 store_timeout_s: float = DEFAULT_IO_TIMEOUT_S) -> None:
        self.domain = domain
        self.policies = policies
        self.parser = parser
        self._parser_takes_context = parser is not None and _takes_context(parser)
        self.store = store if store is not None else InMemoryTrackerStore(domain.slot_defaults())
        self.executor = executor
        self.renderer = renderer if renderer is not None else ResponseRenderer(domain)
        self.max_predictions = max_predictions
        self.lock_store = lock_store if lock_store is not None else InMemoryLockStore()
        self.store_timeout_s = store_timeout_s
        self._executor_names = executor.names() if executor is not None else set()
        known = set(domain.action_names) | (self._executor_names or set())
        self.fallback = fallback.available(known) if fallback is not None else None

    # public entry points: each runs in one `_turn` (lock, read, change, fenced save) -------
    async def handle_message(self, message: UserMessage) -> TurnResult:
        async with self._turn(message.sender_id) as turn:
            replayed = _replay(turn.tracker, message.message_id)
            if replayed is not None:  # a retry of a stored message: its answer, run once
                logger.info("dialogue.retry_answered message_id=%s", message.message_id)
                turn.save = False
                return TurnResult(replayed, turn.tracker)
            tracker = turn.tracker
            await self._start_session_if_due(tracker, message.input_channel)
            # Parsed under the lock: the NLU reads what the bot just asked (dialogue context).
            parse = (message.parse_data if message.parse_data is not None
                     else await self.parse(message.text, dialogue_context(tracker)))
            tracker.update(UserUttered(text=message.text, parse_data=parse,
                                       input_channel=message.input_channel,
                                       message_id=message.message_id, metadata=message.metadata))
            return await self._respond(tracker, message.input_channel, message.message_id)

    async def trigger_intent(self, sender_id: str, intent: str, entities: dict[str, Any],
                             channel: str = "rest") -> TurnResult:
        ents = [{"entity": k, "value": v} for k, v in entities.items()]
        parse = {"intent": {"name": intent, "confidence": 1.0},
                 "intent_ranking": [{"name": intent, "confidence": 1.0}],
                 "entities": ents, "text": f"EXTERNAL: {intent}"}
        event = UserUttered(text=f"EXTERNAL: {intent}", parse_data=parse, input_channel=channel)
        async with self._turn(sender_id) as turn:
            await self._start_session_if_due(turn.tracker, channel)
            turn.tracker.update(event)
            return await self._respond(turn.tracker, channel, None)

    async def execute_action(self, sender_id: str, action: str, policy: str | None = None,
                             confidence: float | None = None, channel: str = "rest") -> TurnResult:
        async with self._turn(sender_id) as turn:
            await self._start_session_if_due(turn.tracker, channel)
            messages: list[dict[str, Any]] = []
            # Like Rasa's /execute: run this one action, then wait for the user.
            await self._run_action(turn.tracker, action, policy, confidence, channel, messages,
                                   None)
            return TurnResult(messages, turn.tracker)

    async def log_message(self, sender_id: str, event: UserUttered) -> DialogueStateTracker:
        """Add a user message without predicting (Rasa's POST .../messages)."""
        async with self._turn(sender_id) as turn:
            await self._start_session_if_due(turn.tracker, event.input_channel)
            turn.tracker.update(event)
            return turn.tracker

    async def update_tracker(self, sender_id: str, events: list[Event]) -> DialogueStateTracker:
        """Append events; as in Rasa, a new conversation starts with a session first."""
        async with self._turn(sender_id) as turn:
            if not turn.tracker.events:
                await self._start_session_if_due(turn.tracker, None)
            turn.tracker.update_many(events)
            return turn.tracker

    async def replace_tracker(self, sender_id: str, events: list[Event]) -> DialogueStateTracker:
        """Replace every stored event of the conversation with ``events``."""
        async with self._turn(sender_id) as turn:
            turn.tracker = DialogueStateTracker(sender_id, self.domain.slot_defaults(), events)
            turn.replace = True
            return turn.tracker

    async def predict(self, sender_id: str) -> tuple[dict[str, Any], DialogueStateTracker]:
        """Rasa's /predict: a score for every domain action, without running any. As Rasa,
        a session started on the way is kept."""
        async with self._turn(sender_id) as turn:
            await self._start_session_if_due(turn.tracker, None)
            choice = self._choose(turn.tracker, exclude=None)
            scores = dict.fromkeys(self.domain.action_names, 0.0)
            for name, score in choice.votes:
                if name is not None:
                    scores[name] = max(scores.get(name, 0.0), float(score))
            ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
            return ({"scores": [{"action": name, "score": score} for name, score in ranked],
                     "policy": choice.policy, "confidence": choice.confidence}, turn.tracker)

    async def fetch_tracker(self, sender_id: str) -> DialogueStateTracker:
        """The stored conversation (an empty tracker when there is none), read off the event
        loop without the lock."""
        stored = await self._io(self.store.load, sender_id, doing=f"read '{sender_id}'")
        return stored.tracker or self._new_tracker(sender_id)

    async def get_tracker(self, sender_id: str,
                          channel: str | None = None) -> DialogueStateTracker:
        """The stored conversation with a session started when due, neither locked nor saved
        (for offline replays such as story evaluation)."""
        tracker = await self.fetch_tracker(sender_id)
        await self._start_session_if_due(tracker, channel)
        return tracker

    async def parse(self, text: str, context: DialogueContext | None = None) -> dict[str, Any]:
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
        if self._parser_takes_context:
            return await self.parser(text, context=context)
        return await self.parser(text)

    def retrieve(self, sender_id: str) -> DialogueStateTracker:
        """The stored conversation, read on the calling thread (tests, the shell)."""
        return self.store.retrieve(sender_id) or self._new_tracker(sender_id)

    # one turn: lock, read, change, save ----------------------------------------------------------
    @asynccontextmanager
    async def _turn(self, sender_id: str) -> AsyncIterator[_Turn]:
        """Hold the conversation's lock, read it, let the caller change ``turn.tracker``,
        and save it (unless the caller raised or cleared ``turn.save``). The save names the
        version read and the lock's fencing token: when another turn has written since (this
        one's lock expired while it was stalled), StaleWriteError, and nothing is saved."""
        async with self.lock_store.lock(sender_id) as grant:
            stored = await self._io(self.store.load, sender_id, doing=f"read '{sender_id}'")
            turn = _Turn(stored.tracker or self._new_tracker(sender_id), stored.version)
            yield turn
            if turn.save:
                fence = getattr(grant, "fence", None)
                save = functools.partial(self.store.save, turn.tracker,
                                         expected_version=turn.version, fence=fence,
                                         replace=turn.replace)
                await self._io(save, doing=f"save '{sender_id}'")

    async def _io(self, call: Callable[..., Any], *args: Any, doing: str) -> Any:
        if getattr(self.store, "in_process", False):
            # a dict in this process never blocks: the thread hop (a pool thread woken and
            # the GIL handed over, twice a turn) cost more than the call itself under load
            return call(*args)
        return await run_blocking(call, *args, timeout_s=self.store_timeout_s,
                                  doing=f"{doing} ({type(self.store).__name__})")

    async def _start_session_if_due(self, tracker: DialogueStateTracker,
                                    channel: str | None) -> None:
        if self._needs_session_start(tracker):
            await self._run_action(tracker, "action_session_start", None, None, channel, [],
                                   None)

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
        action = best.action or ACTION_LISTEN_NAME
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
                reason = chain.reason(tracker, action) if chain is not None else None
                if (chain is not None and reason is not None and await self._try_fallbacks(
                        chain, reason, tracker, channel, messages, why)):
                    return
            if action == ACTION_LISTEN_NAME:
                tracker.update(ActionExecuted(name=ACTION_LISTEN_NAME, policy=policy,
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
        tracker.update(ActionExecuted(name=ACTION_LISTEN_NAME, policy="prediction_cap"))

    def _choose(self, tracker: DialogueStateTracker, exclude: set[str] | None) -> _Choice:
        """What /predict scores: a pending followup, else the ensemble's votes (unlike
        ``predict_next``, nothing is applied to the tracker)."""
        followup = tracker.followup_action
        if followup:
            return _Choice(followup, "followup", 1.0, [(followup, 1.0)])
        best, predictions = self.policies.predict(tracker, self.domain, exclude=exclude)
        action = best.action or ACTION_LISTEN_NAME
        votes = [(action, best.confidence)] + [(p.action, p.confidence) for p in predictions]
        return _Choice(action, best.policy, best.confidence, votes)

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
            # our errors say what failed and the fix: one line, the traceback at debug (an
            # action server that is down fails every form turn; formatting and writing a
            # three-exception traceback each time cost the server under load)
            logger.error("dialogue.action.failed action=%s message_id=%s sender=%s error=%s",
                         name, message_id, _hash(tracker.sender_id), exc)
            logger.debug("dialogue.action.failed.detail", exc_info=True)
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

    async def _try_fallbacks(self, chain: FallbackChain, reason: str,
                             tracker: DialogueStateTracker, channel: str | None,
                             messages: list[dict[str, Any]], why: dict[str, Any]) -> bool:
        """Run the chain's attempts in order; the first that answers is kept (the form, if
        one is active, asks its question again) and ends the turn. Attempts that decline or
        fail leave no event behind, so the predicted action runs as if nothing happened,
        unless the chain says a decline instead (a plain question, or a question about a
        place given up on: `FallbackChain.says_decline`). `why` (the prediction's
        diagnostics) records what was tried and why."""
        record: dict[str, Any] = {"reason": reason, "tried": [], "answered": None}
        why["fallback"] = record
        decline: tuple[str, list[Event]] | None = None  # the first attempt's decline
        for name in chain.attempts:
            record["tried"].append(name)
            try:
                action = action_for_name(name, self.domain, self._executor_names)
                ctx = ActionContext(tracker, self.domain, self.renderer, self.executor, channel)
                events = await action.run(ctx)
            except Exception as exc:  # noqa: BLE001 - a failed attempt is a declined attempt
                logger.warning("dialogue.fallback.failed action=%s error=%s: %s", name,
                               type(exc).__name__, exc)
                continue
            if not chain.answered(events, reason):
                if decline is None and chain.said_decline(events):
                    decline = (name, events)
                continue
            return await self._keep_attempt(tracker, name, events, reason, record, channel,
                                            messages)
        if decline is not None and chain.says_decline(tracker, reason):
            record["declined"] = decline[0]
            return await self._keep_attempt(tracker, *decline, reason, record, channel,
                                            messages)
        return False

    async def _keep_attempt(self, tracker: DialogueStateTracker, name: str,
                            events: list[Event], reason: str, record: dict[str, Any],
                            channel: str | None, messages: list[dict[str, Any]]) -> bool:
        """Apply an attempt's events (its answer, or its decline) and end the turn; the
        form, if one is active, asks its question again, reading nothing."""
        if "declined" not in record:
            record["answered"] = name
        logger.info("dialogue.fallback.kept action=%s reason=%s declined=%s", name, reason,
                    "declined" in record)
        if not tracker.is_active_loop_interrupted:
            self.mark_interruption(tracker, name)
        tracker.update(ActionExecuted(name=name, policy="fallback_chain", confidence=1.0))
        for event in events:
            tracker.update(event)
            if isinstance(event, BotUttered):
                messages.append(_message(event, tracker.sender_id))
        loop = tracker.active_loop_name
        if loop and not await self._run_action(tracker, loop, "fallback_chain", 1.0,
                                               channel, messages, None):
            return True
        tracker.update(ActionExecuted(name=ACTION_LISTEN_NAME, policy="fallback_chain"))
        return True

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
        tracker.update(ActionExecuted(name=ACTION_LISTEN_NAME, policy="error_handler"))

    def mark_interruption(self, tracker: DialogueStateTracker, action: str) -> None:
        """Right after the user spoke while a loop is active: another action interrupts the
        loop, and a loop resumed after it refused the turn must not validate this message."""
        loop = tracker.active_loop_name
        if not loop or tracker.latest_action_name != ACTION_LISTEN_NAME:
            return
        if action not in (loop, ACTION_LISTEN_NAME, "action_deactivate_loop") or (
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

    def lock(self, sender_id: str) -> AbstractAsyncContextManager[Any]:
        """The conversation's lock from the lock store (every turn takes it in ``_turn``)."""
        return self.lock_store.lock(sender_id)


@dataclass(slots=True)
class _Turn:
    """A turn in progress: the tracker it changes and the stored version it read."""

    tracker: DialogueStateTracker
    version: int
    save: bool = True
    replace: bool = False


@dataclass(slots=True)
class _Choice:
    """What the turn runs next, with every (action, score) vote for /predict."""

    action: str
    policy: str | None
    confidence: float | None
    votes: list[tuple[str | None, float]]


def _replay(tracker: DialogueStateTracker, message_id: str | None) -> list[dict[str, Any]] | None:
    """The bot messages stored for the user message ``message_id`` (None when there is no
    such message): how a retried message is answered without running it twice."""
    if not message_id:
        return None
    messages: list[dict[str, Any]] | None = None
    for event in tracker.events:
        if isinstance(event, UserUttered):
            if messages is not None:
                break
            if event.message_id == message_id:
                messages = []
        elif messages is not None and isinstance(event, BotUttered):
            messages.append(_message(event, tracker.sender_id))
    return messages


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


def dialogue_context(tracker: DialogueStateTracker) -> DialogueContext:
    """What the bot just did, for the NLU: the last action before listening, the active form
    and the slot it asked for."""
    last = None
    for event in reversed(tracker.events_after_latest_restart()):
        if isinstance(event, UserUttered):
            break
        if isinstance(event, ActionExecuted) and event.action_name not in (
                ACTION_LISTEN_NAME, "action_extract_slots", "action_session_start") \
                and not (event.action_name or "").startswith("validate_"):
            last = event.action_name
            break
    loop = tracker.active_loop_name
    requested = tracker.get_slot("requested_slot") if loop else None
    return DialogueContext(last, requested if isinstance(requested, str) else None, loop)


def _takes_context(parser: Parser) -> bool:
    try:
        return "context" in inspect.signature(parser).parameters
    except (TypeError, ValueError):
        return False
