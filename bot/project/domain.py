"""The domain: what the assistant knows (intents, entities, slots, responses, forms, actions).

Reads Rasa 3.x domain files: one file or a folder of them, merged. Unknown keys warn; wrong
types fail with file, line and key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.project.migrate import rasa2_reasons
from bot.project.yaml_reader import plain, read_yaml, where

logger = logging.getLogger(__name__)

DEFAULT_ACTIONS: tuple[str, ...] = (
    "action_listen",
    "action_restart",
    "action_session_start",
    "action_default_fallback",
    "action_deactivate_loop",
    "action_revert_fallback_events",
    "action_default_ask_affirmation",
    "action_default_ask_rephrase",
    "action_two_stage_fallback",
    "action_unlikely_intent",
    "action_back",
    "action_extract_slots",
)
DEFAULT_INTENTS: tuple[str, ...] = ("restart", "back", "out_of_scope", "session_start", "nlu_fallback")
SLOT_TYPES = ("text", "bool", "categorical", "float", "list", "any")
MAPPING_TYPES = ("from_entity", "from_text", "from_intent", "from_trigger_intent", "custom")
REQUESTED_SLOT = "requested_slot"
_TOP_KEYS = {
    "version", "intents", "entities", "slots", "responses", "forms", "actions",
    "session_config", "e2e_actions", "config",
}


@dataclass(frozen=True, slots=True)
class SlotSpec:
    name: str
    type: str
    initial_value: Any = None
    influence_conversation: bool = True
    values: tuple[str, ...] = ()
    min_value: float = 0.0
    max_value: float = 1.0
    mappings: tuple[dict[str, Any], ...] = ()
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class FormSpec:
    name: str
    required_slots: tuple[str, ...]
    ignored_intents: tuple[str, ...] = ()
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class IntentSpec:
    name: str
    use_entities: tuple[str, ...] | None = None  # None: all entities
    ignore_entities: tuple[str, ...] = ()

    def used_entities(self, all_entities: tuple[str, ...]) -> tuple[str, ...]:
        base = all_entities if self.use_entities is None else self.use_entities
        return tuple(e for e in base if e not in self.ignore_entities)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    session_expiration_time_min: float = 60.0  # Rasa's default; 0 means sessions never expire
    carry_over_slots: bool = True


@dataclass(frozen=True, slots=True)
class Domain:
    intents: dict[str, IntentSpec]
    entities: tuple[str, ...]
    roles: dict[str, tuple[str, ...]]
    groups: dict[str, tuple[str, ...]]
    slots: dict[str, SlotSpec]
    responses: dict[str, tuple[dict[str, Any], ...]]
    forms: dict[str, FormSpec]
    custom_actions: tuple[str, ...]
    session_config: SessionConfig = field(default_factory=SessionConfig)

    @property
    def action_names(self) -> tuple[str, ...]:
        names = list(DEFAULT_ACTIONS) + list(self.custom_actions)
        names += [r for r in self.responses if r.startswith("utter_")] + list(self.forms)
        # Retrieval intents: responses utter_faq/ask_x make `utter_faq` an action.
        names += [r.split("/")[0] for r in self.responses if "/" in r]
        return tuple(dict.fromkeys(names))

    @property
    def intent_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.intents, *DEFAULT_INTENTS]))

    def slot_defaults(self) -> dict[str, Any]:
        return {name: spec.initial_value for name, spec in self.slots.items()}

    def used_entities(self, intent: str | None) -> tuple[str, ...]:
        spec = self.intents.get(intent or "")
        return spec.used_entities(self.entities) if spec else self.entities

    def to_dict(self) -> dict[str, Any]:
        """The domain as Rasa serves it (GET /domain, the action server's `domain`)."""
        intents: list[Any] = []
        for spec in self.intents.values():
            props: dict[str, Any] = {"use_entities": True}
            if spec.use_entities is not None:
                props["use_entities"] = list(spec.use_entities)
            if spec.ignore_entities:
                props["ignore_entities"] = list(spec.ignore_entities)
            intents.append({spec.name: props})
        entities: list[Any] = []
        for name in self.entities:
            extra: dict[str, Any] = {}
            if name in self.roles:
                extra["roles"] = list(self.roles[name])
            if name in self.groups:
                extra["groups"] = list(self.groups[name])
            entities.append({name: extra} if extra else name)
        slots = {
            s.name: {
                "type": s.type,
                "initial_value": s.initial_value,
                "influence_conversation": s.influence_conversation,
                "mappings": [dict(m) for m in s.mappings],
                **({"values": list(s.values)} if s.type == "categorical" else {}),
                **({"min_value": s.min_value, "max_value": s.max_value} if s.type == "float" else {}),
            }
            for s in self.slots.values()
        }
        return {
            "version": "3.1",
            "session_config": {
                "session_expiration_time": self.session_config.session_expiration_time_min,
                "carry_over_slots_to_new_session": self.session_config.carry_over_slots,
            },
            "intents": intents,
            "entities": entities,
            "slots": slots,
            "responses": {k: [dict(v) for v in vs] for k, vs in self.responses.items()},
            "actions": list(self.custom_actions),
            "forms": {
                f.name: {"required_slots": list(f.required_slots),
                         **({"ignored_intents": list(f.ignored_intents)} if f.ignored_intents else {})}
                for f in self.forms.values()
            },
        }


def load_domain(path: Path, extra_responses: dict[str, Any] | None = None) -> Domain:
    """Load a domain file or a folder of *.yml domain files (merged, later keys win)."""
    files = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()) \
        if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"No domain found at {path}. Create domain.yml or pass --domain.")
    builder = _DomainBuilder()
    for file in files:
        data = read_yaml(file)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ConfigError(f"{where(file, data)}: a domain file must be a mapping of keys.")
        reasons = rasa2_reasons(data)
        if reasons:
            raise ConfigError(
                f"{file} is a Rasa 2.x domain ({'; '.join(reasons[:3])}"
                f"{'; ...' if len(reasons) > 3 else ''}): read as 3.x, its slot mappings would "
                f"be lost. Convert it with `xingkong data migrate --domain {file} --out "
                f"{file}` (Rasa 3 needs the same: `rasa data migrate`).")
        builder.add_file(file, data)
    if extra_responses:
        for name, variations in extra_responses.items():
            builder.responses[name] = tuple(variations)
    return builder.build()


class _DomainBuilder:
    def __init__(self) -> None:
        self.intents: dict[str, IntentSpec] = {}
        self.entities: list[str] = []
        self.roles: dict[str, tuple[str, ...]] = {}
        self.groups: dict[str, tuple[str, ...]] = {}
        self.slots: dict[str, SlotSpec] = {}
        self.responses: dict[str, tuple[dict[str, Any], ...]] = {}
        self.forms: dict[str, FormSpec] = {}
        self.actions: list[str] = []
        self.session = SessionConfig()

    def add_file(self, file: Path, data: dict[str, Any]) -> None:
        for key in data:
            if key not in _TOP_KEYS:
                logger.warning("domain.unknown_key key=%s at=%s", key, where(file, data, key))
        self._intents(file, data)
        self._entities(file, data)
        self._slots(file, data)
        self._responses(file, data)
        self._forms(file, data)
        self._actions(file, data)
        self._session(file, data)

    def _intents(self, file: Path, data: dict[str, Any]) -> None:
        items = _expect(file, data, "intents", list, [])
        for i, item in enumerate(items):
            if isinstance(item, str):
                self.intents[item] = IntentSpec(item)
                continue
            if not isinstance(item, dict) or len(item) != 1:
                raise ConfigError(f"{where(file, items, i)}: each entry of 'intents' is a name or "
                                  "{name: {use_entities: ..., ignore_entities: ...}}.")
            name, props = next(iter(item.items()))
            props = plain(props) or {}
            use = props.get("use_entities", True)
            use_entities = None if use is True else tuple(use or [])
            self.intents[str(name)] = IntentSpec(
                str(name), use_entities, tuple(props.get("ignore_entities") or [])
            )

    def _entities(self, file: Path, data: dict[str, Any]) -> None:
        items = _expect(file, data, "entities", list, [])
        for i, item in enumerate(items):
            if isinstance(item, str):
                name, props = item, {}
            elif isinstance(item, dict) and len(item) == 1:
                name, props = next(iter(item.items()))
                props = plain(props) or {}
            else:
                raise ConfigError(f"{where(file, items, i)}: bad entity entry {plain(item)!r}.")
            if name not in self.entities:
                self.entities.append(str(name))
            if props.get("roles"):
                self.roles[str(name)] = tuple(props["roles"])
            if props.get("groups"):
                self.groups[str(name)] = tuple(props["groups"])

    def _slots(self, file: Path, data: dict[str, Any]) -> None:
        slots = _expect(file, data, "slots", dict, {})
        for name, spec in slots.items():
            at = where(file, slots, name)
            if not isinstance(spec, dict):
                raise ConfigError(f"{at}: slot '{name}' must be a mapping with a 'type'.")
            slot_type = spec.get("type")
            if slot_type not in SLOT_TYPES:
                if isinstance(slot_type, str) and "." in slot_type:
                    logger.warning("domain.custom_slot_type slot=%s type=%s treated_as=any",
                                   name, slot_type)
                    slot_type = "any"
                else:
                    raise ConfigError(f"{at}: slot '{name}' has type {slot_type!r}. "
                                      f"Valid: {', '.join(SLOT_TYPES)}.")
            mappings = plain(spec.get("mappings") or [])
            if not isinstance(mappings, list):
                raise ConfigError(f"{at}: 'mappings' of slot '{name}' must be a list.")
            for m in mappings:
                if not isinstance(m, dict) or m.get("type") not in MAPPING_TYPES:
                    raise ConfigError(f"{at}: slot '{name}' has a mapping of type "
                                      f"{(m or {}).get('type') if isinstance(m, dict) else m!r}. "
                                      f"Valid: {', '.join(MAPPING_TYPES)}.")
            influence = spec.get("influence_conversation", slot_type != "any")
            self.slots[str(name)] = SlotSpec(
                name=str(name),
                type=str(slot_type),
                initial_value=plain(spec.get("initial_value")),
                influence_conversation=bool(influence) and slot_type != "any",
                values=tuple(str(v) for v in (spec.get("values") or [])),
                min_value=float(spec.get("min_value", 0.0)),
                max_value=float(spec.get("max_value", 1.0)),
                mappings=tuple(mappings),
                source=at,
            )

    def _responses(self, file: Path, data: dict[str, Any]) -> None:
        responses = _expect(file, data, "responses", dict, {})
        for name, variations in responses.items():
            at = where(file, responses, name)
            if not isinstance(variations, list) or not variations:
                raise ConfigError(f"{at}: response '{name}' must be a non-empty list of variations.")
            for v in variations:
                if not isinstance(v, dict):
                    raise ConfigError(f"{at}: each variation of '{name}' must be a mapping "
                                      "(text, buttons, image, custom, condition, channel).")
            self.responses[str(name)] = tuple(plain(v) for v in variations)

    def _forms(self, file: Path, data: dict[str, Any]) -> None:
        forms = _expect(file, data, "forms", dict, {})
        for name, spec in forms.items():
            spec = plain(spec) or {}
            required = spec.get("required_slots", [])
            if isinstance(required, dict):  # Rasa 2 shape: {slot: [mappings]}
                required = list(required)
            if not isinstance(required, list):
                raise ConfigError(f"{where(file, forms, name)}: 'required_slots' of form '{name}' "
                                  "must be a list of slot names.")
            self.forms[str(name)] = FormSpec(
                str(name), tuple(str(s) for s in required), tuple(spec.get("ignored_intents") or []),
                source=where(file, forms, name),
            )

    def _actions(self, file: Path, data: dict[str, Any]) -> None:
        for item in _expect(file, data, "actions", list, []):
            name = next(iter(item)) if isinstance(item, dict) else item
            if str(name) not in self.actions:
                self.actions.append(str(name))

    def _session(self, file: Path, data: dict[str, Any]) -> None:
        spec = plain(_expect(file, data, "session_config", dict, {}))
        if spec:
            self.session = SessionConfig(
                float(spec.get("session_expiration_time", 60)),
                bool(spec.get("carry_over_slots_to_new_session", True)),
            )

    def build(self) -> Domain:
        slots = dict(self.slots)
        if self.forms and REQUESTED_SLOT not in slots:
            slots[REQUESTED_SLOT] = SlotSpec(REQUESTED_SLOT, "any", influence_conversation=False)
        return Domain(
            intents=dict(self.intents),
            entities=tuple(self.entities),
            roles=dict(self.roles),
            groups=dict(self.groups),
            slots=slots,
            responses=dict(self.responses),
            forms=dict(self.forms),
            custom_actions=tuple(self.actions),
            session_config=self.session,
        )


def _expect(file: Path, data: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        got = "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) \
            else f"a {type(value).__name__}"
        raise ConfigError(f"{where(file, data, key)}: '{key}' must be a "
                          f"{'list' if kind is list else 'mapping'}, got {got}.")
    return value
