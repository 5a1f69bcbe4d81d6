"""What a training run reports: the parts it trained, their warnings and reports, and when
each stage ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StageTime:
    """One training stage: when it started (seconds after train() began), its wall seconds
    and the CPU seconds of its process (user + sys, all threads), to find the critical path
    and what the stages cost on a busy machine."""

    start_s: float
    wall_s: float
    cpu_s: float

    @classmethod
    def since(cls, origin: float, began: tuple[float, float]) -> StageTime:
        """The stage that began at `began` (clock()) of a train() that began at `origin`."""
        wall, cpu = clock()
        return cls(round(began[0] - origin, 1), round(wall - began[0], 1),
                   round(cpu - began[1], 1))


def clock() -> tuple[float, float]:
    """(monotonic wall clock, CPU seconds of this process): monotonic is one clock for the
    parent and its spawned jobs."""
    return time.monotonic(), time.process_time()


@dataclass(slots=True)
class TrainReport:
    core_trained: bool = False
    nlu_trained: bool = False
    knowledge_trained: bool = False
    knowledge_behind: bool = False  # the knowledge build runs on in a background process
    generation_trained: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    nlu_report: dict[str, Any] = field(default_factory=dict)
    knowledge_report: Any = None  # retrieval.KnowledgeReport when the knowledge was built
    generation_report: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, StageTime] = field(default_factory=dict)  # what ran, and when
