"""Branch-free tree inference over complete trees: the forest's prediction kernel.

:func:`riskflow.models._trees._predict_block` walks each LightGBM tree as it
is stored, one row at a time, and the direction taken at every node is a
branch the CPU guesses; on real rows it often guesses wrong, and a wrong
guess costs more than the node's arithmetic. Here every
tree no deeper than :data:`MAX_DEPTH` is laid out as a *complete* binary tree
in heap order (node ``k``'s children are ``2k+1`` and ``2k+2``): a leaf above
the bottom level is pushed down through padding nodes that always go left, and
its value is copied to every bottom slot below it. Every row then takes
exactly ``depth`` steps through a tree, and a step is arithmetic,

    ``k = 2k + 2 - go_left``

with ``go_left`` computed without a branch from LightGBM's rule. The rows of
a block take each level together, so their loads overlap instead of waiting
on each other.

The rule. A numerical split goes left when ``x <= threshold``; NaN compares
false, so it goes right unless the node sends NaN left (a bit of the node's
``code``, folded at load from LightGBM's missing type and default side: the
default side for missing type NaN, and ``0.0 <= threshold`` for type none,
which reads NaN as 0.0):

    ``go_left = (x <= thr) | (isnan(x) & nan_left)``

Categorical splits (a bitset per node) and zero-as-missing splits (LightGBM's
zero band) are "special" nodes that keep a branch (:func:`_special_go_left`):
they are a few percent of nodes (370 of 8,808 in the standard model). The
leaf reached is the one LightGBM's rule reaches, and each row adds its trees'
values in tree order, so scores are bit-identical to the node-walking kernel
(``tests/unit/models/test_models_trees.py``).

Measured (standard model: 300 trees up to 6 deep, 312 features; 40,000 real
feature rows of the standard preset; 2026-11-29), us per row at 16 / 64 /
1,024 rows: node walk 15.3 / 13.6 / 12.3, this kernel 4.8 / 5.1 / 5.5.

From :data:`_GATHER_MIN_ROWS` rows on, on CPUs with AVX-512,
:func:`_predict_heap_gather` takes each level for 16 rows per instruction
(:mod:`._heap_gather`): the same steps and the same per-row sums in tree
order, so the same bits (checked on 150,000 real rows of the replay data
against this kernel and the node walk). Interleaved medians, 1 thread, real
feature rows, 2026-11-30, us per row at 16 / 1,024 / 65,536 rows: 143-tree
replay model 2.03 / 1.87 / 1.79 -> 1.57 / 0.97 / 0.92; standard model
6.29 / 6.48 / 5.96 -> 5.67 / 3.88 / 3.64. Below 16 rows a block of 16 lanes
costs more than the scalar kernel (8 rows: 1.81 against 2.39 us per row).
Not kept: the block's rows transposed feature-major so that lanes at the
same node read one cache line (the transpose cost more than it saved:
0.93 -> 1.24 us per row, 143 trees), 8 or 16 groups per block instead of 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from riskflow.models._heap_gather import AVAILABLE as _GATHER
from riskflow.models._heap_gather import LANES, heap_level, leaf_add
from riskflow.models._tree_rules import _ZERO

if TYPE_CHECKING:
    from riskflow.models._trees import Forest

__all__ = ["MAX_DEPTH", "HeapForest", "fold_rules"]

#: Deeper trees keep the node-walking kernel: a complete tree of depth d has
#: 2**d - 1 nodes whatever its leaves, so past ~10 levels the layout is mostly
#: padding that every row still steps through.
MAX_DEPTH = 10
#: Rows stepping through a tree together (their running node indices stay in
#: registers / L1; the rows' features stay in L2 across all trees).
_BLOCK_ROWS = 32
#: The gather kernel's block: up to this many groups of :data:`LANES` rows
#: walk a tree level together, so one group's gathers wait while the next
#: group's are issued (143-tree replay model, 65,536-row batches, us per row:
#: 2 groups 1.05, 4 groups 0.93, 8 groups 0.95, 16 groups 1.05).
_GATHER_GROUPS = 4
#: Rows from which the gather kernel serves (a block of 16 lanes costs the
#: same for 1 row as for 16).
_GATHER_MIN_ROWS = 16

#: A node's ``code``: its feature in the low bits, bit 30 = NaN goes left
#: (plain numerical splits), sign bit = a "special" node (categorical, or
#: LightGBM's zero-as-missing), decided by :func:`_special_go_left`.
_FEATURE_MASK = (1 << 30) - 1
_NAN_LEFT_SHIFT = 30
_SPECIAL = -(1 << 31)
#: ``flags`` of a special node.
_ZERO_MISSING = 1
_DEFAULT_LEFT = 2
_CATEGORICAL = 4


@dataclass(frozen=True)
class HeapForest:
    """Every tree as a complete binary tree in heap order (see the module docstring)."""

    depth: np.ndarray  # int64 per tree (0: a single leaf)
    node_offset: np.ndarray  # int64 (T+1,): tree t's 2**depth - 1 nodes
    leaf_offset: np.ndarray  # int64 (T+1,): tree t's 2**depth bottom slots
    code: np.ndarray  # int32 per node: feature | NaN-left bit | special sign bit
    threshold: np.ndarray  # float64 per node (+inf on padding: always left)
    flags: np.ndarray  # uint8 per special node: _ZERO_MISSING | _DEFAULT_LEFT | _CATEGORICAL
    cat_start: np.ndarray  # int64 per node: first word of its bitset
    cat_len: np.ndarray  # int32 per node (0: numerical)
    leaf_value: np.ndarray  # float64 per bottom slot
    # The gather kernel's: thresholds rounded down to float32 (exact for
    # float32 features, see _heap_gather), and per tree a bit per level that
    # holds a special node (the levels whose lanes need the scalar rule).
    threshold32: np.ndarray  # float32 per node
    special_levels: np.ndarray  # int64 per tree

    @classmethod
    def build(cls, forest: Forest, code: np.ndarray, flags: np.ndarray) -> HeapForest | None:
        """The layout of a parsed ``forest`` whose rules :func:`fold_rules` folded into
        ``code`` / ``flags``, or None when a tree is deeper than :data:`MAX_DEPTH`."""
        node_offset, leaf_offset = forest.node_offset, forest.leaf_offset
        left, right, threshold = forest.left, forest.right, forest.threshold
        T = node_offset.size - 1
        depths = np.zeros(T, np.int64)
        for t in range(T):
            nb = int(node_offset[t])
            if node_offset[t + 1] == nb:
                continue
            depths[t] = _depth(left[nb : node_offset[t + 1]], right[nb : node_offset[t + 1]])
            if depths[t] > MAX_DEPTH:
                return None
        n_nodes = (1 << depths) - 1
        n_leaves = 1 << depths
        h_node_off = np.concatenate([[0], np.cumsum(n_nodes)]).astype(np.int64)
        h_leaf_off = np.concatenate([[0], np.cumsum(n_leaves)]).astype(np.int64)
        N = int(h_node_off[-1])
        h_code = np.full(N, 1 << _NAN_LEFT_SHIFT, np.int32)  # padding: always left
        h_threshold = np.full(N, np.inf)
        h_flags = np.zeros(N, np.uint8)
        h_cat_start = np.zeros(N, np.int64)
        h_cat_len = np.zeros(N, np.int32)
        h_leaf = np.zeros(int(h_leaf_off[-1]), np.float64)
        for t in range(T):
            nb, lb, D = int(node_offset[t]), int(leaf_offset[t]), int(depths[t])
            hn, hl = int(h_node_off[t]), int(h_leaf_off[t])
            if D == 0:
                h_leaf[hl] = forest.leaf_value[lb]
                continue
            # (tree-local node or ~leaf, heap index, level)
            stack = [(0, 0, 0)]
            while stack:
                node, k, level = stack.pop()
                if node < 0:
                    # A leaf at `level`: its value fills the bottom slots under heap node k.
                    span = 1 << (D - level)
                    first = (k - ((1 << level) - 1)) * span
                    h_leaf[hl + first : hl + first + span] = forest.leaf_value[lb + ~node]
                    continue
                j = nb + node
                h = hn + k
                h_threshold[h] = threshold[j]
                h_code[h] = code[j]
                h_flags[h] = flags[j]
                h_cat_start[h] = forest.cat_start[j]
                h_cat_len[h] = forest.cat_len[j]
                stack.append((int(left[j]), 2 * k + 1, level + 1))
                stack.append((int(right[j]), 2 * k + 2, level + 1))
        special_levels = np.zeros(T, np.int64)
        for t in range(T):
            c = h_code[h_node_off[t] : h_node_off[t + 1]]
            for level in range(int(depths[t])):
                if (c[(1 << level) - 1 : (2 << level) - 1] < 0).any():
                    special_levels[t] |= 1 << level
        return cls(
            depth=depths,
            node_offset=h_node_off,
            leaf_offset=h_leaf_off,
            code=h_code,
            threshold=h_threshold,
            flags=h_flags,
            cat_start=h_cat_start,
            cat_len=h_cat_len,
            leaf_value=h_leaf,
            threshold32=_round_down_f32(h_threshold),
            special_levels=special_levels,
        )

    def predict_raw(
        self, X: np.ndarray, cat_words: np.ndarray, *, gather: bool | None = None
    ) -> np.ndarray:
        """Sum of leaf values per row (float64); ``X`` contiguous float32 (n, features).

        ``gather``: the AVX-512 kernel (True), the scalar one (False), or
        (None) the gather kernel from :data:`_GATHER_MIN_ROWS` rows where
        the CPU has it. Both give the same bits.
        """
        out = np.empty(X.shape[0], np.float64)
        # Lane offsets are int32: a block's rows times the features must fit.
        fits = (_GATHER_GROUPS * LANES + 1) * max(X.shape[1], 1) < 2**31
        if gather is None:
            gather = _GATHER and fits and X.shape[0] >= _GATHER_MIN_ROWS
        elif gather and not (_GATHER and fits):
            raise ValueError("The gather kernel needs AVX-512 and int32 lane offsets.")
        if gather:
            _predict_heap_gather(
                X,
                self.special_levels,
                self.depth,
                self.node_offset,
                self.leaf_offset,
                self.code,
                self.threshold32,
                self.threshold,
                self.flags,
                self.cat_start,
                self.cat_len,
                cat_words,
                self.leaf_value,
                out,
            )
            return out
        _predict_heap(
            X,
            self.depth,
            self.node_offset,
            self.leaf_offset,
            self.code,
            self.threshold,
            self.flags,
            self.cat_start,
            self.cat_len,
            cat_words,
            self.leaf_value,
            out,
        )
        return out


@njit(cache=True, nogil=True, inline="always")
def _special_go_left(
    f, fl, threshold, start, length, cat_words
):  # pragma: no cover - compiled; tested bit-identical to the node-walking kernel
    if fl & _CATEGORICAL:
        # LightGBM casts to int; NaN, negatives and out-of-int-range values go right.
        if not np.isnan(f) and -2147483648.0 < f < 2147483648.0:
            iv = np.int64(f)
            if iv >= 0:
                w = iv >> 5
                if w < length:
                    return np.int64((cat_words[start + w] >> np.uint32(iv & 31)) & 1)
        return np.int64(0)
    # Zero as missing: NaN reads as 0.0, and the zero band takes the default side.
    if np.isnan(f) or (-_ZERO <= f <= _ZERO):
        return np.int64((fl & _DEFAULT_LEFT) != 0)
    return np.int64(f <= threshold)


def fold_rules(
    feature: np.ndarray, threshold: np.ndarray, decision: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Each node's LightGBM rule as a ``code`` and special-node ``flags`` (module docstring).

    None when a feature index does not fit the code's bits.
    """
    if feature.size and int(feature.max()) > _FEATURE_MASK:
        return None
    d = decision.astype(np.int64)
    missing = (d >> 2) & 3
    dl = (d & 2) != 0
    categorical = (d & 1) != 0
    zero = ~categorical & (missing == 1)
    # LightGBM reads NaN as 0.0 when the missing type is none.
    nan_left = np.where(missing == 2, dl, threshold >= 0.0)
    code = feature.astype(np.int64) | (nan_left.astype(np.int64) << _NAN_LEFT_SHIFT)
    code = np.where(categorical | zero, feature.astype(np.int64) | _SPECIAL, code)
    flags = np.where(categorical, _CATEGORICAL, 0) | np.where(
        zero, _ZERO_MISSING | np.where(dl, _DEFAULT_LEFT, 0), 0
    )
    return code.astype(np.int32), flags.astype(np.uint8)


def _round_down_f32(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold (-inf below float32's range).

    For a float32 ``x``, ``x <= t32`` exactly when ``float64(x) <= t``: any
    float32 at most ``t`` is at most ``t32``, the largest of them.
    """
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, then rounded down
        t32 = threshold.astype(np.float32)
    over = t32.astype(np.float64) > threshold
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    return t32


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    """Depth of a tree's deepest leaf (root = 0)."""
    deepest, stack = 0, [(0, 0)]
    while stack:
        node, d = stack.pop()
        for child in (int(left[node]), int(right[node])):
            if child >= 0:
                stack.append((child, d + 1))
            else:
                deepest = max(deepest, d + 1)
    return deepest


@njit(cache=True, nogil=True)
def _predict_heap(
    X,
    depth,
    node_offset,
    leaf_offset,
    code_of,
    threshold,
    flags,
    cat_start,
    cat_len,
    cat_words,
    leaf_value,
    out,
):  # pragma: no cover - compiled; tested bit-identical to the node-walking kernel
    n_rows = X.shape[0]
    k = np.empty(_BLOCK_ROWS, np.int64)
    for i in range(n_rows):
        out[i] = 0.0
    for lo in range(0, n_rows, _BLOCK_ROWS):
        nb = min(_BLOCK_ROWS, n_rows - lo)
        for t in range(depth.size):
            D = depth[t]
            hn = node_offset[t]
            hl = leaf_offset[t]
            for r in range(nb):
                k[r] = 0
            for _level in range(D):
                for r in range(nb):
                    h = hn + k[r]
                    code = code_of[h]
                    # Written out here and in _treeshap._shap_forest_tables (see there).
                    if code >= 0:
                        # Numerical, no zero band: NaN compares false, so it goes
                        # right unless the node sends it left.
                        f = np.float64(X[lo + r, code & _FEATURE_MASK])
                        go = np.int64(f <= threshold[h]) | (
                            np.int64(f != f) & np.int64(code >> _NAN_LEFT_SHIFT)
                        )
                    else:
                        go = _special_go_left(
                            np.float64(X[lo + r, code & _FEATURE_MASK]),
                            flags[h],
                            threshold[h],
                            cat_start[h],
                            cat_len[h],
                            cat_words,
                        )
                    k[r] = 2 * k[r] + 2 - go
            bottom = (1 << D) - 1
            for r in range(nb):
                out[lo + r] += leaf_value[hl + k[r] - bottom]


@njit(cache=True, nogil=True)
def _predict_heap_gather(
    X,
    special_levels,
    depth,
    node_offset,
    leaf_offset,
    code_of,
    threshold32,
    threshold,
    flags,
    cat_start,
    cat_len,
    cat_words,
    leaf_value,
    out,
):  # pragma: no cover - compiled; tested bit-identical to _predict_heap
    # _predict_heap's walk, 16 rows per instruction (_heap_gather). A block's
    # lanes past its last row repeat that row (their results are dropped), so
    # every gather has 16 valid addresses and a row's value never depends on
    # its neighbours: each lane steps and sums exactly as its row alone would.
    n_rows, F = X.shape
    G = min(_GATHER_GROUPS, max(1, (n_rows + LANES - 1) // LANES))
    B = G * LANES
    k = np.empty(B, np.int32)
    rowoff = np.empty(B, np.int32)
    acc = np.empty(B, np.float64)
    Xf = X.reshape(-1)
    for lo in range(0, n_rows, B):
        nb = min(B, n_rows - lo)
        for r in range(B):
            rowoff[r] = min(r, nb - 1) * F
            acc[r] = 0.0
        x0 = lo * F
        for t in range(depth.size):
            D = depth[t]
            hn = node_offset[t]
            levels = special_levels[t]
            for r in range(B):
                k[r] = 0
            for level in range(D):
                if not (levels >> level) & 1:
                    # No special node on this level: no lane to redo, and no branch.
                    for g in range(G):
                        heap_level(Xf, x0, rowoff, code_of, threshold32, hn, k, g)
                    continue
                for g in range(G):
                    special = heap_level(Xf, x0, rowoff, code_of, threshold32, hn, k, g)
                    while special != 0:
                        lane = 0
                        while not (special >> lane) & 1:
                            lane += 1
                        special &= special - 1
                        r = g * LANES + lane
                        # The lane stepped to 2k + 2 - go: its node was k.
                        node = (k[r] - 1) >> 1
                        h = hn + node
                        go = _special_go_left(
                            np.float64(Xf[x0 + rowoff[r] + (code_of[h] & _FEATURE_MASK)]),
                            flags[h],
                            threshold[h],
                            cat_start[h],
                            cat_len[h],
                            cat_words,
                        )
                        k[r] = 2 * node + 2 - go
            for g in range(G):
                leaf_add(leaf_value, leaf_offset[t], (1 << D) - 1, k, g, acc)
        for r in range(nb):
            out[lo + r] = acc[r]
