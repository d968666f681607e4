"""MLP member: the serving paths agree with torch; preprocessing handles absent and unseen values."""

from __future__ import annotations

import numpy as np
import pytest
from models_testkit import data, fitted, split

from riskflow.models._mlp import MLPMember


def _member() -> MLPMember:
    return fitted().members_["mlp"]


def _nasty(X: np.ndarray) -> np.ndarray:
    Xt = X.copy()
    rng = np.random.default_rng(3)
    Xt[rng.random(Xt.shape) < 0.2] = np.nan
    Xt[:20, -2] = 123_456.0  # unseen category
    Xt[20:40, 0] = np.inf
    Xt[40:60, 1] = -1e12
    return Xt


def test_fused_blas_and_torch_agree() -> None:
    m = _member()
    X = _nasty(data().X[:500])
    torch_out = m.decision_function(X, runtime="torch")
    np.testing.assert_allclose(m.decision_function(X, runtime="blas"), torch_out, atol=1e-4)
    np.testing.assert_allclose(
        m.decision_function(X, runtime="fused"), m.decision_function(X, runtime="blas"), atol=1e-9
    )
    # The default picks by batch size; both sides of the switch give the same numbers.
    for n in (1, 7, 8, 9, 100):
        np.testing.assert_allclose(m.decision_function(X[:n]), torch_out[:n], atol=1e-4)
    assert np.isfinite(torch_out).all()


def test_serving_scores_are_bit_identical_whatever_the_batch() -> None:
    # Stream micro-batches and replay chunks must give a transaction the same
    # score to the last bit: a row alone, in a batch of 64 or 1024, anywhere.
    m = _member()
    d = data()
    X = _nasty(np.concatenate([d.X, d.X])[:1024])
    full = m.decision_function(X).view(np.int64)
    for lo, hi in ((0, 1), (1023, 1024), (500, 501), (0, 64), (37, 101), (960, 1024)):
        np.testing.assert_array_equal(m.decision_function(X[lo:hi]).view(np.int64), full[lo:hi])
    shuffled = np.random.default_rng(0).permutation(1024)
    np.testing.assert_array_equal(m.decision_function(X[shuffled]).view(np.int64), full[shuffled])


def test_unseen_and_absent_categories_share_the_unknown_embedding() -> None:
    m = _member()
    X = np.repeat(data().X[:1], 3, axis=0)
    X[0, -2] = 123_456.0
    X[1, -2] = np.nan
    X[2, -2] = -1.0
    out = m.decision_function(X)
    assert out[0] == pytest.approx(out[1]) == pytest.approx(out[2])


def test_rebuilt_from_state_is_identical() -> None:
    m = _member()
    again = MLPMember.from_state(m.config(), m.state_dict())
    X = _nasty(data().X[:300])
    np.testing.assert_array_equal(again.decision_function(X), m.decision_function(X))


def test_training_is_reproducible_and_learns() -> None:
    from sklearn.metrics import roc_auc_score

    d = data()
    tr, va, te = split(d)
    kw = {"max_epochs": 3, "hidden": (16,), "seed": 5}
    a = MLPMember(**kw).fit(d.X[tr], d.y[tr], d.X[va], d.y[va], categorical=d.categorical)
    b = MLPMember(**kw).fit(d.X[tr], d.y[tr], d.X[va], d.y[va], categorical=d.categorical)
    np.testing.assert_array_equal(a.decision_function(d.X[te]), b.decision_function(d.X[te]))
    assert roc_auc_score(d.y[te], a.decision_function(d.X[te])) > 0.6


def test_wrong_width() -> None:
    with pytest.raises(ValueError, match="feature columns"):
        _member().decision_function(data().X[:5, :4])


def test_large_training_sets_keep_every_fraud() -> None:
    d = data()
    m = MLPMember(max_rows=1000, seed=3)
    X, y = m._subsample(d.X, d.y)
    assert len(y) == 1000 and int(y.sum()) == int(d.y.sum())
    X2, _ = MLPMember(max_rows=1000, seed=3)._subsample(d.X, d.y)
    np.testing.assert_array_equal(X, X2)
