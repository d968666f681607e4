"""Decision policies: thresholds, costs, baselines and the guarded online agent.

Read first: :func:`decide` / :class:`ThresholdPolicy` (what the stream calls
per batch), :class:`CostModel` / :func:`cost_breakdown`, then
:class:`OnlineAgent` (one guarded threshold update per interval) and
:func:`load_policy` / :func:`encode_policy_update`.

This package imports numpy and orjson only. The RL environment and training
code (gymnasium, stable-baselines3, torch) live in :mod:`riskflow.policies.rl`,
which the stream never imports.
"""

from __future__ import annotations

from riskflow.policies.agent import (
    ActorProposer,
    ControllerProposer,
    NumpyActor,
    OnlineAgent,
    ResidualProposer,
    StaticProposer,
    action_to_policy,
)
from riskflow.policies.artifact import (
    POLICY_KEY,
    PolicyArtifact,
    capacity_controller,
    decode_policy_update,
    encode_policy_update,
    load_policy,
    save_policy,
)
from riskflow.policies.controller import RateController
from riskflow.policies.cost import CostModel, cost_breakdown, effective_decisions
from riskflow.policies.decide import (
    APPROVE,
    DECISION_NAMES,
    DECLINE,
    REVIEW,
    ThresholdPolicy,
    decide,
)
from riskflow.policies.exceptions import PolicyArtifactError, PolicyConfigError, PolicyError
from riskflow.policies.guardrails import FallbackMonitor, Guardrails, check_violations
from riskflow.policies.static import optimise_static
from riskflow.policies.streaming import AgentPolicy
from riskflow.policies.window import OBS_NAMES, ObservationBuilder, Reference, WindowStats

__all__ = [
    "APPROVE",
    "REVIEW",
    "DECLINE",
    "DECISION_NAMES",
    "decide",
    "ThresholdPolicy",
    "CostModel",
    "cost_breakdown",
    "effective_decisions",
    "optimise_static",
    "RateController",
    "Guardrails",
    "FallbackMonitor",
    "check_violations",
    "WindowStats",
    "Reference",
    "ObservationBuilder",
    "OBS_NAMES",
    "NumpyActor",
    "OnlineAgent",
    "ActorProposer",
    "ControllerProposer",
    "StaticProposer",
    "ResidualProposer",
    "capacity_controller",
    "action_to_policy",
    "AgentPolicy",
    "PolicyArtifact",
    "save_policy",
    "load_policy",
    "encode_policy_update",
    "decode_policy_update",
    "POLICY_KEY",
    "PolicyError",
    "PolicyConfigError",
    "PolicyArtifactError",
]
