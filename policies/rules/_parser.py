"""Parser of the rule language: tokens -> a small typed AST (Pratt / precedence climbing).

Grammar (lowest precedence first)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum]
             | sum ["not"] "in" ( "[" literal ("," literal)* "]" | LIST_NAME )
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | STRING | "true" | "false" | NAME | NAME "(" expr ("," expr)* ")"
             | "(" expr ")"

Comparisons do not chain (``a < b < c`` is an error: join them with ``and``).
Nesting is capped at :data:`MAX_DEPTH` so hostile input cannot exhaust the stack.

>>> parse('amount > 2000 and not (channel == "pos")')
Binary(op='and', left=Binary(op='>', left=Name(name='amount', pos=0), right=Num(value=2000.0, pos=9), pos=7), right=Unary(op='not', operand=Binary(op='==', left=Name(name='channel', pos=23), right=Str(value='pos', pos=34), pos=31), pos=18), pos=14)
"""

from __future__ import annotations

from dataclasses import dataclass

from riskflow.policies.rules._lexer import Token, tokenize
from riskflow.policies.rules.exceptions import RuleSyntaxError

__all__ = [
    "Node",
    "Num",
    "Str",
    "Bool",
    "Name",
    "Unary",
    "Binary",
    "Call",
    "In",
    "parse",
    "MAX_DEPTH",
    "COMPARISONS",
]

#: Deepest nesting of parentheses / operators: real rules use < 10.
MAX_DEPTH = 48
#: Most items in one `in [...]` literal.
MAX_ITEMS = 512
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_INFIX_BP = {"or": 10, "and": 20, "in": 40, "+": 50, "-": 50, "*": 60, "/": 60}
_INFIX_BP.update({op: 40 for op in COMPARISONS})
_NOT_BP = 30
_NEG_BP = 70


@dataclass(frozen=True)
class Num:
    value: float
    pos: int


@dataclass(frozen=True)
class Str:
    value: str
    pos: int


@dataclass(frozen=True)
class Bool:
    value: bool
    pos: int


@dataclass(frozen=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: Node
    pos: int


@dataclass(frozen=True)
class Binary:
    op: str  # and, or, comparisons, + - * /
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class In:
    item: Node
    #: Literal options, or None when testing membership of the list ``list_name``.
    options: tuple[Num | Str, ...] | None
    list_name: str | None
    negated: bool
    pos: int


Node = Num | Str | Bool | Name | Unary | Binary | Call | In


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = tokenize(src)
        self.i = 0
        self.depth = 0

    # -- helpers -----------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def advance(self) -> Token:
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def error(
        self, message: str, tok: Token | None = None, hint: str | None = None
    ) -> RuleSyntaxError:
        t = tok or self.tok
        return RuleSyntaxError(message, self.src, t.pos, hint)

    def expect(self, kind: str, text: str, hint: str | None = None) -> Token:
        t = self.tok
        if t.kind != kind or t.text != text:
            raise self.error(f"expected {text!r} but found {_describe(t)}", t, hint)
        return self.advance()

    # -- grammar -----------------------------------------------------------------

    def expr(self, min_bp: int = 0) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"expression is nested more than {MAX_DEPTH} levels deep",
                hint="simplify it or split it into several rules",
            )
        left = self.prefix()
        while True:
            t = self.tok
            op = t.text if t.kind in ("op", "kw") else None
            negated = False
            if (
                op == "not"
                and self.toks[self.i + 1].kind == "kw"
                and self.toks[self.i + 1].text == "in"
            ):
                op, negated = "in", True
            bp = _INFIX_BP.get(op) if op is not None else None
            if bp is None or bp <= min_bp:
                break
            assert op is not None
            self.advance()
            if negated:
                self.advance()
            if op == "in":
                left = self.membership(left, t, negated)
            else:
                right = self.expr(bp)
                left = Binary(op, left, right, t.pos)
            if op in COMPARISONS or op == "in":
                nxt = self.tok
                if (nxt.kind == "op" and nxt.text in COMPARISONS) or (
                    nxt.kind == "kw" and nxt.text == "in"
                ):
                    raise self.error(
                        "comparisons do not chain", nxt, "join them with and: a < b and b < c"
                    )
        self.depth -= 1
        return left

    def membership(self, item: Node, at: Token, negated: bool) -> In:
        t = self.tok
        if t.kind == "name":
            self.advance()
            return In(item, None, t.text, negated, at.pos)
        if t.kind == "op" and t.text == "[":
            self.advance()
            options: list[Num | Str] = []
            while True:
                lit = self.tok
                sign = 1.0
                if lit.kind == "op" and lit.text == "-":
                    self.advance()
                    sign, lit = -1.0, self.tok
                    if lit.kind != "num":
                        raise self.error(
                            f"expected a number after '-' but found {_describe(lit)}", lit
                        )
                if lit.kind == "num":
                    options.append(Num(sign * float(lit.text), lit.pos))
                elif lit.kind == "str":
                    options.append(Str(lit.text, lit.pos))
                else:
                    raise self.error(
                        f"expected a number or a quoted string but found {_describe(lit)}",
                        lit,
                        'an in-list holds literals only, e.g. country in ["NG", "RU"]',
                    )
                self.advance()
                if len(options) > MAX_ITEMS:
                    raise self.error(f"more than {MAX_ITEMS} items in one list", lit)
                if self.tok.kind == "op" and self.tok.text == ",":
                    self.advance()
                    continue
                self.expect("op", "]", "close the list with ]")
                return In(item, tuple(options), None, negated, at.pos)
        raise self.error(
            f"expected [ or a list name after 'in' but found {_describe(t)}",
            t,
            'e.g. country in ["NG", "RU"] or device_id in deny',
        )

    def prefix(self) -> Node:
        t = self.advance()
        if t.kind == "num":
            return Num(float(t.text), t.pos)
        if t.kind == "str":
            return Str(t.text, t.pos)
        if t.kind == "kw" and t.text in ("true", "false"):
            return Bool(t.text == "true", t.pos)
        if t.kind == "kw" and t.text == "not":
            return Unary("not", self.expr(_NOT_BP), t.pos)
        if t.kind == "op" and t.text == "-":
            return Unary("-", self.expr(_NEG_BP), t.pos)
        if t.kind == "op" and t.text == "(":
            inner = self.expr(0)
            self.expect("op", ")", "add the missing ')'")
            return inner
        if t.kind == "name":
            if self.tok.kind == "op" and self.tok.text == "(":
                self.advance()
                args: list[Node] = []
                if not (self.tok.kind == "op" and self.tok.text == ")"):
                    while True:
                        args.append(self.expr(0))
                        if self.tok.kind == "op" and self.tok.text == ",":
                            self.advance()
                            continue
                        break
                self.expect("op", ")", "close the argument list with )")
                return Call(t.text, tuple(args), t.pos)
            return Name(t.text, t.pos)
        if t.kind == "eof":
            raise self.error("expression ends too early", t, "complete the expression")
        raise self.error(f"unexpected {_describe(t)}", t, "expected a value, a name or '('")


def _describe(t: Token) -> str:
    if t.kind == "eof":
        return "the end of the expression"
    if t.kind == "str":
        return "a string"
    if t.kind == "num":
        return f"the number {t.text}"
    return repr(t.text)


def parse(src: str) -> Node:
    """Parse one rule expression into its AST.

    Raises
    ------
    RuleSyntaxError
        With the 0-based ``pos`` of the problem and a hint.
    """
    p = _Parser(src)
    node = p.expr(0)
    if p.tok.kind != "eof":
        raise p.error(
            f"unexpected {_describe(p.tok)} after a complete expression",
            hint="join conditions with and / or",
        )
    return node
