"""A gymnasium environment over replayed, scored transactions.

Every step is one event-time interval. The agent's action (two numbers in
[-1, 1]) moves the thresholds away from the static ones in logit units; the
same :class:`~riskflow.policies.OnlineAgent` machinery as in production then
applies the guardrails (bounded step, hard bounds, maximum decline rate), the
thresholds decide the interval's payments, and the observation is built by
the same :class:`~riskflow.policies.window.ObservationBuilder` from what
production would have seen: the interval's scores and decisions and the
labels whose ``label_time`` fell inside it (never a label before its time).

Reward (``reward="decision"``, the default): the cost the static policy
would have had on the interval minus the agent's cost, scaled by the
validation cost per interval. The cost of a decision is attributed to the
interval in which it was taken, from the truth the replayed history holds;
it is never part of the observation. ``reward="arrival"`` instead pays each
cost only when production would learn it: review and overflow costs at once,
fraud losses and false declines when their label arrives (unreported fraud
never), which is what an agent learning online could use, but with label
delays of weeks it is far too delayed for offline training to converge in
minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from riskflow.policies.agent import OnlineAgent, StaticProposer, action_to_policy
from riskflow.policies.backtest import HOUR_MS, IntervalReplayer, ScoredStream
from riskflow.policies.controller import RateController
from riskflow.policies.cost import CostModel, per_transaction_costs
from riskflow.policies.decide import REVIEW, ThresholdPolicy
from riskflow.policies.exceptions import PolicyConfigError
from riskflow.policies.guardrails import Guardrails
from riskflow.policies.window import OBS_NAMES, Reference, WindowStats

__all__ = ["ThresholdEnv"]


class ThresholdEnv(gym.Env):
    """Thresholds as actions over replayed scored streams.

    Parameters
    ----------
    streams
        Scored streams; each episode picks one at random and a random window in it.
    reference, cost_model, guardrails
        As for :class:`~riskflow.policies.OnlineAgent` (fallback is off in training).
    episode_intervals
        Steps per episode (default: the whole stream after warm-up).
    warmup_intervals
        Intervals run with the static policy before the first observation.
    reward_amount_cap
        Fraud amounts are winsorised at this value in the ``decision`` reward
        only, then scaled so the mean fraud amount over the training streams is
        unchanged (reward shaping: fraud amounts are so heavy-tailed that a
        handful of payments would otherwise decide every gradient; the
        rescaling keeps fraud as costly on average, so the agent is not taught
        to let more through). The observation and every evaluation use the
        true amounts. ``None``: no shaping.
    baseline
        Factory of the controller a residual agent's action is an offset from
        (fed every interval's scores, as in production, see
        :class:`~riskflow.policies.agent.ResidualProposer`); ``None``: offsets
        from the static thresholds.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        streams: Sequence[ScoredStream],
        reference: Reference,
        cost_model: CostModel,
        guardrails: Guardrails | None = None,
        *,
        interval_ms: int = HOUR_MS,
        max_offset: float = 2.0,
        episode_intervals: int | None = 168,
        warmup_intervals: int = 24,
        reward: str = "decision",
        reward_amount_cap: float | None = None,
        baseline: Callable[[], RateController] | None = None,
        seed: int | None = None,
    ) -> None:
        if reward not in ("decision", "arrival"):
            raise PolicyConfigError(
                f"The 'reward' parameter of ThresholdEnv must be 'decision' or 'arrival'. Got {reward!r} instead."
            )
        if not streams:
            raise PolicyConfigError("ThresholdEnv needs at least one scored stream.")
        self.streams = list(streams)
        self.reference = reference
        self.cost_model = cost_model
        self.guardrails = guardrails if guardrails is not None else Guardrails()
        self.interval_ms = interval_ms
        self.max_offset = max_offset
        self.episode_intervals = episode_intervals
        self.warmup = warmup_intervals
        self.reward_mode = reward
        self.observation_space = gym.spaces.Box(-5.0, 5.0, (len(OBS_NAMES),), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.reward_amount_cap = reward_amount_cap
        self.baseline = baseline
        self._ctrl: RateController | None = None
        self._base: ThresholdPolicy | None = None
        self._replayers = [
            IntervalReplayer(s, interval_ms, cost_model, a)
            for s, a in zip(self.streams, self._reward_amounts(), strict=True)
        ]
        self._static_cost = [self._static_costs(r) for r in self._replayers]
        self._rng = np.random.default_rng(seed)
        self.agent = OnlineAgent(
            StaticProposer(reference.static_policy()),
            reference,
            cost_model,
            self.guardrails,
            fallback=False,
            max_offset=max_offset,
            keep_log=False,
        )
        self._rep: IntervalReplayer | None = None
        self._k = self._end = 0
        self._si = 0
        for i, r in enumerate(self._replayers):
            if len(r) <= warmup_intervals + 1:
                raise PolicyConfigError(
                    f"Stream {i} has {len(r)} intervals; it needs more than warmup_intervals + 1 = {warmup_intervals + 1}."
                )

    def _reward_amounts(self) -> list[np.ndarray]:
        if self.reward_amount_cap is None:
            return [s.amount for s in self.streams]
        cap = float(self.reward_amount_cap)
        fraud = np.concatenate([s.amount[s.is_fraud == 1] for s in self.streams])
        scale = float(fraud.mean() / np.minimum(fraud, cap).mean()) if fraud.size else 1.0
        return [
            np.where(s.is_fraud == 1, np.minimum(s.amount, cap) * scale, s.amount)
            for s in self.streams
        ]

    def _static_costs(self, rep: IntervalReplayer) -> np.ndarray:
        static = self.reference.static_policy()
        out = np.empty(len(rep))
        for k in range(len(rep)):
            _, out[k] = rep.step(k, static)
        rep.reset()
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        opts = options or {}
        self._si = int(opts.get("stream", self._rng.integers(len(self._replayers))))
        rep = self._rep = self._replayers[self._si]
        rep.reset()
        n = len(rep)
        length = (
            n - self.warmup
            if self.episode_intervals is None
            else min(self.episode_intervals, n - self.warmup)
        )
        start = int(opts.get("start", self._rng.integers(0, n - self.warmup - length + 1)))
        self.agent.reset()
        static = self.agent.static
        # labels of payments before the episode are released as if they had been decided statically
        for k in range(start):
            rep.decisions[rep.rows(k)] = static.decide(rep.stream.score[rep.rows(k)])
            rep.decided[rep.rows(k)] = True
        obs = self.agent.observation
        self._ctrl = self.baseline() if self.baseline is not None else None
        self._base = None
        for k in range(start, start + self.warmup):
            w, _ = rep.step(k, self.agent.current)
            obs = self.agent.observe(w)
            self._advance_baseline(w)
        self._k = start + self.warmup
        self._end = self._k + length
        return obs.astype(np.float32), {"stream": self._si, "start": start}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self._rep is not None, "call reset() first"
        rep, k = self._rep, self._k
        t_start = int(rep.ends[k]) - self.interval_ms
        proposal = action_to_policy(action, self.reference, self.max_offset, base=self._base)
        live = self.agent.act(proposal, t_start)
        w, cost = rep.step(k, live)
        scale = self.reference.cost_per_interval
        if self.reward_mode == "decision":
            reward = (self._static_cost[self._si][k] - cost) / scale
        else:
            reward = -self._arrival_cost(w, live) / scale
        obs = self.agent.observe(w)
        self._advance_baseline(w)
        self._k += 1
        done = self._k >= self._end
        info = {
            "cost": cost,
            "static_cost": float(self._static_cost[self._si][k]),
            "t_review": live.t_review,
            "t_decline": live.t_decline,
        }
        return obs.astype(np.float32), float(reward), done, False, info

    def _advance_baseline(self, w: WindowStats) -> None:
        """The baseline for the next interval, from this one's scores (as ResidualProposer)."""
        if self._ctrl is not None:
            self._base = self._ctrl.propose(w.scores)

    def _arrival_cost(self, w: WindowStats, live: ThresholdPolicy) -> float:
        cm = self.cost_model
        n_rev = float(np.sum(np.asarray(w.decisions) == REVIEW))
        cap = cm.review_capacity_per_hour * self.interval_ms / HOUR_MS
        over = max(n_rev - cap, 0.0)
        c = per_transaction_costs(w.released_amount, np.maximum(w.released_label, 0), cm)
        labelled = float(c[np.arange(c.shape[0]), np.asarray(w.released_decision, np.intp)].sum())
        return cm.review_cost * n_rev + cm.overflow_penalty * over + labelled
