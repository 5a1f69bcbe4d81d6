"""Action accuracy of a policy ensemble on stories, with the story's own events fed back.

Each action of a story is predicted from the story's events before it (intents and entities
as written, no NLU); the story's events, not the prediction, then carry the conversation on,
as `rasa test core` does. As in Rasa, when the ensemble predicts the active form and the story
runs something else, the form is taken to have rejected the message: an
ActionExecutionRejected is added and the ensemble asked again. The listen before a story's
first user message is not predicted (nothing comes before it), nor the listen that training
adds after a story's last action (the story does not say what comes next).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bot.policies.ensemble import PolicyEnsemble
from bot.policies.story_graph import story_trajectories
from bot.project.domain import Domain
from bot.project.training_data import Story
from bot.state.events import (ACTION_LISTEN_NAME, ActionExecuted, ActionExecutionRejected, Event,
                              UserUttered)
from bot.state.tracker import DialogueStateTracker


@dataclass(frozen=True, slots=True)
class Miss:
    story: str
    source: str
    expected: str
    predicted: str
    policy: str
    confidence: float
    reason: str  # the winning policy's own reason (a rule's name, "core_fallback", ...)


@dataclass(slots=True)
class StoryEvaluation:
    """Counts over every predicted action; `listen_*` counts only action_listen steps."""

    actions: int = 0
    correct: int = 0
    stories: int = 0
    stories_correct: int = 0
    by_action: Counter[str] = field(default_factory=Counter)
    by_action_correct: Counter[str] = field(default_factory=Counter)
    by_policy: Counter[str] = field(default_factory=Counter)
    misses: list[Miss] = field(default_factory=list)
    outcomes: list[bool] = field(default_factory=list)  # per predicted step, in story order

    @property
    def accuracy(self) -> float:
        return self.correct / self.actions if self.actions else 0.0

    @property
    def story_accuracy(self) -> float:
        return self.stories_correct / self.stories if self.stories else 0.0

    @property
    def accuracy_without_listen(self) -> float:
        total = self.actions - self.by_action[ACTION_LISTEN_NAME]
        right = self.correct - self.by_action_correct[ACTION_LISTEN_NAME]
        return right / total if total else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "action_accuracy": round(self.accuracy, 4),
            "action_accuracy_without_listen": round(self.accuracy_without_listen, 4),
            "actions": self.actions,
            "story_accuracy": round(self.story_accuracy, 4),
            "stories": self.stories,
            "per_action": {a: f"{self.by_action_correct[a]}/{n}"
                           for a, n in sorted(self.by_action.items())},
            "winning_policy": dict(sorted(self.by_policy.items())),
        }


def evaluate_stories(ensemble: PolicyEnsemble, domain: Domain,
                     stories: list[Story]) -> StoryEvaluation:
    result = StoryEvaluation()
    defaults = domain.slot_defaults()
    for trajectory in story_trajectories(stories):
        tracker = DialogueStateTracker("evaluation", defaults)
        story_ok = True
        seen_user = False
        events = list(trajectory.events)
        if _ends_with_added_listen(trajectory.events, trajectory.sources):
            events.pop()
        for event, source in zip(events, trajectory.sources):
            if isinstance(event, ActionExecuted) and seen_user:
                expected = event.name or f"text:{event.action_text}"
                best, _ = ensemble.predict(tracker, domain)
                loop = tracker.active_loop_name
                if best.action != expected and best.action == loop and loop in domain.forms:
                    probe = tracker.copy()
                    probe.update(ActionExecutionRejected(name=loop))
                    best, _ = ensemble.predict(probe, domain, exclude={loop})
                    if best.action == expected:
                        tracker = probe  # the story goes on from the rejection, as in Rasa
                predicted = best.action or ACTION_LISTEN_NAME
                result.actions += 1
                result.by_action[expected] += 1
                result.outcomes.append(predicted == expected)
                if predicted == expected:
                    result.correct += 1
                    result.by_action_correct[expected] += 1
                    result.by_policy[best.policy] += 1
                else:
                    story_ok = False
                    why = best.diagnostics.get("rule") or best.diagnostics.get("reason") or ""
                    result.misses.append(Miss(trajectory.name, source, expected, predicted,
                                              best.policy, best.confidence, str(why)))
            elif isinstance(event, UserUttered):
                seen_user = True
            tracker.update(event)
        result.stories += 1
        result.stories_correct += int(story_ok)
    return result


def _ends_with_added_listen(events: tuple[Event, ...], sources: tuple[str, ...]) -> bool:
    """story_graph adds a listen after a story's last action, with that action's source."""
    return (len(events) >= 2 and isinstance(events[-1], ActionExecuted)
            and events[-1].name == ACTION_LISTEN_NAME and not isinstance(events[-2], UserUttered)
            and sources[-1] == sources[-2])
