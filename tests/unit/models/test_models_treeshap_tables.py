"""Fast TreeSHAP v2 tables: right entry by entry, and the same values as the path algorithm."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from itertools import combinations
from math import factorial
from pathlib import Path

import numpy as np
import pytest
from models_testkit import data
from test_models_trees import _booster, _nasty

from riskflow.models._tree_rules import go_left
from riskflow.models._trees import Forest
from riskflow.models._treeshap_tables import MAX_TABLE_FEATURES, build_shap_tables

ROOT = Path(__file__).resolve().parents[3]


def _forest(params: dict, rounds: int = 30) -> Forest:
    d = data()
    X = d.X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.05] = np.nan  # missing values in training
    booster = _booster(params, X, d.y, list(d.categorical), rounds=rounds)
    return Forest.from_model_string(booster.model_to_string())


def _tables(forest: Forest, max_features: int) -> Forest:
    """The same forest with tables built under another per-leaf limit (0 = none)."""
    tables = build_shap_tables(
        forest.node_offset,
        forest.leaf_offset,
        forest.feature,
        forest.left,
        forest.right,
        forest.node_count,
        forest.leaf_count,
        forest.leaf_value,
        max_features=max_features,
    )
    return dataclasses.replace(forest, shap_tables=tables)


def _leaf_paths(forest: Forest, t: int) -> list[tuple[int, list[tuple[int, int, bool]]]]:
    """(leaf, [(node, child, went_left), ...] root first) for every leaf of tree ``t``."""
    nb = int(forest.node_offset[t])
    out, stack = [], [(0, [])]
    while stack:
        node, path = stack.pop()
        j = nb + node
        for child, went_left in ((int(forest.left[j]), True), (int(forest.right[j]), False)):
            step = [*path, (j, child, went_left)]
            if child >= 0:
                stack.append((child, step))
            else:
                out.append((~child, step))
    return out


def _path_zeros(forest: Forest, t: int, path: list[tuple[int, int, bool]]) -> dict[int, float]:
    """Each unique feature's product of cover ratios along a leaf's path."""
    nb, lb = int(forest.node_offset[t]), int(forest.leaf_offset[t])
    assert forest.node_count is not None and forest.leaf_count is not None
    z: dict[int, float] = {}
    for j, child, _ in path:
        count = forest.node_count[nb + child] if child >= 0 else forest.leaf_count[lb + ~child]
        f = int(forest.feature[j])
        z[f] = z.get(f, 1.0) * float(count / forest.node_count[j])
    return z


def _slow_shap(forest: Forest, x: np.ndarray) -> np.ndarray:
    """Path-dependent SHAP values from the Shapley formula itself, every subset enumerated."""
    F = forest.num_features
    assert forest.expected is not None
    phi = np.zeros(F + 1)
    phi[F] = forest.expected.sum()
    for t in range(forest.num_trees):
        if forest.node_offset[t + 1] == forest.node_offset[t]:
            continue
        for leaf, path in _leaf_paths(forest, t):
            v = float(forest.leaf_value[forest.leaf_offset[t] + leaf])
            z = _path_zeros(forest, t, path)
            o = dict.fromkeys(z, 1.0)
            for j, _, went_left in path:
                f = int(forest.feature[j])
                rule = go_left(
                    x[f], j, forest.threshold, forest.decision, forest.cat_start,
                    forest.cat_len, forest.cat_words,
                )  # fmt: skip
                if rule != went_left:
                    o[f] = 0.0

            def value(
                S: set[int], v: float = v, z: dict[int, float] = z, o: dict[int, float] = o
            ) -> float:
                return v * float(np.prod([o[j] if j in S else z[j] for j in z]))

            d = len(z)
            for i in z:
                rest = [j for j in z if j != i]
                for k in range(d):
                    w = factorial(k) * factorial(d - k - 1) / factorial(d)
                    for S in combinations(rest, k):
                        phi[i] += w * (value({*S, i}) - value(set(S)))
    return phi


PARAMS = [
    {},  # 15 leaves, no depth limit: a few trees past the table limit
    {"num_leaves": 31, "max_depth": 6},  # riskflow's default shape
    {"zero_as_missing": True},
    {"use_missing": False},
    {"max_cat_to_onehot": 64},
    {"num_leaves": 63, "max_depth": -1, "min_data_in_leaf": 2},  # deep paths, repeated features
]


@pytest.mark.parametrize(
    "params",
    [
        {"num_leaves": 8},
        {"num_leaves": 8, "zero_as_missing": True},
        {"num_leaves": 8, "use_missing": False, "max_cat_to_onehot": 64},
        {"num_leaves": 12, "max_depth": -1, "min_data_in_leaf": 2},  # repeated features on paths
    ],
)
def test_tables_equal_the_shapley_formula(params: dict) -> None:
    forest = _forest(params, rounds=6)
    assert forest.shap_tables is not None and forest.shap_tables.tree_table.all()
    X = _nasty(data().X[:200], seed=7)[::10]  # NaNs, zeros, unseen and odd categories
    ours = forest.contributions(X)
    for row, x in zip(ours, X, strict=True):
        np.testing.assert_allclose(row, _slow_shap(forest, x), rtol=0, atol=1e-12)


def test_each_table_entry_is_its_weighted_subset_sum() -> None:
    forest = _forest({"num_leaves": 12, "max_depth": -1, "min_data_in_leaf": 2}, rounds=4)
    tables = forest.shap_tables
    assert tables is not None
    checked = 0
    for t in range(forest.num_trees):
        lb = int(forest.leaf_offset[t])
        for leaf, path in _leaf_paths(forest, t):
            g = lb + leaf
            z = list(_path_zeros(forest, t, path).items())  # first occurrence order = slots
            d, s0, k0 = (
                int(tables.leaf_width[g]),
                int(tables.leaf_slot[g]),
                int(tables.leaf_table[g]),
            )
            assert d == len(z)
            assert tables.slot_feature[s0 : s0 + d].tolist() == [f for f, _ in z]
            np.testing.assert_allclose(tables.slot_zero[s0 : s0 + d], [v for _, v in z], rtol=1e-15)
            np.testing.assert_allclose(
                tables.slot_scale[s0 : s0 + d], [(1 - v) / v for _, v in z], rtol=1e-14
            )
            value = forest.leaf_value[g]
            for a in range((1 << d) - 1):
                A = [s for s in range(d) if a >> s & 1]
                outside = value * float(np.prod([z[s][1] for s in range(d) if s not in A]))
                want = outside * sum(
                    factorial(len(S)) * factorial(d - len(S) - 1) / factorial(d)
                    * float(np.prod([z[s][1] for s in A if s not in S]))
                    for k in range(len(A) + 1)
                    for S in combinations(A, k)
                )  # fmt: skip
                assert tables.table[k0 + a] == pytest.approx(want, rel=1e-14, abs=0)
                checked += 1
    assert checked > 100


@pytest.mark.parametrize("params", PARAMS)
def test_tables_equal_the_path_algorithm_on_many_rows(params: dict) -> None:
    forest = _forest(params)
    tables = forest.shap_tables
    assert tables is not None
    assert tables.tree_table.any()
    if params.get("max_depth", -1) > 0:
        assert tables.tree_table.all()  # a depth-limited model: every tree from its table
    path = _tables(forest, 0)
    assert path.shap_tables is not None and not path.shap_tables.tree_table.any()
    X = _nasty(data().X[:3000], seed=11)
    fast, slow = forest.contributions(X), path.contributions(X)
    scale = np.abs(slow).max(axis=1, keepdims=True)
    np.testing.assert_allclose(fast / scale, slow / scale, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(fast[:, -1], slow[:, -1])
    # What reason codes read: the signs and the top 3 (values apart by more than rounding).
    clear = np.abs(slow) > 1e-12 * scale
    np.testing.assert_array_equal(np.sign(fast)[clear], np.sign(slow)[clear])
    top_fast = np.argsort(-fast[:, :-1], axis=1, kind="stable")[:, :3]
    top_slow = np.argsort(-slow[:, :-1], axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(top_fast, top_slow)


def test_trees_past_the_limit_keep_the_path_algorithm() -> None:
    forest = _forest({"num_leaves": 63, "max_depth": -1, "min_data_in_leaf": 2})
    mixed = _tables(forest, 9)
    tables = mixed.shap_tables
    assert tables is not None
    assert 0 < tables.tree_table.sum() < forest.num_trees  # both kinds of tree in one model
    for t in np.flatnonzero(tables.tree_table == 0):
        lo, hi = forest.leaf_offset[t], forest.leaf_offset[t + 1]
        assert not tables.leaf_width[lo:hi].any()  # no table memory for them
    assert tables.leaf_width.max() <= 9
    wider = _tables(forest, 12).shap_tables
    assert wider is not None and wider.tree_table.sum() > tables.tree_table.sum()
    X = _nasty(data().X[:1000], seed=12)
    ref = forest.contributions(X)
    scale = np.abs(ref).max(axis=1, keepdims=True)
    np.testing.assert_allclose(mixed.contributions(X) / scale, ref / scale, rtol=0, atol=1e-13)


def test_a_wrong_table_entry_changes_the_values() -> None:
    """The tables are what the kernel reads: a test comparing values would catch a bad one."""
    forest = _forest({})
    tables = forest.shap_tables
    assert tables is not None
    X = _nasty(data().X[:300], seed=13)
    good = forest.contributions(X)
    for name in ("table", "slot_scale"):
        bad = getattr(tables, name).copy()
        bad[bad.size // 2] *= 1.001
        broken = dataclasses.replace(forest, shap_tables=tables._replace(**{name: bad}))
        assert np.abs(broken.contributions(X) - good).max() > 1e-9


def test_table_size_and_limits() -> None:
    forest = _forest({"max_depth": 4, "num_leaves": 15})
    tables = forest.shap_tables
    assert tables is not None
    assert tables.leaf_width.max() <= 4 <= MAX_TABLE_FEATURES
    assert tables.table.size == int((1 << tables.leaf_width).sum())
    assert tables.nbytes >= tables.table.nbytes + tables.slot_zero.nbytes
    with pytest.raises(ValueError, match="max_features.*\\[0, 20\\]. Got 21"):
        _tables(forest, 21)


def test_kernels_under_disable_jit_match_compiled(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, 'tests/unit/models')\n"
        "from models_testkit import data\n"
        "from test_models_trees import _booster, _nasty\n"
        "from riskflow.models._trees import Forest\n"
        "d = data()\n"
        "b = _booster({'num_leaves': 8}, d.X, d.y, list(d.categorical), rounds=3)\n"
        "f = Forest.from_model_string(b.model_to_string())\n"
        "assert f.shap_tables.tree_table.all()\n"
        "np.save(sys.argv[1], f.contributions(_nasty(d.X[:200], seed=3)))\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "py.npy")], env=env, check=True, cwd=ROOT
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "jit.npy")], check=True, cwd=ROOT)
    py, jit = np.load(tmp_path / "py.npy"), np.load(tmp_path / "jit.npy")
    np.testing.assert_allclose(py, jit, rtol=0, atol=1e-12)
