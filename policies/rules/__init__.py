"""Analyst rules and allow / deny lists beside the model, hot-updated and backtestable.

Read first: :mod:`.apply` (the decision order), :mod:`.ruleset` (the rule
file), :mod:`._parser` (the expression grammar), :mod:`.lists`, then
:mod:`.live` (how a worker applies updates from the rules topic) and
:mod:`.codec` (that topic's records).

Expressions are parsed once into an AST and compiled to numpy operations over
a batch (:mod:`._compile`); user text is never passed to Python's ``eval``.
"""

from __future__ import annotations

from riskflow.policies.rules._compile import BatchView, compile_expression
from riskflow.policies.rules._parser import parse
from riskflow.policies.rules.apply import BY_ALLOW, BY_DENY, BY_MODEL, RuleHits, RulesView
from riskflow.policies.rules.exceptions import ListError, RuleError, RuleSyntaxError
from riskflow.policies.rules.lists import (
    BUILTIN_LISTS,
    DECISION_LISTS,
    KIND_FIELDS,
    LIST_KINDS,
    ListEntry,
    ListSnapshot,
    ListStore,
)
from riskflow.policies.rules.live import LiveRules
from riskflow.policies.rules.ruleset import ACTIONS, MODES, CompiledRuleSet, Rule, RuleSet

__all__ = [
    "parse",
    "compile_expression",
    "BatchView",
    "Rule",
    "RuleSet",
    "CompiledRuleSet",
    "ACTIONS",
    "MODES",
    "ListEntry",
    "ListStore",
    "ListSnapshot",
    "LIST_KINDS",
    "KIND_FIELDS",
    "DECISION_LISTS",
    "BUILTIN_LISTS",
    "RulesView",
    "RuleHits",
    "LiveRules",
    "BY_MODEL",
    "BY_ALLOW",
    "BY_DENY",
    "RuleError",
    "RuleSyntaxError",
    "ListError",
]
