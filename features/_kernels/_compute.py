"""The feature kernel: one pass over a batch, read-then-update per transaction.

For each transaction, in order: release every queued label whose label time
has come (``label_time <= ts``), then read every feature from the state as it
stands (so a transaction never sees itself), then fold the transaction into
the state. The same code serves streaming (small batches) and replay (one
big batch): the only state is in the arrays, so any split gives identical
output.
"""

from __future__ import annotations

import math

import numpy as np

from ._hash import _mix64, _probe_from, _slot_key
from ._jit import clz64, njit_inline, njit_noalloc, prefetch
from ._layout import (
    ACT_GEO,
    ACT_KEYS,
    ACT_LABEL,
    ACT_MIX,
    ACT_RING,
    ACT_SCAN,
    ACT_WIDE,
    DAY,
    HLL_BITS,
    HLL_M,
    HOUR,
    L_F7,
    L_F30,
    L_FAMT30,
    L_LAST_FRAUD,
    L_N30,
    L_T,
    MINUTE,
    MIX_W,
    N_CHANNELS,
    N_MCC,
    NE,
    NL,
    NP,
    NW,
    O_AGE_DAYS,
    O_AMT_TO_LAST,
    O_AUX_NEW,
    O_CNT_1H,
    O_CNT_1M,
    O_CNT_10M,
    O_CP_NEW,
    O_DAYS_SINCE_FRAUD,
    O_DISTINCT_CP_24H,
    O_F7,
    O_F30,
    O_FAMT30,
    O_FRATE30,
    O_GEO_CENTROID,
    O_GEO_DIST,
    O_GEO_SPEED,
    O_HLL_CP,
    O_MAX_24H,
    O_MEAN_GAP,
    O_MIN_24H,
    O_MIX_ECOM,
    O_MIX_KEYED,
    O_MIX_SAME_CH,
    O_MIX_SAME_EM,
    O_N30,
    O_N_LIFETIME,
    O_SECS_SINCE_LAST,
    O_SUM_10M,
    P_AGE,
    P_COUNT30,
    P_FIRST,
    P_N,
    P_RATIO30,
    P_SECS,
    PROW_W,
    Q_C30,
    Q_FIRST,
    Q_LAST,
    Q_N,
    Q_S30,
    R_AGG,
    R_AGG_T,
    R_FIRST,
    R_GEO,
    R_HLL,
    R_HLL_SUM,
    R_HLL_ZEROS,
    R_LAB,
    R_LAST,
    R_MCC,
    R_MIX,
    R_RAMT,
    R_RAUX,
    R_RCP,
    R_RING_N,
    R_RTS,
    RATE_PRIOR,
    RATE_STRENGTH,
    ROW_W,
    T_AMOUNT,
    T_AMT_CENTS,
    T_AMT_INT,
    T_CARD_PRESENT,
    T_CHANNEL,
    T_DOW,
    T_DOW_COS,
    T_DOW_SIN,
    T_ENTRY,
    T_HOUR,
    T_HOUR_COS,
    T_HOUR_SIN,
    T_KEYED,
    T_LOG_AMOUNT,
    T_MCC,
    T_MCC_CNT24,
    T_MCC_F30,
    T_MCC_FRATE,
    T_MCC_N30,
    T_MCC_PRIOR,
    T_MISS_BIN,
    T_MISS_CHANNEL,
    T_MISS_COUNTRY,
    T_MISS_CUSTOMER,
    T_MISS_DEVICE,
    T_MISS_ENTRY,
    T_MISS_GEO,
    T_MISS_IP,
    T_MISS_MCC,
    T_MISS_TERMINAL,
    T_NIGHT,
    T_WEEKEND,
    TAU_7D,
    TAU_24H,
    TAU_30D,
    W_COUNT,
    W_MEAN,
    W_OUT,
    W_RATIO,
    W_STD,
    W_SUM,
    W_Z,
    K,
)

_NAN = np.nan
_DOW_SIN = np.sin(2.0 * np.pi * np.arange(7) / 7.0)
_DOW_COS = np.cos(2.0 * np.pi * np.arange(7) / 7.0)
_TWO_PI = 2.0 * math.pi
_EARTH_KM = 6371.0088
_HLL_ALPHA = 0.697  # HyperLogLog bias constant for m = 32
_HLL_SALT = np.uint64(0x5851F42D4C957F2D)
#: HyperLogLog linear-counting estimate by number of empty registers:
#: ``HLL_M * log(HLL_M / zeros)`` for zeros in 1..HLL_M (a lookup, not a
#: ``log`` per entity; CPython's math.log and the kernel's call the same libm
#: ``log``, so the values are the same bits).
_HLL_LINEAR = np.array([0.0] + [HLL_M * math.log(HLL_M / float(z)) for z in range(1, HLL_M + 1)])
#: Floors that keep ratios finite: one cent of amount, one minute of travel.
_MIN_AMOUNT = 0.01
_MIN_TRAVEL_H = 1.0 / 60.0


@njit_inline
def _put(X, i, c, v):  # pragma: no cover - compiled
    if c >= 0:
        X[i, c] = v


@njit_inline
def _rate(f, n):  # pragma: no cover - compiled
    return (f + RATE_PRIOR * RATE_STRENGTH) / (n + RATE_STRENGTH)


@njit_inline
def _haversine(lat1, lon1, lat2, lon2, cos_p2):  # pragma: no cover - compiled
    """Great-circle km; ``cos_p2 = cos(radians(lat2))``, shared by every entity of a transaction."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * cos_p2 * math.sin(dl / 2) ** 2
    return 2.0 * _EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


@njit_inline
def _reset_entity(ent, s, now):  # pragma: no cover - compiled
    for j in range(ROW_W):
        ent.u[s, j] = np.uint64(0)  # 0.0 in the float view too
    ent.f[s, R_LAST] = now
    ent.f[s, R_FIRST] = now
    ent.f[s, R_AGG_T] = now
    ent.f[s, R_GEO + 0] = _NAN
    ent.f[s, R_GEO + 1] = _NAN
    ent.f[s, R_GEO + 2] = _NAN
    ent.f[s, R_LAB + L_LAST_FRAUD] = _NAN
    ent.f[s, R_LAB + L_T] = float(now)
    ent.f[s, R_MCC] = -1.0
    ent.f[s, R_HLL_SUM] = float(HLL_M)
    ent.f[s, R_HLL_ZEROS] = float(HLL_M)


@njit_inline
def _entity_slot(ent, k, h, now, ttl):  # pragma: no cover - compiled
    """Slot of table key ``k`` (home hash ``h``), inserted or reset if absent or TTL-expired."""
    s = _probe_from(ent.keys, k, h)
    if ent.keys[s] == np.uint64(0):
        ent.keys[s] = k
        ent.meta[0] += 1
        _reset_entity(ent, s, now)
    elif now - ent.f[s, R_LAST] > ttl:
        # Logically evicted: behaves exactly as a new entity, whenever the
        # physical rebuild happens to run.
        _reset_entity(ent, s, now)
    return s


@njit_inline
def _pair_slot(pair, k, h, now, ttl):  # pragma: no cover - compiled
    s = _probe_from(pair.keys, k, h)
    if pair.keys[s] == np.uint64(0) or now - pair.f[s, Q_LAST] > ttl:
        if pair.keys[s] == np.uint64(0):
            pair.keys[s] = k
            pair.meta[0] += 1
        pair.f[s, Q_LAST] = now
        pair.f[s, Q_FIRST] = now
        pair.f[s, Q_C30] = 0.0
        pair.f[s, Q_S30] = 0.0
        pair.f[s, Q_N] = 0.0
    return s


@njit_noalloc
def _apply_label(ent, glob, j, tl, l_label, l_amount, l_keys, ttl):  # pragma: no cover
    """Fold label ``j`` into the label-risk state of each entity of its transaction, at ``tl``."""
    fraud = l_label[j] == 1
    amt = l_amount[j]
    if amt != amt:
        amt = 0.0
    for li in range(NL):
        key = l_keys[li, j]
        if key == np.uint64(0):
            continue
        k = _slot_key(li, key)  # LABEL_ENTITIES == ENTITIES[:NL]
        s = _entity_slot(ent, k, _mix64(k), tl, ttl)
        dt = max(tl - ent.f[s, R_LAB + L_T], 0.0)
        d7 = math.exp(-dt / TAU_7D)
        d30 = math.exp(-dt / TAU_30D)
        ent.f[s, R_LAB + L_F7] *= d7
        ent.f[s, R_LAB + L_F30] *= d30
        ent.f[s, R_LAB + L_N30] *= d30
        ent.f[s, R_LAB + L_FAMT30] *= d30
        ent.f[s, R_LAB + L_N30] += 1.0
        if fraud:
            ent.f[s, R_LAB + L_F7] += 1.0
            ent.f[s, R_LAB + L_F30] += 1.0
            ent.f[s, R_LAB + L_FAMT30] += amt
            ent.f[s, R_LAB + L_LAST_FRAUD] = float(tl)
        ent.f[s, R_LAB + L_T] = float(tl)
        if tl > ent.f[s, R_LAST]:
            ent.f[s, R_LAST] = tl
        if li == 2:  # merchant: its MCC's label risk too
            m = np.int64(ent.f[s, R_MCC])
            if m >= 0:
                g = glob.mcc
                d = math.exp(-max(tl - g[m, 2], 0.0) / TAU_30D)
                g[m, 0] = g[m, 0] * d + (1.0 if fraud else 0.0)
                g[m, 1] = g[m, 1] * d + 1.0
                g[m, 2] = float(tl)


@njit_noalloc
def _entity_features(
    ent, e, act, s, t, a, cp, aux, mcc, ch, em, la, lo, cos_la, win, col, X, i
):  # pragma: no cover
    """Write entity ``e``'s features for transaction ``i`` from slot ``s``, then update it.

    ``act``: the entity's ``active`` flags (what its selected features need).
    ``cos_la``: ``cos(radians(la))`` when ``la`` is a number (else unused).
    """
    # ---- decayed windows: count, sum, mean, std, z-score, ratio to mean
    dt = float(max(t - ent.f[s, R_AGG_T], 0))
    d30 = -1.0
    for w in range(NW):
        tau = win[e, w]
        if tau <= 0.0:
            continue
        d = math.exp(-dt / tau)
        if tau == TAU_30D:
            d30 = d  # the mix's decay below: same operands, same bits
        c = ent.f[s, R_AGG + 3 * w] * d
        sm = ent.f[s, R_AGG + 3 * w + 1] * d
        q = ent.f[s, R_AGG + 3 * w + 2] * d
        b = w * W_OUT
        _put(X, i, col[e, b + W_COUNT], c)
        _put(X, i, col[e, b + W_SUM], sm)
        if c > 1e-9:
            mean = sm / c
            var = max(q / c - mean * mean, 0.0)
            _put(X, i, col[e, b + W_MEAN], mean)
            _put(X, i, col[e, b + W_STD], math.sqrt(var))
            # Regularised z-score: one currency unit added to the variance so
            # an entity with identical past amounts does not divide by zero.
            _put(X, i, col[e, b + W_Z], (a - mean) / math.sqrt(var + 1.0))
            _put(X, i, col[e, b + W_RATIO], a / max(mean, _MIN_AMOUNT))
        ent.f[s, R_AGG + 3 * w] = c + 1.0
        ent.f[s, R_AGG + 3 * w + 1] = sm + a
        ent.f[s, R_AGG + 3 * w + 2] = q + a * a

    # ---- channel / entry-mode mix over a decayed 30 days
    if act & ACT_MIX:
        if d30 < 0.0:
            d30 = math.exp(-dt / TAU_30D)
        tot_ch = 0.0
        for c in range(N_CHANNELS):
            ent.f[s, R_MIX + c] *= d30
            tot_ch += ent.f[s, R_MIX + c]
        tot_em = 0.0
        for c in range(N_CHANNELS, MIX_W):
            ent.f[s, R_MIX + c] *= d30
            tot_em += ent.f[s, R_MIX + c]
        if tot_ch > 1e-9:
            if ch >= 0:
                _put(X, i, col[e, O_MIX_SAME_CH], ent.f[s, R_MIX + ch] / tot_ch)
            _put(X, i, col[e, O_MIX_ECOM], ent.f[s, R_MIX + 1] / tot_ch)
        if tot_em > 1e-9:
            if em >= 0:
                _put(X, i, col[e, O_MIX_SAME_EM], ent.f[s, R_MIX + N_CHANNELS + em] / tot_em)
            _put(
                X,
                i,
                col[e, O_MIX_KEYED],
                (ent.f[s, R_MIX + N_CHANNELS + 2] + ent.f[s, R_MIX + N_CHANNELS + 3]) / tot_em,
            )
        if ch >= 0:
            ent.f[s, R_MIX + ch] += 1.0
        if em >= 0:
            ent.f[s, R_MIX + N_CHANNELS + em] += 1.0
    ent.f[s, R_AGG_T] = t

    # ---- exact short windows and novelty from the ring of the last K events
    n = np.int64(ent.f[s, R_RING_N])
    m = min(n, K)
    _put(X, i, col[e, O_N_LIFETIME], float(n))
    _put(X, i, col[e, O_AGE_DAYS], (t - ent.f[s, R_FIRST]) / DAY)
    c1m = 0
    c10m = 0
    c1h = 0
    s10m = 0.0
    mx24 = -np.inf
    mn24 = np.inf
    cp_seen = False
    aux_seen = False
    distinct = 0
    want_distinct = col[e, O_DISTINCT_CP_24H] >= 0
    for j in range(m if act & ACT_SCAN else 0):
        r = (n - 1 - j) & (K - 1)
        age = t - ent.f[s, R_RTS + r]
        ra = ent.f[s, R_RAMT + r]
        if age <= MINUTE:
            c1m += 1
        if age <= 10 * MINUTE:
            c10m += 1
            s10m += ra
        if age <= HOUR:
            c1h += 1
        rc = ent.u[s, R_RCP + r]
        if age <= DAY:
            mx24 = max(mx24, ra)
            mn24 = min(mn24, ra)
            if want_distinct and rc != np.uint64(0):
                dup = False
                for jj in range(j):
                    r2 = (n - 1 - jj) & (K - 1)
                    if ent.u[s, R_RCP + r2] == rc and t - ent.f[s, R_RTS + r2] <= DAY:
                        dup = True
                        break
                if not dup:
                    distinct += 1
        if rc == cp:
            cp_seen = True
        if ent.u[s, R_RAUX + r] == aux:
            aux_seen = True
    _put(X, i, col[e, O_CNT_1M], float(c1m))
    _put(X, i, col[e, O_CNT_10M], float(c10m))
    _put(X, i, col[e, O_CNT_1H], float(c1h))
    _put(X, i, col[e, O_SUM_10M], s10m)
    _put(X, i, col[e, O_DISTINCT_CP_24H], float(distinct))
    if mx24 > -np.inf:
        _put(X, i, col[e, O_MAX_24H], mx24)
        _put(X, i, col[e, O_MIN_24H], mn24)
    if cp != np.uint64(0):
        _put(X, i, col[e, O_CP_NEW], 0.0 if cp_seen else 1.0)
    if aux != np.uint64(0):
        _put(X, i, col[e, O_AUX_NEW], 0.0 if aux_seen else 1.0)
    if m > 0 and act & ACT_RING:
        newest = (n - 1) & (K - 1)
        _put(X, i, col[e, O_SECS_SINCE_LAST], (t - ent.f[s, R_RTS + newest]) / 1000.0)
        _put(X, i, col[e, O_AMT_TO_LAST], a / max(ent.f[s, R_RAMT + newest], _MIN_AMOUNT))
        if m > 1:
            oldest = (n - m) & (K - 1)
            gap = (ent.f[s, R_RTS + newest] - ent.f[s, R_RTS + oldest]) / 1000.0 / (m - 1)
            _put(X, i, col[e, O_MEAN_GAP], gap)
    r = n & (K - 1)
    if act & ACT_RING:
        ent.f[s, R_RTS + r] = t
        ent.f[s, R_RAMT + r] = a
    if act & ACT_KEYS:
        ent.u[s, R_RCP + r] = cp
        ent.u[s, R_RAUX + r] = aux
    ent.f[s, R_RING_N] = n + 1.0

    # ---- approximate distinct counterparties since first seen (HyperLogLog)
    hc = col[e, O_HLL_CP]
    if hc >= 0:
        acc = ent.f[s, R_HLL_SUM]
        zeros = ent.f[s, R_HLL_ZEROS]
        est = _HLL_ALPHA * HLL_M * HLL_M / acc
        if zeros > 0 and est <= 2.5 * HLL_M:
            est = _HLL_LINEAR[np.int64(zeros)]
        X[i, hc] = est
        if cp != np.uint64(0):
            h = _mix64(cp ^ _HLL_SALT)
            idx = np.int64(h >> np.uint64(64 - HLL_BITS))
            # rank = leading zeros of the other 59 bits + 1 (60 if all are 0)
            rank = min(np.int64(clz64(h << np.uint64(HLL_BITS))), 64 - HLL_BITS) + 1
            word = R_HLL + (idx >> 3)
            shift = np.uint64(8 * (idx & 7))
            cur = (ent.u[s, word] >> shift) & np.uint64(0xFF)
            if np.uint64(rank) > cur:
                ent.f[s, R_HLL_SUM] += 1.0 / float(np.uint64(1) << np.uint64(rank)) - 1.0 / float(
                    np.uint64(1) << cur
                )
                if cur == np.uint64(0):
                    ent.f[s, R_HLL_ZEROS] -= 1.0
                ent.u[s, word] = (ent.u[s, word] & ~(np.uint64(0xFF) << shift)) | (
                    np.uint64(rank) << shift
                )

    # ---- delayed-label risk (labels released so far)
    if act & ACT_LABEL and ent.f[s, R_LAB + L_N30] == 0.0:
        _put(X, i, col[e, O_F7], 0.0)
        _put(X, i, col[e, O_F30], 0.0)
        _put(X, i, col[e, O_N30], 0.0)
        _put(X, i, col[e, O_FRATE30], RATE_PRIOR)
        _put(X, i, col[e, O_FAMT30], 0.0)
    elif act & ACT_LABEL:
        dtl = max(t - ent.f[s, R_LAB + L_T], 0.0)
        d7 = math.exp(-dtl / TAU_7D)
        d30 = math.exp(-dtl / TAU_30D)
        f30 = ent.f[s, R_LAB + L_F30] * d30
        n30 = ent.f[s, R_LAB + L_N30] * d30
        _put(X, i, col[e, O_F7], ent.f[s, R_LAB + L_F7] * d7)
        _put(X, i, col[e, O_F30], f30)
        _put(X, i, col[e, O_N30], n30)
        _put(X, i, col[e, O_FRATE30], _rate(f30, n30))
        _put(X, i, col[e, O_FAMT30], ent.f[s, R_LAB + L_FAMT30] * d30)
        lf = ent.f[s, R_LAB + L_LAST_FRAUD]
        if lf == lf:
            _put(X, i, col[e, O_DAYS_SINCE_FRAUD], (t - lf) / DAY)

    # ---- geography: distance and implied speed from the previous located event
    if act & ACT_GEO and la == la and lo == lo:
        pts = ent.f[s, R_GEO + 2]
        if pts == pts:
            dist = _haversine(ent.f[s, R_GEO + 0], ent.f[s, R_GEO + 1], la, lo, cos_la)
            _put(X, i, col[e, O_GEO_DIST], dist)
            hours = max((t - pts) / HOUR, _MIN_TRAVEL_H)
            _put(X, i, col[e, O_GEO_SPEED], dist / hours)
            dc = math.exp(-max(t - pts, 0.0) / TAU_30D)
            ent.f[s, R_GEO + 3] *= dc
            ent.f[s, R_GEO + 4] *= dc
            ent.f[s, R_GEO + 5] *= dc
            if ent.f[s, R_GEO + 3] > 1e-9:
                _put(
                    X,
                    i,
                    col[e, O_GEO_CENTROID],
                    _haversine(
                        ent.f[s, R_GEO + 4] / ent.f[s, R_GEO + 3],
                        ent.f[s, R_GEO + 5] / ent.f[s, R_GEO + 3],
                        la,
                        lo,
                        cos_la,
                    ),
                )
        ent.f[s, R_GEO + 0] = la
        ent.f[s, R_GEO + 1] = lo
        ent.f[s, R_GEO + 2] = float(t)
        ent.f[s, R_GEO + 3] += 1.0
        ent.f[s, R_GEO + 4] += la
        ent.f[s, R_GEO + 5] += lo
    if mcc >= 0:
        ent.f[s, R_MCC] = float(mcc)
    ent.f[s, R_LAST] = t


@njit_inline
def _pair_features(pair, p, s, t, a, colP, X, i):  # pragma: no cover - compiled
    nlife = pair.f[s, Q_N]
    _put(X, i, colP[p, P_N], nlife)
    _put(X, i, colP[p, P_FIRST], 1.0 if nlife == 0.0 else 0.0)
    d = math.exp(-max(t - pair.f[s, Q_LAST], 0) / TAU_30D)
    c = pair.f[s, Q_C30] * d
    sm = pair.f[s, Q_S30] * d
    _put(X, i, colP[p, P_COUNT30], c)
    if nlife > 0.0:
        if c > 1e-9:
            _put(X, i, colP[p, P_RATIO30], a / max(sm / c, _MIN_AMOUNT))
        _put(X, i, colP[p, P_SECS], (t - pair.f[s, Q_LAST]) / 1000.0)
        _put(X, i, colP[p, P_AGE], (t - pair.f[s, Q_FIRST]) / DAY)
    pair.f[s, Q_C30] = c + 1.0
    pair.f[s, Q_S30] = sm + a
    pair.f[s, Q_N] = nlife + 1.0
    pair.f[s, Q_LAST] = t


@njit_noalloc
def _tx_features(
    glob, t, a, mcc, ch, em, la, lo, ekeys, country, colT, mcc_prior, X, i
):  # pragma: no cover
    _put(X, i, colT[T_AMOUNT], a)
    _put(X, i, colT[T_LOG_AMOUNT], math.log1p(max(a, 0.0)))
    _put(X, i, colT[T_AMT_INT], 1.0 if a == math.floor(a) else 0.0)
    _put(X, i, colT[T_AMT_CENTS], round((a - math.floor(a)) * 100.0))
    sec = t // 1000
    hour = (sec // 3600) % 24
    dow = (sec // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    hf = (sec % 86400) / 3600.0
    _put(X, i, colT[T_HOUR], float(hour))
    _put(X, i, colT[T_HOUR_SIN], math.sin(_TWO_PI * hf / 24.0))
    _put(X, i, colT[T_HOUR_COS], math.cos(_TWO_PI * hf / 24.0))
    _put(X, i, colT[T_DOW], float(dow))
    _put(X, i, colT[T_DOW_SIN], _DOW_SIN[dow])
    _put(X, i, colT[T_DOW_COS], _DOW_COS[dow])
    _put(X, i, colT[T_NIGHT], 1.0 if hour < 6 else 0.0)
    _put(X, i, colT[T_WEEKEND], 1.0 if dow >= 5 else 0.0)
    _put(X, i, colT[T_MISS_CUSTOMER], 1.0 if ekeys[i, 1] == np.uint64(0) else 0.0)
    _put(X, i, colT[T_MISS_TERMINAL], 1.0 if ekeys[i, 3] == np.uint64(0) else 0.0)
    _put(X, i, colT[T_MISS_DEVICE], 1.0 if ekeys[i, 4] == np.uint64(0) else 0.0)
    _put(X, i, colT[T_MISS_IP], 1.0 if ekeys[i, 5] == np.uint64(0) else 0.0)
    _put(X, i, colT[T_MISS_BIN], 1.0 if ekeys[i, 6] == np.uint64(0) else 0.0)
    _put(X, i, colT[T_MISS_COUNTRY], 1.0 if country[i] == np.uint64(0) else 0.0)
    _put(X, i, colT[T_MISS_MCC], 1.0 if mcc < 0 else 0.0)
    _put(X, i, colT[T_MISS_CHANNEL], 1.0 if ch < 0 else 0.0)
    _put(X, i, colT[T_MISS_ENTRY], 1.0 if em < 0 else 0.0)
    _put(X, i, colT[T_MISS_GEO], 0.0 if (la == la and lo == lo) else 1.0)
    if ch >= 0:
        _put(X, i, colT[T_CHANNEL], float(ch))
    if em >= 0:
        _put(X, i, colT[T_ENTRY], float(em))
        _put(X, i, colT[T_CARD_PRESENT], 1.0 if em <= 1 else 0.0)
        _put(X, i, colT[T_KEYED], 1.0 if (em == 2 or em == 3) else 0.0)
    if 0 <= mcc < N_MCC:
        _put(X, i, colT[T_MCC], float(mcc))
        _put(X, i, colT[T_MCC_PRIOR], mcc_prior[mcc])
        g = glob.mcc
        d = math.exp(-max(t - g[mcc, 2], 0.0) / TAU_30D)
        f30 = g[mcc, 0] * d
        n30 = g[mcc, 1] * d
        _put(X, i, colT[T_MCC_F30], f30)
        _put(X, i, colT[T_MCC_N30], n30)
        _put(X, i, colT[T_MCC_FRATE], _rate(f30, n30))
        d24 = math.exp(-max(t - g[mcc, 4], 0.0) / TAU_24H)
        c24 = g[mcc, 3] * d24
        _put(X, i, colT[T_MCC_CNT24], c24)
        g[mcc, 3] = c24 + 1.0
        g[mcc, 4] = float(t)


#: Transactions ahead whose hash-index lines are prefetched, and ahead whose
#: state rows are. The kernel waits on cache misses on entity rows (10 lines
#: each, spread over tens of MB) and on the index lines that locate them. A
#: row can only be requested once its slot is known, and its slot only once
#: the index line is in cache: so index lines go first (_KEYS_AHEAD), the
#: probe for the slot and the row prefetch later (_ROWS_AHEAD), when that
#: line has arrived. Probing ahead finds the real slot, not the home slot a
#: linear probe often moves past. Rows in flight (<= 4 x ~70 lines, 18 KB)
#: stay well inside L2.
_KEYS_AHEAD = 8
_ROWS_AHEAD = 4


@njit_inline
def _prefetch_keys(ent, pair, hk, j):  # pragma: no cover - compiled
    """Prefetch the hash-index line of each table key of transaction ``j`` (hint only)."""
    emask = np.uint64(ent.keys.shape[0] - 1)
    pmask = np.uint64(pair.keys.shape[0] - 1)
    for c in range(NE + NP):
        h = hk[j, c]
        if h == np.uint64(0):  # absent (a non-zero key never hashes to 0)
            continue
        if c < NE:
            prefetch(ent.keys, np.int64(h & emask))
        else:
            prefetch(pair.keys, np.int64(h & pmask))


@njit_inline
def _prefetch_rows(ent, pair, active, sk, hk, j):  # pragma: no cover - compiled
    """Find transaction ``j``'s slots and prefetch their state rows (hint only).

    Only the part of a row its entity's features read (``active``): the
    decayed windows, then the ring, then the whole row. A slot found here can
    differ from the one used later if an insert comes in between; then the
    prefetch was wasted, never wrong.
    """
    for e in range(NE):
        k = sk[j, e]
        if k == np.uint64(0):
            continue
        act = active[e]
        end = ROW_W if act & ACT_WIDE else (R_RCP if act & ACT_RING else R_RTS)
        base = _probe_from(ent.keys, k, hk[j, e]) * ROW_W
        for w in range(0, end, 8):
            prefetch(ent.u, base + w)
        prefetch(ent.u, base + end - 1)
    for p in range(NP):
        k = sk[j, NE + p]
        if k == np.uint64(0):
            continue
        base = _probe_from(pair.keys, k, hk[j, NE + p]) * PROW_W
        prefetch(pair.u, base)
        prefetch(pair.u, base + PROW_W - 1)


@njit_noalloc
def _compute_batch(
    ent,
    pair,
    glob,
    win,
    colE,
    colP,
    colT,
    active,
    mcc_prior,
    ttl,
    max_e,
    max_p,
    ts,
    amount,
    mcc,
    channel,
    entry,
    lat,
    lon,
    country,
    ekeys,
    cpk,
    auxk,
    sk,
    hk,
    l_time,
    l_label,
    l_amount,
    l_keys,
    i0,
    lp0,
    X,
):  # pragma: no cover - compiled
    """Process rows ``i0..`` of the batch into ``X``; labels from queue position ``lp0``.

    ``X`` may be uninitialised: each row is NaN-filled right before its
    features are written (one pass over the output, the row still in L1).
    ``sk`` / ``hk``: the batch's table keys and their home hashes
    (:func:`._hash._batch_keys`), 0 where an entity is absent or not
    computed. Returns ``(i, lp)``: the next row to process (``len(ts)`` when done) and
    the next queued label. Stops early, before touching row ``i``, when a hash
    table could pass its load limit: the caller grows it and calls again.
    """
    n = ts.shape[0]
    nl = l_time.shape[0]
    lp = lp0
    any_t = False  # a subset without transaction-level columns skips that block
    for k in range(colT.shape[0]):
        if colT[k] >= 0:
            any_t = True
    any_geo = False  # no entity reads geography: no cosine per transaction either
    for e in range(NE):
        if active[e] & ACT_GEO:
            any_geo = True
    nx = X.shape[1]
    for j in range(i0, min(i0 + _KEYS_AHEAD, n)):
        _prefetch_keys(ent, pair, hk, j)
    for j in range(i0, min(i0 + _ROWS_AHEAD, n)):
        _prefetch_rows(ent, pair, active, sk, hk, j)
    for i in range(i0, n):
        if i + _KEYS_AHEAD < n:
            _prefetch_keys(ent, pair, hk, i + _KEYS_AHEAD)
        if i + _ROWS_AHEAD < n:
            _prefetch_rows(ent, pair, active, sk, hk, i + _ROWS_AHEAD)
        t = ts[i]
        while lp < nl and l_time[lp] <= t:
            if ent.meta[0] + NL > max_e:
                return i, lp
            tl = max(l_time[lp], glob.clock[0])
            _apply_label(ent, glob, lp, tl, l_label, l_amount, l_keys, ttl)
            lp += 1
        if ent.meta[0] + NE > max_e or pair.meta[0] + NP > max_p:
            return i, lp
        if t > glob.clock[0]:
            glob.clock[0] = t
        glob.clock[1] += 1
        for c in range(nx):  # row i is written here only: it stays in L1 while filled
            X[i, c] = _NAN
        a = amount[i]
        m = mcc[i]
        ch = channel[i]
        em = entry[i]
        la = lat[i]
        lo = lon[i]
        cos_la = math.cos(math.radians(la)) if any_geo and la == la and lo == lo else _NAN
        if any_t:
            _tx_features(glob, t, a, m, ch, em, la, lo, ekeys, country, colT, mcc_prior, X, i)
        for e in range(NE):
            k = sk[i, e]
            if k == np.uint64(0):  # absent or not computed
                continue
            s = _entity_slot(ent, k, hk[i, e], t, ttl)
            _entity_features(
                ent,
                e,
                active[e],
                s,
                t,
                a,
                cpk[i, e],
                auxk[i, e],
                m,
                ch,
                em,
                la,
                lo,
                cos_la,
                win,
                colE,
                X,
                i,
            )
        for p in range(NP):
            k = sk[i, NE + p]
            if k == np.uint64(0):
                continue
            s = _pair_slot(pair, k, hk[i, NE + p], t, ttl)
            _pair_features(pair, p, s, t, a, colP, X, i)
    return n, lp
