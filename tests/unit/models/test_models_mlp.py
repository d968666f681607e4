"""MLP member: the serving paths agree with torch; preprocessing handles absent and unseen values."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from models_testkit import data, fitted, split

from riskflow.models._mlp import MLPMember
from riskflow.models._mlp_kernels import _BLOCK_ROWS, _TILE

ROOT = Path(__file__).resolve().parents[3]


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
    np.testing.assert_allclose(
        m.decision_function(X, runtime="rowwise"), m.decision_function(X, runtime="blas"), atol=1e-9
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


@cache
def _wide() -> MLPMember:
    """Layers wider than the kernel's tile: 96 = a tile + 32 units, 64 = a tile, 1."""
    d = data()
    tr, va, _ = split(d)
    kw = {"hidden": (_TILE + 32, _TILE), "max_epochs": 1, "seed": 2}
    return MLPMember(**kw).fit(d.X[tr], d.y[tr], d.X[va], d.y[va], categorical=d.categorical)


def _awkward_rows(n: int) -> np.ndarray:
    """Rows with absent values, exact zeros, an absent row, and unseen categories."""
    d = data()
    X = _nasty(np.concatenate([d.X, d.X])[:n])
    rng = np.random.default_rng(n)
    X[rng.random(X.shape) < 0.1] = 0.0
    X[n // 2] = np.nan
    return X


@pytest.mark.parametrize("wide", [False, True], ids=["small", "wide"])
@pytest.mark.parametrize("n", [1, 7, 33, 1000])
def test_blocked_kernel_equals_each_row_alone(wide: bool, n: int) -> None:
    # The serving kernel scores rows in blocks and units in tiles; a row's
    # logit must still be bit-identical to that row scored alone and to the
    # per-row reference kernel, for batches that are not whole blocks.
    m = _wide() if wide else _member()
    assert n % _BLOCK_ROWS or n < _BLOCK_ROWS
    X = _awkward_rows(n)
    batch = m.decision_function(X).view(np.int64)
    alone = np.concatenate([m.decision_function(X[i : i + 1]) for i in range(n)]).view(np.int64)
    np.testing.assert_array_equal(batch, alone)
    np.testing.assert_array_equal(batch, m.decision_function(X, runtime="rowwise").view(np.int64))
    np.testing.assert_allclose(
        m.decision_function(X, runtime="torch"), batch.view(np.float64), atol=1e-4
    )


def test_blocked_kernel_interpreted_gives_the_same_bits(tmp_path: Path) -> None:
    # NUMBA_DISABLE_JIT=1: the kernel runs as Python on the vector helpers'
    # numpy twins (coverage, readable tracebacks); same numbers as compiled.
    code = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, 'tests/unit/models')\n"
        "from test_models_mlp import _awkward_rows, _wide\n"
        "np.save(sys.argv[1], _wide().decision_function(_awkward_rows(1000)[:40]))\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "py.npy")], env=env, check=True, cwd=ROOT
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "jit.npy")], check=True, cwd=ROOT)
    py, jit = np.load(tmp_path / "py.npy"), np.load(tmp_path / "jit.npy")
    np.testing.assert_array_equal(py.view(np.int64), jit.view(np.int64))


def test_kernel_log1p_is_within_an_ulp_of_numpy() -> None:
    # The input preparation's own log1p (branch-free, so its loop vectorises)
    # over every float32 magnitude the features can hold, and the edges.
    from numba import njit

    from riskflow.models._mlp_kernels import _log1p

    @njit(error_model="numpy")
    def each(a: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
        for i in range(a.size):
            out[i] = _log1p(a[i])

    rng = np.random.default_rng(1)
    f32 = rng.integers(0, 0x7F800000, 500_000).astype(np.uint32).view(np.float32)
    edges = [0.0, 5e-324, 1e-300, 2**-30, 0.4142135, 1.0, 2.0**53, 1e308, 3.4028235e38]
    a = np.concatenate([f32.astype(np.float64), np.abs(rng.standard_normal(100_000)), edges])
    out = np.empty_like(a)
    each(a, out)
    ref = np.log1p(a)
    assert (np.abs(out - ref) <= np.spacing(ref)).all()
    each(np.array([np.inf]), out[:1])
    assert out[0] == np.inf


def test_unseen_and_absent_categories_share_the_unknown_embedding() -> None:
    m = _member()
    X = np.repeat(data().X[:1], 3, axis=0)
    X[0, -2] = 123_456.0
    X[1, -2] = np.nan
    X[2, -2] = -1.0
    out = m.decision_function(X)
    assert out[0] == pytest.approx(out[1]) == pytest.approx(out[2])


def test_kernel_vectors_start_on_cache_lines() -> None:
    # A vector load that straddles two cache lines costs two: the first layer
    # ran ~1.5x slower with numpy's own (16- or 32-byte) alignment.
    # (An empty array, e.g. the panels of a layer narrower than a tile, is never read.)
    for fitted_member in (_member(), _wide()):
        m = MLPMember.from_state(fitted_member.config(), fitted_member.state_dict())
        for name in ("_w1_panels", "_wp_flat", "_b_first", "_b_flat"):
            a = getattr(m, name)
            assert a.size == 0 or a.ctypes.data % 64 == 0, name
    assert _wide()._w1_panels.size > 0


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


def test_vfma_rounds_once_and_its_twin_only_emulates_exact_products() -> None:
    # (1 + 2**-30) * (1 - 2**-30) = 1 - 2**-60: a multiply rounds it to 1, so
    # multiply-then-add gives 0 where the fused operation keeps -2**-60.
    from numba import njit

    from riskflow.models._simd import LANES, _vfma_twin, vfma, vload, vstore

    @njit
    def fused(acc: np.ndarray, s: float, w: np.ndarray) -> np.ndarray:  # pragma: no cover
        out = np.empty(LANES)
        vstore(out, 0, vfma(vload(acc, 0), s, vload(w, 0)))
        return out

    acc, w = np.full(LANES, -1.0), np.full(LANES, 1 - 2.0**-30)
    assert (fused(acc, 1 + 2.0**-30, w) == -(2.0**-60)).all()
    # float32 factors: the product is exact, so one rounding either way.
    w32 = np.linspace(-3, 3, LANES).astype(np.float32).astype(np.float64)
    s32 = float(np.float32(0.1))
    np.testing.assert_array_equal(fused(acc, s32, w32), _vfma_twin(acc, s32, w32))
    with pytest.raises(ValueError, match="float32-valued"):
        _vfma_twin(acc, 1 + 2.0**-30, w)


def test_non_finite_first_layer_weights_are_refused() -> None:
    # The serving kernel adds 0 * w for inputs only a row's group neighbours
    # have; that is a no-op only for finite weights.
    import torch

    from riskflow.errors import ArtifactError

    m = _member()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    first = next(k for k in state if k.startswith("mlp.") and k.endswith(".weight"))
    state[first][0, 0] = torch.inf
    with pytest.raises(ArtifactError, match="not all finite"):
        MLPMember.from_state(m.config(), state)
