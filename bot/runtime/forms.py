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
    ActiveLoop,
    Event,
    SlotSet,
    UserUttered,
    UserUtteranceReverted,
)
from bot.runtime.runtime_actions import (
    ActionContext,
    AskAffirmationAction,
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
        elif tracker.latest_action_name == ACTION_LISTEN_NAME and tracker.active_loop.get("validate", True):
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
    """Ask 'did you mean...?'; on a second miss ask to rephrase; on a third, default fallback.

    A simplified take on Rasa's loop: each stage is one run, counted by the fallback turns so far.
    """

    name: str = "action_two_stage_fallback"

    async def run(self, ctx: ActionContext) -> list[Event]:
        misses = _recent_fallbacks(ctx)
        if misses <= 1:
            return await AskAffirmationAction().run(ctx)
        if misses == 2:
            return [*ctx.utter("utter_ask_rephrase"), UserUtteranceReverted()]
        return await DefaultFallbackAction().run(ctx)


def _recent_fallbacks(ctx: ActionContext) -> int:
    count = 0
    for event in reversed(ctx.tracker.applied_events()):
        if isinstance(event, UserUttered):
            if event.intent_name == "nlu_fallback":
                count += 1
            else:
                break
    return count
