"""Value objects of the NLU: what goes in (examples) and what comes out (a Rasa-shaped parse)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Entity:
    """A span of the text. `start`/`end` are character offsets, end exclusive."""

    start: int
    end: int
    value: Any
    entity: str
    role: str | None = None
    group: str | None = None
    confidence: float | None = None
    extractor: str | None = None
    processors: tuple[str, ...] = ()
    text: str | None = None  # the span as written (Duckling's "body"); Rasa's key "text"
    additional_info: Any = None  # Duckling's value object: grain, from/to, values

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entity": self.entity,
            "start": self.start,
            "end": self.end,
            "value": self.value,
        }
        if self.text is not None:
            out["text"] = self.text
        if self.additional_info is not None:
            out["additional_info"] = self.additional_info
        if self.confidence is not None:
            out["confidence_entity"] = self.confidence
        if self.role is not None:
            out["role"] = self.role
        if self.group is not None:
            out["group"] = self.group
        if self.extractor is not None:
            out["extractor"] = self.extractor
        if self.processors:
            out["processors"] = list(self.processors)
        return out


@dataclass(frozen=True, slots=True)
class IntentScore:
    name: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "confidence": self.confidence}


@dataclass(frozen=True, slots=True)
class Example:
    """One training example: text, its intent and its annotated entities."""

    text: str
    intent: str | None
    entities: tuple[Entity, ...] = ()


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What the interpreter says about one message, in Rasa's parse shape via `to_dict`.

    `uncertainty` holds the Bayesian estimate (e.g. {"entropy": .., "std": .., "samples": N});
    Rasa clients ignore the extra key.
    """

    text: str
    intent: IntentScore | None
    intent_ranking: tuple[IntentScore, ...] = ()
    entities: tuple[Entity, ...] = ()
    uncertainty: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        intent = self.intent.to_dict() if self.intent else {"name": None, "confidence": 0.0}
        out: dict[str, Any] = {
            "text": self.text,
            "intent": intent,
            "entities": [e.to_dict() for e in self.entities],
            "intent_ranking": [i.to_dict() for i in self.intent_ranking],
        }
        if self.uncertainty:
            out["uncertainty"] = dict(self.uncertainty)
        return out


class Interpreter(Protocol):
    """Text in, parse out. The dialogue engine depends only on this. `context` is an
    optional nlu.context.DialogueContext (what the bot just asked); None parses without one."""

    def parse(self, text: str, context: Any = None) -> ParseResult: ...

    def parse_batch(self, texts: list[str], contexts: list[Any] | None = None) -> list[ParseResult]: ...
