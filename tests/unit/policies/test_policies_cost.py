from __future__ import annotations

import math

import numpy as np
import pytest

from riskflow.policies import CostModel, PolicyConfigError, cost_breakdown

H = 3_600_000


def naive_cost(d, a, y, ts, cm):
    order = sorted(range(len(d)), key=lambda i: (ts[i], i))
    used: dict[int, int] = {}
    total = {"fraud_loss": 0.0, "false_decline_cost": 0.0, "review_cost": 0.0, "overflow_cost": 0.0}
    for i in order:
        di = int(d[i])
        if di == 1:
            h = int(ts[i] // H)
            used[h] = used.get(h, 0) + 1
            if used[h] > cm.review_capacity_per_hour:
                if cm.overflow_rule == "penalty":
                    total["overflow_cost"] += cm.overflow_penalty
                else:
                    di = 0 if cm.overflow_rule == "approve" else 2
        if di == 0 and y[i]:
            total["fraud_loss"] += a[i] + cm.chargeback_fee
        elif di == 2 and not y[i]:
            total["false_decline_cost"] += cm.margin_rate * a[i] + cm.friction
        elif di == 1:
            total["review_cost"] += cm.review_cost
    total["total"] = sum(total.values())
    return total


@pytest.mark.parametrize("rule", ["penalty", "approve", "decline"])
@pytest.mark.parametrize("cap", [0, 3, math.inf])
def test_cost_breakdown_matches_naive(rule, cap):
    rng = np.random.default_rng(3)
    n = 400
    d = rng.integers(0, 3, n).astype(np.int8)
    a = rng.lognormal(3, 1, n)
    y = rng.random(n) < 0.2
    ts = rng.integers(0, 5 * H, n)  # unsorted on purpose
    cm = CostModel(review_capacity_per_hour=cap, overflow_rule=rule)
    got = cost_breakdown(d, a, y, ts, model=cm)
    want = naive_cost(d, a, y, ts, cm)
    for k, v in want.items():
        assert got[k] == pytest.approx(v), k


def test_cost_model_rejects_bad_values():
    with pytest.raises(PolicyConfigError, match="'overflow_rule' parameter of CostModel"):
        CostModel(overflow_rule="drop")
    with pytest.raises(PolicyConfigError, match="margin_rate"):
        CostModel(margin_rate=2.0)
    cm = CostModel(review_capacity_per_hour=math.inf)
    assert CostModel.from_dict(cm.to_dict()) == cm
