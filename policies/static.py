"""Static thresholds optimised for expected cost on validation data.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.random(20_000) < 0.01
>>> s = np.clip(np.where(y, rng.beta(5, 2, y.size), rng.beta(1, 20, y.size)), 0, 1)
>>> ts = np.arange(y.size) * 1000; a = rng.lognormal(3.5, 1, y.size)
>>> p = optimise_static(s, a, y, ts)
>>> p.source, 0 < p.t_review <= p.t_decline < 1
('static', True)
"""

from __future__ import annotations

import math

import numpy as np

from riskflow.policies.cost import HOUR_MS, CostModel, cost_breakdown, per_transaction_costs
from riskflow.policies.decide import ThresholdPolicy, decide
from riskflow.policies.exceptions import bad_param

__all__ = ["optimise_static", "threshold_grid"]


def threshold_grid(scores: np.ndarray, size: int = 48) -> np.ndarray:
    """Candidate thresholds: upper score quantiles (where decisions change) plus 1.0.

    Dense in the tail, because a fraud model's useful thresholds sit in the top
    few percent of scores.
    """
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    # tail probabilities from 50% to 0.005%, geometrically spaced
    tail = np.geomspace(0.5, 5e-5, size - 1)
    q = np.quantile(s, 1 - tail) if s.size else np.array([])
    return np.unique(np.r_[q, 1.0 + 1e-9].clip(0, 1.0))


def optimise_static(
    scores: np.ndarray,
    amounts: np.ndarray,
    labels: np.ndarray,
    ts: np.ndarray,
    *,
    cost_model: CostModel | None = None,
    grid_size: int = 48,
    version: str = "static",
    max_decline_rate: float | None = None,
) -> ThresholdPolicy:
    """The ``(t_review, t_decline)`` pair of least total cost on the given data.

    Exhaustive over :func:`threshold_grid` pairs with ``t_review <= t_decline``
    (``t_review == t_decline`` means no review band), costed by
    :func:`~riskflow.policies.cost.cost_breakdown` with the capacity rule.
    """
    if not isinstance(grid_size, int) or grid_size < 4:
        raise bad_param("optimise_static", "grid_size", "an int >= 4", grid_size)
    if max_decline_rate is not None and not (
        isinstance(max_decline_rate, int | float) and 0 < max_decline_rate <= 1
    ):
        raise bad_param(
            "optimise_static", "max_decline_rate", "None or a number in (0, 1]", max_decline_rate
        )
    cm = cost_model if cost_model is not None else CostModel()
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(amounts, dtype=np.float64)
    y = np.asarray(labels).astype(np.int8)
    t = np.asarray(ts, dtype=np.int64)
    grid = threshold_grid(s, grid_size)
    approx = _pair_costs(s, a, y, t, grid, cm)
    if max_decline_rate is not None:
        declined = (s.size - np.searchsorted(np.sort(s), grid, side="left")) / max(s.size, 1)
        approx[:, declined > max_decline_rate] = np.inf
    # the vectorised costs are exact for the penalty rule; spill rules are
    # approximated there, so the best few pairs are re-costed exactly
    iu = np.argsort(approx, axis=None)[:12]
    best = (np.inf, 1.0, 1.0)
    for flat in iu:
        i, j = np.unravel_index(flat, approx.shape)
        if not np.isfinite(approx[i, j]):
            continue
        tr, td = float(grid[i]), float(grid[j])
        c = cost_breakdown(decide(s, tr, td), a, y, t, model=cm)["total"]
        if c < best[0]:
            best = (c, tr, td)
    return ThresholdPolicy(min(best[1], 1.0), min(best[2], 1.0), version=version, source="static")


def _pair_costs(
    s: np.ndarray, a: np.ndarray, y: np.ndarray, ts: np.ndarray, grid: np.ndarray, cm: CostModel
) -> np.ndarray:
    """``(G, G)`` total cost of each (t_review=grid[i], t_decline=grid[j]); inf where i > j."""
    c = per_transaction_costs(a, y, cm)
    # bucket b = number of grid values <= score: decisions change only between buckets
    b = np.searchsorted(grid, s, side="right")
    G = grid.size
    per_bucket = np.stack([np.bincount(b, weights=c[:, k], minlength=G + 1) for k in range(3)])
    cum = np.concatenate(
        [np.zeros((3, 1)), np.cumsum(per_bucket, axis=1)], axis=1
    )  # sum over b < m
    # a score is >= grid[i] iff its bucket > i
    below = cum[:, 1 : G + 1]  # [k, i] = sum of cost k over scores < grid[i]
    total = cum[:, -1][:, None]
    i = np.arange(G)[:, None]
    j = np.arange(G)[None, :]
    approve = below[0][i]
    review = below[1][j] - below[1][i]
    decline = total[2] - below[2][j]
    out = approve + review + decline
    cap = cm.review_capacity_per_hour
    if math.isfinite(cap):
        hour = ts // HOUR_MS
        _, h = np.unique(hour, return_inverse=True)
        counts = np.zeros((h.max() + 1 if h.size else 1, G + 1))
        np.add.at(counts, (h, b), 1.0)
        above = counts[:, ::-1].cumsum(axis=1)[:, ::-1]  # [h, m] = scores with bucket >= m
        ge = above[:, 1 : G + 1]  # [h, i] = scores >= grid[i]
        over = np.zeros((G, G))
        for ii in range(G):
            rev = ge[:, ii : ii + 1] - ge[:, ii:]
            over[ii, ii:] = np.maximum(rev - int(cap), 0).sum(axis=0)
        if cm.overflow_rule == "penalty":
            out = out + cm.overflow_penalty * over
        else:
            k = 0 if cm.overflow_rule == "approve" else 2
            n_band = ge.sum(axis=0)[:, None] - ge.sum(axis=0)[None, :]
            band_k = below[k][j] - below[k][i]
            mean_spill = np.where(n_band > 0, band_k / np.maximum(n_band, 1), 0.0)
            out = out + over * (mean_spill - cm.review_cost)
    out = np.where(j >= i, out, np.inf)
    return out
