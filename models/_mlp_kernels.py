"""Compiled serving kernels of the MLP member (numba), apart from its Python API.

Every kernel scores each row alone: a row's logit is bit-identical whatever
batch it comes in and whatever rows are around it (the stream's micro-batches
and replay's chunks must agree to the last bit).

- :func:`_forward_blocks` is the serving kernel. It takes rows in blocks of
  :data:`_BLOCK_ROWS` and computes each layer in tiles of :data:`_TILE` output
  units, whose accumulators stay in vector registers over the row's inputs
  (:mod:`._simd`), so weights are read once per tile and row instead of being
  added into memory once per input and row. Per row and unit the sum runs in
  the same order as in :func:`_forward_rows`: bias, then the non-zero inputs
  (first layer) or positive activations (hidden layers) in input order, then
  the categorical tables, with the same float64 arithmetic. So both kernels
  give the same bits.
- Its first layer runs :data:`_GROUP_ROWS` rows at once over the union of
  their non-zero inputs, so each weight vector read from L2 serves four rows
  (:func:`_first_layer`). A row then also adds ``0 * w`` for the inputs only
  its neighbours have, which changes no bit that matters: ``0 * w`` is a zero
  (weights are finite: :meth:`._mlp.MLPMember._compile` checks), and adding a
  zero leaves a non-zero sum as it is; only a sum that is exactly zero may
  come out as ``-0.0`` instead of ``+0.0``, or back. A first-layer unit goes
  on through adds (the tables: equal values in, equal values out) and the
  ReLU's ``> 0`` test, to which both zeros are the same, and the first layer
  is never the output (that has one unit, never in a tile). So a row's logit
  has the same bits whichever rows share its group, and alone.
- The first layer uses a fused multiply-add (:func:`._simd.vfma`, half the
  vector operations of a multiply then an add) with the same bits as the
  reference's multiply then add: its inputs are float32 values (the prepared
  row is rounded to float32) and so are its weights (torch's), so every
  product is exact in float64 and both round only the sum. The hidden layers'
  inputs are float64 sums, whose products are not exact: they keep the
  multiply then add.
- :func:`_forward_rows` is the per-row reference: one row, one unit at a time.
- :func:`_prepare_rows` only prepares inputs (for the BLAS and torch paths,
  so training sees the very inputs serving does). All three prepare a row with
  :func:`_prep_row`, whose signed ``log1p`` is :func:`_log1p` (fdlibm's,
  within an ulp of numpy's) written without branches or calls so that the
  row's numeric loop vectorises: standard model, 308 numeric inputs, random
  rows (2026-11-29): 5.4 -> 1.1 us per row against libm's ``log1p``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from riskflow.models._simd import LANES, f64_bits, f64_from_bits, vaxpy, vfma, vload, vstore

#: Standardised inputs beyond +-8 deviations are outliers; clipping keeps a
#: single absurd value from saturating the network.
_CLIP = 8.0
#: Output units per register tile: 8 vectors, i.e. 8 independent add chains
#: (fewer leave the adds waiting on each other's latency; 16 spill). First
#: layer of the standard model, interleaved medians (2026-11-29): 6.8 us per
#: row at 8 x 8 lanes, 8.7 at 16 x 8, 10.1 at 8 x 4, 8.9 at 16 x 4.
_TILE = 8 * LANES
#: Rows per block: a tile's weights (first layer: 486 inputs x 64 units,
#: 249 KB) are read from L2 for each of the block's rows (first layer: each
#: group of :data:`_GROUP_ROWS` rows) in turn, and the
#: block's activations (16 x 128 doubles, 16 KB) stay in L1. Splitting the
#: inputs into L1-sized slices measured no faster (with weights not yet
#: aligned to cache lines, :func:`cache_aligned`); 4 or 64 rows per block
#: measured the same as 16 with aligned ones (2026-11-29).
_BLOCK_ROWS = 16
#: Rows the first layer computes at once (:func:`_first_layer`): 4 rows x 4
#: vectors = 16 accumulators, each weight vector loaded once for 4 rows. Real
#: feature rows (replay bench model, 486 first-layer inputs of which 292 are
#: non-zero per row; the union of 2 rows has 333, of 4 365, of 8 385), whole
#: kernel with the fused first layer, interleaved medians (2026-11-30): 3.89
#: us per row one row at a time, 3.62 two at a time (8 vectors each), 3.35
#: four at a time; 4.63 before the fused multiply-add. Grouping the hidden
#: layer (128 -> 64) the same way measured no faster (3.51 vs 3.53).
_GROUP_ROWS = 4  # :func:`_tile4` is written for 4


def cache_aligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of 1-D ``a`` that starts on a 64-byte boundary (a cache line).

    Examples
    --------
    >>> b = cache_aligned(np.arange(5.0))
    >>> b.ctypes.data % 64, b.tolist()
    (0, [0.0, 1.0, 2.0, 3.0, 4.0])
    """
    step = a.itemsize
    buf = np.empty(a.size + 64 // step, dtype=a.dtype)
    start = (-buf.ctypes.data % 64) // step
    out = buf[start : start + a.size]
    out[:] = a
    return out


def tile_panels(w: np.ndarray, tile: int = _TILE) -> np.ndarray:
    """A (inputs, units) weight matrix's full tiles, each contiguous, flattened.

    Panel ``t`` holds ``w[:, t*tile:(t+1)*tile]`` row after row, so a tile's
    weights for one input are ``tile`` consecutive doubles. Units past the last
    full tile are read from ``w`` itself.

    Examples
    --------
    >>> tile_panels(np.arange(12.0).reshape(3, 4), tile=2)
    array([ 0.,  1.,  4.,  5.,  8.,  9.,  2.,  3.,  6.,  7., 10., 11.])
    """
    din, dout = w.shape
    n = dout // tile
    panels = w[:, : n * tile].reshape(din, n, tile).transpose(1, 0, 2)
    return np.ascontiguousarray(panels, dtype=np.float64).reshape(-1)


# fdlibm's log1p (s_log1p.c): ln 2 in two parts and the log's minimax coefficients.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _log1p(a):  # pragma: no cover - compiled; tested against numpy
    """``log1p(a)`` for ``a >= 0`` (float64), within an ulp or two; ``a = +inf`` gives +inf.

    fdlibm's algorithm without its branches: ``u = 1 + a`` split into ``2**k * m``
    (``m`` within ``[sqrt(2)/2, sqrt(2))``) by its bits, ``log(m)`` by a
    polynomial, plus ``c``, the rounding error of ``1 + a`` over ``u``. Only
    IEEE adds, multiplies, divides and integer operations, no call: a loop of
    them vectorises, and vectorised or not, the bits are the same (libm's
    ``log1p``, a call per element, cost ~10 ns an input).
    """
    u = 1.0 + a
    c = (a - (u - 1.0)) / u
    if u >= 9007199254740992.0:  # 2**53: 1 + a is exact enough (and a = inf gives NaN)
        c = 0.0
    bits = f64_bits(u)
    hx = (bits >> 32) + (0x3FF00000 - 0x3FE6A09E)
    k = (hx >> 20) - 0x3FF
    hx = (hx & 0x000FFFFF) + 0x3FE6A09E
    f = f64_from_bits((hx << 32) | (bits & 0xFFFFFFFF)) - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    dk = np.float64(k)
    out = dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + (dk * _LN2_LO + c))) - f)
    if a == np.inf:
        out = np.inf
    return out


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _prep_row(
    X, i, num_idx, center, scale, miss_idx, cat_idx, vocab_values, vocab_offset, dense, cats
):  # pragma: no cover - compiled; tested through the member
    n_num = num_idx.size
    # error_model="numpy" (here and in the kernels that inline this): no
    # ZeroDivisionError branch at each division, which would keep the loop
    # scalar; ``scale`` is never 0 (training sets 1 for a constant column).
    # The row's numeric inputs first (float32, exact in ``dense`` whatever its
    # type), then the arithmetic in place: a loop over contiguous arrays, with
    # no branch and no call (selects only), which LLVM vectorises.
    for k in range(n_num):
        dense[k] = X[i, num_idx[k]]
    for k in range(n_num):
        v = np.float64(dense[k])
        t = _log1p(abs(v))
        if v < 0:
            t = -t
        z = (t - center[k]) / scale[k]
        if z > _CLIP:
            z = _CLIP
        if z < -_CLIP:
            z = -_CLIP
        if np.isnan(v):
            z = 0.0
        # Rounded to float32 whatever ``dense`` holds: every runtime sees the same inputs.
        dense[k] = np.float32(z)
    for k in range(miss_idx.size):
        dense[n_num + k] = 1.0 if np.isnan(X[i, miss_idx[k]]) else 0.0
    for c in range(cat_idx.size):
        v = np.float64(X[i, cat_idx[c]])
        lo = vocab_offset[c]
        hi = vocab_offset[c + 1]
        code = 0
        if not np.isnan(v):
            # Binary search in the sorted vocabulary slice.
            a, b = lo, hi
            while a < b:
                mid = (a + b) >> 1
                if vocab_values[mid] < v:
                    a = mid + 1
                else:
                    b = mid
            if a < hi and vocab_values[a] == v:
                code = a - lo + 1
        cats[c] = code


@njit(cache=True, nogil=True, error_model="numpy")
def _prepare_rows(
    X, num_idx, center, scale, miss_idx, cat_idx, vocab_values, vocab_offset, dense, cats
):  # pragma: no cover - compiled; tested through the member
    for i in range(X.shape[0]):
        _prep_row(
            X,
            i,
            num_idx,
            center,
            scale,
            miss_idx,
            cat_idx,
            vocab_values,
            vocab_offset,
            dense[i],
            cats[i],
        )


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_rows(
    X,
    num_idx,
    center,
    scale,
    miss_idx,
    cat_idx,
    vocab_values,
    vocab_offset,
    w_dense,
    b_first,
    tables,
    table_offset,
    w_flat,
    w_offset,
    b_flat,
    b_offset,
    dims,
    out,
):  # pragma: no cover - compiled; parity-tested against the BLAS path and torch
    n_dense = num_idx.size + miss_idx.size
    dense = np.empty(n_dense)
    cats = np.empty(cat_idx.size, np.int64)
    width = 1
    for d in dims:
        width = max(width, d)
    a = np.empty(width)
    b = np.empty(width)
    for i in range(X.shape[0]):
        _prep_row(
            X,
            i,
            num_idx,
            center,
            scale,
            miss_idx,
            cat_idx,
            vocab_values,
            vocab_offset,
            dense,
            cats,
        )
        h = dims[0]
        for o in range(h):
            a[o] = b_first[o]
        for k in range(n_dense):
            v = dense[k]
            if v != 0.0:
                for o in range(h):
                    a[o] += v * w_dense[k, o]
        for c in range(cat_idx.size):
            r = table_offset[c] + cats[c]
            for o in range(h):
                a[o] += tables[r, o]
        for layer in range(1, dims.size):
            din = dims[layer - 1]
            dout = dims[layer]
            w0 = w_offset[layer - 1]
            b0 = b_offset[layer - 1]
            for o in range(dout):
                b[o] = b_flat[b0 + o]
            for k in range(din):
                v = a[k]
                if v > 0.0:  # ReLU
                    base = w0 + k * dout
                    for o in range(dout):
                        b[o] += v * w_flat[base + o]
            a, b = b, a
        out[i] = a[0]


@njit(cache=True, nogil=True, inline="always")
def _nonzero(x, n, idx, val):  # pragma: no cover - compiled; tested through the member
    """Positions and values of ``x[:n]``'s non-zero entries, in order; their count."""
    c = 0
    for k in range(n):
        v = x[k]
        # Written always, kept only if non-zero: no branch to mispredict (the
        # pattern is the data's), and ``idx``/``val`` have room for ``n``.
        idx[c] = k
        val[c] = v
        c += v != 0.0
    return c


@njit(cache=True, nogil=True, inline="always")
def _positive(x, n, idx, val):  # pragma: no cover - compiled; tested through the member
    """Positions and values of ``x[:n]``'s positive entries (ReLU), in order; their count."""
    c = 0
    for k in range(n):
        v = x[k]
        # Written always, kept only if positive: no branch to mispredict (the
        # pattern is the data's), and ``idx``/``val`` have room for ``n``.
        idx[c] = k
        val[c] = v
        c += v > 0.0
    return c


@njit(cache=True, nogil=True, inline="always")
def _axpy(acc, s, w, fused):  # pragma: no cover - compiled
    """``acc + s * w``: fused (one rounding) or multiply then add; ``fused`` is a constant."""
    if fused:
        return vfma(acc, s, w)
    return vaxpy(acc, s, w)


@njit(cache=True, nogil=True, inline="always")
def _tile(val, idx, nnz, panel, base, bias, b0, out, o0, fused):  # pragma: no cover - compiled
    """``out[o0:o0+_TILE] = bias[b0:b0+_TILE] + sum_j val[j] * w[idx[j], tile]``, j in order."""
    # Eight accumulators spelled out: they must be SSA values (registers), not an array.
    a0 = vload(bias, b0)
    a1 = vload(bias, b0 + LANES)
    a2 = vload(bias, b0 + 2 * LANES)
    a3 = vload(bias, b0 + 3 * LANES)
    a4 = vload(bias, b0 + 4 * LANES)
    a5 = vload(bias, b0 + 5 * LANES)
    a6 = vload(bias, b0 + 6 * LANES)
    a7 = vload(bias, b0 + 7 * LANES)
    for j in range(nnz):
        v = val[j]
        p = base + idx[j] * _TILE
        a0 = _axpy(a0, v, vload(panel, p), fused)
        a1 = _axpy(a1, v, vload(panel, p + LANES), fused)
        a2 = _axpy(a2, v, vload(panel, p + 2 * LANES), fused)
        a3 = _axpy(a3, v, vload(panel, p + 3 * LANES), fused)
        a4 = _axpy(a4, v, vload(panel, p + 4 * LANES), fused)
        a5 = _axpy(a5, v, vload(panel, p + 5 * LANES), fused)
        a6 = _axpy(a6, v, vload(panel, p + 6 * LANES), fused)
        a7 = _axpy(a7, v, vload(panel, p + 7 * LANES), fused)
    vstore(out, o0, a0)
    vstore(out, o0 + LANES, a1)
    vstore(out, o0 + 2 * LANES, a2)
    vstore(out, o0 + 3 * LANES, a3)
    vstore(out, o0 + 4 * LANES, a4)
    vstore(out, o0 + 5 * LANES, a5)
    vstore(out, o0 + 6 * LANES, a6)
    vstore(out, o0 + 7 * LANES, a7)


@njit(cache=True, nogil=True, inline="always")
def _vector(val, idx, nnz, w, w0, dout, bias, b0, out, o0):  # pragma: no cover - compiled
    """Units ``o0:o0+LANES`` past the full tiles: one accumulator, row-major weights."""
    a = vload(bias, b0 + o0)
    for j in range(nnz):
        a = vaxpy(a, val[j], vload(w, w0 + idx[j] * dout + o0))
    vstore(out, o0, a)


@njit(cache=True, nogil=True, inline="always")
def _rest(
    val, idx, nnz, m, dout, o_start, w, w0, bias, b0, out
):  # pragma: no cover - compiled; tested through the member
    """Units ``o_start:dout`` (past the full tiles) of a layer, from row-major weights ``w``."""
    # A vector at a time (narrow layers: 8x fewer add chains than unit by
    # unit), then unit by unit.
    n_vec = dout // LANES
    for q in range(o_start // LANES, n_vec):
        for r in range(m):
            _vector(val[r], idx[r], nnz[r], w, w0, dout, bias, b0, out[r], q * LANES)
    for o in range(n_vec * LANES, dout):
        for r in range(m):
            vr = val[r]
            ir = idx[r]
            s = bias[b0 + o]
            for j in range(nnz[r]):
                s += vr[j] * w[w0 + ir[j] * dout + o]
            out[r, o] = s


@njit(cache=True, nogil=True, inline="always")
def _union(dense, g0, n, idx, val):  # pragma: no cover - compiled; tested through the member
    """Positions where any of rows ``g0:g0+_GROUP_ROWS`` of ``dense[:, :n]`` is non-zero, in
    order, into ``idx``; each row's values there into ``val[g0 + r]``; their count."""
    c = 0
    for k in range(n):
        nz = False
        for r in range(g0, g0 + _GROUP_ROWS):
            v = dense[r, k]
            # Written always, kept only if some row is non-zero (as in _nonzero).
            val[r, c] = v
            nz |= v != 0.0
        idx[c] = k
        c += nz
    return c


@njit(cache=True, nogil=True, inline="always")
def _tile4(
    va, vb, vc, vd, idx, nnz, panel, base, bias, b0, oa, ob, oc, od, o0
):  # pragma: no cover - compiled
    """Half a tile (4 vectors of units) for 4 rows, fused; each weight vector loaded once.

    Row ``va``'s units ``o0:o0+4*LANES`` into ``oa`` (and so on for ``b``,
    ``c``, ``d``) = ``bias[b0:...] + sum_j va[j] * w[idx[j], ...]``, j in
    order, from the panel's vectors at ``base + idx[j] * _TILE``.
    """
    # Sixteen accumulators spelled out: they must be SSA values (registers).
    a0 = vload(bias, b0)
    a1 = vload(bias, b0 + LANES)
    a2 = vload(bias, b0 + 2 * LANES)
    a3 = vload(bias, b0 + 3 * LANES)
    b0_, b1, b2, b3 = a0, a1, a2, a3
    c0, c1, c2, c3 = a0, a1, a2, a3
    d0, d1, d2, d3 = a0, a1, a2, a3
    for j in range(nnz):
        x = va[j]
        y = vb[j]
        z = vc[j]
        u = vd[j]
        p = base + idx[j] * _TILE
        w = vload(panel, p)
        a0 = vfma(a0, x, w)
        b0_ = vfma(b0_, y, w)
        c0 = vfma(c0, z, w)
        d0 = vfma(d0, u, w)
        w = vload(panel, p + LANES)
        a1 = vfma(a1, x, w)
        b1 = vfma(b1, y, w)
        c1 = vfma(c1, z, w)
        d1 = vfma(d1, u, w)
        w = vload(panel, p + 2 * LANES)
        a2 = vfma(a2, x, w)
        b2 = vfma(b2, y, w)
        c2 = vfma(c2, z, w)
        d2 = vfma(d2, u, w)
        w = vload(panel, p + 3 * LANES)
        a3 = vfma(a3, x, w)
        b3 = vfma(b3, y, w)
        c3 = vfma(c3, z, w)
        d3 = vfma(d3, u, w)
    vstore(oa, o0, a0)
    vstore(oa, o0 + LANES, a1)
    vstore(oa, o0 + 2 * LANES, a2)
    vstore(oa, o0 + 3 * LANES, a3)
    vstore(ob, o0, b0_)
    vstore(ob, o0 + LANES, b1)
    vstore(ob, o0 + 2 * LANES, b2)
    vstore(ob, o0 + 3 * LANES, b3)
    vstore(oc, o0, c0)
    vstore(oc, o0 + LANES, c1)
    vstore(oc, o0 + 2 * LANES, c2)
    vstore(oc, o0 + 3 * LANES, c3)
    vstore(od, o0, d0)
    vstore(od, o0 + LANES, d1)
    vstore(od, o0 + 2 * LANES, d2)
    vstore(od, o0 + 3 * LANES, d3)


@njit(cache=True, nogil=True, inline="always")
def _first_layer(
    dense, m, n_dense, h, panel, w, bias, idx, val, nnz, out
):  # pragma: no cover - compiled; tested through the member
    """The first layer (no tables, no activation) for the block's ``m`` prepared rows ``dense``.

    Full groups of :data:`_GROUP_ROWS` rows run together over their inputs'
    union (:func:`_tile4`); the rest, and units past the full tiles, row by
    row over each row's non-zero inputs (fused: the same bits, see the module
    docstring).
    """
    full = m - m % _GROUP_ROWS
    for g0 in range(0, full, _GROUP_ROWS):
        nnz[g0] = _union(dense, g0, n_dense, idx[g0], val)
    for r in range(full, m):
        nnz[r] = _nonzero(dense[r], n_dense, idx[r], val[r])
    n_tiles = h // _TILE
    half = _TILE // 2
    for t in range(n_tiles):
        base = t * n_dense * _TILE
        for g0 in range(0, full, _GROUP_ROWS):
            for o in range(t * _TILE, (t + 1) * _TILE, half):
                _tile4(
                    val[g0],
                    val[g0 + 1],
                    val[g0 + 2],
                    val[g0 + 3],
                    idx[g0],
                    nnz[g0],
                    panel,
                    base + o - t * _TILE,
                    bias,
                    o,
                    out[g0],
                    out[g0 + 1],
                    out[g0 + 2],
                    out[g0 + 3],
                    o,
                )
        for r in range(full, m):
            o = t * _TILE
            _tile(val[r], idx[r], nnz[r], panel, base, bias, o, out[r], o, True)
    if n_tiles * _TILE < h:
        for r in range(full):
            nnz[r] = _nonzero(dense[r], n_dense, idx[r], val[r])
        _rest(val, idx, nnz, m, h, n_tiles * _TILE, w, 0, bias, 0, out)


@njit(cache=True, nogil=True, inline="always")
def _layer(
    val, idx, nnz, m, din, dout, panel, p0, w, w0, bias, b0, out
):  # pragma: no cover - compiled; tested through the member
    """One dense layer for the block's ``m`` rows, from their listed inputs (no activation).

    Full tiles come from ``panel`` (:func:`tile_panels`, starting at ``p0``),
    units past them from the row-major weights ``w`` (starting at ``w0``):
    every unit sums bias, then ``val[j] * w[idx[j], unit]`` in ``j`` order.
    """
    n_tiles = dout // _TILE
    for t in range(n_tiles):
        base = p0 + t * din * _TILE
        for r in range(m):
            o = t * _TILE
            _tile(val[r], idx[r], nnz[r], panel, base, bias, b0 + o, out[r], o, False)
    _rest(val, idx, nnz, m, dout, n_tiles * _TILE, w, w0, bias, b0, out)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward_blocks(
    X,
    num_idx,
    center,
    scale,
    miss_idx,
    cat_idx,
    vocab_values,
    vocab_offset,
    w_dense,
    w1_panels,
    b_first,
    tables,
    table_offset,
    w_flat,
    w_offset,
    wp_flat,
    wp_offset,
    b_flat,
    b_offset,
    dims,
    out,
):  # pragma: no cover - compiled; bit-identical to _forward_rows (tests)
    n_dense = num_idx.size + miss_idx.size
    n_cat = cat_idx.size
    n = X.shape[0]
    R = max(min(_BLOCK_ROWS, n), 1)  # a lone row allocates for one row, not a block
    width = 1
    for d in dims:
        width = max(width, d)
    dense = np.empty((R, n_dense))
    cats = np.empty((R, n_cat), np.int64)
    idx = np.empty((R, max(n_dense, width)), np.int64)
    val = np.empty((R, max(n_dense, width)))
    nnz = np.empty(R, np.int64)
    a = np.empty((R, width))
    b = np.empty((R, width))
    w1 = w_dense.reshape(w_dense.size)
    h = dims[0]
    for lo in range(0, n, R):
        m = min(R, n - lo)
        for r in range(m):
            _prep_row(
                X,
                lo + r,
                num_idx,
                center,
                scale,
                miss_idx,
                cat_idx,
                vocab_values,
                vocab_offset,
                dense[r],
                cats[r],
            )
        _first_layer(dense, m, n_dense, h, w1_panels, w1, b_first, idx, val, nnz, a)
        for r in range(m):
            for c in range(n_cat):
                row = table_offset[c] + cats[r, c]
                for o in range(h):
                    a[r, o] += tables[row, o]
        for layer in range(1, dims.size):
            din = dims[layer - 1]
            for r in range(m):
                nnz[r] = _positive(a[r], din, idx[r], val[r])
            _layer(
                val,
                idx,
                nnz,
                m,
                din,
                dims[layer],
                wp_flat,
                wp_offset[layer - 1],
                w_flat,
                w_offset[layer - 1],
                b_flat,
                b_offset[layer - 1],
                b,
            )
            a, b = b, a
        for r in range(m):
            out[lo + r] = a[r, 0]
