"""Rules and versioned rule sets, loaded from TOML.

A rule set file::

    version = "2026-01-07.1"      # optional; default: a hash of the file
    lists = ["vip"]               # optional: list names besides allow, deny, watch

    [[rule]]
    id = "ecom_burst"
    when = 'amount > 2000 and card_count_10m >= 5 and channel == "ecom"'
    action = "decline"            # decline | review | approve | tag
    priority = 10                 # lower runs first (default 100)
    reason = "High-value e-commerce burst on one card"
    mode = "active"               # active | shadow (evaluated and recorded, never decides)

>>> rs = RuleSet.from_toml('''
... [[rule]]
... id = "big"
... when = "amount > 2000"
... action = "review"
... ''')
>>> rs.rules[0].priority, rs.rules[0].mode, len(rs.version)
(100, 'active', 12)
>>> rs.compile(["card_count_10m"]).rule_ids
('big',)
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riskflow.policies.rules._compile import BatchView, compile_node
from riskflow.policies.rules._program import Program, build_program, run_program
from riskflow.policies.rules.exceptions import RuleError, RuleSyntaxError
from riskflow.policies.rules.lists import BUILTIN_LISTS

__all__ = ["Rule", "RuleSet", "CompiledRuleSet", "ACTIONS", "MODES", "ACTION_CODES"]

#: Rule actions; ``tag`` only records the hit.
ACTIONS = ("decline", "review", "approve", "tag")
#: Decision code each deciding action sets (riskflow.policies.decide codes).
ACTION_CODES = {"approve": 0, "review": 1, "decline": 2}
MODES = ("active", "shadow")
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
_LIST_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
#: A rule set larger than this is a mistake (and would slow every batch).
MAX_RULES = 2000
_RULE_KEYS = {"id", "when", "action", "priority", "reason", "mode"}


@dataclass(frozen=True)
class Rule:
    """One analyst rule (see the module docstring for the fields)."""

    id: str
    when: str
    action: str
    priority: int = 100
    reason: str = ""
    mode: str = "active"

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise RuleError(
                f"A rule id is 1-64 letters, digits, '_', '.' or '-'. Got {self.id!r} instead."
            )
        if not isinstance(self.when, str) or not self.when.strip():
            raise RuleError(f"Rule {self.id!r} needs a `when` expression (text).")
        if self.action not in ACTIONS:
            raise RuleError(
                f"The 'action' of rule {self.id!r} must be one of {', '.join(ACTIONS)}. "
                f"Got {self.action!r} instead."
            )
        if self.mode not in MODES:
            raise RuleError(
                f"The 'mode' of rule {self.id!r} must be active or shadow. Got {self.mode!r} instead."
            )
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise RuleError(
                f"The 'priority' of rule {self.id!r} must be an integer. Got {self.priority!r} instead."
            )
        if not isinstance(self.reason, str) or len(self.reason) > 500:
            raise RuleError(
                f"The 'reason' of rule {self.id!r} must be text of at most 500 characters."
            )

    @property
    def decides(self) -> bool:
        """True for an active rule whose action sets the decision."""
        return self.mode == "active" and self.action != "tag"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "when": self.when,
            "action": self.action,
            "priority": self.priority,
            "reason": self.reason,
            "mode": self.mode,
        }


@dataclass(frozen=True)
class CompiledRuleSet:
    """Rules in evaluation order (priority, then file order) with their evaluators."""

    version: str
    rules: tuple[Rule, ...]
    fns: tuple[Callable[[BatchView], np.ndarray], ...]
    list_names: tuple[str, ...] = BUILTIN_LISTS
    #: All conditions as one program for the fused evaluator (None: use ``fns``).
    program: Program | None = field(default=None, compare=False, repr=False)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    def hits(self, view: BatchView) -> np.ndarray:
        """``(n, n_rules)`` bool: which rules' conditions hold for which rows.

        One fused kernel pass over the batch (:mod:`._program`); equal to
        :meth:`reference_hits`, which the tests check on random rule sets.
        """
        if self.program is None:
            return self.reference_hits(view)
        lists = view.lists.packed(self.program.list_refs)
        return run_program(self.program, view.tx, view.X, view.score, lists).T

    def reference_hits(self, view: BatchView) -> np.ndarray:
        """:meth:`hits` by the numpy evaluators, rule by rule (the reference)."""
        # Filled rule by rule as contiguous rows, returned transposed (a view).
        out = np.zeros((len(self.rules), len(view)), dtype=bool)
        with np.errstate(all="ignore"):  # x / 0 is inf, NaN compares false: no warnings
            for j, fn in enumerate(self.fns):
                out[j] = fn(view)  # a constant condition broadcasts
        return out.T


@dataclass(frozen=True)
class RuleSet:
    """A versioned set of rules, as published (its ``source`` text travels with it)."""

    rules: tuple[Rule, ...]
    version: str
    lists: tuple[str, ...] = ()
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        ids = [r.id for r in self.rules]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise RuleError(f"Rule ids must be unique; repeated: {', '.join(dup)}.")
        if len(self.rules) > MAX_RULES:
            raise RuleError(f"A rule set holds at most {MAX_RULES} rules. Got {len(self.rules)}.")
        for name in self.lists:
            if not isinstance(name, str) or not _LIST_NAME.match(name):
                raise RuleError(
                    f"A list name is lower-case letters, digits and _. Got {name!r} instead."
                )

    @property
    def list_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*BUILTIN_LISTS, *self.lists)))

    @classmethod
    def from_toml(cls, text: str, *, version: str | None = None) -> RuleSet:
        """Parse a rule set file's text (see the module docstring)."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RuleError(f"The rule set is not valid TOML: {exc}.") from exc
        return cls.from_dict(doc, source=text, version=version)

    @classmethod
    def from_dict(
        cls, doc: Mapping[str, Any], *, source: str = "", version: str | None = None
    ) -> RuleSet:
        unknown = set(doc) - {"version", "lists", "rule"}
        if unknown:
            raise RuleError(
                f"Unknown top-level key(s) {sorted(unknown)} in the rule set; "
                "allowed: version, lists, [[rule]]."
            )
        raw = doc.get("rule", [])
        if not isinstance(raw, list):
            raise RuleError("Rules are [[rule]] tables (an array of tables).")
        rules = []
        for i, r in enumerate(raw):
            if not isinstance(r, Mapping):
                raise RuleError(f"Rule #{i + 1} is not a table.")
            extra = set(r) - _RULE_KEYS
            if extra:
                raise RuleError(
                    f"Rule #{i + 1} ({r.get('id', '?')!r}) has unknown key(s) {sorted(extra)}; "
                    f"allowed: {', '.join(sorted(_RULE_KEYS))}."
                )
            missing = {"id", "when", "action"} - set(r)
            if missing:
                raise RuleError(f"Rule #{i + 1} is missing {', '.join(sorted(missing))}.")
            rules.append(Rule(**r))
        lists = doc.get("lists", [])
        if not isinstance(lists, list):
            raise RuleError('`lists` is an array of list names, e.g. lists = ["vip"].')
        v = version or doc.get("version")
        if v is None:
            body = source or repr([r.to_dict() for r in rules])
            v = hashlib.sha256(str(body).encode()).hexdigest()[:12]
        if not isinstance(v, str) or not v or len(v) > 64:
            raise RuleError(f"A rule set version is text of 1-64 characters. Got {v!r} instead.")
        return cls(tuple(rules), v, tuple(lists), source)

    @classmethod
    def load(cls, path: str | Path) -> RuleSet:
        """Read a rule set file."""
        p = Path(path)
        if not p.is_file():
            raise RuleError(f"Rule set file {str(p)!r} does not exist.")
        return cls.from_toml(p.read_text())

    def compile(self, feature_names: Sequence[str]) -> CompiledRuleSet:
        """Check every rule against the feature catalogue and compile it.

        Raises
        ------
        RuleSyntaxError
            Naming the rule, with the position in its expression and a hint.
        """
        order = sorted(range(len(self.rules)), key=lambda i: (self.rules[i].priority, i))
        rules = tuple(self.rules[i] for i in order)
        nodes = []
        names = self.list_names
        for r in rules:
            try:
                nodes.append(compile_node(r.when, feature_names, names))
            except RuleSyntaxError as exc:
                raise RuleSyntaxError(
                    f"rule {r.id!r}: {exc.message}", exc.source, exc.pos, exc.hint
                ) from None
        fns = tuple(c.fn for c in nodes)
        return CompiledRuleSet(self.version, rules, fns, names, build_program(nodes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "lists": list(self.lists),
            "rule": [r.to_dict() for r in self.rules],
        }
