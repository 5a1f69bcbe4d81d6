"""Actions the engine runs: responses (utter_*), Rasa's default actions, and custom actions.

An action gets an ActionContext and returns events; bot messages are BotUttered events.
Forms (loops) live in bot/runtime/forms.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from bot.project.domain import REQUESTED_SLOT, Domain
from bot.errors import ActionError
from bot.state.events import (
    ACTION_LISTEN_NAME,
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    event_from_dict,
)
from bot.runtime.executors import PROTOCOL_VERSION, ActionExecutor
from bot.runtime.responses import ResponseRenderer
from bot.state.tracker import DialogueStateTracker

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ActionContext:
    tracker: DialogueStateTracker
    domain: Domain
    renderer: ResponseRenderer
    executor: ActionExecutor | None
    channel: str | None = None

    def utter(self, response: str, **kwargs: Any) -> list[Event]:
        message = self.renderer.render(response, self.tracker.slots, self.channel, **kwargs)
        if message is None:
            logger.warning("action.response_missing response=%s", response)
            return []
        return [bot_event(message)]


class Action(Protocol):
    name: str

    async def run(self, ctx: ActionContext) -> list[Event]: ...


def bot_event(message: dict[str, Any]) -> BotUttered:
    """A message dict (text, buttons, image, custom...) as a BotUttered event."""
    data = {k: message.get(k) for k in ("elements", "quick_replies", "buttons", "attachment",
                                         "image", "custom")}
    metadata = dict(message.get("metadata") or {})
    if message.get("response"):
        metadata.setdefault("utter_action", message["response"])
    return BotUttered(text=message.get("text"), data=data, metadata=metadata)


@dataclass(slots=True)
class UtterAction:
    name: str

    async def run(self, ctx: ActionContext) -> list[Event]:
        if self.name not in ctx.domain.responses:
            sub = _retrieval_response(ctx, self.name)
            if sub is not None:
                return ctx.utter(sub)
        return ctx.utter(self.name)


def _retrieval_response(ctx: ActionContext, name: str) -> str | None:
    """`utter_faq` answers with `utter_faq/<key>` from the message's retrieval intent."""
    message = ctx.tracker.latest_message
    if message is None:
        return None
    base = name[len("utter_"):]
    full = message.parse_data.get("intent", {}).get("full_retrieval_intent_name")
    selector = (message.parse_data.get("response_selector") or {}).get(base) or {}
    key = full or (selector.get("response") or {}).get("intent_response_key")
    candidate = f"utter_{key}" if key else None
    return candidate if candidate in ctx.domain.responses else None


@dataclass(slots=True)
class ListenAction:
    name: str = ACTION_LISTEN_NAME

    async def run(self, ctx: ActionContext) -> list[Event]:
        return []


@dataclass(slots=True)
class RestartAction:
    name: str = "action_restart"

    async def run(self, ctx: ActionContext) -> list[Event]:
        utter = ctx.utter("utter_restart") if "utter_restart" in ctx.domain.responses else []
        return [*utter, Restarted()]


@dataclass(slots=True)
class SessionStartAction:
    name: str = "action_session_start"

    async def run(self, ctx: ActionContext) -> list[Event]:
        events: list[Event] = [SessionStarted()]
        if ctx.domain.session_config.carry_over_slots:
            for name, value in ctx.tracker.slots.items():
                if value is not None and name != REQUESTED_SLOT:
                    events.append(SlotSet(name=name, value=value))
        events.append(ActionExecuted(name=ACTION_LISTEN_NAME))
        return events


@dataclass(slots=True)
class DefaultFallbackAction:
    name: str = "action_default_fallback"

    async def run(self, ctx: ActionContext) -> list[Event]:
        return [*ctx.utter("utter_default"), UserUtteranceReverted()]


@dataclass(slots=True)
class DeactivateLoopAction:
    name: str = "action_deactivate_loop"

    async def run(self, ctx: ActionContext) -> list[Event]:
        return [ActiveLoop(name=None), SlotSet(name=REQUESTED_SLOT, value=None)]


@dataclass(slots=True)
class BackAction:
    name: str = "action_back"

    async def run(self, ctx: ActionContext) -> list[Event]:
        utter = ctx.utter("utter_back")
        return [*utter, UserUtteranceReverted(), UserUtteranceReverted()]


@dataclass(slots=True)
class AskRephraseAction:
    name: str = "action_default_ask_rephrase"

    async def run(self, ctx: ActionContext) -> list[Event]:
        return ctx.utter("utter_ask_rephrase")


@dataclass(slots=True)
class AskAffirmationAction:
    """'Did you mean X?' with buttons for the best intent and 'something else'."""

    name: str = "action_default_ask_affirmation"

    async def run(self, ctx: ActionContext) -> list[Event]:
        message = ctx.tracker.latest_message
        ranking = (message.parse_data.get("intent_ranking") if message else None) or []
        candidates = [r for r in ranking if r.get("name") not in ("nlu_fallback", None)]
        if not candidates:
            return ctx.utter("utter_ask_rephrase")
        intent = candidates[0]["name"]
        label = intent.replace("_", " ")
        if "utter_ask_affirmation" in ctx.domain.responses:
            return ctx.utter("utter_ask_affirmation", intent=label)
        text = f"Did you mean '{label}'?"
        buttons = [{"title": "Yes", "payload": f"/{intent}"},
                   {"title": "No", "payload": "/out_of_scope"}]
        return [bot_event({"text": text, "buttons": buttons})]


@dataclass(slots=True)
class NoOpAction:
    """Actions that only mark a moment in the conversation (action_unlikely_intent...)."""

    name: str

    async def run(self, ctx: ActionContext) -> list[Event]:
        return []


@dataclass(slots=True)
class CustomAction:
    """A custom action run by the executor (in-process rasa_sdk or an action server)."""

    name: str

    async def run(self, ctx: ActionContext) -> list[Event]:
        if ctx.executor is None:
            raise ActionError(f"Action '{self.name}' is a custom action but no action executor is "
                              "configured (endpoints.yml action_endpoint, or an actions/ package).")
        call = {
            "next_action": self.name,
            "sender_id": ctx.tracker.sender_id,
            "tracker": ctx.tracker.current_state(),
            "domain": ctx.domain.to_dict(),
            "version": PROTOCOL_VERSION,
        }
        reply = await ctx.executor.run(call)
        events: list[Event] = []
        for response in reply["responses"]:
            events += _response_events(ctx, response)
        for raw in reply["events"]:
            try:
                events.append(event_from_dict(raw))
            except ValueError as exc:
                raise ActionError(f"Action '{self.name}' returned a malformed event: {exc}") from exc
        return events


def _response_events(ctx: ActionContext, response: dict[str, Any]) -> list[Event]:
    name = response.get("response") or response.get("template")
    if name:
        kwargs = {k: v for k, v in response.items() if k not in ("response", "template")
                  and not isinstance(v, (dict, list))}
        slots_plus = {**ctx.tracker.slots, **kwargs}
        message = ctx.renderer.render(name, slots_plus, ctx.channel)
        if message is None:
            logger.warning("action.response_missing response=%s", name)
            return []
        return [bot_event(message)]
    return [bot_event(response)]
