"""The Transformer NLU pipeline, trained into models/nlu by nlu.training."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.errors import TrainingError
from bot.project.project import Project

logger = logging.getLogger(__name__)


def trains_nlu_models(project: Project) -> bool:
    """Whether the NLU part fine-tunes a model (not only regexes, synonyms and thresholds)."""
    from nlu.training import plan

    steps = plan(project.config.pipeline_dicts())
    return bool(project.data.examples) and any(
        c is not None for c in (steps.joint, steps.intent, steps.entity))


def train_nlu(project: Project, out: Path, progress: bool = True,
              threads: Callable[[], int] | None = None) -> dict[str, Any]:
    """Train the Transformer NLU pipeline; `threads()`, when given, says how many torch
    threads to train with, asked at each quarter epoch (None: torch's setting). {} when the
    project has nothing to train."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads())
    if not project.data.examples:
        logger.info("train.nlu.skipped reason=no_examples")
        return {}
    try:
        from nlu.context import (add_topic_switches, answer_contexts, mine_contexts,
                                 restated_tasks, task_answers)
        from nlu.training import TrainingSet, train_pipeline
        from nlu.types import Entity, Example
    except ImportError as exc:  # the NLU dependencies are missing
        raise TrainingError(f"The NLU package cannot be imported ({exc}). "
                            "Reinstall with `make install`.") from exc
    data = project.data
    examples = [
        Example(e.text, e.intent, tuple(Entity(a.start, a.end, a.value, a.entity, a.role, a.group)
                                        for a in e.entities))
        for e in data.examples
    ]
    components = project.config.pipeline_dicts()
    # a rule's condition first: the form it runs in is part of the context
    conversations = [_step_dicts((*story.condition, *story.steps))
                     for story in [*data.stories, *data.rules]]
    rules = conversations[len(data.stories):]
    contexts = add_topic_switches(mine_contexts(conversations), rules)
    # a confirmation's reply that names the task ("yes, cancel it") is the task elsewhere
    retargets = restated_tasks([(e.text, e.intent) for e in examples if e.intent],
                               task_answers(conversations), contexts)
    # an answer naming what a form asks for ("[Starlight Rome](hotel) then") is also trained
    # where the form asks for it
    answers = answer_contexts([(e.text, e.intent, [(a.entity, a.role) for a in e.entities])
                               for e in examples if e.intent and e.entities], contexts,
                              {name: slot.mappings for name, slot in project.domain.slots.items()})
    training_set = TrainingSet(examples, dict(data.synonyms), dict(data.regexes), dict(data.lookups),
                               contexts=contexts, retargets=retargets, answers=answers,
                               language=project.config.language)
    return train_pipeline(training_set, components, out, progress=progress, threads=threads)


def _step_dicts(steps: Any) -> list[dict[str, Any]]:
    """Story steps back in Rasa's YAML step shape, what nlu.context.mine_contexts reads."""
    out: list[dict[str, Any]] = []
    for step in steps:
        if step.kind == "user":
            out.append({"intent": step.intent})
        elif step.kind == "action":
            out.append({"action": step.name})
        elif step.kind == "active_loop":
            out.append({"active_loop": step.name})
        elif step.kind == "slot":
            out.append({"slot_was_set": dict(step.slots)})
        elif step.kind == "or":
            out.append({"or": [{"intent": alt.intent} for alt in step.alternatives]})
    return out
