"""Story and rule conflicts, for `xingkong data validate` and training reports."""

from __future__ import annotations

from bot.project.domain import Domain
from bot.policies.memoization import applied, history_key
from bot.policies.rules import RulePolicy
from bot.policies.states import event_turns
from bot.policies.story_graph import story_trajectories
from bot.project.training_data import TrainingData

_PRIOR = ("prev:", "prev_text:", "intent:", "text:")  # a state with something before it


def find_conflicts(domain: Domain, data: TrainingData, max_history: int = 5) -> list[str]:
    """Stories that do different things after the same history, and rule contradictions."""
    problems: list[str] = []
    seen: dict[str, tuple[str, str, str]] = {}
    for trajectory in story_trajectories(data.stories, domain):
        events = applied(trajectory.events)
        source_of = {id(e): s for e, s in zip(trajectory.events, trajectory.sources)}
        turns, _ = event_turns(domain, events)
        action_sources = [source_of.get(id(e), trajectory.name) for e in events
                          if type(e).__name__ == "ActionExecuted"]
        states = [t.state for t in turns]
        for i, turn in enumerate(turns):
            if not any(f.startswith(_PRIOR) for f in states[i]):
                continue  # as Rasa: what starts a story (nothing before it) is no conflict
            key = history_key(states[max(0, i + 1 - max_history): i + 1])
            source = action_sources[i] if i < len(action_sources) else trajectory.name
            known = seen.setdefault(key, (turn.action, trajectory.name, source))
            if known[0] != turn.action:
                problems.append(
                    f"{source}: story '{trajectory.name}' runs '{turn.action}' but story "
                    f"'{known[1]}' ({known[2]}) runs '{known[0]}' after the same last "
                    f"{max_history} turns. Make the stories differ (slots, entities) or agree.")
    rules = RulePolicy()
    rules.train(domain, TrainingData(rules=data.rules))
    problems += rules.contradictions(domain, data)
    return list(dict.fromkeys(problems))
