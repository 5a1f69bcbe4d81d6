"""action_extract_slots: fill slots from the latest user message by the domain's mappings.

Rasa 3.x semantics: from_entity (with role/group), from_text, from_intent, with intent /
not_intent filters and `conditions` on the active loop and requested slot. A form's required
slot with a text or intent mapping and no conditions is only filled when that form asks for it,
so a free-text slot does not swallow every message.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.project.domain import REQUESTED_SLOT, Domain
from bot.state.events import Event, SlotSet, UserUttered
from bot.state.tracker import DialogueStateTracker

logger = logging.getLogger(__name__)


def extract_slots(tracker: DialogueStateTracker, domain: Domain) -> list[Event]:
    message = tracker.latest_message
    if message is None:
        return []
    loop = tracker.active_loop_name
    requested = tracker.get_slot(REQUESTED_SLOT) if loop else None
    if loop and loop in domain.forms and message.intent_name in domain.forms[loop].ignored_intents:
        return []
    form_slots = {s for f in domain.forms.values() for s in f.required_slots}
    events: list[Event] = []
    for slot in domain.slots.values():
        if slot.name == REQUESTED_SLOT:
            continue
        for mapping in slot.mappings:
            if not _conditions_met(mapping, loop, requested):
                continue
            if not _intent_ok(mapping, message.intent_name):
                continue
            kind = mapping.get("type")
            if kind in ("from_text", "from_intent") and not mapping.get("conditions") \
                    and slot.name in form_slots and requested != slot.name:
                continue
            value = _value(mapping, message, slot.type)
            if value is None:
                continue
            events.append(SlotSet(name=slot.name, value=value))
            break
    return _dedupe(events)


def slots_for_entities(domain: Domain, entities: list[dict[str, Any]]) -> list[Event]:
    """Slots a story's user step sets by its entities, as Rasa's Domain.slots_for_entities
    when it builds training trackers: every from_entity mapping that is not tied to an active
    loop (same entity, role and group); a list slot takes all matching values, another slot
    the last one."""
    events: list[Event] = []
    for slot in domain.slots.values():
        found = []
        for mapping in slot.mappings:
            conditions = mapping.get("conditions") or []
            if mapping.get("type") != "from_entity" or (
                    conditions and conditions[0].get("active_loop") is not None):
                continue
            for entity in entities:
                if (entity.get("entity") == mapping.get("entity")
                        and entity.get("role") == mapping.get("role")
                        and entity.get("group") == mapping.get("group")
                        and entity.get("value") is not None):
                    found.append(entity.get("value"))
        if found:
            events.append(SlotSet(name=slot.name, value=found if slot.type == "list"
                                  else found[-1]))
    return events


def trigger_intent_slots(tracker: DialogueStateTracker, domain: Domain, form: str) -> list[Event]:
    """from_trigger_intent mappings: applied when `form` is activated."""
    message = tracker.latest_message
    events: list[Event] = []
    for slot in domain.slots.values():
        for mapping in slot.mappings:
            if mapping.get("type") != "from_trigger_intent" or message is None:
                continue
            if not _intent_ok(mapping, message.intent_name):
                continue
            active = mapping.get("conditions")
            if active and not any(c.get("active_loop") == form for c in active):
                continue
            events.append(SlotSet(name=slot.name, value=mapping.get("value")))
    return events


def _conditions_met(mapping: dict[str, Any], loop: str | None, requested: Any) -> bool:
    conditions = mapping.get("conditions")
    if not conditions:
        return True
    for cond in conditions:
        if "active_loop" in cond and cond["active_loop"] != loop:
            continue
        if "requested_slot" in cond and cond["requested_slot"] != requested:
            continue
        return True
    return False


def _intent_ok(mapping: dict[str, Any], intent: str | None) -> bool:
    wanted = _as_list(mapping.get("intent"))
    unwanted = _as_list(mapping.get("not_intent"))
    if wanted and intent not in wanted:
        return False
    return intent not in unwanted


def _value(mapping: dict[str, Any], message: UserUttered, slot_type: str) -> Any:
    kind = mapping.get("type")
    if kind == "from_entity":
        values = [
            e.get("value") for e in message.entities
            if e.get("entity") == mapping.get("entity")
            and e.get("role") == mapping.get("role")
            and e.get("group") == mapping.get("group")
        ]
        if not values:
            return None
        return values if slot_type == "list" else values[0]
    if kind == "from_text":
        text = (message.text or "").strip()
        return text or None
    if kind == "from_intent":
        return mapping.get("value")
    return None  # from_trigger_intent is applied on activation; custom by its action


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _dedupe(events: list[Event]) -> list[Event]:
    last: dict[str, Event] = {}
    for event in events:
        last[getattr(event, "name")] = event
    return list(last.values())
