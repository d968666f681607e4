"""RL training for adaptive thresholds: the gymnasium environment, SB3 training, evaluation.

Importing this package imports gymnasium (and training imports
stable-baselines3 and torch). The stream never imports it: a trained policy
is served by :class:`riskflow.policies.OnlineAgent` from a numpy artifact.
"""

from __future__ import annotations

from riskflow.policies.rl.env import ThresholdEnv

__all__ = ["ThresholdEnv"]
