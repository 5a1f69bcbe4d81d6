"""Policies choose the next action from the conversation so far."""

from bot.policies.base import Policy, PolicyPrediction
from bot.policies.ensemble import PolicyEnsemble, build_policies
from bot.policies.memoization import MemoizationPolicy
from bot.policies.rules import RulePolicy

__all__ = [
    "MemoizationPolicy",
    "Policy",
    "PolicyEnsemble",
    "PolicyPrediction",
    "RulePolicy",
    "build_policies",
]
