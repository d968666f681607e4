"""The decision order: lists and rules beside the model, for one batch.

For each transaction, in this order (the first that applies decides):

1. **allow list**: any of its card token, customer, merchant, device, IP,
   card BIN or country is on the ``allow`` list -> approve;
2. **deny list**: any of them is on the ``deny`` list -> decline;
3. **active rules by priority** (lower ``priority`` first, then file order):
   the first active rule whose condition holds and whose action is
   decline / review / approve sets that decision (``tag`` rules never decide);
4. **the model + threshold policy**.

Shadow rules are evaluated and recorded, never decide. Every hit (list entry,
active, tag or shadow rule) is recorded in the decision's reason codes:
``list:allow:<kind>``, ``list:deny:<kind>``, ``rule:<id>`` and
``rule:<id>:shadow``. Both the stream (:class:`riskflow.pipeline.ScoringPipeline`)
and ``riskflow replay`` call :meth:`RulesView.evaluate` and
:meth:`RuleHits.decide`, so a backtest shows exactly what the stream decides.

>>> import numpy as np, pandas as pd
>>> from riskflow.batch import TxBatch
>>> from riskflow.policies.rules import ListEntry, ListStore, RuleSet
>>> tx = TxBatch.from_frame(pd.DataFrame({"tx_id": list("abc"), "event_time": [1, 2, 3],
...     "card_token": ["c1", "c2", "c3"], "merchant_id": ["m", "m", "m"],
...     "amount": [3000.0, 3000.0, 10.0]}))
>>> rs = RuleSet.from_toml('[[rule]]\\nid = "big"\\nwhen = "amount > 2000"\\naction = "decline"')
>>> store = ListStore(); store.put(ListEntry("allow", "card", "c2"))
>>> view = RulesView(rs.compile([]), store.snapshot())
>>> hits = view.evaluate(tx, np.zeros((3, 0)), np.array([0.1, 0.1, 0.9]))
>>> final, by = hits.decide(np.array([0, 0, 2], np.int8))
>>> final.tolist(), [c["code"] for c in hits.reason_codes(by)[1]]
([2, 0, 2], ['list:allow:card', 'rule:big'])
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from riskflow.batch import TxBatch
from riskflow.policies.rules._compile import BatchView
from riskflow.policies.rules._kernels import _first_hit, _members
from riskflow.policies.rules.lists import DECISION_LISTS, LIST_KINDS, ListSnapshot
from riskflow.policies.rules.ruleset import ACTION_CODES, CompiledRuleSet, Rule

__all__ = ["RulesView", "RuleHits", "BY_MODEL", "BY_ALLOW", "BY_DENY", "EMPTY_RULES"]

#: ``decided_by`` values that are not a rule index.
BY_MODEL, BY_ALLOW, BY_DENY = -1, -2, -3

EMPTY_RULES = CompiledRuleSet("none", (), ())


@dataclass(frozen=True)
class RuleHits:
    """What lists and rules found in one batch (before combining with the model)."""

    rules: tuple[Rule, ...]
    #: (n, n_rules) bool, columns in evaluation order.
    hits: np.ndarray
    #: kind -> bool per row, for the allow and deny lists (kinds with entries only).
    allow: Mapping[str, np.ndarray] = field(default_factory=dict)
    deny: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.hits.shape[0])

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    @classmethod
    def concat(cls, parts: Sequence[RuleHits]) -> RuleHits:
        """The hits of consecutive batches as one (replay evaluates chunk by chunk)."""
        if not parts:
            raise ValueError("concat needs at least one RuleHits")
        first = parts[0]

        def join(attr: str) -> dict[str, np.ndarray]:
            kinds = {k for p in parts for k in getattr(p, attr)}
            return {
                k: np.concatenate(
                    [getattr(p, attr).get(k, np.zeros(len(p), dtype=bool)) for p in parts]
                )
                for k in kinds
            }

        hits = np.concatenate([p.hits for p in parts], axis=0)
        return cls(first.rules, hits, join("allow"), join("deny"))

    def any_allow(self) -> np.ndarray:
        return _any(self.allow, len(self))

    def any_deny(self) -> np.ndarray:
        return _any(self.deny, len(self))

    def decide(
        self, model_decision: np.ndarray, *, only: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(final decisions, decided_by)`` by the documented order.

        ``decided_by`` is the rule's column for a rule decision, else
        :data:`BY_ALLOW`, :data:`BY_DENY` or :data:`BY_MODEL`. ``only``
        restricts the deciding rules to those columns (replay uses it to
        price one rule at a time); lists always apply.
        """
        final = np.array(model_decision, dtype=np.int8, copy=True)
        by = np.full(final.shape[0], BY_MODEL, dtype=np.int32)
        open_ = np.ones(final.shape[0], dtype=bool)
        allow = self.any_allow()
        if allow.any():
            final[allow], by[allow] = 0, BY_ALLOW
            open_ &= ~allow
        deny = self.any_deny() & open_
        if deny.any():
            final[deny], by[deny] = 2, BY_DENY
            open_ &= ~deny
        meta = _meta(self.rules)
        deciding, codes = meta.deciding, meta.codes
        if only is not None:
            deciding = np.intersect1d(deciding, np.asarray(only, dtype=np.int64))
        if deciding.size and open_.any():
            # The first deciding rule (in evaluation order) that holds, per open row.
            first = _first_hit(self.hits.T, deciding, open_)
            hit = first >= 0
            if hit.any():
                first = first[hit]
                final[hit] = codes[first]
                by[hit] = first
        return final, by

    def reason_codes(self, decided_by: np.ndarray) -> dict[int, list[dict[str, Any]]]:
        """Row -> reason codes of its list and rule hits (rows without any are left out)."""
        out: dict[int, list[dict[str, Any]]] = {}
        for name, masks in (("allow", self.allow), ("deny", self.deny)):
            for kind, mask in masks.items():
                for row in np.flatnonzero(mask).tolist():
                    out.setdefault(row, []).append(
                        {
                            "code": f"list:{name}:{kind}",
                            "description": f"{kind} on the {name} list",
                            "decided": bool(
                                decided_by[row] == (BY_ALLOW if name == "allow" else BY_DENY)
                            ),
                        }
                    )
        rows, cols = np.nonzero(self.hits)
        if rows.size:
            templates = _meta(self.rules).templates
            by = decided_by.tolist()
            for row, j in zip(rows.tolist(), cols.tolist(), strict=True):
                code = dict(templates[j])
                code["decided"] = by[row] == j
                out.setdefault(row, []).append(code)
        return out


@dataclass(frozen=True)
class _RulesMeta:
    """What decide / reason_codes need of a rule tuple, derived once per rule set."""

    #: Each rule's reason code without ``decided``.
    templates: list[dict[str, Any]]
    #: Columns of the rules that decide (ascending: evaluation order).
    deciding: np.ndarray
    #: Every rule's decision code.
    codes: np.ndarray


#: id(rules) -> (rules, meta). Keyed by identity: hashing 100 Rule dataclasses on
#: every batch (what an lru_cache does) cost more than deciding the batch.
_META: dict[int, tuple[tuple[Rule, ...], _RulesMeta]] = {}
_META_MAX = 32


def _meta(rules: tuple[Rule, ...]) -> _RulesMeta:
    got = _META.get(id(rules))
    if got is not None and got[0] is rules:
        return got[1]
    meta = _RulesMeta(
        templates=[
            {
                "code": f"rule:{r.id}:shadow" if r.mode == "shadow" else f"rule:{r.id}",
                "description": r.reason or r.when,
                "action": r.action,
            }
            for r in rules
        ],
        deciding=np.array([j for j, r in enumerate(rules) if r.decides], dtype=np.int64),
        codes=np.array([ACTION_CODES.get(r.action, 0) for r in rules], dtype=np.int8),
    )
    if len(_META) >= _META_MAX:
        _META.clear()
    _META[id(rules)] = (rules, meta)  # holding `rules` keeps its id from being reused
    return meta


def _any(masks: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for m in masks.values():
        out |= m
    return out


@dataclass(frozen=True)
class RulesView:
    """One immutable version of rules + lists: what a batch is decided with.

    ``version`` reads ``<rule set version>+lists@<list version>``.
    """

    ruleset: CompiledRuleSet = EMPTY_RULES
    lists: ListSnapshot = field(default_factory=ListSnapshot)
    lists_version: int = 0

    @property
    def version(self) -> str:
        return f"{self.ruleset.version}+lists@{self.lists_version}"

    @property
    def empty(self) -> bool:
        return not self.ruleset.rules and len(self.lists) == 0

    def evaluate(
        self,
        tx: TxBatch,
        X: np.ndarray,
        score: np.ndarray,
        feature_index: Mapping[str, int] | None = None,
    ) -> RuleHits:
        """Evaluate the lists and every rule (active, tag and shadow) on one batch."""
        # float64 whatever the model returns: a float32 score would compare with
        # `score > 0.7` in float32 in numpy and in float64 in the fused kernel.
        score = np.asarray(score, dtype=np.float64)
        view = BatchView(tx, X, feature_index or {}, score, self.lists)
        masks: dict[str, dict[str, np.ndarray]] = {"allow": {}, "deny": {}}
        refs = self._decision_refs
        if refs:
            # Every (allow|deny, kind) table in one kernel pass (as ListSnapshot.member tests).
            keys = np.stack([getattr(tx, LIST_KINDS[kind]) for _, kind in refs])
            found = np.empty(keys.shape, dtype=bool)
            _members(keys, tx.ts, *self.lists.packed(refs), found)
            for t, (name, kind) in enumerate(refs):
                masks[name][kind] = found[t]
        return RuleHits(self.ruleset.rules, self.ruleset.hits(view), masks["allow"], masks["deny"])

    @functools.cached_property
    def _decision_refs(self) -> tuple[tuple[str, str], ...]:
        """(list, kind) of the allow and deny tables with entries."""
        return tuple((name, kind) for name in DECISION_LISTS for kind in self.lists.kinds(name))
