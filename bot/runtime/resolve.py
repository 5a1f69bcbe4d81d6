"""Action names to actions: Rasa's default actions, forms, custom actions and responses.

Apart from bot/runtime/runtime_actions.py because forms build on those actions and this
lookup needs the forms.
"""

from __future__ import annotations

from typing import Any

from bot.errors import ActionError
from bot.project.domain import Domain
from bot.state.events import ACTION_LISTEN_NAME
from bot.runtime.forms import FormAction, TwoStageFallbackAction
from bot.runtime.runtime_actions import (
    Action,
    AskAffirmationAction,
    AskRephraseAction,
    BackAction,
    CustomAction,
    DeactivateLoopAction,
    DefaultFallbackAction,
    ListenAction,
    NoOpAction,
    RestartAction,
    SessionStartAction,
    UtterAction,
)

_DEFAULTS: dict[str, Any] = {
    ACTION_LISTEN_NAME: ListenAction,
    "action_restart": RestartAction,
    "action_session_start": SessionStartAction,
    "action_default_fallback": DefaultFallbackAction,
    "action_deactivate_loop": DeactivateLoopAction,
    "action_back": BackAction,
    "action_default_ask_rephrase": AskRephraseAction,
    "action_default_ask_affirmation": AskAffirmationAction,
}


def action_for_name(name: str, domain: Domain, executor_names: set[str] | None) -> Action:
    """Resolve an action name. Custom actions win over responses of the same name, as in Rasa."""
    if name != ACTION_LISTEN_NAME and name in domain.custom_actions and (
            executor_names is None or name in executor_names):
        # As Rasa: a default action listed under the domain's actions is the project's own
        # (action_session_start, action_restart, action_default_fallback, ...).
        return CustomAction(name)
    if name in _DEFAULTS:
        return _DEFAULTS[name]()
    if name == "action_two_stage_fallback":
        return TwoStageFallbackAction()
    if name in domain.forms:
        return FormAction(name)
    if name in domain.custom_actions and (executor_names is None or name in executor_names
                                          or name not in domain.responses):
        return CustomAction(name)
    if name in domain.responses or name.startswith("utter_"):
        return UtterAction(name)
    if name in ("action_unlikely_intent", "action_extract_slots", "action_revert_fallback_events"):
        return NoOpAction(name)
    raise ActionError(f"Unknown action '{name}'. Declare it in domain.yml actions or responses.")
