"""TreeSHAP over a :class:`~riskflow.models._trees.Forest`: reason codes.

Two kernels give each tree's path-dependent SHAP values, the quantity
LightGBM's ``predict(pred_contrib=True)`` computes (Lundberg et al.,
"Consistent individualized feature attribution for tree ensembles",
Algorithm 2), with the training counts as covers (``internal_count`` /
``leaf_count`` of the text model) and LightGBM's own decision rules (shared
with the prediction kernel); both equal ``pred_contrib``'s values to rounding
(``tests/unit/models/test_models_treeshap*.py``):

- :func:`_shap_forest_tables`, Fast TreeSHAP v2: per-leaf subset tables
  built at load (:mod:`riskflow.models._treeshap_tables`), O(leaves x depth)
  per tree and row. Every tree of a depth-limited model takes it.
- :func:`_shap_forest`, LightGBM's own recursion with its path extend /
  unwind arithmetic in the same order, O(leaves x depth**2): only the trees
  whose leaves have more unique path features than a table allows.

Why not ``pred_contrib`` itself: every call pays for LightGBM's predictor
set-up, which at the stream's few flagged rows per batch cost far more than
the SHAP arithmetic (see ``riskflow bench models``: ``explain_rows_per_s``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from riskflow.models._heap_trees import _FEATURE_MASK, _NAN_LEFT_SHIFT, _special_go_left
from riskflow.models._tree_rules import category_go_left, numeric_go_left

#: Rows explained together, tree by tree: a tree's tables (~15 KB at depth 6)
#: are read from memory once per block instead of once per row, ~30 % faster
#: at the stream's ~32 flagged rows per batch (2026-11-29). Each row still
#: sums its trees in order, so its values do not depend on the block.
_BLOCK_ROWS = 64


@njit(cache=True, nogil=True, inline="always")
def _extend(pf, pz, po, pw, base, depth, zero, one, feat, up, down):  # pragma: no cover
    p = base + depth
    pf[p] = feat
    pz[p] = zero
    po[p] = one
    pw[p] = 1.0 if depth == 0 else 0.0
    for i in range(depth - 1, -1, -1):
        pw[base + i + 1] += one * pw[base + i] * up[depth, i]
        pw[base + i] = zero * pw[base + i] * down[depth, i]


@njit(cache=True, nogil=True, inline="always")
def _unwind(pf, pz, po, pw, base, depth, index, down, inv_up, inv_down):  # pragma: no cover
    # One fractions are products of 0s and 1s in path-dependent TreeSHAP: 1 or 0.
    one = po[base + index]
    zero = pz[base + index]
    next_one = pw[base + depth]
    for i in range(depth - 1, -1, -1):
        if one != 0.0:
            tmp = pw[base + i]
            pw[base + i] = next_one * inv_up[depth, i]
            next_one = tmp - pw[base + i] * zero * down[depth, i]
        else:
            pw[base + i] = pw[base + i] * inv_down[depth, i] / zero
    for i in range(index, depth):
        pf[base + i] = pf[base + i + 1]
        pz[base + i] = pz[base + i + 1]
        po[base + i] = po[base + i + 1]


@njit(cache=True, nogil=True, inline="always")
def _hot_sum(pw, base, depth, zero, inv_up, ratio):  # pragma: no cover - compiled
    """LightGBM's UnwoundPathSum for an element the row follows (one fraction 1).

    Its loop carries ``next_one`` through a product of three factors and a
    subtraction; here the factors not depending on it are multiplied first
    (``ratio`` = (d-i)/(i+1)), which halves the chain each step waits on.
    """
    next_one = pw[base + depth]
    total = 0.0
    for i in range(depth - 1, -1, -1):
        total += next_one * inv_up[depth, i]
        next_one = pw[base + i] - next_one * (zero * ratio[depth, i])
    return total


@njit(cache=True, nogil=True)
def _shap_forest(
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
    node_count,
    leaf_count,
    max_depth,
    tree_table,
    out,
):  # pragma: no cover - compiled; compared with LightGBM's pred_contrib
    """Add to ``out[i, :F]`` the SHAP values of row ``i`` from the trees without a table.

    Path-dependent TreeSHAP for the trees with ``tree_table[t] == 0`` (too
    deep for a table; :func:`_shap_forest_tables` initialises ``out`` and
    explains the others): LightGBM's recursion run on an explicit stack: a
    frame is (node, depth, parent path offset, incoming zero / one fraction, feature). The hot child
    is popped before the cold one, so leaves add to ``phi`` in LightGBM's
    order. Each level's path lives right after its parent's (the recursion's
    own layout), so a pending cold frame still finds its parent path intact.
    """
    size = (max_depth + 2) * (max_depth + 3) // 2
    pf = np.full(size, -1, np.int64)
    pz = np.zeros(size)
    po = np.zeros(size)
    pw = np.zeros(size)
    frames = 2 * (max_depth + 3)
    s_node = np.empty(frames, np.int64)
    s_depth = np.empty(frames, np.int64)
    s_base = np.empty(frames, np.int64)
    s_feat = np.empty(frames, np.int64)
    s_zero = np.empty(frames)
    s_one = np.empty(frames)
    # The path weights' integer ratios, once: (i+1)/(d+1), (d-i)/(d+1), inverses, (d-i)/(i+1).
    up = np.zeros((max_depth + 3, max_depth + 3))
    down = np.zeros((max_depth + 3, max_depth + 3))
    inv_up = np.zeros((max_depth + 3, max_depth + 3))
    inv_down = np.zeros((max_depth + 3, max_depth + 3))
    ratio = np.zeros((max_depth + 3, max_depth + 3))
    for d in range(max_depth + 3):
        for i in range(d):
            up[d, i] = (i + 1) / (d + 1.0)
            down[d, i] = (d - i) / (d + 1.0)
            inv_up[d, i] = (d + 1.0) / (i + 1)
            inv_down[d, i] = (d + 1.0) / (d - i)
            ratio[d, i] = (d - i) / (i + 1.0)
    for i in range(X.shape[0]):
        phi = out[i]
        for t in range(node_offset.size - 1):
            nb = node_offset[t]
            lb = leaf_offset[t]
            if node_offset[t + 1] == nb or tree_table[t]:  # a single leaf explains nothing
                continue
            s_node[0] = 0
            s_depth[0] = 0
            s_base[0] = 0
            s_zero[0] = 1.0
            s_one[0] = 1.0
            s_feat[0] = -1
            top = 1
            while top > 0:
                top -= 1
                node = s_node[top]
                depth = s_depth[top]
                parent_base = s_base[top]
                base = parent_base + depth
                for q in range(depth):
                    pf[base + q] = pf[parent_base + q]
                    pz[base + q] = pz[parent_base + q]
                    po[base + q] = po[parent_base + q]
                    pw[base + q] = pw[parent_base + q]
                _extend(pf, pz, po, pw, base, depth, s_zero[top], s_one[top], s_feat[top], up, down)
                if node < 0:
                    v = leaf_value[lb + ~node]
                    # Elements the row does not follow (one fraction 0) share
                    # one sum, divided by each one's zero fraction: O(depth)
                    # for all of them instead of O(depth) each.
                    cold_sum = -1.0
                    for q in range(1, depth + 1):
                        z = pz[base + q]
                        if po[base + q] != 0.0:
                            w = _hot_sum(pw, base, depth, z, inv_up, ratio)
                            phi[pf[base + q]] += w * (1.0 - z) * v
                        elif z != 0.0:
                            if cold_sum < 0.0:
                                cold_sum = 0.0
                                for r in range(depth - 1, -1, -1):
                                    cold_sum += pw[base + r] * inv_down[depth, r]
                            phi[pf[base + q]] -= cold_sum * v
                    continue
                j = nb + node
                f = feature[j]
                kind = decision[j]
                if kind & 1:
                    to_left = category_go_left(X[i, f], cat_words, cat_start[j], cat_len[j])
                else:
                    to_left = numeric_go_left(X[i, f], kind, threshold[j])
                if to_left:
                    hot = left[j]
                    cold = right[j]
                else:
                    hot = right[j]
                    cold = left[j]
                w = node_count[j]
                hot_zero = (node_count[nb + hot] if hot >= 0 else leaf_count[lb + ~hot]) / w
                cold_zero = (node_count[nb + cold] if cold >= 0 else leaf_count[lb + ~cold]) / w
                zero = 1.0
                one = 1.0
                # A feature already on the path: undo that split so this node redoes it.
                k = 0
                while k <= depth:
                    if pf[base + k] == f:
                        break
                    k += 1
                if k != depth + 1:
                    zero = pz[base + k]
                    one = po[base + k]
                    _unwind(pf, pz, po, pw, base, depth, k, down, inv_up, inv_down)
                    depth -= 1
                # Cold first on the stack: the hot subtree is explained first.
                s_node[top] = cold
                s_depth[top] = depth + 1
                s_base[top] = base
                s_zero[top] = cold_zero * zero
                s_one[top] = 0.0
                s_feat[top] = f
                s_node[top + 1] = hot
                s_depth[top + 1] = depth + 1
                s_base[top + 1] = base
                s_zero[top + 1] = hot_zero * zero
                s_one[top + 1] = one
                s_feat[top + 1] = f
                top += 2


@njit(cache=True, nogil=True)
def _shap_forest_tables(
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
    expected,
    tables,
    code_of,
    flags,
    child_slot,
    out,
):  # pragma: no cover - compiled; compared with the path algorithm and pred_contrib
    """``out[i, :F]`` = SHAP values of row ``i`` from the trees with a table, ``out[i, F]`` = bias.

    Fast TreeSHAP v2 (:mod:`riskflow.models._treeshap_tables`), per tree: one
    forward sweep over the nodes (a child's number is above its parent's)
    marks, per node, the path's unique features the row leaves the path on
    ("cold"); then a leaf whose path the row follows on the features ``T``
    adds ``-R(T)`` to each cold feature and ``(1 - z) / z * R(T - {i})`` to
    each followed feature ``i``: two table reads per feature. Tree-major
    within blocks of rows. The trees without a table are left to
    :func:`_shap_forest`. Written as one loop, no call per tree: a call
    passing arrays costs a reference count update per array.

    The sweep decides each node without a branch on the row's data: the
    split rule folded into ``code_of`` / ``flags``
    (:func:`riskflow.models._heap_trees.fold_rules`), and both children's
    marks stored through ``child_slot`` (node ``c`` at ``c``, leaf ``~c`` at
    ``max_nodes + ~c`` of one scratch array). Real top-scored rows of the
    standard model, us per row at 1 / 3 / 32 rows per call (2026-11-29): 270
    / 252 / 185 deciding each node with branches, 223-234 / 188-190 / 137-139
    so; the values are bit-identical.
    """
    n_feat = out.shape[1] - 1
    bias = 0.0
    for t in range(node_offset.size - 1):
        bias += expected[t]
    leaves_at = max(tables.max_nodes, 1)
    mask = np.zeros(leaves_at + tables.max_nodes + 1, np.int64)
    n_rows = X.shape[0]
    for i in range(n_rows):
        phi = out[i]
        for c in range(n_feat):
            phi[c] = 0.0
        phi[n_feat] = bias
    for lo in range(0, n_rows, _BLOCK_ROWS):
        hi = min(lo + _BLOCK_ROWS, n_rows)
        for t in range(node_offset.size - 1):
            nb = node_offset[t]
            lb = leaf_offset[t]
            n = node_offset[t + 1] - nb
            if n == 0 or not tables.tree_table[t]:
                continue
            for i in range(lo, hi):
                mask[0] = 0
                for jj in range(n):
                    j = nb + jj
                    m = mask[jj]
                    bit = np.int64(1) << tables.node_slot[j]
                    # The same folded rule as _heap_trees._predict_heap's, written out in
                    # both: one shared inline helper made both kernels 1.5-4x slower
                    # (numba 0.68, 2026-11-30), with the same bits.
                    code = code_of[j]
                    if code >= 0:
                        f = np.float64(X[i, code & _FEATURE_MASK])
                        go = np.int64(f <= threshold[j]) | (
                            np.int64(f != f) & np.int64(code >> _NAN_LEFT_SHIFT)
                        )
                    else:
                        go = _special_go_left(
                            np.float64(X[i, code & _FEATURE_MASK]),
                            flags[j],
                            threshold[j],
                            cat_start[j],
                            cat_len[j],
                            cat_words,
                        )
                    # The child the row does not take gets this node's feature marked cold.
                    taken = bit * go
                    mask[child_slot[2 * j]] = m | (bit - taken)
                    mask[child_slot[2 * j + 1]] = m | taken
                for q in range(n + 1):
                    leaf = lb + q
                    d = tables.leaf_width[leaf]
                    s0 = tables.leaf_slot[leaf]
                    k0 = tables.leaf_table[leaf]
                    hot = ((np.int64(1) << d) - 1) & ~mask[leaves_at + q]
                    cold = -tables.table[k0 + hot]
                    for s in range(d):
                        bit = np.int64(1) << s
                        # Both sides computed, one kept: a select, not a branch the row's
                        # data would make unpredictable.
                        followed = tables.slot_scale[s0 + s] * tables.table[k0 + (hot ^ bit)]
                        out[i, tables.slot_feature[s0 + s]] += followed if hot & bit else cold
