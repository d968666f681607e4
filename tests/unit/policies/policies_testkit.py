"""Small synthetic scored streams for the policies tests (no simulator needed)."""

from __future__ import annotations

import numpy as np

from riskflow.policies import CostModel, Reference, ThresholdPolicy
from riskflow.policies.backtest import HOUR_MS, ScoredStream

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def stream(
    hours: int = 72,
    per_hour: int = 200,
    fraud_rate: float = 0.01,
    seed: int = 0,
    delay_ms: float = 6 * HOUR_MS,
    spike: tuple[int, int, float] | None = None,
) -> ScoredStream:
    """Beta scores conditioned on the label; labels arrive ``delay_ms`` after the payment."""
    rng = np.random.default_rng(seed)
    n = hours * per_hour
    ts = np.sort(T0 + rng.integers(0, hours * HOUR_MS, n))
    rate = np.full(n, fraud_rate)
    if spike is not None:
        a, b, f = spike
        h = (ts - T0) // HOUR_MS
        rate[(h >= a) & (h < b)] *= f
    y = (rng.random(n) < rate).astype(np.int8)
    s = np.where(y == 1, rng.beta(4, 2, n), rng.beta(1, 30, n))
    amount = rng.lognormal(3.5, 1.0, n)
    reported = rng.random(n) < 0.9
    lt = np.where(reported, ts + delay_ms * rng.uniform(0.5, 1.5, n), np.inf)
    return ScoredStream(ts, s, amount, y, lt, np.where(reported, y, -1).astype(np.int8))


COST = CostModel(review_capacity_per_hour=8)


def reference(s: ScoredStream, static: ThresholdPolicy | None = None) -> Reference:
    static = static or ThresholdPolicy(0.2, 0.7, "static", "static")
    return Reference.fit(s.score, s.is_fraud, s.ts, static, 50.0, HOUR_MS)
