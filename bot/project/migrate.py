"""Rasa 2.x domains: recognise them, and convert them to 3.x (`xingkong data migrate`).

What changes, as Rasa's own `rasa data migrate`:
- a slot's `auto_fill` (default true in 2.x) becomes a `from_entity` mapping of the entity of
  the same name; a slot that nothing fills gets a `custom` mapping;
- the slot mappings written inside a form (`required_slots: {slot: [mappings]}`, or in 2.0's
  shape straight under the form's name: `restaurant_form: {cuisine: [mappings]}`) move to
  the slot, conditioned on that form being active (and, for every mapping but from_entity
  and from_trigger_intent, on the slot being the one requested, which is when 2.x forms
  applied them); `required_slots` becomes a list of names, `ignored_intents` stays;
- `unfeaturized` slots become `any` slots; `version` becomes "3.1".
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.project.yaml_reader import plain, read_yaml

TARGET_VERSION = "3.1"
_ANY_TIME = ("from_entity", "from_trigger_intent")  # no requested_slot condition (as Rasa)
_FORM_KEYS = ("required_slots", "ignored_intents")  # a 3.x form's keys


def form_slot_mappings(spec: Any) -> dict[str, Any] | None:
    """The slot mappings a Rasa 2.x form holds ({slot: [mappings]}), None for a 3.x form:
    2.1+ writes them under required_slots, 2.0 straight under the form's name (what Rasa's
    own migration reads)."""
    if not isinstance(spec, dict):
        return None
    required = spec.get("required_slots")
    if isinstance(required, dict):
        return required
    inline = {k: v for k, v in spec.items() if k not in _FORM_KEYS}
    return inline if inline and required is None else None


def rasa2_reasons(data: dict[str, Any]) -> list[str]:
    """Why this domain file is in Rasa 2.x format, when converting it would change something
    (empty when it is not, or when nothing would change)."""
    data = plain(data)
    reasons = []
    forms, slots = data.get("forms"), data.get("slots")
    # wrong shapes are the domain reader's to report, with file and line
    for name, spec in (forms.items() if isinstance(forms, dict) else ()):
        mapped = form_slot_mappings(spec)
        if mapped is not None and (any(mapped.values()) or "required_slots" not in spec):
            reasons.append(f"form '{name}' maps its slots inside the form")
    entities = _entity_names(data)
    version = str(data.get("version", ""))
    for name, spec in (slots.items() if isinstance(slots, dict) else ()):
        if not isinstance(spec, dict):
            continue
        if "auto_fill" in spec:
            reasons.append(f"slot '{name}' has auto_fill")
        elif spec.get("type") == "unfeaturized":
            reasons.append(f"slot '{name}' is 'unfeaturized'")
        elif version.startswith(("1", "2")) and "mappings" not in spec and name in entities:
            reasons.append(f"slot '{name}' was filled by its entity (2.x auto_fill)")
    return reasons


def migrate_domain(data: dict[str, Any]) -> dict[str, Any]:
    """The 3.x version of a 2.x domain (plain data in, plain data out)."""
    out = copy.deepcopy(plain(data))
    entities = _entity_names(out)
    slots: dict[str, Any] = out.get("slots") or {}
    new_slots: dict[str, Any] = {}
    for name, spec in slots.items():
        spec = dict(spec or {})
        auto_fill = spec.pop("auto_fill", True)
        if spec.get("type") == "unfeaturized":
            spec["type"] = "any"
            spec["influence_conversation"] = False
        mappings = list(spec.get("mappings") or [])
        if "mappings" not in spec and auto_fill and name in entities:
            mappings.append({"type": "from_entity", "entity": name})
        spec["mappings"] = mappings
        new_slots[name] = spec
    forms = out.get("forms") or {}
    for form, form_spec in forms.items():
        required = form_slot_mappings(form_spec)
        if required is None:
            continue
        for slot, mappings in required.items():
            target = new_slots.setdefault(slot, {"type": "any", "influence_conversation": False,
                                                 "mappings": []})
            for mapping in mappings or []:
                moved = dict(mapping)
                condition = {"active_loop": form}
                if moved.get("type") not in _ANY_TIME:
                    condition["requested_slot"] = slot
                moved["conditions"] = [condition]
                target["mappings"].append(moved)
        forms[form] = {"required_slots": list(required),
                       **({"ignored_intents": form_spec["ignored_intents"]}
                          if form_spec.get("ignored_intents") else {})}
    for spec in new_slots.values():
        if not spec["mappings"]:
            spec["mappings"] = [{"type": "custom"}]
    if new_slots:
        out["slots"] = new_slots
    out["version"] = TARGET_VERSION
    return out


def migrate_domain_file(source: Path, target: Path) -> list[str]:
    """Convert the domain file (or each file of a domain folder) `source` into `target`;
    returns what was converted, one line per file."""
    from ruamel.yaml import YAML

    files = sorted(p for p in source.rglob("*") if p.suffix in (".yml", ".yaml")) \
        if source.is_dir() else [source]
    if not files:
        raise ConfigError(f"No domain at {source}. Pass --domain with a domain file or folder.")
    done = []
    for file in files:
        data = read_yaml(file)
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: a domain file must be a mapping of keys.")
        reasons = rasa2_reasons(data)
        out = target / file.relative_to(source) if source.is_dir() else target
        out.parent.mkdir(parents=True, exist_ok=True)
        yaml = YAML()
        yaml.default_flow_style = False
        with open(out, "w", encoding="utf-8") as fh:
            yaml.dump(migrate_domain(data), fh)
        done.append(f"{file} -> {out}: " + ("; ".join(reasons) if reasons else
                                            "already 3.x, version set to " + TARGET_VERSION))
    return done


def _entity_names(data: dict[str, Any]) -> set[str]:
    names = set()
    entities = data.get("entities")
    for item in entities if isinstance(entities, list) else []:
        names.add(str(next(iter(item))) if isinstance(item, dict) else str(item))
    return names
