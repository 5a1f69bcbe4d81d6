"""The policy ensemble: every policy votes; the highest confidence wins, ties go to priority."""

from __future__ import annotations

import logging
from typing import Any

from bot.project.config import ComponentConfig
from bot.project.params import MemoizationPolicyParams, RulePolicyParams
from bot.project.ted_params import TEDConfig
from bot.project.domain import Domain
from bot.errors import ConfigError
from bot.policies.base import Policy, PolicyPrediction
from bot.policies.memoization import MemoizationPolicy
from bot.policies.rules import RulePolicy
from bot.state.events import ACTION_LISTEN_NAME
from bot.state.tracker import DialogueStateTracker
from bot.project.training_data import TrainingData

logger = logging.getLogger(__name__)

# Rasa policies with no implementation here yet: skipped with a warning.
NOT_YET_AVAILABLE = ("UnexpecTEDIntentPolicy",)


def build_policies(components: tuple[ComponentConfig, ...],
                   progress: bool = False) -> list[Policy]:
    """The configured policies; `progress` shows training progress bars (learned ones)."""
    policies: list[Policy] = []
    for component in components:
        params = component.params  # typed and checked when config.yml was loaded
        if isinstance(params, MemoizationPolicyParams):
            policies.append(MemoizationPolicy(
                max_history=params.max_history, priority=params.priority,
                augmented=component.name == "AugmentedMemoizationPolicy"))
        elif isinstance(params, RulePolicyParams):
            policies.append(RulePolicy(
                priority=params.priority,
                core_fallback_threshold=params.core_fallback_threshold,
                core_fallback_action_name=params.core_fallback_action_name,
                enable_fallback_prediction=params.enable_fallback_prediction,
                check_for_contradictions=params.check_for_contradictions))
        elif isinstance(params, TEDConfig):
            from bot.policies.ted import TEDPolicy  # torch: only when configured

            policies.append(TEDPolicy(params, progress=progress))
        elif component.name in NOT_YET_AVAILABLE:
            pass  # warned about by bot.config.skipped_components
        else:
            raise ConfigError(f"Policy '{component.name}' ({component.at}) has no implementation.")
    kept: dict[str, Policy] = {}
    for policy in policies:
        if policy.name in kept:
            # Their saved tables share one key in policies.json: only one can be kept.
            logger.warning("policy.duplicate name=%s effect=later_entry_ignored", policy.name)
            continue
        kept[policy.name] = policy
    policies = list(kept.values())
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
            return PolicyPrediction(ACTION_LISTEN_NAME, 0.0, "none", 0,
                                    diagnostics={"reason": "no policy predicted"}), votes
        best = max(usable, key=lambda v: (v.confidence, v.priority))
        return best, votes

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.policies}

    def load_dict(self, data: dict[str, Any]) -> None:
        for policy in self.policies:
            if policy.name in data:
                policy.load_dict(data[policy.name])
            else:  # trained before this policy was configured: it abstains until retrained
                logger.warning("policy.not_trained name=%s fix=xingkong_train_core_--force",
                               policy.name)
