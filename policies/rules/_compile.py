"""AST -> a vectorised evaluator over one batch's columns.

Each node compiles once into a closure taking a :class:`BatchView` and
returning a numpy array (or a scalar for constants). Names resolve, in this
order, to the model ``score``, a transaction field (:data:`TX_FIELDS`), then a
feature of the catalogue (a column of the feature matrix). Types are checked
at compile time, so a rule that passed :func:`compile_expression` cannot fail
on data. Identical sub-expressions are computed once per batch and shared by
every rule (the batch's cache), which keeps 100 rules cheap.

Missing values follow IEEE / numpy: a comparison with a missing number is
false, except ``!=`` which is true; ``is_missing(x)`` tests for absence.

>>> import numpy as np, pandas as pd
>>> from riskflow.batch import TxBatch
>>> tx = TxBatch.from_frame(pd.DataFrame({"tx_id": ["a", "b"], "event_time": [1, 2],
...     "card_token": ["c", "c"], "merchant_id": ["m", "m"], "amount": [5.0, 3000.0],
...     "channel": ["ecom", "pos"], "country": ["DE", "NG"]}))
>>> X = np.array([[1.0], [7.0]], dtype=np.float32)
>>> fn = compile_expression('amount > 2000 and f >= 5 or channel == "ecom"', ["f"])
>>> fn(BatchView(tx, X, {"f": 0}, np.array([0.1, 0.2]))).tolist()
[True, True]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from riskflow.batch import ENTITY_FIELDS, TxBatch, hash_keys
from riskflow.policies.rules._parser import (
    COMPARISONS,
    Binary,
    Bool,
    Call,
    In,
    Name,
    Node,
    Num,
    Str,
    Unary,
    parse,
)
from riskflow.policies.rules.exceptions import RuleSyntaxError
from riskflow.policies.rules.lists import BUILTIN_LISTS, KIND_FIELDS, ListSnapshot
from riskflow.schema import CHANNELS, ENTRY_MODES

__all__ = [
    "BatchView",
    "compile_expression",
    "compile_condition",
    "compile_node",
    "TX_FIELDS",
    "FUNCTIONS",
    "Compiled",
]

#: Numeric transaction fields -> TxBatch attribute.
_TX_NUMBERS = {"amount": "amount", "mcc": "mcc", "lat": "lat", "lon": "lon", "event_time": "ts"}
#: Enum fields -> their name -> code tables.
_TX_ENUMS: dict[str, Mapping[str, Any]] = {"channel": CHANNELS, "entry_mode": ENTRY_MODES}
#: Identifier fields -> TxBatch attribute (values compared by their hashed key).
_TX_KEYS = {field: attr for attr, field in ENTITY_FIELDS.items()}
_FIELD_KIND = {f: k for k, f in KIND_FIELDS.items()}
#: Every transaction field a rule can name.
TX_FIELDS = (*_TX_NUMBERS, *_TX_ENUMS, *_TX_KEYS)
#: Function name -> number of arguments.
FUNCTIONS = {"abs": 1, "min": 2, "max": 2, "is_missing": 1}
_UPPER = frozenset({"country", "currency"})


@dataclass
class BatchView:
    """What rules read: the batch, its feature matrix, model scores and lists.

    ``cache`` holds sub-expression results for this batch (shared by all rules).
    """

    tx: TxBatch
    X: np.ndarray
    feature_index: Mapping[str, int]
    score: np.ndarray
    lists: ListSnapshot = field(default_factory=ListSnapshot)
    cache: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.score.shape[0])


Fn = Callable[[BatchView], Any]


@dataclass(frozen=True)
class Compiled:
    """A compiled sub-expression: evaluator, type, canonical text (the cache key)."""

    fn: Fn
    type: str  # num | bool | str | enum:<field> | key:<field>
    text: str
    const: bool = False
    #: What the node computes, for the fused evaluator (:mod:`._program`): an op
    #: name, its parameters, and child :class:`Compiled` nodes, e.g.
    #: ``("cmp", ">", amount, 2000.0)``. Constants are ``("const", value)``.
    ir: tuple[Any, ...] = ()


#: What a constant's evaluator is called with: constants read no batch.
_NO_VIEW: Any = None


def _const(x: Any) -> Fn:
    return lambda v: x


def _tx_attr(attr: str) -> Fn:
    return lambda v: getattr(v.tx, attr)


def _feature(j: int) -> Fn:
    # One contiguous float64 copy per batch: a column of the row-major matrix is
    # strided, and float64 keeps a literal such as 0.7 from being rounded to float32.
    return lambda v: np.ascontiguousarray(v.X[:, j], dtype=np.float64)


def _cached(text: str, compute: Fn) -> Fn:
    def run(v: BatchView) -> Any:
        out = v.cache.get(text)
        if out is None:
            out = compute(v)
            v.cache[text] = out
        return out

    return run


class _Compiler:
    def __init__(self, src: str, feature_names: Sequence[str], list_names: Sequence[str]) -> None:
        self.src = src
        self.features = {n: i for i, n in enumerate(feature_names)}
        self.lists = tuple(list_names)

    def error(self, msg: str, pos: int, hint: str | None = None) -> RuleSyntaxError:
        return RuleSyntaxError(msg, self.src, pos, hint)

    def suggest(self, name: str, pool: Sequence[str]) -> str | None:
        close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
        if close:
            return "did you mean " + " or ".join(repr(c) for c in close) + "?"
        return None

    # -- names -------------------------------------------------------------------

    def name(self, node: Name) -> Compiled:
        n = node.name
        if n == "score":
            return Compiled(lambda v: v.score, "num", "score", ir=("score",))
        if n in _TX_NUMBERS:
            attr = _TX_NUMBERS[n]
            if n == "mcc":  # int32 with -1 for absent -> float with NaN

                def mcc(v: BatchView) -> np.ndarray:
                    m = v.tx.mcc
                    return np.where(m < 0, np.nan, m.astype(np.float64))

                return Compiled(_cached("mcc", mcc), "num", "mcc", ir=("mcc",))
            if n == "event_time":  # int64 ms -> float64 like every number (int64 math wraps)

                def ts(v: BatchView) -> np.ndarray:
                    return v.tx.ts.astype(np.float64)

                return Compiled(_cached("event_time", ts), "num", n, ir=("tx", attr))
            return Compiled(_tx_attr(attr), "num", n, ir=("tx", attr))
        if n in _TX_ENUMS:
            return Compiled(_tx_attr(n), f"enum:{n}", n, ir=("column", n))
        if n in _TX_KEYS:
            return Compiled(_tx_attr(_TX_KEYS[n]), f"key:{n}", n, ir=("column", _TX_KEYS[n]))
        if n in self.features:
            j = self.features[n]
            return Compiled(_cached(n, _feature(j)), "num", n, ir=("feature", j))
        if n in self.lists:
            raise self.error(
                f"{n!r} is a list, not a value",
                node.pos,
                f"test membership, e.g. card_token in {n}",
            )
        if n in FUNCTIONS:
            raise self.error(f"{n!r} is a function", node.pos, f"call it: {n}(...)")
        pool = ["score", *TX_FIELDS, *self.features]
        hint = self.suggest(n, pool) or "see `riskflow features` for the feature catalogue"
        raise self.error(f"unknown name {n!r}", node.pos, hint)

    # -- nodes -------------------------------------------------------------------

    def compile(self, node: Node) -> Compiled:
        if isinstance(node, Num):
            val = float(node.value)
            return Compiled(_const(val), "num", repr(val), const=True, ir=("const", val))
        if isinstance(node, Bool):
            b = bool(node.value)
            return Compiled(_const(b), "bool", str(b).lower(), const=True, ir=("const", b))
        if isinstance(node, Str):
            return Compiled(
                _const(node.value), "str", repr(node.value), const=True, ir=("const", node.value)
            )
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, In):
            return self.membership(node)
        if isinstance(node, Call):
            return self.call(node)
        raise TypeError(f"unknown node {node!r}")  # pragma: no cover - parser makes no others

    def need(self, c: Compiled, want: str, pos: int, what: str) -> None:
        if c.type == want:
            return
        if want == "bool":
            hint = (
                f"compare it, e.g. {c.text} > 0"
                if c.type == "num"
                else f"compare it, e.g. {c.text} == ..."
            )
            raise self.error(f"{what} needs a condition but {c.text!r} is a {_kind(c)}", pos, hint)
        raise self.error(f"{what} needs a number but {c.text!r} is a {_kind(c)}", pos)

    def unary(self, node: Unary) -> Compiled:
        inner = self.compile(node.operand)
        if node.op == "not":
            self.need(inner, "bool", node.pos, "not")
            f = inner.fn
            return self.node(
                f"(not {inner.text})", "bool", lambda v: np.logical_not(f(v)), ("not", inner)
            )
        self.need(inner, "num", node.pos, "unary -")
        f = inner.fn
        return self.node(f"(-{inner.text})", "num", lambda v: np.negative(f(v)), ("neg", inner))

    def node(self, text: str, type_: str, compute: Fn, ir: tuple[Any, ...]) -> Compiled:
        return Compiled(_cached(text, compute), type_, text, False, ir)

    def binary(self, node: Binary) -> Compiled:
        a, b = self.compile(node.left), self.compile(node.right)
        op = node.op
        fa, fb = a.fn, b.fn
        text = f"({a.text} {op} {b.text})"
        if op in ("and", "or"):
            self.need(a, "bool", getattr(node.left, "pos", node.pos), op)
            self.need(b, "bool", node.pos, op)
            # Short-circuit per batch: most rules open with a selective test
            # (amount > 2000 and ...), false for the whole batch most of the time.
            if op == "and":

                def both(v: BatchView) -> Any:
                    left = fa(v)
                    if not (left.any() if type(left) is np.ndarray else left):
                        return left
                    return np.logical_and(left, fb(v))

                return self.node(text, "bool", both, ("and", a, b))

            def either(v: BatchView) -> Any:
                left = fa(v)
                if left.all() if type(left) is np.ndarray else left:
                    return left
                return np.logical_or(left, fb(v))

            return self.node(text, "bool", either, ("or", a, b))
        if op in ("+", "-", "*", "/"):
            self.need(a, "num", node.pos, f"'{op}'")
            self.need(b, "num", node.pos, f"'{op}'")
            ufunc = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}[op]
            return self.node(text, "num", _apply2(ufunc, a, b), ("arith", op, a, b))
        assert op in COMPARISONS
        return self.comparison(node, a, b, text)

    def comparison(self, node: Binary, a: Compiled, b: Compiled, text: str) -> Compiled:
        op = node.op
        ufunc = {
            "==": np.equal,
            "!=": np.not_equal,
            "<": np.less,
            "<=": np.less_equal,
            ">": np.greater,
            ">=": np.greater_equal,
        }[op]
        if a.type == "str" and b.type != "str":
            a, b = b, a  # "ecom" == channel
            ufunc = {
                np.less: np.greater,
                np.greater: np.less,
                np.less_equal: np.greater_equal,
                np.greater_equal: np.less_equal,
            }.get(ufunc, ufunc)
            op = _SWAPPED.get(op, op)
        if a.type == b.type == "num" or (a.type == b.type == "bool" and op in ("==", "!=")):
            fa, fb = a.fn, b.fn
            if a.const and b.const:
                val = bool(ufunc(fa(_NO_VIEW), fb(_NO_VIEW)))
                return Compiled(
                    _const(val), "bool", str(val).lower(), const=True, ir=("const", val)
                )
            return self.node(text, "bool", _apply2(ufunc, a, b), ("cmp", op, a, b))
        if a.type.startswith(("enum:", "key:")) and b.type == "str":
            if op not in ("==", "!="):
                raise self.error(
                    f"{a.text!r} is compared by equality only",
                    node.pos,
                    f"use == or != (or {a.text} in [...])",
                )
            code = self.literal_code(
                a, b.fn(_NO_VIEW), node.right.pos if isinstance(node.right, Str) else node.pos
            )
            fa = a.fn
            return self.node(
                text, "bool", lambda v: ufunc(fa(v), code), ("code_eq", op == "!=", a, code)
            )
        raise self.error(
            f"cannot compare {a.text!r} ({_kind(a)}) with {b.text!r} ({_kind(b)})",
            node.pos,
            _compare_hint(a, b),
        )

    def literal_code(self, field: Compiled, value: str, pos: int) -> Any:
        """The code / key a string literal stands for in ``field``'s column."""
        name = field.type.split(":", 1)[1]
        if field.type.startswith("enum:"):
            table = _TX_ENUMS[name]
            if value.lower() not in table:
                hint = self.suggest(value.lower(), list(table)) or f"one of {', '.join(table)}"
                raise self.error(f"{value!r} is not a {name}", pos, hint)
            return np.int8(int(table[value.lower()]))
        v = value.upper() if name in _UPPER else value
        return hash_keys([v])[0] if v else np.uint64(0)

    def membership(self, node: In) -> Compiled:
        item = self.compile(node.item)
        fi = item.fn
        neg = node.negated
        prefix = "not in" if neg else "in"
        if node.list_name is not None:
            lname = node.list_name
            if lname not in self.lists:
                hint = self.suggest(lname, self.lists) or (
                    f"lists are {', '.join(self.lists)}; declare others with lists = [...]"
                )
                raise self.error(f"unknown list {lname!r}", node.pos, hint)
            field_name = item.type.split(":", 1)[1] if item.type.startswith("key:") else None
            kind = _FIELD_KIND.get(field_name or "")
            if kind is None:
                raise self.error(
                    f"{item.text!r} cannot be on a list",
                    node.pos,
                    "lists are keyed by " + ", ".join(KIND_FIELDS.values()),
                )
            text = f"({item.text} {prefix} {lname})"

            def listed(v: BatchView) -> np.ndarray:
                hit = v.lists.member(lname, kind, fi(v), v.tx.ts)
                return ~hit if neg else hit

            return self.node(text, "bool", listed, ("list", neg, lname, kind, item))
        assert node.options is not None
        if item.type == "num":
            if not all(isinstance(o, Num) for o in node.options):
                raise self.error(f"{item.text!r} is a number; list numbers only", node.pos)
            values = np.array(sorted({float(o.value) for o in node.options}), dtype=np.float64)
        elif item.type.startswith(("enum:", "key:")):
            bad = [o for o in node.options if not isinstance(o, Str)]
            if bad:
                raise self.error(
                    f"{item.text!r} holds text; quote the list items",
                    bad[0].pos,
                    'e.g. country in ["NG", "RU"]',
                )
            codes = [self.literal_code(item, str(o.value), o.pos) for o in node.options]
            values = np.unique(np.array(codes, dtype=item_dtype(item)))
        else:
            raise self.error(f"{item.text!r} ({_kind(item)}) cannot be tested with in", node.pos)
        text = f"({item.text} {prefix} [{', '.join(map(str, values.tolist()))}])"
        return self.node(text, "bool", _isin(fi, values, neg), ("in", neg, item, values))

    def call(self, node: Call) -> Compiled:
        if node.func not in FUNCTIONS:
            hint = (
                self.suggest(node.func, list(FUNCTIONS)) or f"functions are {', '.join(FUNCTIONS)}"
            )
            raise self.error(f"unknown function {node.func!r}", node.pos, hint)
        if len(node.args) != FUNCTIONS[node.func]:
            raise self.error(
                f"{node.func}() takes {FUNCTIONS[node.func]} argument(s), got {len(node.args)}",
                node.pos,
            )
        args = [self.compile(a) for a in node.args]
        text = f"{node.func}({', '.join(a.text for a in args)})"
        if node.func == "is_missing":
            (a,) = args
            if a.const:
                raise self.error("is_missing() takes a field or feature name", node.pos)
            fa = a.fn
            if a.type == "num":
                return self.node(text, "bool", lambda v: np.isnan(fa(v)), ("missing", a))
            if a.type.startswith("enum:"):
                return self.node(text, "bool", lambda v: fa(v) < 0, ("missing", a))
            if a.type.startswith("key:"):
                return self.node(text, "bool", lambda v: fa(v) == 0, ("missing", a))
            raise self.error(f"is_missing() of a {_kind(a)} is always false", node.pos)
        for a, arg in zip(args, node.args, strict=True):
            self.need(a, "num", getattr(arg, "pos", node.pos), f"{node.func}()")
        if node.func == "abs":
            fa = args[0].fn
            return self.node(text, "num", lambda v: np.abs(fa(v)), ("abs", args[0]))
        ufunc = np.minimum if node.func == "min" else np.maximum
        return self.node(
            text, "num", _apply2(ufunc, args[0], args[1]), ("arith", node.func, args[0], args[1])
        )


def _apply2(ufunc: Any, a: Compiled, b: Compiled) -> Fn:
    """``ufunc(a, b)`` per batch, with a constant operand bound once."""
    fa, fb = a.fn, b.fn
    if b.const:
        y = fb(_NO_VIEW)
        return lambda v: ufunc(fa(v), y)
    if a.const:
        x = fa(_NO_VIEW)
        return lambda v: ufunc(x, fb(v))
    return lambda v: ufunc(fa(v), fb(v))


#: A comparison read from the other side (``5 < amount`` is ``amount > 5``).
_SWAPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}

#: Up to this many options, `in` is a chain of == (faster than a search on small sets).
_SMALL_SET = 8


def _isin(fi: Fn, values: np.ndarray, neg: bool) -> Fn:
    """Membership in sorted ``values`` (np.isin is slow on small batches)."""
    if values.shape[0] <= _SMALL_SET:
        opts = [values.dtype.type(x) for x in values.tolist()]

        def chain(v: BatchView) -> np.ndarray:
            a = fi(v)
            out = a == opts[0]
            for x in opts[1:]:
                out |= a == x
            return ~out if neg else out

        return chain
    last = values.shape[0] - 1

    def search(v: BatchView) -> np.ndarray:
        a = fi(v)
        idx = np.minimum(np.searchsorted(values, a), last)
        out = values[idx] == a
        return ~out if neg else out

    return search


def item_dtype(c: Compiled) -> Any:
    return np.int8 if c.type.startswith("enum:") else np.uint64


def _kind(c: Compiled) -> str:
    if c.type == "num":
        return "number"
    if c.type == "bool":
        return "condition"
    if c.type == "str":
        return "string"
    return "text field"


def _compare_hint(a: Compiled, b: Compiled) -> str:
    if "str" in (a.type, b.type):
        return 'strings compare with text fields only, e.g. channel == "ecom"'
    return "compare numbers with numbers and text fields with quoted strings"


def compile_condition(
    src: str, feature_names: Sequence[str], list_names: Sequence[str] = BUILTIN_LISTS
) -> Fn:
    """Like :func:`compile_expression`, but the evaluator may return a scalar for a constant."""
    return compile_node(src, feature_names, list_names).fn


def compile_node(
    src: str, feature_names: Sequence[str], list_names: Sequence[str] = BUILTIN_LISTS
) -> Compiled:
    """The type-checked condition ``src`` as a :class:`Compiled` tree (evaluator + IR)."""
    c = _Compiler(src, feature_names, list_names).compile(parse(src))
    if c.type != "bool":
        raise RuleSyntaxError(
            f"a rule must be a condition but {c.text!r} is a {_kind(c)}",
            src,
            0,
            "compare it, e.g. amount > 1000",
        )
    return c


def compile_expression(
    src: str,
    feature_names: Sequence[str],
    list_names: Sequence[str] = BUILTIN_LISTS,
) -> Fn:
    """Parse and type-check ``src``; return ``fn(view) -> bool array`` of the batch's length.

    Raises
    ------
    RuleSyntaxError
        Bad syntax, an unknown name (with a suggestion), a type mismatch, or
        an expression that is not a condition.
    """
    fn = compile_condition(src, feature_names, list_names)

    def evaluate(v: BatchView) -> np.ndarray:
        with np.errstate(all="ignore"):  # x / 0 is inf, NaN compares false: no warnings
            out = fn(v)
        n = len(v)
        if np.ndim(out) == 0:
            return np.full(n, bool(out))
        return np.asarray(out, dtype=bool)

    return evaluate
