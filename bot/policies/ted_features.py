"""TED's view of a dialogue state: one vector per turn, in five parts (Rasa's attributes).

    intent       one-hot over the domain's intents (a text-only message: all zeros)
    entities     multi-hot over entity names, and name#role / name#group
    prev_action  one-hot over the domain's actions (a bot text turn: all zeros)
    slots        per featurised slot, by Rasa's rules:
                   text, list, any      [set]              1 when it holds a value
                   bool                 [set, value]
                   categorical          one-hot over its values + __other__ (unset: zeros)
                   float                [set, value]       value scaled to min..max as 0..1
    active_loop  one-hot over the forms (no loop: zeros)

It reads the feature strings of bot/policies/states.py, so TED, memoization and rules see the
same states. Slots that do not influence the conversation are not in those states at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.policies.states import State
from bot.project.domain import Domain
from bot.project.ted_params import ATTRIBUTES

OTHER = "__other__"


@dataclass(frozen=True, slots=True)
class SlotColumns:
    """Where one slot's columns sit inside the `slots` part."""

    name: str
    type: str
    values: tuple[str, ...]  # categorical values (lower case) then __other__; () otherwise
    offset: int

    @property
    def width(self) -> int:
        if self.type == "categorical":
            return len(self.values)
        return 2 if self.type in ("bool", "float") else 1


@dataclass(frozen=True, slots=True)
class StateFeaturizer:
    intents: tuple[str, ...]
    entities: tuple[str, ...]
    actions: tuple[str, ...]
    slots: tuple[SlotColumns, ...]
    loops: tuple[str, ...]

    @classmethod
    def from_domain(cls, domain: Domain) -> StateFeaturizer:
        entities = list(domain.entities)
        for name in domain.entities:
            entities += [f"{name}#{r}" for r in domain.roles.get(name, ())]
            entities += [f"{name}#{g}" for g in domain.groups.get(name, ())]
        columns: list[SlotColumns] = []
        offset = 0
        for name, spec in sorted(domain.slots.items()):
            if not spec.influence_conversation:
                continue
            values = tuple(dict.fromkeys(v.lower() for v in spec.values)) + (OTHER,) \
                if spec.type == "categorical" else ()
            column = SlotColumns(name, spec.type, values, offset)
            columns.append(column)
            offset += column.width
        return cls(tuple(domain.intent_names), tuple(dict.fromkeys(entities)),
                   tuple(domain.action_names), tuple(columns), tuple(domain.forms))

    @property
    def sizes(self) -> dict[str, int]:
        """Width of each part, in ATTRIBUTES order."""
        return {"intent": len(self.intents), "entities": len(self.entities),
                "prev_action": len(self.actions),
                "slots": sum(c.width for c in self.slots), "active_loop": len(self.loops)}

    @property
    def width(self) -> int:
        return sum(self.sizes.values())

    def encode(self, state: State) -> list[float]:
        """The state as one flat vector: the parts one after another, in ATTRIBUTES order."""
        sizes = self.sizes
        starts: dict[str, int] = {}
        at = 0
        for name in ATTRIBUTES:
            starts[name] = at
            at += sizes[name]
        vector = [0.0] * at
        slot_of = {c.name: c for c in self.slots}
        for feature in state:
            kind, _, rest = feature.partition(":")
            if kind == "intent":
                self._one(vector, starts["intent"], self.intents, rest)
            elif kind == "entity":
                self._one(vector, starts["entities"], self.entities, rest)
            elif kind == "prev":
                self._one(vector, starts["prev_action"], self.actions, rest)
            elif kind == "loop" and rest != "none":
                self._one(vector, starts["active_loop"], self.loops, rest)
            elif kind == "slot":
                name, _, shown = rest.rpartition(":")
                column = slot_of.get(name)
                if column is not None:
                    for i, value in _slot_columns(column, shown):
                        vector[starts["slots"] + column.offset + i] = value
            # text: and prev_text: (end-to-end stories) have no columns: TED reads names only.
        return vector

    @staticmethod
    def _one(vector: list[float], start: int, names: tuple[str, ...], name: str) -> None:
        try:
            vector[start + names.index(name)] = 1.0
        except ValueError:
            pass  # a name the domain does not know (an old tracker): no column to set

    def to_dict(self) -> dict[str, Any]:
        return {"intents": list(self.intents), "entities": list(self.entities),
                "actions": list(self.actions), "loops": list(self.loops),
                "slots": [[c.name, c.type, list(c.values), c.offset] for c in self.slots]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StateFeaturizer:
        return cls(tuple(data["intents"]), tuple(data["entities"]), tuple(data["actions"]),
                   tuple(SlotColumns(n, t, tuple(v), o) for n, t, v, o in data["slots"]),
                   tuple(data["loops"]))


def _slot_columns(column: SlotColumns, shown: str) -> list[tuple[int, float]]:
    """(column index, value) pairs for one slot feature as states.slot_feature writes it."""
    if column.type == "categorical":
        if shown == "none":
            return []
        index = column.values.index(shown) if shown in column.values else len(column.values) - 1
        return [(index, 1.0)]
    if column.type == "bool":
        return [] if shown == "none" else [(0, 1.0), (1, 1.0 if shown == "true" else 0.0)]
    if column.type == "float":
        try:
            return [(0, 1.0), (1, float(shown))]
        except ValueError:
            return []
    return [(0, 1.0)] if shown == "1" else []
