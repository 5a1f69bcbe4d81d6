"""Stories and rules to event sequences: `or` steps expand, checkpoints join stories."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from bot.project.domain import Domain
from bot.project.training_data import Story, StoryStep
from bot.state.events import (
    ACTION_LISTEN_NAME,
    ActionExecuted,
    ActiveLoop,
    Event,
    SlotSet,
    UserUttered,
)
from bot.state.slot_mapping import slots_for_entities

logger = logging.getLogger(__name__)

MAX_EXPANSIONS = 200  # per story: `or` and checkpoints multiply; beyond this we stop and warn


@dataclass(frozen=True, slots=True)
class Trajectory:
    """One path through the story graph as events; `sources[i]` is where events[i] came from."""

    name: str
    events: tuple[Event, ...]
    sources: tuple[str, ...]


def story_trajectories(stories: list[Story], domain: Domain | None = None) -> list[Trajectory]:
    """Every path through the stories as events. With a domain, a user step's entities also
    set the slots they map to (Rasa's implicit slot events, StoryStep.explicit_events)."""
    starts: dict[str, list[Story]] = {}
    for story in stories:
        first = story.steps[0] if story.steps else None
        if first is not None and first.kind == "checkpoint":
            starts.setdefault(first.name or "", []).append(story)
    out: list[Trajectory] = []
    for story in stories:
        if story.steps and story.steps[0].kind == "checkpoint":
            continue
        for steps in _join(story, starts, depth=0):
            for variant in _expand_or(steps)[:MAX_EXPANSIONS]:
                events, sources = steps_to_events(variant, first_listen=True, domain=domain)
                if events and isinstance(events[-1], ActionExecuted) \
                        and events[-1].name != ACTION_LISTEN_NAME:
                    # After a story's last action the bot waits for the user.
                    events.append(ActionExecuted(name=ACTION_LISTEN_NAME))
                    sources.append(sources[-1])
                out.append(Trajectory(story.name, tuple(events), tuple(sources)))
    return out


def rule_trajectories(rules: list[Story],
                      domain: Domain | None = None) -> list[tuple[Story, Trajectory]]:
    out = []
    for rule in rules:
        for variant in _expand_or(list(rule.condition) + list(rule.steps))[:MAX_EXPANSIONS]:
            events, sources = steps_to_events(variant, first_listen=True, domain=domain)
            if rule.wait_for_user_input and variant and variant[-1].kind != "user":
                events.append(ActionExecuted(name=ACTION_LISTEN_NAME))
                sources.append(str(rule.source))
            out.append((rule, Trajectory(rule.name, tuple(events), tuple(sources))))
    return out


def steps_to_events(steps: list[StoryStep], first_listen: bool,
                    domain: Domain | None = None) -> tuple[list[Event], list[str]]:
    events: list[Event] = []
    sources: list[str] = []
    seen_user = False
    for step in steps:
        at = str(step.source)
        if step.kind == "user":
            if first_listen or seen_user or any(isinstance(e, ActionExecuted) for e in events):
                events.append(ActionExecuted(name=ACTION_LISTEN_NAME))
                sources.append(at)
            seen_user = True
            parse = {"intent": {"name": step.intent, "confidence": 1.0} if step.intent else {},
                     "entities": [dict(e) for e in step.entities], "text": step.text}
            events.append(UserUttered(text=step.text, parse_data=parse))
            sources.append(at)
            if domain is not None:
                implicit = slots_for_entities(domain, list(parse["entities"]))
                events += implicit
                sources += [at] * len(implicit)
        elif step.kind == "action":
            events.append(ActionExecuted(name=step.name))
            sources.append(at)
        elif step.kind == "bot":
            events.append(ActionExecuted(action_text=step.text))
            sources.append(at)
        elif step.kind == "slot":
            for name, value in step.slots:
                events.append(SlotSet(name=name, value="__set__" if value is ... else value))
                sources.append(at)
        elif step.kind == "active_loop":
            events.append(ActiveLoop(name=step.name))
            sources.append(at)
    return events, sources


def _join(story: Story, starts: dict[str, list[Story]], depth: int) -> list[list[StoryStep]]:
    steps = [s for s in story.steps if s.kind != "checkpoint"]
    last = story.steps[-1] if story.steps else None
    if last is None or last.kind != "checkpoint" or depth > 5:
        return [steps]
    follow = starts.get(last.name or "", [])
    if not follow:
        return [steps]
    out: list[list[StoryStep]] = []
    for nxt in follow:
        for tail in _join(nxt, starts, depth + 1):
            out.append(steps + tail)
            if len(out) >= MAX_EXPANSIONS:
                logger.warning("stories.checkpoints.too_many story=%s", story.name)
                return out
    return out


def _expand_or(steps: list[StoryStep]) -> list[list[StoryStep]]:
    options = [list(s.alternatives) if s.kind == "or" else [s] for s in steps]
    product = itertools.islice(itertools.product(*options), MAX_EXPANSIONS)
    return [list(p) for p in product]
