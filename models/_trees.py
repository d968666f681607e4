"""Compiled tree inference for a LightGBM model: the serving fast path.

``lightgbm.Booster.predict`` costs tens of microseconds of Python and C-API
overhead per call, whatever the batch size: at a streaming batch of 1 that is
most of the latency. :class:`Forest` reads the model's text format (the same
file the artifact stores) into flat arrays, and :func:`_predict_forest`, a
numba kernel, walks the trees with LightGBM's exact decision rules (missing
values, zero-as-missing, categorical bitsets). ``tests/unit/models`` checks it
against ``Booster.predict(raw_score=True)`` to 1e-9 on random data with NaNs
and unseen categories; :meth:`Forest.from_model_string` refuses models it
cannot mirror (linear trees, multi-class) so callers fall back to LightGBM.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numba import njit

from riskflow.errors import ArtifactError
from riskflow.models._heap_trees import MAX_DEPTH as HEAP_MAX_DEPTH
from riskflow.models._heap_trees import HeapForest, _depth, fold_rules
from riskflow.models._tree_rules import _ZERO as _ZERO_T  # one constant for both rules
from riskflow.models._treeshap_tables import ShapTables, build_shap_tables

__all__ = ["Forest"]

_CATEGORICAL = 1
_DEFAULT_LEFT = 2
#: Rows from which the branch-free kernel serves: its steps wait on each other
#: within a row, so alone a row is faster walked with the branch predictor's
#: guesses (standard model, real feature rows, 2026-11-29, us per row at 1 / 4 /
#: 16 / 1,024 rows: walk 7.5 / 8.9 / 15.3 / 12.3, heap 22.8 / 6.7 / 4.8 / 5.5).
_HEAP_MIN_ROWS = 4
#: Rows walked through every tree together: 256 rows of ~100 float32 features
#: (~100 KB) stay in L2 cache while all trees pass over them.
_BLOCK_ROWS = 256


@dataclass(frozen=True)
class Forest:
    """A LightGBM binary model as flat arrays (one entry per internal node / leaf)."""

    node_offset: np.ndarray  # int64 (T+1,): tree t's nodes are [node_offset[t], node_offset[t+1])
    leaf_offset: np.ndarray  # int64 (T+1,)
    feature: np.ndarray  # int32 per node
    threshold: np.ndarray  # float64 per node
    decision: np.ndarray  # int8 per node: LightGBM decision_type bits
    left: np.ndarray  # int32 per node: >= 0 node (tree-local), < 0 leaf ~index
    right: np.ndarray  # int32 per node
    cat_start: np.ndarray  # int64 per node: first word of its category bitset
    cat_len: np.ndarray  # int32 per node: words in the bitset (0 = numerical)
    cat_words: np.ndarray  # uint32 bitsets, concatenated
    leaf_value: np.ndarray  # float64 per leaf
    num_features: int
    # TreeSHAP (reason codes): training rows through each node / leaf, each
    # tree's expected value, the deepest leaf. None when the text has no counts.
    node_count: np.ndarray | None = None  # float64 per node
    leaf_count: np.ndarray | None = None  # float64 per leaf
    expected: np.ndarray | None = None  # float64 per tree
    max_depth: int = 0
    # Fast TreeSHAP v2 subset tables, built here once (None without counts).
    shap_tables: ShapTables | None = None
    # The trees as complete heap-ordered trees for the branch-free kernel
    # (None: a tree is deeper than _heap_trees.MAX_DEPTH; the node walk serves).
    heap: HeapForest | None = None
    # TreeSHAP's branch-free sweep: each node's folded rule (code, flags) and
    # where its children's marks go (None without tables).
    sweep: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_model_string(cls, text: str) -> Forest:
        """Parse LightGBM's text model (``Booster.model_to_string()``)."""
        header, _, body = text.partition("\nTree=")
        head = _pairs(header.splitlines())
        if (
            int(head.get("num_class", "1")) != 1
            or int(head.get("num_tree_per_iteration", "1")) != 1
        ):
            raise ArtifactError("Compiled tree inference supports binary models only.")
        num_features = int(head["max_feature_idx"]) + 1
        trees = []
        for block in ("Tree=" + body).split("\nTree=") if body else []:
            kv = _pairs(block.split("end of trees")[0].splitlines()[1:])
            if kv.get("is_linear", "0") != "0":
                raise ArtifactError("Compiled tree inference does not support linear trees.")
            trees.append(kv)
        feats, thrs, decs, lefts, rights, cstarts, clens, leaves = [], [], [], [], [], [], [], []
        node_counts: list[np.ndarray] = []
        leaf_counts: list[np.ndarray] = []
        expected: list[float] = []
        has_counts = all("leaf_count" in kv or int(kv["num_leaves"]) == 1 for kv in trees)
        max_depth = 0
        words: list[np.ndarray] = []
        n_words = 0
        node_off, leaf_off = [0], [0]
        for kv in trees:
            num_leaves = int(kv["num_leaves"])
            leaf = _floats(kv["leaf_value"])
            if leaf.size != num_leaves:
                raise ArtifactError(
                    "LightGBM model text is inconsistent: leaf_value count differs."
                )
            leaves.append(leaf)
            if has_counts and num_leaves > 1:
                lcount = _floats(kv["leaf_count"])
                ncount = _floats(kv["internal_count"])
                leaf_counts.append(lcount)
                node_counts.append(ncount)
                # LightGBM's Tree::ExpectedValue, in its order.
                e = 0.0
                for c, v in zip(lcount.tolist(), leaf.tolist(), strict=True):
                    e += (c / ncount[0]) * v
                expected.append(e)
                max_depth = max(
                    max_depth, _depth(_ints(kv["left_child"]), _ints(kv["right_child"]))
                )
            elif has_counts:
                leaf_counts.append(np.zeros(1))
                expected.append(float(leaf[0]))
            if num_leaves > 1:
                dec = _ints(kv["decision_type"]).astype(np.int8)
                thr = _floats(kv["threshold"])
                cstart = np.zeros(dec.size, np.int64)
                clen = np.zeros(dec.size, np.int32)
                if int(kv.get("num_cat", "0")) > 0:
                    bounds = _ints(kv["cat_boundaries"])
                    bits = _ints(kv["cat_threshold"]).astype(np.uint32)
                    for j in np.flatnonzero(dec & _CATEGORICAL):
                        c = int(thr[j])
                        cstart[j] = n_words + bounds[c]
                        clen[j] = bounds[c + 1] - bounds[c]
                    words.append(bits)
                    n_words += bits.size
                feats.append(_ints(kv["split_feature"]).astype(np.int32))
                thrs.append(thr)
                decs.append(dec)
                lefts.append(_ints(kv["left_child"]).astype(np.int32))
                rights.append(_ints(kv["right_child"]).astype(np.int32))
                cstarts.append(cstart)
                clens.append(clen)
            node_off.append(node_off[-1] + (num_leaves - 1))
            leaf_off.append(leaf_off[-1] + num_leaves)

        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.ascontiguousarray(
                np.concatenate(parts) if parts else np.zeros(0), dtype=dtype
            )

        node_offset = np.asarray(node_off, np.int64)
        leaf_offset = np.asarray(leaf_off, np.int64)
        feature, left, right = cat(feats, np.int32), cat(lefts, np.int32), cat(rights, np.int32)
        node_count = cat(node_counts, np.float64) if has_counts else None
        leaf_count = cat(leaf_counts, np.float64) if has_counts else None
        leaf_value = cat(leaves, np.float64)
        tables = None
        if node_count is not None and leaf_count is not None:
            tables = build_shap_tables(
                node_offset, leaf_offset, feature, left, right, node_count, leaf_count, leaf_value
            )
        forest = cls(
            node_offset=node_offset,
            leaf_offset=leaf_offset,
            feature=feature,
            threshold=cat(thrs, np.float64),
            decision=cat(decs, np.int8),
            left=left,
            right=right,
            cat_start=cat(cstarts, np.int64),
            cat_len=cat(clens, np.int32),
            cat_words=cat(words, np.uint32),
            leaf_value=leaf_value,
            num_features=num_features,
            node_count=node_count,
            leaf_count=leaf_count,
            expected=np.asarray(expected, np.float64) if has_counts else None,
            max_depth=max_depth,
            shap_tables=tables,
        )
        folded = fold_rules(forest.feature, forest.threshold, forest.decision)
        if folded is None:
            return forest
        return dataclasses.replace(
            forest,
            heap=HeapForest.build(forest, *folded),
            sweep=None
            if tables is None
            else (*folded, _child_slots(left, right, tables.max_nodes)),
        )

    @property
    def _walk(self) -> tuple[np.ndarray, ...]:
        """The arrays every kernel walks the trees with, in the kernels' argument order."""
        return (
            self.node_offset,
            self.leaf_offset,
            self.feature,
            self.threshold,
            self.decision,
            self.left,
            self.right,
            self.cat_start,
            self.cat_len,
            self.cat_words,
        )

    @property
    def num_trees(self) -> int:
        return int(self.node_offset.size - 1)

    def predict_raw(self, X: np.ndarray, *, runtime: str = "auto") -> np.ndarray:
        """Raw scores (sum of leaf values, log-odds for a binary model), float64 (n,).

        ``runtime``: ``"heap"`` (the branch-free kernel, :mod:`._heap_trees`),
        ``"walk"`` (node by node) or ``"auto"`` (heap from
        :data:`_HEAP_MIN_ROWS` rows on, when every tree fits it). Both give
        the same bits.
        """
        X = self._rows(X)
        if runtime not in ("auto", "heap", "walk"):
            raise ValueError(f"runtime must be 'auto', 'heap' or 'walk'. Got {runtime!r} instead.")
        if self.heap is not None and (
            runtime == "heap" or (runtime == "auto" and X.shape[0] >= _HEAP_MIN_ROWS)
        ):
            return self.heap.predict_raw(X, self.cat_words)
        if runtime == "heap":
            raise ValueError(
                f"A tree is deeper than {HEAP_MAX_DEPTH} levels; only runtime='walk' serves it."
            )
        out = np.empty(X.shape[0], np.float64)
        # numba's Dispatcher stub types __call__ without star-arguments.
        _predict_forest(X, *self._walk, self.leaf_value, out)  # type: ignore[call-arg]
        return out

    def _rows(self, X: np.ndarray) -> np.ndarray:
        """``X`` as the contiguous float32 (n, num_features) matrix the kernels read."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.num_features:
            raise ValueError(
                f"X must have {self.num_features} feature columns. Got shape {X.shape} instead."
            )
        return X

    @property
    def explains(self) -> bool:
        """Whether :meth:`contributions` can run (the text model carried node counts)."""
        return self.node_count is not None

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """TreeSHAP values in log-odds, float64 (n, F + 1); the last column is the bias.

        Equal to LightGBM's ``predict(pred_contrib=True)`` to rounding; rows sum
        to :meth:`predict_raw`. Each row is explained alone (batch-independent).
        Trees are explained from their Fast TreeSHAP v2 tables where they have
        them (``shap_tables``), else by path-dependent TreeSHAP.
        """
        from riskflow.models._treeshap import _shap_forest, _shap_forest_tables

        tables = self.shap_tables
        if (
            self.node_count is None
            or self.leaf_count is None
            or self.expected is None
            or tables is None
            or self.sweep is None
        ):
            raise ArtifactError(
                "This LightGBM model text has no node counts, so the compiled runtime cannot "
                "explain it; use LightGBM's pred_contrib (LightGBMMember.contributions)."
            )
        X = self._rows(X)
        out = np.empty((X.shape[0], self.num_features + 1), np.float64)
        _shap_forest_tables(
            X,
            *self._walk,
            self.expected,
            tables,
            *self.sweep,
            out,
        )
        if not tables.tree_table.all():  # trees too deep for a table
            _shap_forest(
                X,
                *self._walk,
                self.leaf_value,
                self.node_count,
                self.leaf_count,
                self.max_depth,
                tables.tree_table,
                out,
            )
        return out


def _child_slots(left: np.ndarray, right: np.ndarray, max_nodes: int) -> np.ndarray:
    """Where TreeSHAP's sweep stores each node's children's marks: ``(left, right)`` per node.

    A child node ``c`` at ``c``, a leaf ``~c`` at ``max(max_nodes, 1) + ~c``
    (the kernel's scratch array holds the nodes', then the leaves' marks).
    """
    leaves_at = max(max_nodes, 1)
    pairs = np.stack([left, right], axis=1).astype(np.int64)
    return np.where(pairs >= 0, pairs, leaves_at + ~pairs).astype(np.int32).reshape(-1)


def _pairs(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _ints(text: str) -> np.ndarray:
    return np.array(text.split(), dtype=np.int64)


def _floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()], dtype=np.float64)


@njit(cache=True, nogil=True)
def _predict_forest(
    X,
    node_offset,
    leaf_offset,
    feature,
    threshold,
    decision,
    left,
    right,
    cat_start,
    cat_len,
    cat_words,
    leaf_value,
    out,
):  # pragma: no cover - compiled; parity-tested against LightGBM
    # Tree-major order within blocks of rows: one tree's nodes stay in cache
    # while the block's rows walk it (about 30 % faster than row-major at batch
    # 1024), and the block's rows stay in cache across all trees (a whole
    # 65536-row replay chunk does not fit, and tree-major over it re-reads the
    # matrix from memory once per tree). Each row still sums its trees in
    # order, so the result does not depend on the batch size.
    n_rows = X.shape[0]
    for i in range(n_rows):
        out[i] = 0.0
    for lo in range(0, n_rows, _BLOCK_ROWS):
        _predict_block(
            X,
            lo,
            min(lo + _BLOCK_ROWS, n_rows),
            node_offset,
            leaf_offset,
            feature,
            threshold,
            decision,
            left,
            right,
            cat_start,
            cat_len,
            cat_words,
            leaf_value,
            out,
        )


@njit(cache=True, nogil=True)
def _predict_block(
    X,
    lo,
    hi,
    node_offset,
    leaf_offset,
    feature,
    threshold,
    decision,
    left,
    right,
    cat_start,
    cat_len,
    cat_words,
    leaf_value,
    out,
):  # pragma: no cover - compiled; parity-tested against LightGBM
    for t in range(node_offset.size - 1):
        base = node_offset[t]
        if node_offset[t + 1] == base:  # a single-leaf tree
            for i in range(lo, hi):
                out[i] += leaf_value[leaf_offset[t]]
            continue
        for i in range(lo, hi):
            node = 0
            # The split rule written out here, not called as _tree_rules.go_left
            # (which TreeSHAP uses): through the inlined call this loop ran 7x
            # slower (130 against 18 us per row, standard model, 2026-11-29).
            while node >= 0:
                j = base + node
                f = np.float64(X[i, feature[j]])
                d = decision[j]
                go_left = False
                if d & 1:
                    # Categorical: LightGBM casts to int; NaN, negatives and
                    # out-of-int-range values go right.
                    if not np.isnan(f) and -2147483648.0 < f < 2147483648.0:
                        iv = np.int64(f)
                        if iv >= 0:
                            w = iv >> 5
                            if w < cat_len[j]:
                                go_left = (
                                    (cat_words[cat_start[j] + w] >> np.uint32(iv & 31)) & 1
                                ) == 1
                else:
                    missing = (d >> 2) & 3
                    if np.isnan(f) and missing != 2:
                        f = 0.0
                    if (missing == 1 and -_ZERO_T <= f <= _ZERO_T) or (
                        missing == 2 and np.isnan(f)
                    ):
                        go_left = (d & 2) != 0
                    else:
                        go_left = f <= threshold[j]
                node = left[j] if go_left else right[j]
            out[i] += leaf_value[leaf_offset[t] + (~node)]
