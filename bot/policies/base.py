"""What every policy returns, and the protocol it implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.project.domain import Domain
from bot.state.events import Event
from bot.state.tracker import DialogueStateTracker
from bot.project.training_data import TrainingData


@dataclass(frozen=True, slots=True)
class PolicyPrediction:
    """One policy's vote: the action it wants, how sure it is, and why."""

    action: str | None
    confidence: float
    policy: str
    priority: int
    events: tuple[Event, ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def abstain(cls, policy: str, priority: int, **diagnostics: Any) -> PolicyPrediction:
        return cls(None, 0.0, policy, priority, diagnostics=diagnostics)


class Policy(Protocol):
    name: str
    priority: int

    def train(self, domain: Domain, data: TrainingData) -> list[str]:
        """Learn from stories/rules; return warnings (conflicts) for the training report."""
        ...

    def predict(self, tracker: DialogueStateTracker, domain: Domain) -> PolicyPrediction: ...

    def to_dict(self) -> dict[str, Any]: ...

    def load_dict(self, data: dict[str, Any]) -> None: ...
