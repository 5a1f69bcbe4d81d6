"""`xingkong data validate`: check a project's domain, NLU data, stories and rules together.

Every finding names file and line and says how to fix it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from bot.project.config import (
    ProjectPaths,
    load_config,
    load_credentials,
    load_endpoints,
    skipped_components,
)
from bot.project.domain import DEFAULT_INTENTS, Domain, load_domain
from bot.errors import ConfigError
from bot.project.training_data import Story, StoryStep, TrainingData, load_training_data

_WORD_CHAR = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class Finding:
    level: str  # "error" | "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper()}: {self.message}"


def validate_project(paths: ProjectPaths, max_history: int = 5) -> list[Finding]:
    """All findings for the project; the caller decides what errors mean (exit code 1)."""
    findings: list[Finding] = []
    try:
        config = load_config(paths.config)
        load_endpoints(paths.endpoints)
        load_credentials(paths.credentials)
        data = load_training_data(list(paths.data))
        domain = load_domain(paths.domain, extra_responses=data.responses)
    except ConfigError as exc:
        return [Finding("error", str(exc))]
    findings += [Finding("warning", note)
                 for note in skipped_components(config, bool(data.lookups))]
    findings += check_nlu(domain, data)
    findings += check_stories(domain, data)
    findings += check_domain(domain, data)
    findings += check_conflicts(domain, data, max_history)
    return findings


def check_nlu(domain: Domain, data: TrainingData) -> list[Finding]:
    out: list[Finding] = []
    # Like Rasa: NLU intents/entities missing from the domain are ignored in training (a
    # warning, one per name with its first place); broken annotations are errors.
    missing: dict[tuple[str, str], tuple[str, int]] = {}
    for ex in data.examples:
        if ex.intent and ex.intent.split("/")[0] not in domain.intents:
            first, count = missing.get(("intent", ex.intent), (str(ex.source), 0))
            missing[("intent", ex.intent)] = (first, count + 1)
        for ent in ex.entities:
            if ent.entity not in domain.entities:
                first, count = missing.get(("entity", ent.entity), (str(ex.source), 0))
                missing[("entity", ent.entity)] = (first, count + 1)
            elif ent.role and ent.role not in domain.roles.get(ent.entity, ()):
                out.append(Finding("error", f"{ex.source}: role '{ent.role}' of entity "
                                   f"'{ent.entity}' is not declared. Add it under the entity's "
                                   "'roles' in domain.yml."))
            elif ent.group and ent.group not in domain.groups.get(ent.entity, ()):
                out.append(Finding("error", f"{ex.source}: group '{ent.group}' of entity "
                                   f"'{ent.entity}' is not declared in domain.yml."))
            if _misaligned(ex.text, ent.start, ent.end):
                out.append(Finding("error", f"{ex.source}: entity '{ent.entity}' span "
                                   f"{ex.text[ent.start:ent.end]!r} cuts through a word in "
                                   f"{ex.text!r}. Annotate whole words."))
    for (kind, name), (first, count) in missing.items():
        known = domain.intents if kind == "intent" else domain.entities
        hint = difflib.get_close_matches(name, [str(k) for k in known], n=1)
        did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
        out.append(Finding("warning", f"{first}: {kind} '{name}' ({count} example(s)) is not in "
                           f"domain.yml; training ignores it.{did_you_mean}"))
    seen: dict[str, str] = {}
    for ex in data.examples:
        key = ex.text.strip().lower()
        if key in seen and seen[key] != ex.intent:
            out.append(Finding("warning", f"{ex.source}: example {ex.text!r} is labelled "
                               f"'{ex.intent}' here and '{seen[key]}' elsewhere. Keep one."))
        seen.setdefault(key, ex.intent or "")
    for name, patterns in data.regexes.items():
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                out.append(Finding("error", f"regex '{name}': pattern {pattern!r} does not compile "
                                   f"({exc})."))
    trained = {i.split("/")[0] for i in data.intents}
    for intent in domain.intents:
        if intent not in trained and intent not in DEFAULT_INTENTS and data.examples:
            out.append(Finding("warning", f"intent '{intent}' is in the domain but has no NLU "
                               "examples; the NLU will never predict it."))
    return out


def check_stories(domain: Domain, data: TrainingData) -> list[Finding]:
    out: list[Finding] = []
    actions = set(domain.action_names)
    starts = {s.name for st in data.stories for s in st.steps[:1] if s.kind == "checkpoint"}
    ends = {s.name for st in data.stories for s in st.steps[-1:] if s.kind == "checkpoint"}
    for story in [*data.stories, *data.rules]:
        kind = "rule" if story.is_rule else "story"
        for step in _flat_steps(story):
            at = str(step.source)
            if step.kind == "user" and step.intent:
                base = step.intent.split("/")[0]
                if base not in domain.intent_names:
                    out.append(_unknown("intent", step.intent, domain.intent_names, at,
                                        "domain.yml intents", f" ({kind} '{story.name}')"))
                for ent in step.entities:
                    name = str(ent.get("entity"))
                    if name not in domain.entities:
                        out.append(_unknown("entity", name, domain.entities, at,
                                            "domain.yml entities"))
                        continue
                    for key, declared in (("role", domain.roles), ("group", domain.groups)):
                        value = ent.get(key)
                        if value and value not in declared.get(name, ()):
                            out.append(Finding("error", f"{at}: {key} '{value}' of entity "
                                               f"'{name}' is not declared in domain.yml (under "
                                               f"the entity's '{key}s')."))
            elif step.kind == "action" and step.name not in actions:
                out.append(_unknown("action", str(step.name), actions, at,
                                    "domain.yml actions or responses", f" ({kind} '{story.name}')"))
            elif step.kind == "slot":
                for slot, _ in step.slots:
                    if slot not in domain.slots:
                        out.append(_unknown("slot", slot, domain.slots, at, "domain.yml slots"))
            elif step.kind == "active_loop" and step.name and step.name not in domain.forms \
                    and step.name not in actions:
                out.append(_unknown("form", step.name, domain.forms, at, "domain.yml forms"))
            elif step.kind == "checkpoint":
                other = ends if step is story.steps[0] else starts
                if step.name not in other:
                    out.append(Finding("warning", f"{at}: checkpoint '{step.name}' has no "
                                       "matching story on the other side; it joins nothing."))
    return out


def check_domain(domain: Domain, data: TrainingData) -> list[Finding]:
    out: list[Finding] = []
    for form in domain.forms.values():
        for slot in form.required_slots:
            if slot not in domain.slots:
                out.append(Finding("error", f"{form.source}: form '{form.name}' requires slot "
                                   f"'{slot}', which is not in domain.yml slots."))
                continue
            asks = {f"utter_ask_{form.name}_{slot}", f"utter_ask_{slot}",
                    f"action_ask_{form.name}_{slot}", f"action_ask_{slot}"}
            if not asks & set(domain.action_names):
                out.append(Finding("warning", f"{form.source}: form '{form.name}' has no way to "
                                   f"ask for '{slot}': "
                                   f"add response utter_ask_{slot} (or action_ask_{slot})."))
    for action in domain.custom_actions:
        if action.startswith("utter_") and action not in domain.responses:
            out.append(Finding("error", f"action '{action}' in domain.yml looks like a response "
                               "but no response of that name exists."))
    for slot in domain.slots.values():
        for m in slot.mappings:
            ent = m.get("entity")
            if m.get("type") == "from_entity" and ent not in domain.entities:
                out.append(Finding("error", f"{slot.source}: slot '{slot.name}' maps from entity "
                                   f"'{ent}', which is not in domain.yml entities."))
    return out


def check_conflicts(domain: Domain, data: TrainingData, max_history: int) -> list[Finding]:
    from bot.policies.conflicts import find_conflicts

    return [Finding("error", msg) for msg in find_conflicts(domain, data, max_history)]


def _flat_steps(story: Story) -> list[StoryStep]:
    out: list[StoryStep] = []
    for step in (*story.condition, *story.steps):
        out += list(step.alternatives) if step.kind == "or" else [step]
    return out


def _misaligned(text: str, start: int, end: int) -> bool:
    inside_left = start > 0 and _WORD_CHAR.match(text[start - 1]) and _WORD_CHAR.match(text[start])
    inside_right = end < len(text) and _WORD_CHAR.match(text[end - 1]) and _WORD_CHAR.match(text[end])
    return bool(inside_left or inside_right)


def _unknown(kind: str, name: str, known: object, at: str, where_: str, extra: str = "") -> Finding:
    names = [str(k) for k in known]  # type: ignore[attr-defined]
    hint = difflib.get_close_matches(name, names, n=1)
    did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
    return Finding("error", f"{at}: unknown {kind} '{name}'{extra}.{did_you_mean} "
                   f"Declare it in {where_}.")


def load_paths(root: Path) -> ProjectPaths:
    return ProjectPaths.at(root)
