"""Scored streams and the interval loop that runs a policy over one.

A :class:`ScoredStream` is the plain table every policy is built and judged
on: event time, calibrated score, amount, truth, and when (if ever) the label
became known. :func:`build_scored_stream` makes one from simulator output and
a scorer (the real ensemble via :func:`model_scorer`, or
:func:`synthetic_scorer` until one is trained).

:class:`IntervalReplayer` cuts the stream into event-time intervals and, for
each, applies the live thresholds, records the decisions and builds the
:class:`~riskflow.policies.window.WindowStats` production would see: the
interval's scores and decisions, and only the labels whose ``label_time``
falls inside the interval. The RL environment and ``policy eval`` both use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskflow.policies.agent import OnlineAgent
from riskflow.policies.cost import CostModel, cost_breakdown
from riskflow.policies.decide import DECLINE, REVIEW, ThresholdPolicy
from riskflow.policies.exceptions import PolicyConfigError
from riskflow.policies.guardrails import DAY_MS, Guardrails, check_violations
from riskflow.policies.window import WindowStats

__all__ = [
    "ScoredStream",
    "build_scored_stream",
    "synthetic_scorer",
    "model_scorer",
    "IntervalReplayer",
    "RunResult",
    "run_policy",
]

HOUR_MS = 3_600_000
Scorer = Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]


@dataclass
class ScoredStream:
    """Scored transactions in event-time order (arrays of equal length).

    ``label_time`` is epoch ms as float, ``inf`` when the label is never
    reported; ``is_fraud`` is the truth used for costs (also for unreported
    fraud, which is still a loss); ``label`` is what is reported (-1: none).
    """

    ts: np.ndarray
    score: np.ndarray
    amount: np.ndarray
    is_fraud: np.ndarray
    label_time: np.ndarray
    label: np.ndarray
    scenario: np.ndarray | None = None
    name: str = "stream"

    def __post_init__(self) -> None:
        order = np.argsort(self.ts, kind="stable")
        if np.any(order != np.arange(order.size)):
            for f in ("ts", "score", "amount", "is_fraud", "label_time", "label", "scenario"):
                v = getattr(self, f)
                if v is not None:
                    setattr(self, f, np.asarray(v)[order])
        self.ts = np.asarray(self.ts, dtype=np.int64)
        self.score = np.asarray(self.score, dtype=np.float64)
        self.amount = np.asarray(self.amount, dtype=np.float64)
        self.is_fraud = np.asarray(self.is_fraud, dtype=np.int8)
        self.label_time = np.asarray(self.label_time, dtype=np.float64)
        self.label = np.asarray(self.label, dtype=np.int8)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def slice_time(self, start_ms: float, stop_ms: float, name: str | None = None) -> ScoredStream:
        sel = (self.ts >= start_ms) & (self.ts < stop_ms)
        return ScoredStream(
            self.ts[sel],
            self.score[sel],
            self.amount[sel],
            self.is_fraud[sel],
            self.label_time[sel],
            self.label[sel],
            None if self.scenario is None else self.scenario[sel],
            name or self.name,
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "ts": self.ts,
                "score": self.score,
                "amount": self.amount,
                "is_fraud": self.is_fraud,
                "label_time": self.label_time,
                "label": self.label,
            }
        )

    @classmethod
    def from_frame(cls, df: pd.DataFrame, name: str = "stream") -> ScoredStream:
        """From columns ts, score, amount, is_fraud, label_time (NaN/inf: never), [label]."""
        lt = df["label_time"].to_numpy(np.float64, na_value=np.inf)
        lt = np.where(np.isnan(lt), np.inf, lt)
        y = df["is_fraud"].to_numpy(np.int8)
        label = df["label"].to_numpy(np.int8) if "label" in df else np.where(np.isfinite(lt), y, -1)
        return cls(
            df["ts"].to_numpy(np.int64),
            df["score"].to_numpy(np.float64),
            df["amount"].to_numpy(np.float64),
            y,
            lt,
            label,
            None,
            name,
        )


def build_scored_stream(
    tx: pd.DataFrame, labels: pd.DataFrame, scorer: Scorer, name: str = "stream"
) -> ScoredStream:
    """Simulator output (transactions with ``is_fraud``, labels) scored by ``scorer``."""
    tx = tx.sort_values("event_time", kind="stable").reset_index(drop=True)
    scores = np.asarray(scorer(tx, labels), dtype=np.float64)
    lab = labels.drop_duplicates("tx_id", keep="first").set_index("tx_id")
    lt = tx["tx_id"].map(lab["label_time"]).to_numpy(np.float64, na_value=np.inf)
    lv = tx["tx_id"].map(lab["label"]).to_numpy(np.float64, na_value=-1)
    truth = tx["is_fraud"].to_numpy(np.int8) if "is_fraud" in tx else (lv == 1).astype(np.int8)
    scen = tx["fraud_scenario"].astype(object).to_numpy() if "fraud_scenario" in tx else None
    return ScoredStream(
        tx["event_time"].to_numpy(np.int64),
        scores,
        tx["amount"].to_numpy(np.float64),
        truth,
        np.where(np.isnan(lt), np.inf, lt),
        lv.astype(np.int8),
        scen,
        name,
    )


#: Mean score logit shift of each fraud scenario in the synthetic scorer:
#: how well a model separates it from legitimate payments (legit: N(0, 1)).
SYNTHETIC_SEPARABILITY: dict[str, float] = {
    "stolen_card": 3.2,
    "card_testing": 2.8,
    "account_takeover": 2.4,
    "skimming": 2.6,
    "high_amount": 3.4,
    "merchant_bustout": 2.5,
}


def synthetic_scorer(
    seed: int = 0,
    base_rate: float = 0.005,
    separability: dict[str, float] | None = None,
    unseen: dict[str, float] | None = None,
) -> Scorer:
    """A calibrated stand-in for the trained ensemble (for tests and until models exist).

    Each payment gets a latent ``z ~ N(mu, 1)`` (``mu = 0`` for legitimate
    payments, the scenario's separability for fraud); the score is the exact
    posterior P(fraud | z) at ``base_rate`` under the default scenario mix, so
    it is calibrated on a stationary stream and mis-calibrated under drift,
    as a real model would be: a fraud spike raises the prior the model does
    not know about, so its scores under-state the risk.

    ``unseen`` maps scenarios the model was never trained on to their (lower)
    mean shift: their frauds are drawn with that shift, but the posterior is
    still computed under the known scenarios only, as a model that never saw
    the pattern would score it.
    """
    sep = dict(SYNTHETIC_SEPARABILITY if separability is None else separability)
    mus = np.array(list(sep.values()))
    shift = {**sep, **(unseen or {})}

    def score(tx: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
        rng = np.random.default_rng(seed)
        y = tx["is_fraud"].to_numpy(np.int8).astype(bool)
        scen = tx["fraud_scenario"].astype(object).to_numpy() if "fraud_scenario" in tx else None
        mu = np.zeros(len(tx))
        if scen is not None:
            mu[y] = [shift.get(str(s), float(mus.mean())) for s in scen[y]]
        else:
            mu[y] = float(mus.mean())
        z = rng.normal(mu, 1.0)
        f0 = np.exp(-0.5 * z**2)
        f1 = np.exp(-0.5 * (z[:, None] - mus[None, :]) ** 2).mean(axis=1)
        return base_rate * f1 / (base_rate * f1 + (1 - base_rate) * f0)

    return score


def model_scorer(model_path: str, feature_config: Any = None, chunk: int = 65_536) -> Scorer:
    """Scores from the trained ensemble: features replayed in time order, labels at label time."""
    from riskflow.batch import LabelBatch, TxBatch
    from riskflow.features import FeatureEngine
    from riskflow.models import load_model

    def score(tx: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
        engine = FeatureEngine(feature_config)
        model = load_model(model_path, expected_catalogue_hash=engine.catalogue_hash)
        b = TxBatch.from_frame(tx)
        lb = LabelBatch.join(labels, tx) if len(labels) else None
        out = np.empty(len(tx))
        cursor = 0
        for start in range(0, len(tx), chunk):
            stop = min(start + chunk, len(tx))
            part = b.take(slice(start, stop))
            lpart = None
            if lb is not None:
                end = int(np.searchsorted(lb.label_time, part.ts[-1], side="right"))
                if end > cursor:
                    lpart = LabelBatch(*(a[cursor:end] for a in lb))
                    cursor = end
            out[start:stop] = model.predict_proba(engine.process(part, lpart))
        return out

    return score


class IntervalReplayer:
    """Walks a :class:`ScoredStream` interval by interval (see module docs)."""

    def __init__(
        self,
        stream: ScoredStream,
        interval_ms: int,
        cost_model: CostModel,
        cost_amount: np.ndarray | None = None,
    ) -> None:
        if not isinstance(interval_ms, int) or interval_ms < 1000:
            raise PolicyConfigError(
                f"The 'interval_ms' parameter must be an int >= 1000. Got {interval_ms!r} instead."
            )
        self.stream = stream
        self.interval_ms = interval_ms
        self.cost_model = cost_model
        s = stream
        self.t0 = int(s.ts[0] // interval_ms * interval_ms) if len(s) else 0
        n_int = int((s.ts[-1] - self.t0) // interval_ms + 1) if len(s) else 0
        self.ends = self.t0 + interval_ms * np.arange(1, n_int + 1, dtype=np.int64)
        self.bounds = np.searchsorted(s.ts, self.ends, side="left")
        self.bounds = np.r_[0, self.bounds]
        known = np.flatnonzero(np.isfinite(s.label_time) & (s.label >= 0))
        self._lab_order = known[np.argsort(s.label_time[known], kind="stable")]
        lt_sorted = s.label_time[self._lab_order]
        self._lab_bounds = np.r_[0, np.searchsorted(lt_sorted, self.ends, side="right")]
        self.decisions = np.zeros(len(s), dtype=np.int8)
        self.decided = np.zeros(len(s), dtype=bool)
        # the amounts the returned cost is computed on (e.g. winsorised for a
        # training reward); what production sees always has the true amounts
        self.cost_amount = s.amount if cost_amount is None else np.asarray(cost_amount, np.float64)

    def __len__(self) -> int:
        return int(self.ends.shape[0])

    def reset(self) -> None:
        self.decisions[:] = 0
        self.decided[:] = False

    def rows(self, k: int) -> slice:
        return slice(int(self.bounds[k]), int(self.bounds[k + 1]))

    def step(self, k: int, policy: ThresholdPolicy) -> tuple[WindowStats, float]:
        """Decide interval ``k`` with ``policy``; ``(what production sees, hindsight cost)``."""
        s, sl = self.stream, self.rows(k)
        d = policy.decide(s.score[sl])
        self.decisions[sl] = d
        self.decided[sl] = True
        cost = cost_breakdown(
            d, self.cost_amount[sl], s.is_fraud[sl], s.ts[sl], model=self.cost_model
        )["total"]
        rel = self._lab_order[self._lab_bounds[k] : self._lab_bounds[k + 1]]
        # a label can only be released for a payment already decided
        rel = rel[self.decided[rel]]
        w = WindowStats(
            t_end=int(self.ends[k]),
            scores=s.score[sl],
            amounts=s.amount[sl],
            decisions=d,
            ts=s.ts[sl],
            released_label=s.label[rel],
            released_amount=s.amount[rel],
            released_score=s.score[rel],
            released_decision=self.decisions[rel],
        )
        return w, float(cost)


@dataclass
class RunResult:
    """A policy's run over a stream: decisions, thresholds per interval, costs, audit."""

    name: str
    decisions: np.ndarray
    thresholds: pd.DataFrame  # t, t_review, t_decline, cost, fallback
    cost: dict[str, Any]
    violations: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        d = self.decisions
        n = max(len(d), 1)
        return {
            "total_cost": self.cost["total"],
            "cost": {k: v for k, v in self.cost.items()},
            "decline_rate": float(np.sum(d == DECLINE) / n),
            "review_rate": float(np.sum(d == REVIEW) / n),
            "guardrail_violations": int(sum(self.violations.values())),
            "violations_by_kind": dict(self.violations),
            **self.extra,
        }


def run_policy(
    stream: ScoredStream,
    policy: ThresholdPolicy | OnlineAgent,
    cost_model: CostModel,
    *,
    interval_ms: int = HOUR_MS,
    audit: Guardrails | None = None,
    name: str = "policy",
) -> RunResult:
    """Run a fixed policy or an :class:`OnlineAgent` over ``stream``, one interval at a time.

    ``audit`` guardrails are checked on what actually ran: each interval's
    step and bounds, and each day's realised decline rate.
    """
    rep = IntervalReplayer(stream, interval_ms, cost_model)
    agent = policy if isinstance(policy, OnlineAgent) else None
    live = agent.current if agent is not None else policy
    assert isinstance(live, ThresholdPolicy)
    rows = []
    viol: dict[str, int] = {}
    prev: ThresholdPolicy | None = None
    for k in range(len(rep)):
        if audit is not None:
            for v in check_violations(audit, prev, live, None):
                viol[v] = viol.get(v, 0) + 1
        prev = live
        w, c = rep.step(k, live)
        rows.append(
            (
                int(rep.ends[k]) - interval_ms,
                live.t_review,
                live.t_decline,
                c,
                bool(agent is not None and agent.monitor.active),
                live.source,
            )
        )
        if agent is not None:
            live = agent.step(w)
    d = rep.decisions
    if audit is not None and len(stream):
        day = (stream.ts - stream.ts[0] // DAY_MS * DAY_MS) // DAY_MS
        n_day = np.bincount(day)
        decl_day = np.bincount(day, weights=(d == DECLINE))
        over = int(np.sum(decl_day[n_day > 0] / n_day[n_day > 0] > audit.max_decline_rate + 1e-12))
        if over:
            viol["max_decline_rate"] = over
    thr = pd.DataFrame(rows, columns=["t", "t_review", "t_decline", "cost", "fallback", "source"])
    cost = cost_breakdown(d, stream.amount, stream.is_fraud, stream.ts, model=cost_model)
    extra: dict[str, Any] = {}
    if agent is not None:
        extra = {
            "fallback_intervals": int(thr["fallback"].sum()),
            "fallback_triggers": agent.monitor.triggers,
            "guardrail_interventions": agent.interventions,
        }
    return RunResult(name, d.copy(), thr, cost, viol, extra)


def _finite(x: float) -> bool:
    return math.isfinite(x)
