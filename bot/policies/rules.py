"""RulePolicy: rules, the active loop's happy path, default intents, and the core fallback.

A rule is a short state sequence that matches the END of a conversation: each rule state holds
only the features the rule mentions, and matches when they are all in the tracker's state at
the same distance from now. Among matching rules the most specific wins. While a loop (form) is
active and has not rejected the turn, the loop runs; after it runs, the bot listens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.project.domain import Domain
from bot.state.events import (
    ACTION_LISTEN_NAME,
    ActionExecutionRejected,
    ActiveLoop,
    SlotSet,
    UserUttered,
    UserUtteranceReverted,
)
from bot.policies.base import PolicyPrediction
from bot.policies.states import State, StateWalker, tracker_turns
from bot.policies.story_graph import rule_trajectories, story_trajectories
from bot.state.tracker import DialogueStateTracker
from bot.project.training_data import TrainingData

logger = logging.getLogger(__name__)

DEFAULT_INTENT_ACTIONS = {
    "restart": "action_restart",
    "back": "action_back",
    "session_start": "action_session_start",
}
_ALWAYS = ("intent:", "text:", "entity:", "prev:", "prev_text:")


@dataclass(frozen=True, slots=True)
class RuleEntry:
    states: tuple[State, ...]
    action: str
    rule: str
    source: str
    conversation_start: bool
    n_user: int

    @property
    def specificity(self) -> tuple[int, int]:
        # A conversation_start rule is more specific than the same rule anywhere (as in Rasa).
        return len(self.states) + int(self.conversation_start), sum(len(s) for s in self.states)

    def matches(self, states: list[State], n_user: int) -> bool:
        if len(self.states) > len(states):
            return False
        if self.conversation_start and n_user != self.n_user:
            return False
        tail = states[-len(self.states):]
        return all(rule <= live for rule, live in zip(self.states, tail))


class RulePolicy:
    name = "RulePolicy"

    def __init__(self, priority: int = 6, core_fallback_threshold: float = 0.3,
                 core_fallback_action_name: str = "action_default_fallback",
                 enable_fallback_prediction: bool = True,
                 restrict_rules: bool = True, check_for_contradictions: bool = True) -> None:
        self.priority = priority
        self.core_fallback_threshold = core_fallback_threshold
        self.core_fallback_action_name = core_fallback_action_name
        self.enable_fallback_prediction = enable_fallback_prediction
        self.check_for_contradictions = check_for_contradictions
        self.entries: list[RuleEntry] = []

    # training -------------------------------------------------------------------------------
    def train(self, domain: Domain, data: TrainingData) -> list[str]:
        self.entries = rule_entries(domain, data)
        logger.info("policy.rules.trained rules=%d entries=%d", len(data.rules), len(self.entries))
        if not self.check_for_contradictions:
            return []
        return self.contradictions(domain, data)

    def contradictions(self, domain: Domain, data: TrainingData) -> list[str]:
        problems: list[str] = []
        by_key: dict[tuple[tuple[State, ...], bool], RuleEntry] = {}
        for entry in self.entries:
            other = by_key.setdefault((entry.states, entry.conversation_start), entry)
            if other.action != entry.action:
                problems.append(f"{entry.source}: rule '{entry.rule}' predicts '{entry.action}' where "
                                f"rule '{other.rule}' ({other.source}) predicts '{other.action}' "
                                "after the same conversation. Make one of them more specific.")
        for trajectory in story_trajectories(data.stories, domain):
            walker = StateWalker(domain)
            states: list[State] = []
            n_user = 0
            source_of = {id(e): s for e, s in zip(trajectory.events, trajectory.sources)}
            events = DialogueStateTracker("story", None, trajectory.events).applied_events()
            for event in events:
                source = source_of.get(id(event), trajectory.name)
                if isinstance(event, UserUttered):
                    n_user += 1
                turn = walker.apply(event)
                if turn is None:
                    continue
                states.append(turn.state)
                entry = self._best(states, n_user)
                if entry is None or entry.action == turn.action:
                    continue
                if _loop_name(turn.state) == entry.action:
                    continue  # the loop's own happy path, not a rule decision
                problems.append(f"{source}: story '{trajectory.name}' runs '{turn.action}' but rule "
                                f"'{entry.rule}' ({entry.source}) predicts '{entry.action}' there. "
                                "Rules win at run time: fix the story or the rule.")
        return list(dict.fromkeys(problems))

    # prediction -----------------------------------------------------------------------------
    def predict(self, tracker: DialogueStateTracker, domain: Domain) -> PolicyPrediction:
        events = tracker.applied_events()
        latest_action = tracker.latest_action_name
        message = tracker.latest_message
        intent = message.intent_name if message is not None else None
        last_events = [e for e in tracker.events[-3:] if not isinstance(e, ActiveLoop)]
        if last_events and isinstance(last_events[-1], UserUtteranceReverted):
            # A fallback (or /back) took the message back: wait for the user, as Rasa does.
            return self._predict(ACTION_LISTEN_NAME, "after_rewind")
        if latest_action == ACTION_LISTEN_NAME and intent in DEFAULT_INTENT_ACTIONS:
            return self._predict(DEFAULT_INTENT_ACTIONS[intent], "default_intent")

        loop = tracker.active_loop_name
        rejected = bool(tracker.active_loop.get("rejected")) if loop else False
        if loop and not rejected:
            if latest_action == loop:
                return self._predict(ACTION_LISTEN_NAME, "loop_happy_path")
            return self._predict(loop, "loop_happy_path")

        turns, now = tracker_turns(domain, tracker)
        states = [t.state for t in turns] + [now]
        n_user = sum(1 for event in events if isinstance(event, UserUttered))
        last = tracker.events[-1] if tracker.events else None
        just_rejected = isinstance(last, ActionExecutionRejected) and last.name == loop
        entry = self._best(states, n_user, exclude=loop if just_rejected else None)
        if entry is not None and loop and entry.action == ACTION_LISTEN_NAME \
                and _loop_name(entry.states[-1]) is None and not just_rejected:
            # As Rasa: a general rule (one that does not mention the loop) ended a digression
            # inside the loop with action_listen; the loop takes the conversation back.
            return self._predict(loop, f"back to the loop after rule '{entry.rule}'",
                                 rule=entry.rule)
        if entry is not None:
            return self._predict(entry.action, f"rule '{entry.rule}'", rule=entry.rule)
        if self.enable_fallback_prediction:
            return PolicyPrediction(self.core_fallback_action_name, self.core_fallback_threshold,
                                    self.name, self.priority, diagnostics={"reason": "core_fallback"})
        return PolicyPrediction.abstain(self.name, self.priority)

    def _best(self, states: list[State], n_user: int, exclude: str | None = None) -> RuleEntry | None:
        best: RuleEntry | None = None
        for entry in self.entries:
            if entry.action == exclude or not entry.matches(states, n_user):
                continue
            if best is None or entry.specificity > best.specificity:
                best = entry
        return best

    def _predict(self, action: str, reason: str, **extra: Any) -> PolicyPrediction:
        return PolicyPrediction(action, 1.0, self.name, self.priority,
                                diagnostics={"reason": reason, **extra})

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [{"states": [sorted(s) for s in e.states], "action": e.action,
                             "rule": e.rule, "source": e.source,
                             "conversation_start": e.conversation_start, "n_user": e.n_user}
                            for e in self.entries]}

    def load_dict(self, data: dict[str, Any]) -> None:
        self.entries = [RuleEntry(tuple(frozenset(s) for s in e["states"]), e["action"], e["rule"],
                                  e["source"], e["conversation_start"], e["n_user"])
                        for e in data["entries"]]


def rule_entries(domain: Domain, data: TrainingData) -> list[RuleEntry]:
    entries: list[RuleEntry] = []
    for rule, trajectory in rule_trajectories(data.rules, domain):
        slots = {e.name for e in trajectory.events if isinstance(e, SlotSet)}
        mentions_loop = any(isinstance(e, ActiveLoop) for e in trajectory.events)
        allowed = _allowed(slots, mentions_loop)
        walker = StateWalker(domain)
        states: list[State] = []
        n_user = 0
        first = True
        for event, source in zip(trajectory.events, trajectory.sources):
            if isinstance(event, UserUttered):
                n_user += 1
            turn = walker.apply(event)
            if turn is None:
                continue
            if first:
                # The listen before the first user step, or a leading action, is what the rule
                # starts from: not something it predicts. The state before it is dropped too (as
                # Rasa drops everything up to the rule snippet); conditions live on in the
                # states after it. Only a conversation_start rule keeps it.
                first = False
                if rule.conversation_start:
                    states.append(frozenset(f for f in turn.state if allowed(f)))
                continue
            states.append(frozenset(f for f in turn.state if allowed(f)))
            entries.append(RuleEntry(tuple(_trim(states)), turn.action, rule.name, source,
                                     rule.conversation_start, n_user))
    return entries


def _allowed(slots: set[str], mentions_loop: bool) -> Any:
    def allowed(feature: str) -> bool:
        if feature.startswith(_ALWAYS):
            return True
        if feature.startswith("slot:"):
            return feature.split(":", 2)[1] in slots
        return mentions_loop and feature.startswith("loop:")
    return allowed


def _trim(states: list[State]) -> list[State]:
    """Drop leading empty states: a rule says nothing about what came before it."""
    i = 0
    while i < len(states) - 1 and not states[i]:
        i += 1
    return states[i:]


def _loop_name(state: State) -> str | None:
    for feature in state:
        if feature.startswith("loop:") and feature != "loop:none":
            return feature[5:]
    return None
