"""The online agent: one step per interval, guardrails always applied.

``OnlineAgent.step(window) -> ThresholdPolicy`` is all the stream calls. A
*proposer* suggests thresholds (the RL actor, the rate controller, or the
static policy); the agent applies the guardrails, the fallback and shadow
mode, and keeps a log of proposal vs applied thresholds.

The RL actor runs here as plain numpy (:class:`NumpyActor`): the stream never
imports gymnasium, stable-baselines3 or torch for a policy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from riskflow.policies.controller import RateController
from riskflow.policies.cost import CostModel
from riskflow.policies.decide import ThresholdPolicy, expit, logit
from riskflow.policies.exceptions import PolicyArtifactError
from riskflow.policies.guardrails import DAY_MS, FallbackMonitor, Guardrails
from riskflow.policies.window import ObservationBuilder, Reference, WindowStats

__all__ = [
    "NumpyActor",
    "Proposer",
    "ActorProposer",
    "ControllerProposer",
    "ResidualProposer",
    "StaticProposer",
    "OnlineAgent",
    "action_to_policy",
]

_ACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}


class NumpyActor:
    """A deterministic MLP actor: obs -> action in [-1, 1]^k, in numpy.

    Parameters
    ----------
    weights, biases
        Per layer, ``W`` of shape (out, in) and ``b`` of shape (out,).
    activation
        Hidden activation, ``tanh`` (SB3 PPO default) or ``relu`` (SAC).
    squash
        ``clip`` (PPO: the Gaussian mean clipped to the box) or ``tanh`` (SAC).
    """

    def __init__(
        self,
        weights: list[np.ndarray],
        biases: list[np.ndarray],
        activation: str = "tanh",
        squash: str = "clip",
    ) -> None:
        if len(weights) != len(biases) or not weights:
            raise PolicyArtifactError(
                "An actor needs one bias per weight matrix and at least one layer."
            )
        if activation not in _ACT or squash not in ("clip", "tanh"):
            raise PolicyArtifactError(
                f"Unknown actor activation/squash {activation!r}/{squash!r}; expected tanh|relu and clip|tanh."
            )
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise PolicyArtifactError(
                    f"Actor layer {i} has shapes {w.shape}, {b.shape}; expected (out, in), (out,)."
                )
            if i and w.shape[1] != self.weights[i - 1].shape[0]:
                raise PolicyArtifactError(
                    f"Actor layer {i} takes {w.shape[1]} inputs but the previous layer gives {self.weights[i - 1].shape[0]}."
                )
        self.activation = activation
        self.squash = squash

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[1])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float64)
        act = _ACT[self.activation]
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            x = act(x @ w.T + b)
        out = x @ self.weights[-1].T + self.biases[-1]
        return np.clip(out, -1.0, 1.0) if self.squash == "clip" else np.tanh(out)


def action_to_policy(
    action: np.ndarray,
    reference: Reference,
    max_offset: float,
    version: str = "rl",
    source: str = "rl",
    base: ThresholdPolicy | None = None,
) -> ThresholdPolicy:
    """Map an action in [-1, 1]^2 to thresholds: logit offsets from ``base``
    (default: the static thresholds)."""
    a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
    b_r = reference.static_t_review if base is None else base.t_review
    b_d = reference.static_t_decline if base is None else base.t_decline
    tr = float(expit(logit(b_r) + a[0] * max_offset))
    td = float(expit(logit(b_d) + a[1] * max_offset))
    return ThresholdPolicy(min(tr, td), td, version, source)


class Proposer(Protocol):
    def __call__(
        self, obs: np.ndarray, window: WindowStats, current: ThresholdPolicy
    ) -> ThresholdPolicy: ...


class StaticProposer:
    """Always the static thresholds."""

    def __init__(self, static: ThresholdPolicy) -> None:
        self.static = static

    def __call__(
        self, obs: np.ndarray, window: WindowStats, current: ThresholdPolicy
    ) -> ThresholdPolicy:
        return self.static


class ControllerProposer:
    """Thresholds from a :class:`RateController` fed each window's scores."""

    def __init__(self, controller: RateController) -> None:
        self.controller = controller

    def __call__(
        self, obs: np.ndarray, window: WindowStats, current: ThresholdPolicy
    ) -> ThresholdPolicy:
        return self.controller.propose(window.scores)


class ActorProposer:
    """Thresholds from an actor (``obs -> action``), e.g. :class:`NumpyActor`."""

    def __init__(
        self,
        actor: Callable[[np.ndarray], np.ndarray],
        reference: Reference,
        max_offset: float = 2.0,
        version: str = "rl",
    ) -> None:
        self.actor = actor
        self.reference = reference
        self.max_offset = max_offset
        self.version = version

    def __call__(
        self, obs: np.ndarray, window: WindowStats, current: ThresholdPolicy
    ) -> ThresholdPolicy:
        return action_to_policy(self.actor(obs), self.reference, self.max_offset, self.version)


class ResidualProposer:
    """An actor's logit offsets applied on top of a baseline controller's thresholds.

    The controller (fed each window's scores, as :class:`ControllerProposer`)
    already holds review volume under capacity when volume or scores grow; the
    actor only learns what to add to that (a daily cycle, a response to a
    fraud wave). Action 0 is the controller itself.
    """

    def __init__(
        self,
        actor: Callable[[np.ndarray], np.ndarray],
        reference: Reference,
        controller: RateController,
        max_offset: float = 2.0,
        version: str = "rl",
    ) -> None:
        self.actor = actor
        self.reference = reference
        self.controller = controller
        self.max_offset = max_offset
        self.version = version

    def __call__(
        self, obs: np.ndarray, window: WindowStats, current: ThresholdPolicy
    ) -> ThresholdPolicy:
        base = self.controller.propose(window.scores)
        return action_to_policy(
            self.actor(obs), self.reference, self.max_offset, self.version, base=base
        )


class OnlineAgent:
    """Threshold updates for the stream, one per interval, with guardrails.

    Parameters
    ----------
    proposer
        Suggests thresholds from the observation (see :class:`Proposer`).
    reference, cost_model
        Validation facts and cost assumptions the observation is built on.
    guardrails
        Step, bounds, maximum decline rate and fallback settings.
    shadow
        If True the agent only proposes: the static policy decides, both are logged.
    fallback
        Whether to hand over to the static policy when observed cost is too high.
    version
        Policy version stamped on every threshold set it emits.
    decline_window
        Intervals of recent scores the maximum decline rate is enforced on.
    """

    def __init__(
        self,
        proposer: Proposer,
        reference: Reference,
        cost_model: CostModel,
        guardrails: Guardrails | None = None,
        *,
        shadow: bool = False,
        fallback: bool = True,
        version: str = "adaptive",
        max_offset: float = 2.0,
        decline_window: int = 24,
        keep_log: bool = True,
    ) -> None:
        self.proposer = proposer
        self.reference = reference
        self.cost_model = cost_model
        self.guardrails = guardrails if guardrails is not None else Guardrails()
        self.shadow = shadow
        self.fallback = fallback
        self.version = version
        self.keep_log = keep_log
        self.builder = ObservationBuilder(
            reference,
            cost_model,
            max_offset,
            self.guardrails.fallback_evidence_delay_ms,
            self.guardrails.fallback_amount_cap,
        )
        self.monitor = FallbackMonitor(self.guardrails)
        self.static = reference.static_policy().with_(version=f"{version}/static", source="static")
        self.current = self.static  # what decides the next interval
        self.track = self.static  # the agent's own thresholds (differs in shadow mode)
        self._recent: deque[np.ndarray] = deque(maxlen=decline_window)
        # the day's decline budget: (day, payments, payments the track declined)
        self._day = (-1, 0, 0)
        self.observation: np.ndarray = self.builder.observation(self.static, 0)
        self.log: list[dict[str, Any]] = []
        self.interventions = 0

    def reset(self) -> None:
        self.builder.reset()
        self.monitor = FallbackMonitor(self.guardrails)
        self.current = self.track = self.static
        self._recent.clear()
        self._day = (-1, 0, 0)
        self.log.clear()
        self.interventions = 0

    # The two halves of a step, separate so the training environment can put
    # the RL action in between; step() is both in a row.
    def observe(self, window: WindowStats) -> np.ndarray:
        """Fold the interval just decided in; return the observation."""
        scores = np.asarray(window.scores, dtype=np.float64)
        self._recent.append(scores)
        day, n, declined = self._day
        if (window.t_end - 1) // DAY_MS != day:  # the interval ending at midnight is the old day's
            day, n, declined = (window.t_end - 1) // DAY_MS, 0, 0
        # what the agent's own thresholds declined (in shadow mode static decided)
        self._day = (day, n + scores.size, declined + int(np.sum(scores >= self.track.t_decline)))
        self.observation = self.builder.update(window, self.track)
        if self.fallback:
            self.monitor.update(*self.builder.fallback_costs, self.builder.fallback_noise)
        return self.observation

    def act(self, proposal: ThresholdPolicy, t_end: int) -> ThresholdPolicy:
        """Apply guardrails/fallback/shadow to ``proposal``; return the live policy."""
        g = self.guardrails
        recent = np.concatenate(self._recent) if self._recent else None
        fallback = self.fallback and self.monitor.active
        target = self.static if fallback else proposal
        # in shadow mode the agent's track is guarded against its own past
        base = self.track if self.shadow else self.current
        guarded, hits = g.apply(target, base, recent, self._decline_share(int(t_end)))
        self.interventions += bool(hits)
        source = "fallback" if fallback else proposal.source
        self.track = guarded.with_(version=self.version, source=source, effective_ms=int(t_end))
        if self.shadow:
            live = self.static.with_(source="shadow-static", effective_ms=int(t_end))
        else:
            live = self.track
        if self.keep_log:
            self.log.append(
                {
                    "t": int(t_end),
                    "proposed": (proposal.t_review, proposal.t_decline),
                    "applied": (live.t_review, live.t_decline),
                    "shadow": (self.track.t_review, self.track.t_decline) if self.shadow else None,
                    "fallback": fallback,
                    "guardrails": hits,
                }
            )
        self.current = live
        return live

    def _decline_share(self, t_start: int) -> float | None:
        """The share of the next interval the day's remaining decline budget allows.

        The audit counts each calendar day's realised decline rate, while the
        cap is set from the last day's scores: when a fraud wave starts, the
        thresholds reach the cap only ``max_step`` by ``max_step`` and the
        first hours of the wave decline more. Counting what was declined so far
        today (and expecting as many payments as in the last interval), the
        rest of the day gets only what keeps the day at ``headroom x cap``.
        ``None`` at the start of a day (nothing spent yet).
        """
        day, n, declined = self._day
        if t_start // DAY_MS != day or n == 0 or not self._recent:
            return None
        cap = self.guardrails.enforced_decline_rate
        expect = max(self._recent[-1].size, 1)
        return (cap * (n + expect) - declined) / expect

    def step(self, window: WindowStats) -> ThresholdPolicy:
        """One interval: observe ``window``, propose, guard; the policy for the next interval."""
        obs = self.observe(window)
        return self.act(self.proposer(obs, window, self.track), window.t_end)
