"""Rasa 3.x training data: NLU examples, synonyms, regexes, lookups, stories, rules, test stories.

Everything keeps its file and line so the validator can point at it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.project.yaml_reader import line_of, plain, read_yaml, where

logger = logging.getLogger(__name__)

# [text](entity) | [text](entity:value) | [text]{"entity": ..., "role": ...}
_ANNOTATION = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)|(?P<json>\{[^}]*\}))"
)
_LEFTOVER = re.compile(r"\]\(|\]\{")
_LONG_FORM = {"entity", "value", "role", "group", "start", "end"}  # `- entity: x  value: y`
_NLU_KEYS = {"intent", "examples", "synonym", "regex", "lookup", "metadata"}


@dataclass(frozen=True, slots=True)
class Source:
    file: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True, slots=True)
class EntityAnnotation:
    start: int
    end: int
    value: str
    entity: str
    role: str | None = None
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start, "end": self.end, "value": self.value,
                               "entity": self.entity}
        if self.role is not None:
            out["role"] = self.role
        if self.group is not None:
            out["group"] = self.group
        return out


@dataclass(frozen=True, slots=True)
class NluExample:
    text: str
    intent: str | None
    entities: tuple[EntityAnnotation, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class StoryStep:
    """One step of a story or rule. `kind` is user, action, bot, slot, active_loop,
    checkpoint or or (then `alternatives` holds the user steps)."""

    kind: str
    source: Source
    intent: str | None = None
    text: str | None = None
    entities: tuple[dict[str, Any], ...] = ()
    name: str | None = None  # action, active loop or checkpoint name
    slots: tuple[tuple[str, Any], ...] = ()
    alternatives: tuple[StoryStep, ...] = ()


@dataclass(frozen=True, slots=True)
class Story:
    name: str
    steps: tuple[StoryStep, ...]
    source: Source
    is_rule: bool = False
    condition: tuple[StoryStep, ...] = ()
    conversation_start: bool = False
    wait_for_user_input: bool = True


@dataclass(slots=True)
class TrainingData:
    examples: list[NluExample] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # surface form (lower) -> value
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    stories: list[Story] = field(default_factory=list)
    rules: list[Story] = field(default_factory=list)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def intents(self) -> set[str]:
        return {e.intent for e in self.examples if e.intent}

    @property
    def entity_names(self) -> set[str]:
        return {a.entity for e in self.examples for a in e.entities}


def load_training_data(paths: list[Path]) -> TrainingData:
    """Read every .yml/.yaml/.json file under `paths` into one TrainingData."""
    data = TrainingData()
    for file in _data_files(paths):
        data.files.append(str(file))
        if file.suffix == ".json":
            _read_nlu_json(file, data)
            continue
        content = read_yaml(file)
        if content is None:
            continue
        if not isinstance(content, dict):
            raise ConfigError(f"{where(file, content)}: a training data file must be a mapping "
                              "with keys like nlu, stories, rules.")
        read_training_yaml(file, content, data)
    return data


def read_training_yaml(file: Path, content: dict[str, Any], data: TrainingData) -> None:
    if not set(content) & {"nlu", "stories", "rules", "responses"}:
        logger.debug("data.skip file=%s reason=no_training_keys", file)
        return
    for key in content:
        if key not in ("version", "nlu", "stories", "rules", "responses"):
            logger.warning("data.unknown_key key=%s at=%s", key, where(file, content, key))
    for i, item in enumerate(_section(file, content, "nlu")):
        _read_nlu_item(file, item, line_of(content["nlu"], i), data)
    for i, item in enumerate(_section(file, content, "stories")):
        data.stories.append(_read_story(file, item, line_of(content["stories"], i), is_rule=False))
    for i, item in enumerate(_section(file, content, "rules")):
        data.rules.append(_read_story(file, item, line_of(content["rules"], i), is_rule=True))
    responses = content.get("responses") or {}
    if not isinstance(responses, dict):
        raise ConfigError(f"{where(file, content, 'responses')}: 'responses' must be a mapping.")
    data.responses.update(plain(responses))


def parse_annotated(text: str, at: Source) -> tuple[str, tuple[EntityAnnotation, ...]]:
    """'book [Lisbon](city)' -> ('book Lisbon', (EntityAnnotation(5, 11, 'Lisbon', 'city'),))."""
    out: list[str] = []
    entities: list[EntityAnnotation] = []
    outside: list[str] = []
    pos = 0
    length = 0
    for match in _ANNOTATION.finditer(text):
        before = text[pos:match.start()]
        outside.append(before)
        out.append(before)
        length += len(before)
        surface = match.group("text")
        start, end = length, length + len(surface)
        out.append(surface)
        length = end
        pos = match.end()
        if match.group("json"):
            try:
                spec = json.loads(match.group("json"))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{at}: entity annotation {match.group(0)!r} is not valid "
                                  f"JSON ({exc.msg}). Use {{\"entity\": \"name\"}}.") from exc
            if not isinstance(spec, dict) or not spec.get("entity"):
                raise ConfigError(f"{at}: entity annotation {match.group(0)!r} has no 'entity'.")
            entities.append(EntityAnnotation(start, end, str(spec.get("value", surface)),
                                             str(spec["entity"]), spec.get("role"), spec.get("group")))
        else:
            entity = match.group("entity").strip()
            value = (match.group("value") or surface).strip()
            entities.append(EntityAnnotation(start, end, value, entity))
            if text.startswith("{", pos):  # [x](date){"role": "checkin"}: Rasa reads it as text
                logger.warning("data.annotation.braces_after_entity at=%s text=%r: the {...} after "
                               "[%s](%s) is read as part of the message, as Rasa reads it. Write "
                               "[%s]{\"entity\": \"%s\", \"role\": ...} for a role.", at,
                               text[:80], surface, entity, surface, entity)
    tail = text[pos:]
    outside.append(tail)
    out.append(tail)
    plain_text = "".join(out)
    if any(_LEFTOVER.search(part) for part in outside):
        raise ConfigError(f"{at}: malformed entity annotation in {text!r}. "
                          "Write [text](entity) or [text]{\"entity\": \"name\", \"role\": \"r\"}.")
    return plain_text, tuple(entities)


def _data_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml", ".json")
                            and p.is_file())
        elif path.exists():
            files.append(path)
        else:
            raise ConfigError(f"Training data path {path} does not exist.")
    return files


def _section(file: Path, content: dict[str, Any], key: str) -> list[Any]:
    value = content.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where(file, content, key)}: '{key}' must be a list.")
    return value


def _read_nlu_item(file: Path, item: Any, line: int | None, data: TrainingData) -> None:
    at = Source(str(file), line)
    if not isinstance(item, dict):
        raise ConfigError(f"{at}: each nlu item is a mapping (intent/synonym/regex/lookup + examples).")
    for key in item:
        if key not in _NLU_KEYS:
            logger.warning("data.unknown_key key=%s at=%s", key, at)
    lines = _example_lines(item.get("examples"), at, item)
    if "intent" in item:
        intent = str(item["intent"])
        for offset, raw in lines:
            ex_at = Source(str(file), line + offset if line is not None else None)
            text, entities = parse_annotated(raw, ex_at)
            data.examples.append(NluExample(text, intent, entities, ex_at))
    elif "synonym" in item:
        value = str(item["synonym"])
        for _, raw in lines:
            data.synonyms[raw.lower()] = value
    elif "regex" in item:
        data.regexes.setdefault(str(item["regex"]), []).extend(raw for _, raw in lines)
    elif "lookup" in item:
        data.lookups.setdefault(str(item["lookup"]), []).extend(raw for _, raw in lines)
    else:
        raise ConfigError(f"{at}: an nlu item needs one of intent, synonym, regex, lookup.")


def _example_lines(examples: Any, at: Source, item: Any) -> list[tuple[int, str]]:
    """(line offset from the item, example text) for `examples: |` blocks and lists."""
    if examples is None:
        raise ConfigError(f"{at}: nlu item has no 'examples'.")
    if isinstance(examples, list):  # [{text: ..., metadata: ...}] or plain strings
        out = []
        for i, ex in enumerate(examples):
            text = ex.get("text") if isinstance(ex, dict) else ex
            if not isinstance(text, str):
                raise ConfigError(f"{at}: example {i} has no text.")
            item_line = line_of(examples, i)
            offset = item_line - at.line if item_line is not None and at.line is not None else i + 1
            out.append((offset, text.strip()))
        return out
    if not isinstance(examples, str):
        raise ConfigError(f"{at}: 'examples' must be a block of '- ' lines.")
    base = (line_of(item, "examples") or 0) - (at.line or 0)
    out = []
    for i, raw in enumerate(examples.splitlines()):
        stripped = raw.strip()
        if not stripped:
            continue
        if not stripped.startswith("- "):
            raise ConfigError(f"{at.file}:{(at.line or 0) + base + i + 1}: example lines start "
                              f"with '- ', got {stripped[:40]!r}.")
        out.append((base + i + 1, stripped[2:].strip()))
    return out


def _read_nlu_json(file: Path, data: TrainingData) -> None:
    try:
        parsed = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg}).") from exc
    # SQuAD files and the like skip the slow YAML pass (data/kb/qa.json cost 0.5 s a load)
    if not isinstance(parsed, dict) or "rasa_nlu_data" not in parsed:
        logger.debug("data.skip_json file=%s reason=no_rasa_nlu_data", file)
        return
    content = read_yaml(file)  # JSON is YAML 1.2: this keeps line numbers for messages
    nlu = content.get("rasa_nlu_data") if isinstance(content, dict) else None
    if not isinstance(nlu, dict):
        logger.debug("data.skip_json file=%s reason=no_rasa_nlu_data", file)
        return
    examples = nlu.get("common_examples") or []
    for i, ex in enumerate(examples):
        at = Source(str(file), line_of(examples, i))
        text = str(ex.get("text", ""))
        entities = []
        for ent in ex.get("entities") or []:
            start, end = ent.get("start"), ent.get("end")
            if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(text):
                raise ConfigError(f"{at}: common_examples[{i}] entity {ent.get('entity')!r} has span "
                                  f"[{start}, {end}) outside the text ({len(text)} chars).")
            entities.append(EntityAnnotation(start, end, str(ent.get("value", text[start:end])),
                                             str(ent.get("entity")), ent.get("role"), ent.get("group")))
        data.examples.append(NluExample(text, ex.get("intent"), tuple(entities), at))
    for syn in plain(nlu.get("entity_synonyms")) or []:
        for form in syn.get("synonyms") or []:
            data.synonyms[str(form).lower()] = str(syn.get("value"))
    for rx in plain(nlu.get("regex_features")) or []:
        data.regexes.setdefault(str(rx.get("name")), []).append(str(rx.get("pattern")))
    for lk in plain(nlu.get("lookup_tables")) or []:
        elements = lk.get("elements")
        if isinstance(elements, list):
            data.lookups.setdefault(str(lk.get("name")), []).extend(map(str, elements))


def _read_story(file: Path, item: Any, line: int | None, is_rule: bool) -> Story:
    kind = "rule" if is_rule else "story"
    at = Source(str(file), line)
    if not isinstance(item, dict) or kind not in item:
        raise ConfigError(f"{at}: each entry needs a '{kind}' name and 'steps'.")
    steps_node = item.get("steps")
    if not isinstance(steps_node, list):
        raise ConfigError(f"{at}: {kind} '{item.get(kind)}' needs a list of 'steps'.")
    steps = tuple(_read_step(file, s, line_of(steps_node, i)) for i, s in enumerate(steps_node))
    condition_node = item.get("condition") or []
    condition = tuple(_read_step(file, s, line_of(condition_node, i))
                      for i, s in enumerate(condition_node))
    return Story(
        name=str(item[kind]),
        steps=steps,
        source=at,
        is_rule=is_rule,
        condition=condition,
        conversation_start=bool(item.get("conversation_start", False)),
        wait_for_user_input=bool(item.get("wait_for_user_input", True)),
    )


def _read_step(file: Path, step: Any, line: int | None) -> StoryStep:
    at = Source(str(file), line)
    if not isinstance(step, dict):
        raise ConfigError(f"{at}: a step is a mapping like '- intent: greet' or '- action: utter_greet'.")
    if "intent" in step or "user" in step:
        text, entities = None, tuple(_step_entities(step.get("entities"), at))
        if step.get("user") is not None:
            text, annotated = parse_annotated(str(step["user"]).strip(), at)
            if annotated and not entities:
                entities = tuple(a.to_dict() for a in annotated)
        intent = step.get("intent")
        return StoryStep("user", at, intent=str(intent) if intent else None, text=text,
                         entities=entities)
    if "action" in step:
        return StoryStep("action", at, name=str(step["action"]))
    if "bot" in step:
        return StoryStep("bot", at, text=str(step["bot"]))
    if "slot_was_set" in step:
        return StoryStep("slot", at, slots=tuple(_slot_pairs(step["slot_was_set"], at)))
    if "active_loop" in step:
        name = step["active_loop"]
        return StoryStep("active_loop", at, name=None if name in (None, "null") else str(name))
    if "checkpoint" in step:
        return StoryStep("checkpoint", at, name=str(step["checkpoint"]))
    if "or" in step:
        alts = step["or"]
        if not isinstance(alts, list):
            raise ConfigError(f"{at}: 'or' takes a list of steps.")
        return StoryStep("or", at, alternatives=tuple(
            _read_step(file, a, line_of(alts, i)) for i, a in enumerate(alts)))
    raise ConfigError(f"{at}: unknown step {sorted(map(str, step))}. Valid: intent, user, action, "
                      "bot, slot_was_set, active_loop, checkpoint, or.")


def _step_entities(entities: Any, at: Source) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ent in plain(entities) or []:
        if isinstance(ent, str):
            out.append({"entity": ent})
        elif isinstance(ent, dict) and "entity" in ent and set(ent) <= _LONG_FORM:
            out.append(ent)
        elif isinstance(ent, dict) and [k for k in ent if k not in ("role", "group")]:
            # the shorthand `- cuisine: italian`, as Rasa's story reader: every key other
            # than role and group is an entity with its value (older files put several
            # entities in one mapping)
            extra = {k: ent[k] for k in ("role", "group") if ent.get(k)}
            for name, value in ent.items():
                if name not in ("role", "group"):
                    out.append({"entity": str(name), "value": value, **extra})
        else:
            raise ConfigError(f"{at}: bad entity in story step: {ent!r}.")
    return out


def _slot_pairs(value: Any, at: Source) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for item in plain(value) or []:
        if isinstance(item, str):
            out.append((item, ...))  # "was set to something"
        elif isinstance(item, dict):
            out += list(item.items())
        else:
            raise ConfigError(f"{at}: bad slot_was_set entry {item!r}.")
    return out
