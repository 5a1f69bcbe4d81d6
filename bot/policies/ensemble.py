"""The policy ensemble: every policy votes; the highest confidence wins, ties go to priority."""

from __future__ import annotations

import logging
from typing import Any

from bot.project.config import ComponentConfig
from bot.project.domain import Domain
from bot.errors import ConfigError
from bot.policies.base import Policy, PolicyPrediction
from bot.policies.memoization import MemoizationPolicy
from bot.policies.rules import RulePolicy
from bot.state.tracker import DialogueStateTracker
from bot.project.training_data import TrainingData

logger = logging.getLogger(__name__)

# Learned policies plug in here once they exist (TEDPolicy comes with its own issue).
NOT_YET_AVAILABLE = ("TEDPolicy", "UnexpecTEDIntentPolicy")


def build_policies(components: tuple[ComponentConfig, ...]) -> list[Policy]:
    policies: list[Policy] = []
    for component in components:
        params = dict(component.params)
        priority = params.get("priority")
        if component.name in ("MemoizationPolicy", "AugmentedMemoizationPolicy"):
            policies.append(MemoizationPolicy(
                max_history=params.get("max_history", 5),
                priority=int(priority) if priority is not None else 3,
                augmented=component.name == "AugmentedMemoizationPolicy"))
        elif component.name == "RulePolicy":
            policies.append(RulePolicy(
                priority=int(priority) if priority is not None else 6,
                core_fallback_threshold=float(params.get("core_fallback_threshold", 0.3)),
                core_fallback_action_name=str(params.get("core_fallback_action_name",
                                                         "action_default_fallback")),
                enable_fallback_prediction=bool(params.get("enable_fallback_prediction", True)),
                check_for_contradictions=bool(params.get("check_for_contradictions", True))))
        elif component.name == "TEDPolicy":
            # Until the learned policy lands, augmented memoization stands in for TED (it
            # generalises over forgotten history) unless the config already has one; the
            # warning saying which is bot.config.skipped_components.
            if not any(c.name == "AugmentedMemoizationPolicy" for c in components):
                policies.append(MemoizationPolicy(max_history=params.get("max_history", 5),
                                                  priority=1, augmented=True))
        elif component.name in NOT_YET_AVAILABLE:
            pass  # warned about by bot.config.skipped_components
        else:
            raise ConfigError(f"Policy '{component.name}' ({component.at}) has no implementation.")
    if not policies:
        raise ConfigError("No usable policy in config.yml: add RulePolicy and MemoizationPolicy.")
    return policies


class PolicyEnsemble:
    def __init__(self, policies: list[Policy]) -> None:
        self.policies = policies

    def train(self, domain: Domain, data: TrainingData) -> list[str]:
        problems: list[str] = []
        for policy in self.policies:
            problems += policy.train(domain, data)
        return problems

    def predict(self, tracker: DialogueStateTracker, domain: Domain,
                exclude: set[str] | None = None) -> tuple[PolicyPrediction, list[PolicyPrediction]]:
        votes = [p.predict(tracker, domain) for p in self.policies]
        usable = [v for v in votes if v.action is not None and v.action not in (exclude or set())]
        if not usable:
            return PolicyPrediction("action_listen", 0.0, "none", 0,
                                    diagnostics={"reason": "no policy predicted"}), votes
        best = max(usable, key=lambda v: (v.confidence, v.priority))
        return best, votes

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.policies}

    def load_dict(self, data: dict[str, Any]) -> None:
        for policy in self.policies:
            if policy.name in data:
                policy.load_dict(data[policy.name])
