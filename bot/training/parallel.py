"""Training side by side: the knowledge build, then the policies, in a spawned process
while the NLU trains in this one, and how many torch threads each job gets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.project.config import ProjectPaths
from bot.project.project import Project
from bot.training.core import train_core
from bot.training.knowledge import train_knowledge
from bot.training.report import StageTime, clock


def _threads_per_job(jobs: int) -> int:
    """Torch threads for one of `jobs` trainings running at once: the cores shared out (on 2
    cores one each; a job with 2 threads on 2 busy cores waits on its descheduled thread)."""
    return max(1, (os.cpu_count() or 1) // jobs)


@contextmanager
def on_idle_cores() -> Iterator[None]:
    """The training steps inside take the cores the machine leaves idle, asked every 30 s;
    the torch threads are put back after. Every knowledge build runs inside: the side job
    and the background build start on one core beside the NLU and take the second once the
    NLU is done; a build with nothing beside it takes both (its loops' one thread, chosen
    for a busy machine, left the second core idle)."""
    import torch

    from retrieval.train_step import adapt_threads

    before = torch.get_num_threads()
    adapt_threads(idle_threads)
    try:
        yield
    finally:
        adapt_threads(None)
        torch.set_num_threads(before)


def nlu_threads(side_done: Callable[[], bool]) -> Callable[[], int]:
    """Torch threads for the NLU's next quarter epoch, asked before each: one core while the
    side job (`side_done()` False) trains, then the cores the machine leaves idle: all of them
    on a quiet machine, still one on a busy one, where a second thread would wait on its
    descheduled partner."""
    def threads() -> int:
        return idle_threads() if side_done() else _threads_per_job(2)

    return threads


def idle_threads() -> int:
    """Torch threads for a job whose partner may be done: the cores the machine leaves idle
    (the caller's own included), at least one."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, int(_idle_cores() + 0.5)))


def _idle_cores(window_s: float = 0.25) -> float:
    """How many cores sat idle over the next `window_s` seconds (Linux /proc/stat; the caller
    waits meanwhile, so its own core counts as idle); 0 where it cannot be read: one thread."""
    def idle_and_total() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks[:8])  # idle + iowait; user ... steal

    try:
        idle_before, total_before = idle_and_total()
        time.sleep(window_s)
        idle_after, total_after = idle_and_total()
    except (OSError, ValueError, IndexError):
        return 0.0
    elapsed = total_after - total_before
    return (os.cpu_count() or 1) * (idle_after - idle_before) / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class _SideResult:
    """What the spawned side job sends back: the knowledge build's report, the policies'
    story conflicts (when it trained them) and its stages."""

    knowledge_report: Any
    core_problems: list[str]
    stages: dict[str, StageTime]


def run_side_job(paths: ProjectPaths, kb: Path, target: Path, retrain: bool, core: bool,
              progress: bool, origin: float) -> _SideResult:
    """The knowledge part, then the policies when `core`, in a child process (spawned: a
    fresh interpreter, one torch thread: the other core is the NLU's, until the NLU is done
    and its core idles: the knowledge's training steps then take it, asked every 30 s);
    `origin` is when train() began."""
    began = clock()
    import torch

    torch.set_num_threads(_threads_per_job(2))
    project = Project.load(paths)
    with on_idle_cores():
        built = train_knowledge(project, kb, target, retrain=retrain)
    stages = {"knowledge": StageTime.since(origin, began)}
    problems: list[str] = []
    if core:
        began = clock()
        problems = train_core(project, paths.models / "core", progress=progress)
        stages["core"] = StageTime.since(origin, began)
    return _SideResult(built, problems, stages)
