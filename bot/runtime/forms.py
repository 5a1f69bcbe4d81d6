"""Loops: forms (Rasa's FormAction semantics) and the two-stage fallback.

A form run: activate if needed; validate what the user just said (only right after the user
spoke and when the loop was not interrupted) through `validate_<form>`; reject the turn when
the message filled nothing; then ask for the next empty required slot, or finish.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.project.domain import REQUESTED_SLOT
from bot.errors import ActionRejected
from bot.state.events import (
    ACTION_LISTEN_NAME,
    ActionExecuted,
    ActiveLoop,
    Event,
    SlotSet,
    UserUttered,
    UserUtteranceReverted,
)
from bot.runtime.runtime_actions import (
    ActionContext,
    AskAffirmationAction,
    AskRephraseAction,
    CustomAction,
    DefaultFallbackAction,
    bot_event,
)
from bot.state.slot_mapping import trigger_intent_slots

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class FormAction:
    name: str

    async def run(self, ctx: ActionContext) -> list[Event]:
        form = ctx.domain.forms[self.name]
        tracker = ctx.tracker
        events: list[Event] = []
        activating = tracker.active_loop_name != self.name
        if activating:
            events.append(ActiveLoop(name=self.name))
            events += trigger_intent_slots(tracker, ctx.domain, self.name)
            candidates = [SlotSet(name=s, value=tracker.get_slot(s)) for s in form.required_slots
                          if tracker.get_slot(s) is not None]
            candidates += [e for e in events if isinstance(e, SlotSet)]
            events += await self._validate(ctx, candidates, events)
        elif (tracker.latest_action_name == ACTION_LISTEN_NAME
              and tracker.active_loop.get("validate", True)):
            candidates = _slot_candidates(tracker, form.required_slots)
            validated = await self._validate(ctx, candidates, [])
            filled = [e for e in validated if isinstance(e, SlotSet) and e.name != REQUESTED_SLOT]
            if not candidates and not filled and not _uttered(validated):
                requested = tracker.get_slot(REQUESTED_SLOT)
                raise ActionRejected(f"Form '{self.name}' could not extract requested slot "
                                     f"'{requested}' from the message.")
            events += validated
        if any(isinstance(e, ActiveLoop) and e.name is None for e in events):
            return events  # the validation action ended the loop itself
        return events + await self._request_next(ctx, events)

    async def _validate(self, ctx: ActionContext, candidates: list[SlotSet],
                        prior: list[Event]) -> list[Event]:
        validator = f"validate_{self.name}"
        if validator not in ctx.domain.custom_actions:
            return list(candidates)
        temp = ctx.tracker.copy()
        temp.update_many(prior)
        temp.update_many([SlotSet(name=c.name, value=c.value) for c in candidates])
        sub = ActionContext(temp, ctx.domain, ctx.renderer, ctx.executor, ctx.channel)
        return await CustomAction(validator).run(sub)

    async def _request_next(self, ctx: ActionContext, events: list[Event]) -> list[Event]:
        temp = ctx.tracker.copy()
        temp.update_many(events)
        explicit = [e for e in events if isinstance(e, SlotSet) and e.name == REQUESTED_SLOT]
        if explicit and explicit[-1].value is not None:
            slot = str(explicit[-1].value)
        else:
            form = ctx.domain.forms[self.name]
            slot = next((s for s in form.required_slots if temp.get_slot(s) is None), None)
        if slot is None:
            logger.debug("form.done form=%s", self.name)
            return [SlotSet(name=REQUESTED_SLOT, value=None), ActiveLoop(name=None)]
        out: list[Event] = [SlotSet(name=REQUESTED_SLOT, value=slot)]
        temp.update(out[0])
        return out + await _ask(ctx, temp, self.name, slot)


async def _ask(ctx: ActionContext, tracker: object, form: str, slot: str) -> list[Event]:
    names = ctx.domain.action_names
    sub = ActionContext(tracker, ctx.domain, ctx.renderer, ctx.executor, ctx.channel)  # type: ignore[arg-type]
    for action in (f"action_ask_{form}_{slot}", f"action_ask_{slot}"):
        if action in ctx.domain.custom_actions:
            return await CustomAction(action).run(sub)
    for response in (f"utter_ask_{form}_{slot}", f"utter_ask_{slot}"):
        if response in names:
            return sub.utter(response)
    logger.warning("form.no_ask form=%s slot=%s", form, slot)
    return [bot_event({"text": f"Please provide {slot.replace('_', ' ')}."})]


def _slot_candidates(tracker: object, required: tuple[str, ...]) -> list[SlotSet]:
    """SlotSet events since the latest user message, for the form's required slots."""
    events = tracker.applied_events(collapse_loops=False)  # type: ignore[attr-defined]
    out: list[SlotSet] = []
    for event in reversed(events):
        if isinstance(event, UserUttered):
            break
        if isinstance(event, SlotSet) and event.name in required:
            out.append(event)
    return list(reversed(out))


def _uttered(events: list[Event]) -> bool:
    return any(type(e).__name__ == "BotUttered" for e in events)


@dataclass(slots=True)
class TwoStageFallbackAction:
    """Rasa's two-stage fallback, a loop (activated by the documented rule `intent:
    nlu_fallback -> action_two_stage_fallback, active_loop: action_two_stage_fallback`):

    1. on activation, ask "did you mean <best intent>?" (action_default_ask_affirmation);
    2. the user picks the intent: done, the unclear message is replaced by the clarified one
       and the bot answers that; the user denies (out_of_scope): ask to rephrase; the
       rephrase is unclear again: ask to affirm again;
    3. two unclear messages in a row, or a second denial: give up (action_default_fallback).

    As in Rasa, the three actions it calls are looked up by name: a custom action of the
    project named action_default_ask_affirmation, action_default_ask_rephrase or
    action_default_fallback (listed in the domain) runs instead of the built-in one.
    """

    name: str = "action_two_stage_fallback"

    async def run(self, ctx: ActionContext) -> list[Event]:
        tracker = ctx.tracker
        if tracker.active_loop_name != self.name:
            asked = await _run_default(AskAffirmationAction(), ctx)
            return [ActiveLoop(name=self.name), *asked]
        intents = _recent_intents(ctx, 3)
        two_misses = intents[:2] == [NLU_FALLBACK, NLU_FALLBACK]
        denied_twice = intents[:3] == [OUT_OF_SCOPE, NLU_FALLBACK, OUT_OF_SCOPE]
        if two_misses or denied_twice:
            return [*await _run_default(DefaultFallbackAction(), ctx), ActiveLoop(name=None)]
        message = tracker.latest_message
        if message is not None and intents and intents[0] not in (NLU_FALLBACK, OUT_OF_SCOPE):
            parse = {**message.parse_data,
                     "intent": {**(message.parse_data.get("intent") or {}), "confidence": 1.0}}
            # the unclear turn is taken back; the clarified message takes its place
            return [UserUtteranceReverted(), ActionExecuted(name=ACTION_LISTEN_NAME),
                    UserUttered(text=message.text, parse_data=parse,
                                input_channel=message.input_channel),
                    ActiveLoop(name=None)]
        if intents[:2] == [NLU_FALLBACK, OUT_OF_SCOPE]:
            return await _run_default(AskAffirmationAction(), ctx)  # the rephrase was unclear
        return await _run_default(AskRephraseAction(), ctx)


async def _run_default(action: AskAffirmationAction | AskRephraseAction | DefaultFallbackAction,
                       ctx: ActionContext) -> list[Event]:
    """Run a default action, or the project's custom action of the same name (Rasa's
    action_for_name_or_text): the custom one needs to be in the domain's actions and known to
    the executor (a remote action server cannot tell, so it is asked)."""
    if action.name in ctx.domain.custom_actions and ctx.executor is not None:
        known = ctx.executor.names()
        if known is None or action.name in known:
            return await CustomAction(action.name).run(ctx)
    return await action.run(ctx)


NLU_FALLBACK = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"


def _recent_intents(ctx: ActionContext, n: int) -> list[str | None]:
    """The intents of the last `n` user messages, most recent first."""
    out: list[str | None] = []
    for event in reversed(ctx.tracker.events):
        if isinstance(event, UserUttered):
            out.append(event.intent_name)
            if len(out) == n:
                break
    return out
