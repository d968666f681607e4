"""Metrics against small examples worked out by hand."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from riskflow import metrics
from riskflow.metrics import (
    average_precision,
    brier_score,
    evaluate,
    precision_top_k_per_day,
    recall_at_fpr,
    roc_auc,
)

DAY = 86_400_000


def test_doctests_run() -> None:
    result = doctest.testmod(metrics)
    assert result.attempted >= 5 and result.failed == 0


def test_roc_auc_by_hand() -> None:
    # Positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered right.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # A tie counts half: pairs (0.5 vs 0.5) = 0.5, (0.5 vs 0.1) = 1 -> 0.75.
    assert roc_auc([0, 1, 0], [0.5, 0.5, 0.1]) == pytest.approx(0.75)


def test_average_precision_by_hand() -> None:
    # Ranking 1,0,1,0: precision 1 at recall 0.5, 2/3 at recall 1.
    assert average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 + 1 / 3)
    # Perfect ranking.
    assert average_precision([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.2]) == pytest.approx(1.0)


def test_recall_at_fpr_by_hand() -> None:
    # 10 negatives; at FPR <= 0.1 one negative may be above the threshold.
    y = [1, 0, 1, 0, 1] + [0] * 8
    s = [0.99, 0.98, 0.97, 0.96, 0.5] + [0.1 * i for i in range(8)]
    # Cuts: after .99 (tp1, fp0), .98 (1,1), .97 (2,1), .96 (2,2), ...
    assert recall_at_fpr(y, s, 0.0) == pytest.approx(1 / 3)
    assert recall_at_fpr(y, s, 0.1) == pytest.approx(2 / 3)
    assert recall_at_fpr(y, s, 0.2) == pytest.approx(2 / 3)
    assert recall_at_fpr(y, s, 1.0) == pytest.approx(1.0)


def test_recall_at_fpr_ties_are_all_or_nothing() -> None:
    # A positive tied with a negative cannot be alerted without that negative.
    assert recall_at_fpr([1, 0, 0, 0], [0.5, 0.5, 0.1, 0.2], 0.0) == 0.0
    assert recall_at_fpr([1, 0, 0, 0], [0.5, 0.5, 0.1, 0.2], 1 / 3) == 1.0


def test_precision_top_k_per_day_by_hand() -> None:
    y = [1, 0, 0, 1, 1, 0, 0]
    s = [0.9, 0.8, 0.1, 0.7, 0.2, 0.6, 0.65]
    t = [0, 1, 2, DAY, DAY + 1, DAY + 2, 2 * DAY]
    # Day 0 top 2: 0.9 (1), 0.8 (0) -> 0.5; day 1: 0.7 (1), 0.6 (0) -> 0.5; day 2: one row (0) -> 0.
    assert precision_top_k_per_day(y, s, t, k=2) == pytest.approx(1 / 3)
    # k larger than any day: every row counts; day means 1/3, 2/3, 0.
    assert precision_top_k_per_day(y, s, t, k=10) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_brier_by_hand() -> None:
    assert brier_score([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    with pytest.raises(ValueError, match="probabilities"):
        brier_score([0, 1], [0.2, 1.5])


def test_undefined_metrics_are_nan_or_none() -> None:
    assert np.isnan(roc_auc([0, 0], [0.1, 0.2]))
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))
    out = evaluate([0, 0], [0.1, 0.2])
    assert out["roc_auc"] is None and out["recall_at_fpr"]["0.001"] is None


def test_evaluate_keys() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.1
    s = rng.random(500) + y
    out = evaluate(y, s / 2, np.arange(500) * 1000, probabilities=True, k=10)
    assert set(out["recall_at_fpr"]) == {"0.001", "0.003", "0.01"}
    assert {
        "roc_auc",
        "average_precision",
        "precision_top_k_per_day",
        "brier",
        "n",
        "n_positive",
    } <= set(out)
    assert out["n"] == 500 and out["n_positive"] == int(y.sum())


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="same length"):
        roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="0 or 1"):
        average_precision([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="fpr"):
        recall_at_fpr([0, 1], [0.1, 0.2], 2.0)
