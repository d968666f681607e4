"""Exceptions of :mod:`riskflow.policies.rules` (all subclass :class:`riskflow.errors.RiskflowError`)."""

from __future__ import annotations

from riskflow.policies.exceptions import PolicyConfigError

__all__ = ["RuleError", "RuleSyntaxError", "ListError"]


class RuleError(PolicyConfigError):
    """A rule set, or one rule in it, is invalid (bad action, duplicate id, ...)."""


class RuleSyntaxError(RuleError):
    """A rule expression does not parse or names something unknown.

    Parameters
    ----------
    message
        What is wrong.
    source
        The expression text.
    pos
        0-based character offset of the problem in ``source``.
    hint
        How to fix it (e.g. "did you mean 'card_count_10m'?"), if known.

    >>> e = RuleSyntaxError("unknown name 'amont'", "amont > 5", 0, "did you mean 'amount'?")
    >>> print(e)
    unknown name 'amont' at position 1: did you mean 'amount'?
      amont > 5
      ^
    """

    def __init__(self, message: str, source: str, pos: int, hint: str | None = None) -> None:
        self.message = message
        self.source = source
        self.pos = pos
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        # Show at most 60 characters around the position, printable only, so a
        # hostile or huge expression never floods a log.
        start = max(0, self.pos - 30)
        shown = self.source[start : start + 60]
        shown = "".join(c if c.isprintable() else "?" for c in shown)
        head = f"{self.message} at position {self.pos + 1}"
        if self.hint:
            head += f": {self.hint}"
        return f"{head}\n  {shown}\n  {' ' * (self.pos - start)}^"


class ListError(RuleError):
    """A list entry or list command is invalid (unknown kind, raw card number, bad expiry)."""
