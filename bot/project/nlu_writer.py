"""NLU training data back to Rasa's files: YAML (`nlu:`) or JSON (`rasa_nlu_data`), and the
stratified train/test split of `xingkong data split nlu` (Rasa's `rasa data split nlu`)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any

from bot.project.training_data import EntityAnnotation, NluExample, TrainingData


def annotated_text(example: NluExample) -> str:
    """The example with its entities written inline: [text](entity), [text](entity:value) or
    [text]{"entity": ..., "role": ...} when it has a role or group."""
    text = example.text
    for entity in sorted(example.entities, key=lambda e: e.start, reverse=True):
        surface = text[entity.start:entity.end]
        text = f"{text[:entity.start]}[{surface}]{_label(entity, surface)}{text[entity.end:]}"
    return text


def _label(entity: EntityAnnotation, surface: str) -> str:
    if entity.role or entity.group:
        body: dict[str, Any] = {"entity": entity.entity}
        if entity.value != surface:
            body["value"] = entity.value
        if entity.role:
            body["role"] = entity.role
        if entity.group:
            body["group"] = entity.group
        return json.dumps(body, ensure_ascii=False)
    if entity.value != surface:
        return f"({entity.entity}:{entity.value})"
    return f"({entity.entity})"


def nlu_yaml(data: TrainingData, examples: list[NluExample] | None = None) -> str:
    """Rasa 3 YAML for the examples (all of `data`'s by default) and its synonyms, regexes and
    lookup tables."""
    chosen = examples if examples is not None else data.examples
    lines = ['version: "3.1"', "nlu:"]
    by_intent: dict[str, list[NluExample]] = defaultdict(list)
    for example in chosen:
        by_intent[example.intent or ""].append(example)
    for intent, items in by_intent.items():
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {annotated_text(e)}" for e in items]
    synonyms: dict[str, list[str]] = defaultdict(list)
    for surface, value in data.synonyms.items():
        if surface != value.lower():
            synonyms[value].append(surface)
    for value, surfaces in synonyms.items():
        lines += [f"- synonym: {_quoted(value)}", "  examples: |"]
        lines += [f"    - {s}" for s in surfaces]
    for name, patterns in data.regexes.items():
        lines += [f"- regex: {name}", "  examples: |"] + [f"    - {p}" for p in patterns]
    for name, values in data.lookups.items():
        lines += [f"- lookup: {name}", "  examples: |"] + [f"    - {v}" for v in values]
    if len(lines) == 2:
        lines[-1] = "nlu: []"
    return "\n".join(lines) + "\n"


def nlu_json(data: TrainingData, examples: list[NluExample] | None = None) -> dict[str, Any]:
    """Rasa's NLU JSON format (`rasa_nlu_data`)."""
    chosen = examples if examples is not None else data.examples
    common = [{"text": e.text, "intent": e.intent,
               "entities": [a.to_dict() for a in e.entities]} for e in chosen]
    synonyms: dict[str, list[str]] = defaultdict(list)
    for surface, value in data.synonyms.items():
        if surface != value.lower():
            synonyms[value].append(surface)
    return {"rasa_nlu_data": {
        "common_examples": common,
        "entity_synonyms": [{"value": v, "synonyms": s} for v, s in synonyms.items()],
        "regex_features": [{"name": n, "pattern": p} for n, ps in data.regexes.items()
                           for p in ps],
        "lookup_tables": [{"name": n, "elements": list(vs)} for n, vs in data.lookups.items()],
    }}


def split_examples(examples: list[NluExample], training_fraction: float,
                   seed: int) -> tuple[list[NluExample], list[NluExample]]:
    """(train, test), stratified by intent: each intent keeps `training_fraction` of its
    examples for training (at least one), in a shuffle fixed by `seed`."""
    if not 0.0 < training_fraction < 1.0:
        raise ValueError(f"training_fraction must be between 0 and 1, got {training_fraction}.")
    rng = random.Random(seed)
    by_intent: dict[str, list[NluExample]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent or ""].append(example)
    train: list[NluExample] = []
    test: list[NluExample] = []
    for intent in sorted(by_intent):
        items = list(by_intent[intent])
        rng.shuffle(items)
        keep = max(1, round(len(items) * training_fraction))
        train += items[:keep]
        test += items[keep:]
    return train, test


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ":#{}[]") else value
