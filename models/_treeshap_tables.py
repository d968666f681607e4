"""Per-leaf subset tables for Fast TreeSHAP v2, built once when a model loads.

Path-dependent TreeSHAP (what LightGBM's ``pred_contrib`` computes) gives a
leaf with value ``v`` whose path splits on the unique features ``U``
(``d = |U|``) the value function ``f(S) = v * prod_{j in S} o_j * prod_{j in U
minus S} z_j``: ``z_j`` is the product of the path's cover ratios at the
splits on ``j`` (training rows into the child over rows into the node), ``o_j``
is 1 if the row follows the path at every split on ``j``, else 0. With ``T``
the features the row follows, the leaf adds to feature ``i``::

    i in T:      (1 - z_i) * P(T) * K(T - {i})  =  (1 - z_i) / z_i * R(T - {i})
    i not in T:      -1   * P(T) * K(T)          =  -R(T)

where ``P(T) = v * prod_{j in U minus T} z_j``, ``K(A) = sum_{S subset of
A} |S|! (d - |S| - 1)! / d! * prod_{j in A minus S} z_j`` and ``R(A) = P(A) *
K(A)`` depend on the tree only. Yang, "Fast TreeSHAP: Accelerating SHAP Value
Computation for Trees" (2021, arXiv 2109.09847), Fast TreeSHAP v2: ``R`` is
tabulated for all
``2**d`` subsets of every leaf here, so a row costs O(leaves x depth) instead
of path-dependent TreeSHAP's O(leaves x depth**2) with its extend / unwind
arithmetic. The table grows as ``2**d``: a tree with a leaf past
``max_features`` unique path features keeps the path algorithm
(``tree_table[t] == 0``), chosen per tree at load; so does a tree with an
empty child (``z = 0``, where ``(1 - z) / z`` is undefined).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = ["MAX_TABLE_FEATURES", "ShapTables", "build_shap_tables"]

#: A leaf with more unique features on its path keeps path-dependent TreeSHAP
#: (its tree does). Depth-limited trees (riskflow's default depth is 6) stay
#: below it. Past it tables grow fast and gain little: on the former
#: unlimited-depth default (582 trees up to 18 deep, 2026-11-29) limits 8 / 10
#: / 12 / 14 gave tables to 85 / 337 / 528 / 571 trees for 2.4 / 14.4 / 38.2
#: / 55.2 MB at 6.6 / 6.4 / 5.8 / 4.8 ms per row, against 7.7 ms with none.
MAX_TABLE_FEATURES = 8


class ShapTables(NamedTuple):
    """Fast TreeSHAP v2 tables of a :class:`~riskflow.models._trees.Forest`.

    Indexed like the forest's arrays (global node / leaf indices). Leaves of
    trees without a table have ``leaf_width == 0`` and no slots.
    """

    tree_table: np.ndarray  # int8 per tree: 1 = tables, 0 = path algorithm
    node_slot: np.ndarray  # int8 per node: its feature's position among its path's unique features
    leaf_width: np.ndarray  # int64 per leaf: d, unique features on its path
    leaf_slot: np.ndarray  # int64 per leaf: first entry in slot_feature / slot_zero
    slot_feature: np.ndarray  # int32 per (leaf, slot): the feature
    slot_zero: np.ndarray  # float64 per (leaf, slot): z, the product of its cover ratios
    slot_scale: np.ndarray  # float64 per (leaf, slot): (1 - z) / z
    leaf_table: np.ndarray  # int64 per leaf: first entry of its 2**d subset table
    table: np.ndarray  # float64: R(A) for each subset A (bit s = slot s) but the full set
    max_nodes: int  # most internal nodes in one tree (the kernel's scratch size)

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables (what the model's load adds to memory)."""
        return int(sum(a.nbytes for a in self if isinstance(a, np.ndarray)))


def build_shap_tables(
    node_offset: np.ndarray,
    leaf_offset: np.ndarray,
    feature: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    node_count: np.ndarray,
    leaf_count: np.ndarray,
    leaf_value: np.ndarray,
    max_features: int = MAX_TABLE_FEATURES,
) -> ShapTables:
    """Tabulate every tree whose leaves have at most ``max_features`` unique path features.

    ``max_features=0`` gives no tables: every tree takes the path algorithm.
    """
    if not 0 <= max_features <= 20:
        raise ValueError(f"max_features must be an int in [0, 20]. Got {max_features} instead.")
    n_nodes = feature.size
    n_leaves = int(leaf_offset[-1])
    tree_table = np.zeros(node_offset.size - 1, np.int8)
    node_slot = np.zeros(n_nodes, np.int8)
    leaf_width = np.zeros(n_leaves, np.int64)
    _measure_paths(
        node_offset, leaf_offset, feature, left, right, node_count, leaf_count, max_features,
        tree_table, node_slot, leaf_width,
    )  # fmt: skip
    leaf_slot = np.zeros(n_leaves, np.int64)
    leaf_table = np.zeros(n_leaves, np.int64)
    if n_leaves:
        leaf_slot[1:] = np.cumsum(leaf_width)[:-1]
        sizes = np.where(leaf_width > 0, np.left_shift(1, leaf_width), 0)
        leaf_table[1:] = np.cumsum(sizes)[:-1]
        n_slots, n_table = int(leaf_width.sum()), int(sizes.sum())
    else:
        n_slots = n_table = 0
    slot_feature = np.zeros(n_slots, np.int32)
    slot_zero = np.zeros(n_slots, np.float64)
    table = np.zeros(n_table, np.float64)
    _fill_tables(
        node_offset, leaf_offset, feature, left, right, node_count, leaf_count, leaf_value,
        tree_table, leaf_width, leaf_slot, leaf_table, slot_feature, slot_zero, table,
    )  # fmt: skip
    sizes_per_tree = np.diff(node_offset)
    return ShapTables(
        tree_table=tree_table,
        node_slot=node_slot,
        leaf_width=leaf_width,
        leaf_slot=leaf_slot,
        slot_feature=slot_feature,
        slot_zero=slot_zero,
        slot_scale=(1.0 - slot_zero) / np.where(slot_zero > 0, slot_zero, 1.0),
        leaf_table=leaf_table,
        table=table,
        max_nodes=int(sizes_per_tree.max()) if sizes_per_tree.size else 0,
    )


@njit(cache=True)
def _parents(nb, n, left, right, node_parent, leaf_parent):  # pragma: no cover - compiled
    """Tree-local parents; False unless every child node comes after its parent.

    LightGBM numbers a split after the split it came from; the per-row kernel
    relies on that order to pass the masks down in one forward sweep.
    """
    ordered = True
    for p in range(n):
        for c in (left[nb + p], right[nb + p]):
            if c >= 0:
                node_parent[c] = p
                if c <= p:
                    ordered = False
            else:
                leaf_parent[~c] = p
    return ordered


@njit(cache=True)
def _unique_path(node, nb, feature, node_parent, path, uniq):  # pragma: no cover - compiled
    """Fill ``path`` with ``node``'s ancestors and itself, root first; return (length, unique)."""
    length = 0
    q = node
    while q >= 0:
        path[length] = q
        length += 1
        q = node_parent[q] if q > 0 else -1
    path[:length] = path[:length][::-1].copy()
    d = 0
    for k in range(length):
        f = feature[nb + path[k]]
        seen = False
        for s in range(d):
            if uniq[s] == f:
                seen = True
                break
        if not seen:
            uniq[d] = f
            d += 1
    return length, d


@njit(cache=True)
def _measure_paths(
    node_offset,
    leaf_offset,
    feature,
    left,
    right,
    node_count,
    leaf_count,
    max_features,
    tree_table,
    node_slot,
    leaf_width,
):  # pragma: no cover - compiled; checked against a slow Shapley reference in the tests
    for t in range(node_offset.size - 1):
        nb = node_offset[t]
        lb = leaf_offset[t]
        n = node_offset[t + 1] - nb
        if n == 0:
            continue
        node_parent = np.full(n, -1, np.int64)
        leaf_parent = np.full(n + 1, -1, np.int64)
        ok = _parents(nb, n, left, right, node_parent, leaf_parent)
        for j in range(n):
            if node_count[nb + j] <= 0:
                ok = False
        for q in range(n + 1):
            if leaf_count[lb + q] <= 0:
                ok = False
        path = np.empty(n + 1, np.int64)
        uniq = np.empty(n + 1, np.int64)
        for q in range(n + 1):
            _, d = _unique_path(leaf_parent[q], nb, feature, node_parent, path, uniq)
            if d > max_features:
                ok = False
            leaf_width[lb + q] = d
        if not ok:
            for q in range(n + 1):
                leaf_width[lb + q] = 0
            continue
        tree_table[t] = 1
        for j in range(n):
            _, d = _unique_path(j, nb, feature, node_parent, path, uniq)
            f = feature[nb + j]
            for s in range(d):
                if uniq[s] == f:
                    node_slot[nb + j] = s
                    break


@njit(cache=True)
def _fill_tables(
    node_offset,
    leaf_offset,
    feature,
    left,
    right,
    node_count,
    leaf_count,
    leaf_value,
    tree_table,
    leaf_width,
    leaf_slot,
    leaf_table,
    slot_feature,
    slot_zero,
    table,
):  # pragma: no cover - compiled; checked against a slow Shapley reference in the tests
    fact = np.ones(64)
    for k in range(1, 64):
        fact[k] = fact[k - 1] * k
    for t in range(node_offset.size - 1):
        if tree_table[t] == 0:
            continue
        nb = node_offset[t]
        lb = leaf_offset[t]
        n = node_offset[t + 1] - nb
        node_parent = np.full(n, -1, np.int64)
        leaf_parent = np.full(n + 1, -1, np.int64)
        _parents(nb, n, left, right, node_parent, leaf_parent)
        path = np.empty(n + 1, np.int64)
        uniq = np.empty(n + 1, np.int64)
        for q in range(n + 1):
            length, d = _unique_path(leaf_parent[q], nb, feature, node_parent, path, uniq)
            s0 = leaf_slot[lb + q]
            for s in range(d):
                slot_feature[s0 + s] = uniq[s]
                slot_zero[s0 + s] = 1.0
            # z of each unique feature: the product of its splits' cover ratios, root first.
            for k in range(length):
                j = nb + path[k]
                c = path[k + 1] if k + 1 < length else ~q
                child = node_count[nb + c] if c >= 0 else leaf_count[lb + ~c]
                ratio = child / node_count[j]
                for s in range(d):
                    if uniq[s] == feature[j]:
                        slot_zero[s0 + s] = ratio * slot_zero[s0 + s]
                        break
            # R(A) for every subset A of the slots: v * prod_{not in A} z * K(A),
            # K(A) = sum_k w_d(k) e_{|A|-k}(z_A), e_m the elementary symmetric
            # polynomials of A's z values.
            k0 = leaf_table[lb + q]
            v = leaf_value[lb + q]
            e = np.empty(d + 1)
            for a in range((1 << d) - 1):  # the full set is never looked up
                e[:] = 0.0
                e[0] = 1.0
                size = 0
                outside = v
                for s in range(d):
                    z = slot_zero[s0 + s]
                    if (a >> s) & 1:
                        size += 1
                        for m in range(size, 0, -1):
                            e[m] += z * e[m - 1]
                    else:
                        outside *= z
                total = 0.0
                for k in range(size + 1):
                    total += fact[k] * fact[d - k - 1] / fact[d] * e[size - k]
                table[k0 + a] = outside * total
