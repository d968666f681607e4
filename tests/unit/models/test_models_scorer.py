"""Hot reload: every batch is scored once, by exactly one version, and says which."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from models_testkit import data, fit, fitted

from riskflow.models import Scorer, load_model, save_model


def test_swap_under_concurrent_scoring(tmp_path: Path) -> None:
    a = fitted(0)
    b = fit(1)
    save_model(a, tmp_path / "a")
    save_model(b, tmp_path / "b")
    assert a.version != b.version
    X = data().X
    expected = {a.version: a.predict_proba(X), b.version: b.predict_proba(X)}
    scorer = Scorer(a)
    batches = [np.arange(i, i + 37) for i in range(0, 3700, 37)]
    results: list = []
    stop = threading.Event()
    running = threading.Event()

    def swapper() -> None:
        models = [b, a]
        i = 0
        while not stop.is_set():
            scorer.swap(models[i % 2])
            i += 1
            running.set()

    t = threading.Thread(target=swapper)
    t.start()
    try:
        assert running.wait(10)
        # Whole rounds over the data until both versions have scored batches:
        # how the GIL interleaves the threads is up to the OS (one CI run saw
        # 100 batches all on one version), so the round count is not fixed.
        for _round in range(50):
            for rows in batches:
                results.append((rows, scorer.score(X[rows])))
            if len({out.version for _, out in results}) == 2:
                break
    finally:
        stop.set()
        t.join()
    seen = {out.version for _, out in results}
    assert seen == {a.version, b.version}  # the swaps really happened mid-stream
    rounds = len(results) // len(batches)
    assert len(results) == rounds * len(batches)  # nothing dropped, nothing scored twice
    scored_rows = np.concatenate([rows for rows, _ in results])
    assert np.array_equal(np.bincount(scored_rows, minlength=3700), np.full(3700, rounds))
    for rows, out in results:
        # The whole batch came from the version it reports (BLAS may round
        # the last bit differently by batch shape; versions differ far more).
        np.testing.assert_allclose(out.scores, expected[out.version][rows], rtol=1e-12, atol=0)
    assert sum(scorer.batches_by_version.values()) == len(results)


def test_reload_if_changed_picks_up_a_new_version(tmp_path: Path) -> None:
    path = tmp_path / "model"
    save_model(fitted(0), path, catalogue_hash="cat")
    scorer = Scorer.from_path(path, expected_catalogue_hash="cat")
    v1 = scorer.version
    assert scorer.reload_if_changed() is False  # nothing new
    new = fit(1)
    save_model(new, path, catalogue_hash="cat")
    assert scorer.reload_if_changed() is True
    assert scorer.version == new.version != v1
    X = data().X[:50]
    np.testing.assert_array_equal(scorer.score(X).scores, load_model(path).predict_proba(X))


def test_bad_new_artifact_keeps_the_old_model(tmp_path: Path) -> None:
    path = tmp_path / "model"
    save_model(fitted(0), path, catalogue_hash="cat")
    scorer = Scorer.from_path(path, expected_catalogue_hash="cat")
    v1 = scorer.version
    save_model(fit(1), path, catalogue_hash="other-catalogue")
    assert scorer.reload_if_changed() is False
    assert scorer.version == v1
    assert "feature catalogue" in (scorer.last_reload_error or "")
    assert scorer.score(data().X[:3]).version == v1


def test_swap_checks_width() -> None:
    from riskflow.models import Ensemble

    d = data()
    narrow = Ensemble(members=("lightgbm",), lgbm_params={"num_boost_round": 5}).fit(
        d.X[:3000, :6], d.y[:3000], d.X[3000:, :6], d.y[3000:], feature_names=d.feature_names[:6]
    )
    with pytest.raises(ValueError, match="features"):
        Scorer(fitted()).swap(narrow)
