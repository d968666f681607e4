"""The compiled tree runtime matches LightGBM's own predict exactly."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from models_testkit import data, split

from riskflow.errors import ArtifactError
from riskflow.models import _heap_gather as heap_gather
from riskflow.models._lgbm import LightGBMMember
from riskflow.models._trees import Forest


def _booster(
    params: dict, X: np.ndarray, y: np.ndarray, cats: list[int], rounds: int = 30
) -> lgb.Booster:
    base = {
        "objective": "binary",
        "verbose": -1,
        "num_leaves": 15,
        "min_data_in_leaf": 5,
        "num_threads": 1,
        "seed": 1,
        "deterministic": True,
        "force_row_wise": True,
    }
    ds = lgb.Dataset(X, label=y, categorical_feature=cats, params={"verbose": -1})
    return lgb.train({**base, **params}, ds, num_boost_round=rounds)


def _nasty(X: np.ndarray, seed: int) -> np.ndarray:
    """Test rows with NaNs, zeros, negatives, huge values and unseen categories."""
    rng = np.random.default_rng(seed)
    Xt = X.copy()
    Xt[rng.random(Xt.shape) < 0.15] = np.nan
    Xt[rng.random(Xt.shape) < 0.05] = 0.0
    Xt[:40, -2] = 99_999.0  # unseen MCC
    Xt[40:80, -1] = -1.0  # absent channel code
    Xt[80:120, -1] = -0.5  # truncates to category 0, as LightGBM does
    Xt[120:140, -1] = 3.7
    Xt[140:160, 0] = 1e30
    Xt[160:180, -2] = 5e9  # beyond int range
    return Xt


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"zero_as_missing": True},
        {"use_missing": False},
        {"max_cat_to_onehot": 64},  # one-hot style categorical splits
        {"min_data_per_group": 1, "cat_smooth": 1.0, "max_cat_threshold": 64},
    ],
)
def test_forest_matches_lightgbm(params: dict) -> None:
    d = data()
    X = d.X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.05] = np.nan  # train with missing values too
    # Depth-limited as riskflow trains (its trees fit the branch-free kernel).
    booster = _booster({"max_depth": 8, **params}, X, d.y, list(d.categorical))
    forest = Forest.from_model_string(booster.model_to_string())
    Xt = _nasty(d.X[:2000], seed=1)
    Xt[180:200, :] = 1e-36  # inside LightGBM's zero band (zero_as_missing)
    Xt[200:220, :] = -1e-36
    expected = booster.predict(Xt, raw_score=True)
    np.testing.assert_allclose(forest.predict_raw(Xt), expected, rtol=0, atol=1e-9)
    assert forest.num_trees == booster.num_trees()
    # Both kernels reach the same leaves: the same bits, at every batch size.
    assert forest.heap is not None
    walk = forest.predict_raw(Xt, runtime="walk")
    np.testing.assert_array_equal(forest.predict_raw(Xt, runtime="heap"), walk)
    for n in (1, 3, 4, 16, 17, 65, 200):
        np.testing.assert_array_equal(forest.predict_raw(Xt[:n]), walk[:n])
        np.testing.assert_array_equal(forest.predict_raw(Xt[:n], runtime="heap"), walk[:n])
    if heap_gather.AVAILABLE:
        # The AVX-512 kernel (what serves from 16 rows) and the scalar heap
        # kernel: the same bits, at every batch size, a row's value alone.
        for n in (1, 5, 16, 63, 64, 65, 2000):
            rows = forest._rows(Xt[-n:])
            np.testing.assert_array_equal(
                forest.heap.predict_raw(rows, forest.cat_words, gather=True), walk[-n:]
            )
            np.testing.assert_array_equal(
                forest.heap.predict_raw(rows, forest.cat_words, gather=False), walk[-n:]
            )


def test_member_runtimes_agree_and_single_rows_work() -> None:
    d = data()
    tr, va, te = split(d)
    m = LightGBMMember(num_boost_round=40).fit(
        d.X[tr], d.y[tr], d.X[va], d.y[va], feature_names=d.feature_names, categorical=d.categorical
    )
    Xt = _nasty(d.X[te], seed=2)
    a = m.decision_function(Xt, runtime="lightgbm")
    b = m.decision_function(Xt, runtime="compiled")
    np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_allclose(m.decision_function(Xt[:1]), a[:1], atol=1e-9)
    assert m.decision_function(Xt[:0]).shape == (0,)


def test_trees_too_deep_for_the_heap_are_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    import riskflow.models._heap_trees as heap_trees

    d = data()
    booster = _booster({}, d.X, d.y, list(d.categorical), rounds=5)
    monkeypatch.setattr(heap_trees, "MAX_DEPTH", 2)
    forest = Forest.from_model_string(booster.model_to_string())
    assert forest.heap is None  # 15 leaves cannot fit 2 levels
    Xt = _nasty(d.X[:300], seed=3)
    np.testing.assert_allclose(
        forest.predict_raw(Xt), booster.predict(Xt, raw_score=True), rtol=0, atol=1e-9
    )
    with pytest.raises(ValueError, match="deeper than"):
        forest.predict_raw(Xt, runtime="heap")
    with pytest.raises(ValueError, match="runtime"):
        forest.predict_raw(Xt, runtime="fast")


def test_float32_thresholds_decide_as_float64() -> None:
    from riskflow.models._heap_trees import _round_down_f32

    rng = np.random.default_rng(0)
    t = np.concatenate(
        [
            rng.standard_normal(2000) * 10.0 ** rng.integers(-40, 40, 2000),
            [0.0, -0.0, np.inf, -np.inf, 1e300, -1e300, 1e-320, 1.5, np.float32(0.1)],
        ]
    )
    t32 = _round_down_f32(t)
    with np.errstate(over="ignore"):  # the float32 next to +-FLT_MAX is +-inf
        up, down = np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf))
    x = np.concatenate([t32, up, down]).astype(np.float32)
    x = np.concatenate([x, [np.nan, np.inf, -np.inf, 0.0]]).astype(np.float32)
    for ti, t32i in zip(t, t32, strict=True):
        np.testing.assert_array_equal(x <= t32i, x.astype(np.float64) <= ti)


def test_single_leaf_trees() -> None:
    d = data()
    booster = _booster({"min_data_in_leaf": 100_000}, d.X, d.y, [], rounds=3)  # no split possible
    forest = Forest.from_model_string(booster.model_to_string())
    np.testing.assert_allclose(
        forest.predict_raw(d.X[:10]), booster.predict(d.X[:10], raw_score=True), atol=1e-12
    )
    np.testing.assert_array_equal(
        forest.predict_raw(d.X[:10], runtime="heap"), forest.predict_raw(d.X[:10], runtime="walk")
    )


def test_wrong_width_and_unsupported_models() -> None:
    d = data()
    booster = _booster({}, d.X, d.y, [], rounds=2)
    forest = Forest.from_model_string(booster.model_to_string())
    with pytest.raises(ValueError, match="feature columns"):
        forest.predict_raw(d.X[:, :3])
    linear = _booster({"linear_tree": True}, np.nan_to_num(d.X[:, :4]), d.y, [], rounds=2)
    with pytest.raises(ArtifactError, match="linear"):
        Forest.from_model_string(linear.model_to_string())
