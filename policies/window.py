"""What the online policy sees each interval, and the observation built from it.

A :class:`WindowStats` is one interval of production facts: the scores,
amounts and decisions of the interval's payments, and the labels that became
known during it (for payments decided earlier). Nothing else: no label before
its time. :class:`ObservationBuilder` turns the sequence of windows into the
fixed-length vector the agent reads. The same builder runs in the training
environment and in the stream, so both see exactly the same numbers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from riskflow.policies.cost import CostModel, effective_decisions, per_transaction_costs
from riskflow.policies.decide import DECLINE, REVIEW, ThresholdPolicy, decide, logit

__all__ = ["WindowStats", "Reference", "ObservationBuilder", "OBS_NAMES"]

_EMPTY = np.zeros(0)
_EMPTY8 = np.zeros(0, np.int8)


@dataclass
class WindowStats:
    """One interval as production sees it.

    Parameters
    ----------
    t_end
        Event time (epoch ms) the interval ends; the next policy applies after it.
    scores, amounts, decisions
        The interval's payments: calibrated scores, amounts, decision codes taken.
    ts
        Their event times (for the review-capacity rule); default: all ``t_end``.
    released_label, released_amount, released_score, released_decision
        Labels that became known during the interval (1 fraud), with the
        amount, score and decision of the payment each is about.
    """

    t_end: int
    scores: np.ndarray = field(default_factory=lambda: _EMPTY)
    amounts: np.ndarray = field(default_factory=lambda: _EMPTY)
    decisions: np.ndarray = field(default_factory=lambda: _EMPTY8)
    ts: np.ndarray | None = None
    released_label: np.ndarray = field(default_factory=lambda: _EMPTY8)
    released_amount: np.ndarray = field(default_factory=lambda: _EMPTY)
    released_score: np.ndarray = field(default_factory=lambda: _EMPTY)
    released_decision: np.ndarray = field(default_factory=lambda: _EMPTY8)

    @property
    def n(self) -> int:
        return int(np.asarray(self.scores).shape[0])

    def event_times(self) -> np.ndarray:
        if self.ts is not None:
            return np.asarray(self.ts, dtype=np.int64)
        return np.full(self.n, self.t_end, dtype=np.int64)


@dataclass(frozen=True)
class Reference:
    """Facts about the validation period the observation is scaled against.

    ``q_scores`` are the score values at the 90th, 99th and 99.9th percentiles
    of validation; ``tx_per_interval`` the mean payments per interval;
    ``fraud_rate`` the labelled fraud rate; ``static`` the static thresholds;
    ``missed_share`` the share of frauds the static policy approves.
    """

    q_scores: tuple[float, float, float]
    tx_per_interval: float
    fraud_rate: float
    cost_per_interval: float
    interval_ms: int
    static_t_review: float
    static_t_decline: float
    decline_rate: float = 0.001
    review_rate: float = 0.01
    #: Share of validation frauds scored below the static ``t_review`` (approved).
    missed_share: float = 0.3

    @classmethod
    def fit(
        cls,
        scores: np.ndarray,
        is_fraud: np.ndarray,
        ts: np.ndarray,
        static: ThresholdPolicy,
        cost_per_interval: float,
        interval_ms: int,
    ) -> Reference:
        s = np.asarray(scores, dtype=np.float64)
        span = max(float(np.ptp(ts)) if len(ts) else 0.0, float(interval_ms))
        q = np.quantile(s, [0.9, 0.99, 0.999])
        return cls(
            q_scores=(float(q[0]), float(q[1]), float(q[2])),
            tx_per_interval=len(s) / (span / interval_ms),
            fraud_rate=float(np.mean(is_fraud)) if len(s) else 0.0,
            cost_per_interval=max(float(cost_per_interval), 1e-6),
            interval_ms=int(interval_ms),
            static_t_review=static.t_review,
            static_t_decline=static.t_decline,
            decline_rate=max(float(np.mean(s >= static.t_decline)) if len(s) else 0.0, 1e-4),
            review_rate=float(np.mean((s >= static.t_review) & (s < static.t_decline)))
            if len(s)
            else 0.0,
            missed_share=_missed_share(s, np.asarray(is_fraud), static.t_review),
        )

    def static_policy(self) -> ThresholdPolicy:
        return ThresholdPolicy(self.static_t_review, self.static_t_decline, "static", "static")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["q_scores"] = list(self.q_scores)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reference:
        d = dict(d)
        d["q_scores"] = tuple(float(x) for x in d["q_scores"])
        return cls(**d)


def _missed_share(s: np.ndarray, y: np.ndarray, t_review: float) -> float:
    f = s[y.astype(bool)] if len(s) else s
    # clipped away from 0 and 1 so its log ratio stays finite
    return float(np.clip(np.mean(f < t_review), 0.01, 0.99)) if f.size else 0.3


#: Names of the observation components, in order (the artifact records them).
OBS_NAMES: tuple[str, ...] = (
    "tail10_ratio_fast",  # log share of scores above validation q90, relative to 10%
    "tail1_ratio_fast",  # same at q99
    "tail01_ratio_fast",  # same at q99.9 (smoothed counts)
    "tail1_ratio_slow",  # q99 ratio over about a day
    "volume_ratio",  # log payments per interval relative to validation
    "static_review_load",  # reviews the static policy would send / capacity
    "review_load",  # reviews actually sent / capacity
    "decline_rate_ratio",  # log decline rate at static thresholds relative to validation
    # log share of recently released frauds the static policy would have approved, vs
    # validation: rises when a pattern the model scores low appears (label feedback)
    "released_missed_ratio",
    "observed_cost_ratio",  # log (agent cost / static cost) on released labels + reviews
    "t_review_offset",  # current t_review relative to static, logit units / max offset
    "t_decline_offset",
    "hour_sin",
    "hour_cos",
)


#: Weight of one interval in the one-week (168 hourly intervals) decayed costs.
_WEEK_WEIGHT = 1.0 - 0.5 ** (1.0 / 168.0)


def _ema(old: float, new: float, half_life: float) -> float:
    a = 1.0 - 0.5 ** (1.0 / half_life)
    return old + a * (new - old)


class ObservationBuilder:
    """Windows in, observation vectors out (see :data:`OBS_NAMES`).

    Parameters
    ----------
    reference
        Validation facts the observation is scaled against.
    cost_model
        Used for the review capacity and the observed-cost ratio.
    max_offset
        Logit distance from the static thresholds mapped to +-1.
    """

    def __init__(
        self,
        reference: Reference,
        cost_model: CostModel,
        max_offset: float = 2.0,
        evidence_delay_ms: int = 0,
        evidence_amount_cap: float | None = None,
    ) -> None:
        self.reference = reference
        self.cost_model = cost_model
        self.max_offset = float(max_offset)
        self.evidence_delay_ms = int(evidence_delay_ms)
        self.evidence_amount_cap = evidence_amount_cap
        self.reset()

    def reset(self) -> None:
        self._fast = np.zeros(3)
        self._slow = 0.0
        self._vol = 0.0
        self._load_static = 0.0
        self._load = 0.0
        self._decl = 0.0
        self._rel_fraud = 0.0
        self._rel_missed = 0.0
        self._cost_agent = 0.0
        self._cost_static = 0.0
        # the fallback's evidence: label costs at arrival, immediate costs once matured
        self._fb = np.zeros(2)
        # and the variance of their decayed difference (sum of squared paired differences)
        self._fb_var = 0.0
        self._pending: deque[tuple[int, float, float]] = deque()
        self.steps = 0

    @property
    def capacity_per_interval(self) -> float:
        cap = self.cost_model.review_capacity_per_hour
        return cap * self.reference.interval_ms / 3_600_000 if math.isfinite(cap) else math.inf

    def update(self, w: WindowStats, current: ThresholdPolicy) -> np.ndarray:
        """Fold window ``w`` (decided under ``current``) in; return the observation."""
        ref = self.reference
        s = np.asarray(w.scores, dtype=np.float64)
        n = s.shape[0]
        expect = np.array([0.1, 0.01, 0.001]) * n
        above = np.array([(s >= q).sum() for q in ref.q_scores], dtype=np.float64)
        ratio = np.log((above + 1.0) / (expect + 1.0))
        self._fast = self._fast + (1 - 0.5 ** (1 / 3)) * (ratio - self._fast)
        self._slow = _ema(self._slow, float(ratio[1]), 24.0)
        self._vol = _ema(self._vol, math.log((n + 1.0) / (ref.tx_per_interval + 1.0)), 3.0)
        cap = self.capacity_per_interval
        static_d = decide(s, ref.static_t_review, ref.static_t_decline)
        n_rev_static = float((static_d == REVIEW).sum())
        n_rev = float((np.asarray(w.decisions) == REVIEW).sum())
        if math.isfinite(cap) and cap > 0:
            self._load_static = _ema(self._load_static, n_rev_static / cap, 3.0)
            self._load = _ema(self._load, n_rev / cap, 3.0)
        ref_decl = ref.decline_rate
        decl = (float((static_d == DECLINE).sum()) + 0.5) / (n + 0.5 / ref_decl)
        self._decl = _ema(self._decl, math.log(decl / ref_decl), 6.0)
        # labels released in this window (payments decided earlier)
        yl = np.asarray(w.released_label, dtype=np.float64)
        fraud = yl == 1
        missed = fraud & (np.asarray(w.released_score, dtype=np.float64) < ref.static_t_review)
        self._rel_fraud = _ema(self._rel_fraud, float(fraud.sum()), 24.0)
        self._rel_missed = _ema(self._rel_missed, float(missed.sum()), 24.0)
        if yl.size:
            self._observe_costs(w)
        # immediate review costs (agent vs static counterfactual on the same payments)
        cm = self.cost_model
        ts = w.event_times()
        if n:
            _, over_a = effective_decisions(np.asarray(w.decisions, np.int8), ts, cm)
            _, over_s = effective_decisions(static_d, ts, cm)
            pen = cm.overflow_penalty if cm.overflow_rule == "penalty" else cm.review_cost
            imm_a = cm.review_cost * n_rev + pen * over_a.sum()
            imm_s = cm.review_cost * n_rev_static + pen * over_s.sum()
            self._cost_agent = _ema(self._cost_agent, imm_a, 168.0)
            self._cost_static = _ema(self._cost_static, imm_s, 168.0)
            self._pending.append((w.t_end, float(imm_a), float(imm_s)))
        matured = np.zeros(2)
        sq = 0.0
        while self._pending and self._pending[0][0] + self.evidence_delay_ms <= w.t_end:
            _, ia, is_ = self._pending.popleft()
            matured += (ia, is_)
            sq += (ia - is_) ** 2
        a = _WEEK_WEIGHT
        self._fb = self._fb + a * (matured - self._fb)
        self._fb_var = (1 - a) ** 2 * self._fb_var + a * a * sq
        self.steps += 1
        return self.observation(current, w.t_end)

    def _observe_costs(self, w: WindowStats) -> None:
        ref = self.reference
        c = per_transaction_costs(w.released_amount, w.released_label, self.cost_model)
        rows = np.arange(c.shape[0])
        agent = float(c[rows, np.asarray(w.released_decision, dtype=np.intp)].sum())
        static_d = decide(w.released_score, ref.static_t_review, ref.static_t_decline)
        static = float(c[rows, static_d.astype(np.intp)].sum())
        # accumulate with the same decay as the immediate costs (one week half-life)
        self._cost_agent += _WEEK_WEIGHT * agent
        self._cost_static += _WEEK_WEIGHT * static
        if self.evidence_amount_cap is not None:  # the fallback's evidence: amounts winsorised
            c = per_transaction_costs(
                np.minimum(w.released_amount, self.evidence_amount_cap),
                w.released_label,
                self.cost_model,
            )
        ca = c[rows, np.asarray(w.released_decision, dtype=np.intp)]
        cs = c[rows, static_d.astype(np.intp)]
        a = _WEEK_WEIGHT
        self._fb += a * np.array([float(ca.sum()), float(cs.sum())])
        self._fb_var += a * a * float((ca - cs) @ (ca - cs))

    @property
    def observed_costs(self) -> tuple[float, float]:
        """Decayed ``(agent, static)`` observed cost (released labels + reviews)."""
        return self._cost_agent, self._cost_static

    @property
    def fallback_costs(self) -> tuple[float, float]:
        """Decayed ``(agent, static)`` cost on matured evidence (what the fallback compares)."""
        return float(self._fb[0]), float(self._fb[1])

    @property
    def fallback_noise(self) -> float:
        """Standard error of ``agent - static`` in :attr:`fallback_costs`.

        From the squared paired differences that went into it (a payment the
        two policies decided alike adds 0), decayed alike: one large payment
        decided differently moves the difference by about one standard error,
        a consistently worse agent by many.
        """
        return math.sqrt(self._fb_var)

    def observation(self, current: ThresholdPolicy, t_end: int) -> np.ndarray:
        ref = self.reference
        # a prior worth half a fraud at the validation share keeps the ratio near 0 until labels arrive
        missed = (self._rel_missed + 0.5 * ref.missed_share) / (self._rel_fraud + 0.5)
        hour = (t_end // 3_600_000) % 24
        off_r = (logit(current.t_review) - logit(ref.static_t_review)) / self.max_offset
        off_d = (logit(current.t_decline) - logit(ref.static_t_decline)) / self.max_offset
        obs = np.array(
            [
                *self._fast,
                self._slow,
                self._vol,
                self._load_static,
                self._load,
                self._decl,
                math.log(missed / ref.missed_share),
                math.log((self._cost_agent + 1.0) / (self._cost_static + 1.0)),
                off_r,
                off_d,
                math.sin(2 * math.pi * hour / 24),
                math.cos(2 * math.pi * hour / 24),
            ],
            dtype=np.float32,
        )
        return np.clip(obs, -5.0, 5.0)
