"""Tokenizer of the rule language: text -> tokens, every one with its position.

Only a fixed alphabet is accepted (ASCII letters, digits, ``_``, operators,
quotes, brackets, whitespace); anything else (NUL bytes, control characters,
non-ASCII) is a :class:`~riskflow.policies.rules.exceptions.RuleSyntaxError`
at its position. Lengths are capped so that hostile input is rejected in
linear time.

>>> [(t.kind, t.text) for t in tokenize('amount >= 2e3 and channel == "ecom"')][:4]
[('name', 'amount'), ('op', '>='), ('num', '2e3'), ('kw', 'and')]
"""

from __future__ import annotations

import math
from typing import NamedTuple

from riskflow.policies.rules.exceptions import RuleSyntaxError

__all__ = ["Token", "tokenize", "KEYWORDS", "MAX_SOURCE_CHARS"]

#: A rule is a line or two; 4096 characters leaves room for long `in [...]`
#: lists while bounding parse time and error output.
MAX_SOURCE_CHARS = 4096
#: Longest identifier (feature names are ~30 characters).
MAX_NAME_CHARS = 64
#: Longest string literal (ids are at most 128 characters in the schema).
MAX_STRING_CHARS = 128
#: Longest number literal: more digits than a float64 can hold is a mistake.
MAX_NUMBER_CHARS = 32

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
_TWO_CHAR_OPS = frozenset({"==", "!=", "<=", ">="})
_ONE_CHAR_OPS = frozenset("<>+-*/(),[]")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_SPACE = frozenset(" \t\r\n")


class Token(NamedTuple):
    """One token: ``kind`` is num, str, name, kw, op or eof; ``pos`` a 0-based offset."""

    kind: str
    text: str
    pos: int


def _number(src: str, i: int) -> int:
    """End offset of the number literal starting at ``i``."""
    n = len(src)
    j = i
    while j < n and src[j] in _DIGITS:
        j += 1
    if j < n and src[j] == ".":
        j += 1
        while j < n and src[j] in _DIGITS:
            j += 1
    if j < n and src[j] in "eE":
        k = j + 1
        if k < n and src[k] in "+-":
            k += 1
        if k < n and src[k] in _DIGITS:
            j = k
            while j < n and src[j] in _DIGITS:
                j += 1
    return j


def tokenize(src: str) -> list[Token]:
    """Split ``src`` into tokens, ending with one ``eof`` token.

    Raises
    ------
    RuleSyntaxError
        An unexpected character, an unterminated string or an oversized literal.
    """
    if not isinstance(src, str):
        raise RuleSyntaxError(f"a rule expression must be text, not {type(src).__name__}", "", 0)
    if len(src) > MAX_SOURCE_CHARS:
        raise RuleSyntaxError(
            f"expression is {len(src)} characters long, more than {MAX_SOURCE_CHARS}",
            src,
            MAX_SOURCE_CHARS,
            "split it into several rules",
        )
    out: list[Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c in _SPACE:
            i += 1
        elif c in _NAME_START:
            j = i + 1
            while j < n and src[j] in _NAME_CHARS:
                j += 1
            text = src[i:j]
            if len(text) > MAX_NAME_CHARS:
                raise RuleSyntaxError(f"name is longer than {MAX_NAME_CHARS} characters", src, i)
            out.append(Token("kw" if text in KEYWORDS else "name", text, i))
            i = j
        elif c in _DIGITS or (c == "." and i + 1 < n and src[i + 1] in _DIGITS):
            j = _number(src, i)
            text = src[i:j]
            if len(text) > MAX_NUMBER_CHARS:
                raise RuleSyntaxError(
                    f"number literal is longer than {MAX_NUMBER_CHARS} characters", src, i
                )
            if j < n and src[j] in _NAME_CHARS:
                raise RuleSyntaxError(
                    f"unexpected {src[j]!r} after the number {text!r}",
                    src,
                    j,
                    "put a space or an operator between a number and a name",
                )
            if not math.isfinite(float(text)):
                raise RuleSyntaxError(
                    f"number {text!r} is out of range", src, i, "use a finite number"
                )
            out.append(Token("num", text, i))
            i = j
        elif c in "\"'":
            j = i + 1
            chars: list[str] = []
            while True:
                if j >= n:
                    raise RuleSyntaxError("unterminated string", src, i, f"close it with {c}")
                d = src[j]
                if d == c:
                    break
                if d == "\\" and j + 1 < n and src[j + 1] in ("\\", c):
                    chars.append(src[j + 1])
                    j += 2
                    continue
                if not d.isascii() or not d.isprintable():
                    raise RuleSyntaxError(
                        f"character {d!r} is not allowed in a string",
                        src,
                        j,
                        "strings hold printable ASCII only",
                    )
                chars.append(d)
                j += 1
            if len(chars) > MAX_STRING_CHARS:
                raise RuleSyntaxError(
                    f"string is longer than {MAX_STRING_CHARS} characters", src, i
                )
            out.append(Token("str", "".join(chars), i))
            i = j + 1
        elif src[i : i + 2] in _TWO_CHAR_OPS:
            out.append(Token("op", src[i : i + 2], i))
            i += 2
        elif c in _ONE_CHAR_OPS:
            out.append(Token("op", c, i))
            i += 1
        else:
            hint = {
                "=": "compare with ==",
                "&": "use and",
                "|": "use or",
                "!": "use not, or != to compare",
                ".": "names have no attributes; use a feature name",
            }.get(c, "allowed: names, numbers, quoted strings, == != < <= > >= + - * / ( ) [ ] ,")
            if c == "=" and src[i : i + 2] != "==":
                hint = "compare with =="
            raise RuleSyntaxError(f"unexpected character {c!r}", src, i, hint)
    out.append(Token("eof", "", n))
    return out
