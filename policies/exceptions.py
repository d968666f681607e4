"""Exceptions of :mod:`riskflow.policies` (all subclass :class:`riskflow.errors.RiskflowError`)."""

from __future__ import annotations

from riskflow.errors import ArtifactError, ConfigError

__all__ = ["PolicyError", "PolicyConfigError", "PolicyArtifactError"]


class PolicyError(ConfigError):
    """Thresholds or a policy update are invalid (e.g. t_review above t_decline)."""


class PolicyConfigError(ConfigError):
    """A cost model, guardrail or controller parameter is out of range."""


class PolicyArtifactError(ArtifactError):
    """A saved policy artifact is missing, corrupted or of an unknown format."""


def bad_param(owner: str, name: str, what: str, value: object) -> PolicyConfigError:
    """The house error template for a bad constructor parameter."""
    return PolicyConfigError(
        f"The {name!r} parameter of {owner} must be {what}. Got {value!r} instead."
    )
