"""Numba kernels of the rules stage: arrays and scalars in, no dicts, logging or errors.

:func:`_run_program` evaluates a whole rule set over one batch: a flat
instruction array (built by :mod:`._program`) is executed once per batch, each
instruction looping over the batch's rows, so the cost per instruction is one
dispatch, not one numpy call with its temporaries. Sub-expressions shared by
rules have one register and are computed once per batch (``done`` flags);
``and`` / ``or`` skip their right side when the left decides the whole batch.

Numbers follow numpy float64 semantics exactly (IEEE division, NaN compares
false except ``!=``, ``min`` / ``max`` propagate NaN like ``np.minimum``).
"""

from __future__ import annotations

import numba
import numpy as np

from riskflow.features._kernels._jit import JIT_OPTIONS, NO_ALLOC_OPTIONS

# Opcodes (instruction layout: op, out, a, b, c, d, e).
OP_SCORE = 0  # out <- score
OP_NUMCOL = 1  # out <- tx number column a (0 amount, 1 lat, 2 lon, 3 ts)
OP_MCC = 2  # out <- mcc (NaN where absent)
OP_FEATURE = 3  # out <- X[:, a] as float64
OP_NEG = 4  # out <- -a
OP_ABS = 5  # out <- |a|
OP_ARITH = 6  # out <- a (op c) b; c: 0 + 1 - 2 * 3 / 4 min 5 max
OP_CMP = 7  # bool out <- a (op c) b on numbers; c: 0 == 1 != 2 < 3 <= 4 > 5 >=
OP_CMPB = 8  # bool out <- a (op c) b on conditions; c: 0 == 1 !=
OP_NOT = 9  # bool out <- not a
OP_AND_L = 10  # after a: out <- a and jump to b if a is false for every row
OP_AND_R = 11  # out <- a and b
OP_OR_L = 12  # after a: out <- a and jump to b if a is true for every row
OP_OR_R = 13  # out <- a or b
OP_CODE_EQ = 14  # bool out <- code column a == code constant b (c: 1 negates)
OP_IN_NUM = 15  # bool out <- a in sorted number constants [b, b + c) (d: 1 negates)
OP_IN_CODE = 16  # bool out <- code column a in sorted code constants [b, b + c) (d: negates)
OP_IN_LIST = 17  # bool out <- key column a on list table b, not expired (c: negates)
OP_ISNAN = 18  # bool out <- a is NaN
OP_CODE_MISSING = 19  # bool out <- code column a absent (key 0, enum < 0)
OP_CONST_BOOL = 20  # bool out <- a (0 / 1) for every row

# Code columns (OP_CODE_*, OP_IN_CODE, OP_IN_LIST): 0 channel, 1 entry_mode (enums,
# int8, -1 absent), then the uint64 entity keys (0 absent) from 2 on.
N_ENUM_COLUMNS = 2


@numba.njit(inline="always", **NO_ALLOC_OPTIONS)
def _num(regs: np.ndarray, consts: np.ndarray, a: int, i: int) -> float:
    """Operand ``a``: register ``a`` if >= 0, else number constant ``-a - 1``."""
    return regs[a, i] if a >= 0 else consts[-a - 1]


@numba.njit(inline="always", **NO_ALLOC_OPTIONS)
def _code(enums: np.ndarray, keys: np.ndarray, col: int, i: int) -> tuple[bool, np.uint64]:
    """(present, code as uint64) of code column ``col`` at row ``i``."""
    if col < N_ENUM_COLUMNS:
        e = enums[col, i]
        return e >= 0, np.uint64(e if e >= 0 else 0)
    k = keys[col - N_ENUM_COLUMNS, i]
    return k != 0, k


@numba.njit(inline="always", **NO_ALLOC_OPTIONS)
def _sorted_has(values: np.ndarray, lo: int, hi: int, x: object) -> tuple[bool, int]:
    """(found, index) of ``x`` in the sorted slice ``values[lo:hi]`` (binary search)."""
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and values[lo] == x, lo


@numba.njit(**NO_ALLOC_OPTIONS, error_model="numpy")
def _run_program(
    prog: np.ndarray,
    fconst: np.ndarray,
    uconst: np.ndarray,
    roots: np.ndarray,
    fr: np.ndarray,
    br: np.ndarray,
    fdone: np.ndarray,
    bdone: np.ndarray,
    X: np.ndarray,
    score: np.ndarray,
    amount: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    ts: np.ndarray,
    mcc: np.ndarray,
    enums: np.ndarray,
    keys: np.ndarray,
    list_keys: np.ndarray,
    list_exp: np.ndarray,
    list_span: np.ndarray,
    hits: np.ndarray,
) -> None:
    """Run ``prog`` over the batch; ``hits[j, i]`` <- rule ``j``'s condition at row ``i``.

    ``fr`` / ``br`` are the number / condition registers ``(n_regs, n)``,
    ``fdone`` / ``bdone`` all False on entry (scratch: the kernel allocates nothing).
    """
    n = score.shape[0]
    pc = 0
    n_ins = prog.shape[0]
    while pc < n_ins:
        op = prog[pc, 0]
        out = prog[pc, 1]
        a = prog[pc, 2]
        b = prog[pc, 3]
        c = prog[pc, 4]
        d = prog[pc, 5]
        pc += 1
        if op <= OP_ARITH:  # number results
            if fdone[out]:
                continue
            fdone[out] = True
            if op == OP_SCORE:
                for i in range(n):
                    fr[out, i] = score[i]
            elif op == OP_NUMCOL:
                if a == 0:
                    for i in range(n):
                        fr[out, i] = amount[i]
                elif a == 1:
                    for i in range(n):
                        fr[out, i] = lat[i]
                elif a == 2:
                    for i in range(n):
                        fr[out, i] = lon[i]
                else:
                    for i in range(n):
                        fr[out, i] = np.float64(ts[i])
            elif op == OP_MCC:
                for i in range(n):
                    m = mcc[i]
                    fr[out, i] = np.nan if m < 0 else np.float64(m)
            elif op == OP_FEATURE:
                for i in range(n):
                    fr[out, i] = np.float64(X[i, a])
            elif op == OP_NEG:
                for i in range(n):
                    fr[out, i] = -_num(fr, fconst, a, i)
            elif op == OP_ABS:
                for i in range(n):
                    fr[out, i] = abs(_num(fr, fconst, a, i))
            else:  # OP_ARITH
                for i in range(n):
                    x = _num(fr, fconst, a, i)
                    y = _num(fr, fconst, b, i)
                    if c == 0:
                        r = x + y
                    elif c == 1:
                        r = x - y
                    elif c == 2:
                        r = x * y
                    elif c == 3:
                        r = x / y
                    elif c == 4:  # np.minimum: NaN wins, a tie gives y
                        r = x if (x != x or x < y) else y
                    else:
                        r = x if (x != x or x > y) else y
                    fr[out, i] = r
            continue
        # condition results
        if bdone[out]:
            if op == OP_AND_L or op == OP_OR_L:  # noqa: SIM109 (plain compares in the kernel)
                pc = b  # already known: skip the right side and the combine
            continue
        if op == OP_CMP:
            for i in range(n):
                x = _num(fr, fconst, a, i)
                y = _num(fr, fconst, b, i)
                if c == 0:
                    br[out, i] = x == y
                elif c == 1:
                    br[out, i] = x != y
                elif c == 2:
                    br[out, i] = x < y
                elif c == 3:
                    br[out, i] = x <= y
                elif c == 4:
                    br[out, i] = x > y
                else:
                    br[out, i] = x >= y
        elif op == OP_CMPB:
            for i in range(n):
                br[out, i] = (br[a, i] == br[b, i]) != (c == 1)
        elif op == OP_NOT:
            for i in range(n):
                br[out, i] = not br[a, i]
        elif op == OP_AND_L or op == OP_OR_L:  # noqa: SIM109
            want = op == OP_OR_L  # a row that decides: true for or, false for and
            decided = True
            for i in range(n):
                if br[a, i] != want:
                    decided = False
                    break
            if decided:
                for i in range(n):
                    br[out, i] = want
                bdone[out] = True
                pc = b
            continue  # not done yet otherwise: the right side runs, then _R
        elif op == OP_AND_R:
            for i in range(n):
                br[out, i] = br[a, i] and br[b, i]
        elif op == OP_OR_R:
            for i in range(n):
                br[out, i] = br[a, i] or br[b, i]
        elif op == OP_CODE_EQ:
            want = uconst[b]
            for i in range(n):
                present, k = _code(enums, keys, a, i)
                hit = k == want if (present or a >= N_ENUM_COLUMNS) else False
                br[out, i] = hit != (c == 1)
        elif op == OP_IN_NUM:
            for i in range(n):
                x = _num(fr, fconst, a, i)
                found, _ = _sorted_has(fconst, b, b + c, x)
                br[out, i] = found != (d == 1)
        elif op == OP_IN_CODE:
            for i in range(n):
                present, k = _code(enums, keys, a, i)
                found = False
                if present or a >= N_ENUM_COLUMNS:
                    found, _ = _sorted_has(uconst, b, b + c, k)
                br[out, i] = found != (d == 1)
        elif op == OP_IN_LIST:
            lo = list_span[b, 0]
            hi = list_span[b, 1]
            for i in range(n):
                k = keys[a - N_ENUM_COLUMNS, i]
                hit = False
                if k != 0 and lo < hi:
                    found, j = _sorted_has(list_keys, lo, hi, k)
                    hit = found and ts[i] < list_exp[j]
                br[out, i] = hit != (c == 1)
        elif op == OP_ISNAN:
            for i in range(n):
                x = fr[a, i]
                br[out, i] = x != x
        elif op == OP_CODE_MISSING:
            for i in range(n):
                present, _ = _code(enums, keys, a, i)
                br[out, i] = not present
        else:  # OP_CONST_BOOL
            for i in range(n):
                br[out, i] = a == 1
        bdone[out] = True
    for j in range(roots.shape[0]):
        r = roots[j]
        for i in range(n):
            hits[j, i] = br[r, i]


@numba.njit(**JIT_OPTIONS)
def _first_hit(hits: np.ndarray, deciding: np.ndarray, open_: np.ndarray) -> np.ndarray:
    """Per row, the first column of ``deciding`` whose rule holds (-1: none, or row closed).

    ``hits`` is ``(n_rules, n)``: rule-major, as the program writes it.
    """
    n = open_.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if not open_[i]:
            continue
        for t in range(deciding.shape[0]):
            j = deciding[t]
            if hits[j, i]:
                out[i] = j
                break
    return out


@numba.njit(**NO_ALLOC_OPTIONS)
def _members(
    keys: np.ndarray,
    ts: np.ndarray,
    list_keys: np.ndarray,
    list_exp: np.ndarray,
    list_span: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[t, i]`` <- key ``keys[t, i]`` is on list table ``t`` and not expired at ``ts[i]``.

    Same test as :meth:`riskflow.policies.rules.lists.ListSnapshot.member`.
    """
    for t in range(keys.shape[0]):
        lo = list_span[t, 0]
        hi = list_span[t, 1]
        for i in range(keys.shape[1]):
            k = keys[t, i]
            hit = False
            if k != 0 and lo < hi:
                found, j = _sorted_has(list_keys, lo, hi, k)
                hit = found and ts[i] < list_exp[j]
            out[t, i] = hit
