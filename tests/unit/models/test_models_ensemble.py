"""Ensemble: reproducible, calibrated, explainable."""

from __future__ import annotations

import numpy as np
import pytest
from models_testkit import FAST_LGBM, FAST_MLP, data, fit, fitted, split

from riskflow import metrics
from riskflow.models import Calibrator, Ensemble


def test_training_is_reproducible() -> None:
    d = data()
    _, _, te = split(d)
    a, b = fitted(0), fit(0)
    pa, ma = a.score(d.X[te])
    pb, mb = b.score(d.X[te])
    np.testing.assert_array_equal(pa, pb)
    for name in ma:
        np.testing.assert_array_equal(ma[name], mb[name])
    assert a.members_["lightgbm"].model_text_ == b.members_["lightgbm"].model_text_


def test_output_is_a_probability_and_ranks_like_the_blend() -> None:
    d = data()
    _, _, te = split(d)
    m = fitted()
    p = m.predict_proba(d.X[te])
    assert p.dtype == np.float64 and p.shape == (te.stop - te.start,)
    assert ((p >= 0) & (p <= 1)).all()
    s = m.blend_scores(d.X[te])
    # Calibration is strictly monotone: the ranking metrics are the blend's.
    assert metrics.average_precision(d.y[te], p) == pytest.approx(
        metrics.average_precision(d.y[te], s)
    )
    assert metrics.roc_auc(d.y[te], p) > 0.7


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_improves_brier_on_held_out_data(method: str) -> None:
    d = data()
    _, _, te = split(d)
    m = fitted()
    # The members over-weight frauds (imbalance handling), so their own sigmoid
    # over-states risk; the calibrated ensemble must do better on unseen rows.
    va = split(d)[1]
    s_valid = m.blender_.transform(np.column_stack(list(m.predict_members(d.X[va]).values())))
    cal = Calibrator(method).fit(s_valid, d.y[va])
    p = cal.predict(m.blend_scores(d.X[te]))
    calibrated = metrics.brier_score(d.y[te], p)
    for raw in m.predict_members(d.X[te]).values():
        assert calibrated < metrics.brier_score(d.y[te], 1 / (1 + np.exp(-raw)))
    uncalibrated = 1 / (1 + np.exp(-m.blend_scores(d.X[te])))
    assert calibrated < metrics.brier_score(d.y[te], uncalibrated)


def test_isotonic_calibration_keeps_ties_broken() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-(2 * s - 3)))).astype(int)
    c = Calibrator("isotonic").fit(s, y)
    grid = np.linspace(-4, 4, 500)
    p = c.predict(grid)
    assert (np.diff(p) > 0).all()
    assert ((p >= 0) & (p <= 1)).all()


def test_reason_codes_name_real_features_with_signs_of_the_contributions() -> None:
    d = data()
    _, _, te = split(d)
    m = fitted()
    X = d.X[te]
    p = m.predict_proba(X)
    rows = np.argsort(-p)[:25]
    codes = m.reason_codes(X, rows, k=3)
    contrib = m.contributions(X[rows])
    # SHAP contributions add up to the LightGBM member's raw score.
    np.testing.assert_allclose(
        contrib.sum(axis=1), m.predict_members(X[rows])["lightgbm"], atol=1e-6
    )
    assert len(codes) == len(rows)
    for r, row_codes in enumerate(codes):
        assert 1 <= len(row_codes) <= 3
        values = [c["contribution"] for c in row_codes]
        assert values == sorted(values, reverse=True) and min(values) > 0
        positive = np.sort(contrib[r, :-1][contrib[r, :-1] > 0])[::-1]
        np.testing.assert_allclose(values, positive[: len(values)])
        for c in row_codes:
            j = d.feature_names.index(c["feature"])
            assert c["description"] == d.descriptions[j]
            assert c["contribution"] == pytest.approx(contrib[r, j])
    assert m.reason_codes(X, [], k=3) == []


def test_top_reasons_equal_a_stable_sort_of_the_contributions(monkeypatch) -> None:
    """Explained in blocks across threads, the top k equal a stable sort of the full matrix."""
    import riskflow.models._lgbm as lgbm

    d = data()
    _, _, te = split(d)
    m = fitted()
    X = d.X[te][:300]
    contrib = m.contributions(X)[:, :-1]
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :4]
    c_top = np.take_along_axis(contrib, order, axis=1)
    monkeypatch.setattr(lgbm, "_TOP_BLOCK", 7)  # blocks end mid-slice, slices mid-block
    top = m.top_reasons(X, None, k=4, num_threads=3)
    np.testing.assert_array_equal(top.feature, np.where(c_top > 0, order, -1))
    np.testing.assert_array_equal(top.contribution, np.where(c_top > 0, c_top, 0.0))
    v_top = np.take_along_axis(X, order, axis=1).astype(np.float64)
    np.testing.assert_array_equal(top.value, np.where(c_top > 0, v_top, np.nan))
    assert (top.feature == -1).any() or (c_top > 0).all()
    assert m.top_reasons(X, [], k=2).feature.shape == (0, 2)


def test_inputs_are_checked() -> None:
    d = data()
    tr, va, _ = split(d)
    with pytest.raises(ValueError, match="both frauds"):
        Ensemble().fit(
            d.X[tr], np.zeros(tr.stop, int), d.X[va], d.y[va], feature_names=d.feature_names
        )
    with pytest.raises(ValueError, match="members"):
        Ensemble(members=("xgboost",)).fit(
            d.X[tr], d.y[tr], d.X[va], d.y[va], feature_names=d.feature_names
        )
    with pytest.raises(ValueError, match="expects 12"):
        fitted().predict_proba(d.X[:3, :5])


def test_single_member_and_stacking() -> None:
    d = data()
    tr, va, te = split(d)
    lone = Ensemble(members=("lightgbm",), lgbm_params=FAST_LGBM).fit(
        d.X[tr], d.y[tr], d.X[va], d.y[va], feature_names=d.feature_names, kinds=d.kinds
    )
    assert list(lone.predict_members(d.X[te])) == ["lightgbm"]
    stacked = Ensemble(
        blend="stacking", calibration="platt", lgbm_params=FAST_LGBM, mlp_params=FAST_MLP
    ).fit(d.X[tr], d.y[tr], d.X[va], d.y[va], feature_names=d.feature_names, kinds=d.kinds)
    assert metrics.roc_auc(d.y[te], stacked.predict_proba(d.X[te])) > 0.7


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_compiled_blend_and_calibration_match_numpy(method: str) -> None:
    from riskflow.models._calibration import Blender, blend_and_calibrate

    rng = np.random.default_rng(1)
    Z = rng.normal(size=(3000, 2)) + rng.random((3000, 1)) * 2
    y = (rng.random(3000) < 1 / (1 + np.exp(-(Z.sum(axis=1) - 4)))).astype(int)
    b = Blender("weighted").fit(Z[:2000], y[:2000])
    c = Calibrator(method).fit(b.transform(Z[:2000]), y[:2000])
    Zt = np.vstack([Z[2000:], [[-50.0, -50.0], [50.0, 50.0]]])  # beyond the curve's ends too
    np.testing.assert_allclose(
        blend_and_calibrate(Zt, b, c), c.predict(b.transform(Zt)), rtol=0, atol=1e-12
    )


def test_blend_weights_stay_even_when_validation_cannot_tell_members_apart() -> None:
    from riskflow.models._calibration import Blender

    rng = np.random.default_rng(3)
    y = (rng.random(20_000) < 0.005).astype(int)  # ~100 frauds, as in a real validation week
    signal = 2.0 * y
    # Two members of equal quality: their AP difference on this sample is noise.
    Z = np.column_stack([signal + rng.normal(size=y.size), signal + rng.normal(size=y.size)])
    b = Blender("weighted").fit(Z, y)
    assert b.valid_ap_se_ > 0
    assert abs(b.weights_[0] - 0.5) < 1e-9
    # A member that is pure noise is still dropped: the rule only absorbs noise.
    Z_bad = np.column_stack([rng.normal(size=y.size), signal + rng.normal(size=y.size)])
    assert Blender("weighted").fit(Z_bad, y).weights_[0] < 0.3


def test_lightgbm_undersamples_legitimate_rows_only() -> None:
    from riskflow.models._lgbm import LightGBMMember

    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 3)).astype(np.float32)
    y = (rng.random(4000) < 0.05).astype(int)
    X[y == 1, 0] += 2.0
    kw = dict(num_boost_round=5, early_stopping_rounds=5, params={"min_data_in_leaf": 5})
    m = LightGBMMember(negative_rate=0.25, **kw).fit(X, y, X, y, feature_names=["a", "b", "c"])
    full = LightGBMMember(negative_rate=None, **kw).fit(X, y, X, y, feature_names=["a", "b", "c"])
    neg = int((y == 0).sum())
    # scale_pos_weight is sqrt(neg/pos) of the rows actually trained on.
    assert m.scale_pos_weight_ == pytest.approx(np.sqrt(0.25 * neg / y.sum()), rel=0.15)
    assert full.scale_pos_weight_ == pytest.approx(np.sqrt(neg / y.sum()))
    with pytest.raises(ValueError, match="negative_rate"):
        LightGBMMember(negative_rate=0.0).fit(X, y, X, y, feature_names=["a", "b", "c"])


def test_platt_never_inverts_the_ranking_on_contrary_validation() -> None:
    # Validation frauds that happen to sit at low scores would give a negative slope.
    s = np.array([-3.0, -2.5, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    c = Calibrator("platt").fit(s, y)
    p = c.predict(np.array([-1.0, 0.0, 5.0]))
    assert p[0] < p[1] < p[2]  # still increasing in the blend
    assert np.allclose(p, y.mean(), atol=1e-4)  # and flat at the base rate


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_give_the_same_bits(threads: int) -> None:
    """Row slices scored side by side equal one thread's scores to the last bit."""
    d = data()
    m = fitted()
    X = d.X[:1001]  # slices of unequal length
    p1, members1 = m.score(X)
    spent: dict[str, float] = {}
    m.num_threads = threads
    try:
        p2, members2 = m.score(X, timings=spent)
        small = m.predict_proba(X[:40])  # below MIN_ROWS_PER_THREAD per thread: one slice
    finally:
        m.num_threads = 1
    np.testing.assert_array_equal(p1, p2)
    for name in members1:
        np.testing.assert_array_equal(members1[name], members2[name])
        assert members2[name].flags.c_contiguous
    np.testing.assert_array_equal(small, p1[:40])
    assert set(spent) == {*members1, "blend_calibrate"} and all(v > 0 for v in spent.values())


def test_split_rows_slices_and_propagates_errors() -> None:
    from riskflow.models._threads import split_rows

    seen: list[int] = []

    def fn(rows: np.ndarray) -> np.ndarray:
        seen.append(rows.shape[0])
        if rows[0, 0] >= 50:
            raise RuntimeError("kernel failed")
        return rows[:, 0] * 2

    X = np.arange(40.0).reshape(40, 1)
    np.testing.assert_array_equal(split_rows(fn, X, threads=4, min_rows=10), X[:, 0] * 2)
    assert sorted(seen) == [10, 10, 10, 10]
    seen.clear()
    assert split_rows(fn, X, threads=4, min_rows=15).shape == (40,)
    assert sorted(seen) == [20, 20]  # no slice below min_rows
    with pytest.raises(RuntimeError, match="kernel failed"):
        split_rows(fn, np.arange(100.0).reshape(100, 1), threads=2, min_rows=10)
