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

import numpy as np

from riskflow.policies.cost import CostModel, cost_breakdown
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
) -> ThresholdPolicy:
    """The ``(t_review, t_decline)`` pair of least total cost on the given data.

    Exhaustive over :func:`threshold_grid` pairs with ``t_review <= t_decline``
    (``t_review == t_decline`` means no review band), costed by
    :func:`~riskflow.policies.cost.cost_breakdown` with the capacity rule.
    """
    if not isinstance(grid_size, int) or grid_size < 4:
        raise bad_param("optimise_static", "grid_size", "an int >= 4", grid_size)
    cm = cost_model if cost_model is not None else CostModel()
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(amounts, dtype=np.float64)
    y = np.asarray(labels).astype(np.int8)
    t = np.asarray(ts, dtype=np.int64)
    grid = threshold_grid(s, grid_size)
    best = (np.inf, 1.0, 1.0)
    for i, tr in enumerate(grid):
        for td in grid[i:]:
            c = cost_breakdown(decide(s, tr, td), a, y, t, model=cm)["total"]
            if c < best[0]:
                best = (c, float(tr), float(td))
    return ThresholdPolicy(min(best[1], 1.0), min(best[2], 1.0), version=version, source="static")
