"""A whole rule set as one flat program for the fused evaluator (:mod:`._kernels`).

:func:`build_program` walks the type-checked trees :mod:`._compile` made (their
``ir``) and emits instructions: one register per distinct sub-expression (by
its canonical text, so rules share them), constants folded into operands,
string literals already turned into codes / hashed keys, and a jump after the
left side of every ``and`` / ``or``. Nothing of the rule text reaches the
kernel but numbers: the safety of the language is the parser's and the type
checker's, unchanged.

:func:`run_program` evaluates it over a batch: one kernel call per batch
instead of a few hundred numpy calls. The numpy closures stay as the
reference (:meth:`CompiledRuleSet.reference_hits`); tests fuzz one against the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from riskflow.batch import ENTITY_FIELDS, TxBatch
from riskflow.policies.rules import _kernels as K
from riskflow.policies.rules._compile import Compiled

__all__ = ["Program", "build_program", "run_program", "KEY_ATTRS"]

#: The TxBatch key columns a rule can read, in the kernel's column order (after the enums).
KEY_ATTRS = tuple(ENTITY_FIELDS)
_ENUM_ATTRS = ("channel", "entry_mode")
_NUM_COLUMNS = {"amount": 0, "lat": 1, "lon": 2, "ts": 3}
_ARITH = {"+": 0, "-": 1, "*": 2, "/": 3, "min": 4, "max": 5}
_CMP = {"==": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}


@dataclass(frozen=True)
class Program:
    """Instructions ``(m, 6)`` int64 and what they refer to (see :mod:`._kernels`)."""

    code: np.ndarray
    fconst: np.ndarray
    uconst: np.ndarray
    #: Register holding each rule's condition, in rule order.
    roots: np.ndarray
    n_num: int
    n_bool: int
    #: (list name, kind) of each list table the program reads (OP_IN_LIST ``b``).
    list_refs: tuple[tuple[str, str], ...]
    #: Key attributes the program reads, in the order the kernel receives them.
    key_attrs: tuple[str, ...]


class _Builder:
    def __init__(self) -> None:
        self.code: list[tuple[int, int, int, int, int, int]] = []
        self.num: dict[str, int] = {}
        self.bool: dict[str, int] = {}
        self.fconst: list[float] = []
        self.fconst_index: dict[str, int] = {}
        self.uconst: list[int] = []
        self.list_refs: dict[tuple[str, str], int] = {}
        self.key_attrs: dict[str, int] = {}
        #: Texts emitted outside any right-hand side: always computed by then.
        self.always: set[str] = set()
        self.depth = 0  # how many right-hand sides of and / or we are inside

    def emit(self, op: int, out: int, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> int:
        self.code.append((op, out, a, b, c, d))
        return len(self.code) - 1

    def column(self, c: Compiled) -> int:
        """Kernel code-column index of an enum / key field node."""
        assert c.ir[0] == "column", c.ir
        attr = c.ir[1]
        if attr in _ENUM_ATTRS:
            return _ENUM_ATTRS.index(attr)
        pos = self.key_attrs.setdefault(attr, len(self.key_attrs))
        return K.N_ENUM_COLUMNS + pos

    def number(self, c: Compiled) -> int:
        """Operand of a number node: its register, or ``-(constant index) - 1``."""
        if c.ir[0] == "const":
            val = float(c.ir[1])
            key = val.hex()  # keeps -0.0 apart from 0.0
            if key not in self.fconst_index:
                self.fconst_index[key] = len(self.fconst)
                self.fconst.append(val)
            return -self.fconst_index[key] - 1
        return self.node(c)

    def slot(self, c: Compiled) -> tuple[int, bool]:
        """(register, already computed here) for node ``c``."""
        regs = self.num if c.type == "num" else self.bool
        fresh = c.text not in regs
        if fresh:
            regs[c.text] = len(regs)
        return regs[c.text], (not fresh and c.text in self.always)

    def node(self, c: Compiled) -> int:
        """Emit ``c`` (post-order) unless it is always computed already; return its register."""
        out, known = self.slot(c)
        if known:
            return out
        kind = c.ir[0]
        if kind == "const":  # a condition constant (number constants are operands)
            self.emit(K.OP_CONST_BOOL, out, int(bool(c.ir[1])))
        elif kind == "score":
            self.emit(K.OP_SCORE, out)
        elif kind == "tx":
            self.emit(K.OP_NUMCOL, out, _NUM_COLUMNS[c.ir[1]])
        elif kind == "mcc":
            self.emit(K.OP_MCC, out)
        elif kind == "feature":
            self.emit(K.OP_FEATURE, out, int(c.ir[1]))
        elif kind == "neg":
            self.emit(K.OP_NEG, out, self.number(c.ir[1]))
        elif kind == "abs":
            self.emit(K.OP_ABS, out, self.number(c.ir[1]))
        elif kind == "arith":
            _, op, x, y = c.ir
            a, b = self.number(x), self.number(y)
            self.emit(K.OP_ARITH, out, a, b, _ARITH[op])
        elif kind == "cmp":
            _, op, x, y = c.ir
            if x.type == "num":
                a, b = self.number(x), self.number(y)
                self.emit(K.OP_CMP, out, a, b, _CMP[op])
            else:
                a, b = self.node(x), self.node(y)
                self.emit(K.OP_CMPB, out, a, b, _CMP[op])
        elif kind == "not":
            self.emit(K.OP_NOT, out, self.node(c.ir[1]))
        elif kind in ("and", "or"):
            _, x, y = c.ir
            a = self.node(x)
            left, right = (K.OP_AND_L, K.OP_AND_R) if kind == "and" else (K.OP_OR_L, K.OP_OR_R)
            jump = self.emit(left, out, a)
            self.depth += 1
            b = self.node(y)
            self.depth -= 1
            self.emit(right, out, a, b)
            op_, out_, a_, _, c_, d_ = self.code[jump]
            self.code[jump] = (op_, out_, a_, len(self.code), c_, d_)
        elif kind == "code_eq":
            _, neg, col, code = c.ir
            self.uconst.append(int(_as_u64(code)))
            self.emit(K.OP_CODE_EQ, out, self.column(col), len(self.uconst) - 1, int(neg))
        elif kind == "list":
            _, neg, lname, lkind, item = c.ir
            ref = self.list_refs.setdefault((lname, lkind), len(self.list_refs))
            self.emit(K.OP_IN_LIST, out, self.column(item), ref, int(neg))
        elif kind == "in":
            _, neg, item, values = c.ir
            if item.type == "num":
                a = self.number(item)
                start = len(self.fconst)
                self.fconst.extend(float(v) for v in values.tolist())  # sorted, unique
                self.emit(K.OP_IN_NUM, out, a, start, len(values), int(neg))
            else:
                start = len(self.uconst)
                self.uconst.extend(sorted(int(_as_u64(v)) for v in values.tolist()))
                self.emit(K.OP_IN_CODE, out, self.column(item), start, len(values), int(neg))
        elif kind == "missing":
            (x,) = c.ir[1:]
            if x.type == "num":
                self.emit(K.OP_ISNAN, out, self.node(x))
            else:
                self.emit(K.OP_CODE_MISSING, out, self.column(x))
        else:  # pragma: no cover - _compile makes no other node
            raise TypeError(f"no instruction for {c.ir!r}")
        if self.depth == 0:
            self.always.add(c.text)
        return out


def _as_u64(code: Any) -> np.uint64:
    """An enum code (int8, never negative for a literal) or a key, as the kernel compares it."""
    return np.uint64(int(code))


def build_program(conditions: Sequence[Compiled]) -> Program:
    """One program computing every condition of ``conditions`` (a rule set, in order)."""
    b = _Builder()
    roots = [b.node(c) for c in conditions]
    code = np.array(b.code, dtype=np.int64).reshape(-1, 6)
    return Program(
        code=code,
        fconst=np.array(b.fconst, dtype=np.float64),
        uconst=np.array(b.uconst, dtype=np.uint64),
        roots=np.array(roots, dtype=np.int64),
        n_num=len(b.num),
        n_bool=len(b.bool),
        list_refs=tuple(b.list_refs),
        key_attrs=tuple(b.key_attrs),
    )


def run_program(
    program: Program,
    tx: TxBatch,
    X: np.ndarray,
    score: np.ndarray,
    lists: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """``(n_rules, n)`` bool: each rule's condition on each row of the batch.

    ``lists`` is ``(keys, expiry, spans)`` from
    :meth:`riskflow.policies.rules.lists.ListSnapshot.packed` for ``program.list_refs``.
    """
    n = len(tx)
    hits = np.empty((program.roots.shape[0], n), dtype=bool)
    if hits.shape[0] == 0 or n == 0:
        return hits
    keys = (
        np.stack([getattr(tx, a) for a in program.key_attrs])
        if program.key_attrs
        else np.zeros((0, n), dtype=np.uint64)
    )
    enums = np.stack([tx.channel, tx.entry_mode])
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] == 0:
        X = np.zeros((n, 1), dtype=np.float32)  # no feature is read (the program has none)
    with np.errstate(all="ignore"):  # interpreted (NUMBA_DISABLE_JIT): x / 0 is inf, quietly
        _run(program, tx, X, score, lists, keys, enums, hits)
    return hits


def _run(
    program: Program,
    tx: TxBatch,
    X: np.ndarray,
    score: np.ndarray,
    lists: tuple[np.ndarray, np.ndarray, np.ndarray],
    keys: np.ndarray,
    enums: np.ndarray,
    hits: np.ndarray,
) -> None:
    n = len(tx)
    K._run_program(
        program.code,
        program.fconst,
        program.uconst,
        program.roots,
        np.empty((program.n_num, n), dtype=np.float64),
        np.empty((program.n_bool, n), dtype=bool),
        np.zeros(program.n_num, dtype=bool),
        np.zeros(program.n_bool, dtype=bool),
        X,
        np.ascontiguousarray(score, dtype=np.float64),
        tx.amount,
        tx.lat,
        tx.lon,
        tx.ts,
        tx.mcc,
        enums,
        keys,
        *lists,
        hits,
    )
