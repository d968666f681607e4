from __future__ import annotations

import itertools

import numpy as np
import pytest

from riskflow.policies import (
    CostModel,
    RateController,
    ThresholdPolicy,
    cost_breakdown,
    decide,
    optimise_static,
)
from riskflow.policies.static import threshold_grid

H = 3_600_000


@pytest.mark.parametrize(
    "rule,cap", [("penalty", float("inf")), ("penalty", 6), ("approve", 6), ("decline", 6)]
)
def test_static_is_the_best_grid_pair(rule, cap):
    rng = np.random.default_rng(0)
    n = 6000
    y = rng.random(n) < 0.02
    s = np.where(y, rng.beta(4, 2, n), rng.beta(1, 25, n))
    ts = np.sort(rng.integers(0, 10 * H, n))
    a = rng.lognormal(3.5, 1, n)
    cm = CostModel(review_capacity_per_hour=cap, overflow_rule=rule)
    p = optimise_static(s, a, y, ts, cost_model=cm, grid_size=16)
    grid = threshold_grid(s, 16)
    best = min(
        cost_breakdown(decide(s, r, d), a, y, ts, model=cm)["total"]
        for r, d in itertools.combinations_with_replacement(grid, 2)
    )
    assert cost_breakdown(p.decide(s), a, y, ts, model=cm)["total"] == pytest.approx(best)


def test_controller_tracks_review_count():
    rng = np.random.default_rng(1)
    c = RateController(
        ThresholdPolicy(0.5, 0.9), None, None, window=1, target_reviews_per_interval=20
    )
    for n in (500, 2000):
        s = rng.random(n)
        p = c.propose(s)
        reviews = np.sum((s >= p.t_review) & (s < p.t_decline))
        assert abs(reviews - 20) <= 1


def test_static_under_a_decline_cap_is_the_best_grid_pair_within_it():
    rng = np.random.default_rng(1)
    n = 6000
    y = rng.random(n) < 0.05
    s = np.where(y, rng.beta(4, 2, n), rng.beta(1, 25, n))
    ts = np.sort(rng.integers(0, 10 * H, n))
    a = rng.lognormal(5, 1, n)  # costly fraud: unconstrained, the best pair declines a lot
    cm = CostModel(review_capacity_per_hour=6)
    free = optimise_static(s, a, y, ts, cost_model=cm, grid_size=16)
    assert np.mean(s >= free.t_decline) > 0.03
    p = optimise_static(s, a, y, ts, cost_model=cm, grid_size=16, max_decline_rate=0.03)
    assert np.mean(s >= p.t_decline) <= 0.03
    grid = threshold_grid(s, 16)
    best = min(
        cost_breakdown(decide(s, tr, td), a, y, ts, model=cm)["total"]
        for tr, td in itertools.product(grid, grid)
        if tr <= td and np.mean(s >= td) <= 0.03
    )
    assert cost_breakdown(p.decide(s), a, y, ts, model=cm)["total"] == pytest.approx(best)
    with pytest.raises(ValueError, match="max_decline_rate"):
        optimise_static(s, a, y, ts, max_decline_rate=0.0)
