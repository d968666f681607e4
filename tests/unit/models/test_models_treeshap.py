"""The compiled TreeSHAP equals LightGBM's pred_contrib, row by row, whatever the batch."""

from __future__ import annotations

import numpy as np
import pytest
from models_testkit import data, fitted, split
from test_models_trees import _booster, _nasty

from riskflow.errors import ArtifactError
from riskflow.models._trees import Forest


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"zero_as_missing": True},
        {"use_missing": False},
        {"max_cat_to_onehot": 64},
        {"num_leaves": 63, "max_depth": -1, "min_data_in_leaf": 2},  # deep paths, repeated features
    ],
)
def test_contributions_equal_pred_contrib(params: dict) -> None:
    d = data()
    X = d.X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.05] = np.nan
    booster = _booster(params, X, d.y, list(d.categorical))
    forest = Forest.from_model_string(booster.model_to_string())
    Xt = _nasty(d.X[:600], seed=3)
    ref = booster.predict(Xt, pred_contrib=True)
    ours = forest.contributions(Xt)
    scale = np.abs(ref).max(axis=1, keepdims=True)
    np.testing.assert_allclose(ours / scale, ref / scale, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours[:, -1], ref[:, -1])  # same expected value
    np.testing.assert_allclose(ours.sum(axis=1), forest.predict_raw(Xt), atol=1e-9)


def test_a_row_is_explained_the_same_alone_or_in_any_batch() -> None:
    d = data()
    booster = _booster({}, d.X, d.y, list(d.categorical))
    forest = Forest.from_model_string(booster.model_to_string())
    Xt = _nasty(d.X[:1024], seed=4)
    full = forest.contributions(Xt)
    for lo, hi in ((0, 1), (517, 518), (64, 128), (1000, 1024)):
        np.testing.assert_array_equal(forest.contributions(Xt[lo:hi]), full[lo:hi])


def test_single_leaf_trees_only_add_to_the_bias() -> None:
    d = data()
    booster = _booster({"min_data_in_leaf": 100_000}, d.X, d.y, [], rounds=3)
    forest = Forest.from_model_string(booster.model_to_string())
    np.testing.assert_allclose(
        forest.contributions(d.X[:5]), booster.predict(d.X[:5], pred_contrib=True), atol=1e-12
    )


def test_member_runtimes_give_the_same_reason_codes() -> None:
    m = fitted()
    d = data()
    _, _, te = split(d)
    X = _nasty(d.X[te], seed=5)
    lgbm = m.members_["lightgbm"]
    a = lgbm.contributions(X, runtime="compiled")
    b = lgbm.contributions(X, runtime="lightgbm")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # Threads split the rows; every row's values stay the same.
    np.testing.assert_array_equal(lgbm.contributions(X, num_threads=2, runtime="compiled"), a)
    top_a = np.argsort(-a[:, :-1], axis=1, kind="stable")[:, :3]
    top_b = np.argsort(-b[:, :-1], axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(top_a, top_b)
    with pytest.raises(ValueError, match="runtime"):
        lgbm.contributions(X, runtime="fast")


def test_a_model_text_without_counts_falls_back_to_lightgbm() -> None:
    d = data()
    booster = _booster({}, d.X, d.y, [], rounds=2)
    text = "\n".join(
        line
        for line in booster.model_to_string().splitlines()
        if not line.startswith(("leaf_count=", "internal_count="))
    )
    forest = Forest.from_model_string(text)
    assert not forest.explains
    with pytest.raises(ArtifactError, match="pred_contrib"):
        forest.contributions(d.X[:2])
