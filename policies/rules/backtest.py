"""Per-rule backtest figures: what each rule would add to the model, before it goes live.

For one replayed run (the model + policy decisions, the hindsight truth, the
amounts and times) and the rules' hits on the same transactions:

* ``hits``, ``fraud_hits``, ``precision`` (fraud share of the hits) and
  ``recall`` (share of all fraud the rule's condition catches);
* ``recall_contribution``: fraud stopped (reviewed or declined) with the
  model, the lists and this rule alone made active, minus without it, as a
  share of all fraud (an approve rule's is zero or negative);
* ``cost_impact``: the total cost (:func:`riskflow.policies.cost_breakdown`)
  with this rule alone active minus without it; negative saves money;
* ``overlap_model``: share of the rule's hits that the model already flagged;
* ``decided``: transactions this rule decided in the full rule set (0 for
  shadow and tag rules, which never decide).

Shadow rules are priced as if active: that is the question an analyst asks
of a shadow rule. ``tag`` rules have no decision, so no cost impact.

>>> import numpy as np, pandas as pd
>>> from riskflow.batch import TxBatch
>>> from riskflow.policies.rules import RuleSet, RulesView
>>> tx = TxBatch.from_frame(pd.DataFrame({"tx_id": list("abcd"), "event_time": [1, 2, 3, 4],
...     "card_token": list("wxyz"), "merchant_id": list("mmmm"), "amount": [900., 5., 950., 7.]}))
>>> rs = RuleSet.from_toml('[[rule]]\\nid = "big"\\nwhen = "amount > 500"\\naction = "decline"')
>>> hits = RulesView(rs.compile([])).evaluate(tx, np.zeros((4, 0)), np.zeros(4))
>>> r = rule_report(hits, np.zeros(4, np.int8), np.array([1, 0, 0, 0]), tx.amount, tx.ts)
>>> row = r["rules"][0]; row["hits"], row["precision"], row["recall_contribution"], row["cost_impact"] < 0
(2, 0.5, 1.0, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from riskflow.policies.rules.apply import BY_MODEL, RuleHits
from riskflow.policies.rules.ruleset import ACTION_CODES

__all__ = ["rule_report"]


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def rule_report(
    hits: RuleHits,
    model_decision: np.ndarray,
    truth: np.ndarray,
    amount: np.ndarray,
    ts: np.ndarray,
    cost_model: Any = None,
    *,
    version: str | None = None,
) -> dict[str, Any]:
    """Figures per rule and for the whole rule set (see the module docstring)."""
    from riskflow.policies import CostModel, cost_breakdown

    cm = cost_model if cost_model is not None else CostModel()
    y = np.asarray(truth).astype(bool)
    model_decision = np.asarray(model_decision, dtype=np.int8)
    n_fraud = int(y.sum())

    def cost(d: np.ndarray) -> float:
        return float(cost_breakdown(d, amount, y, ts, model=cm)["total"])

    def stopped(d: np.ndarray) -> int:
        return int(((d > 0) & y).sum())

    base, base_by = hits.decide(model_decision, only=[])  # model + lists
    final, by = hits.decide(model_decision)
    base_cost, base_stopped = cost(base), stopped(base)
    open_ = base_by == BY_MODEL
    flagged = model_decision > 0
    rows = []
    for j, rule in enumerate(hits.rules):
        h = hits.hits[:, j]
        n_hits, fraud_hits = int(h.sum()), int((h & y).sum())
        if rule.action == "tag":
            impact, contrib = 0.0, 0.0
        else:
            alone = base.copy()
            alone[h & open_] = ACTION_CODES[rule.action]
            impact = cost(alone) - base_cost
            contrib = (stopped(alone) - base_stopped) / n_fraud if n_fraud else 0.0
        rows.append(
            {
                "id": rule.id,
                "mode": rule.mode,
                "action": rule.action,
                "priority": rule.priority,
                "hits": n_hits,
                "hit_rate": _ratio(n_hits, h.shape[0]),
                "fraud_hits": fraud_hits,
                "precision": _ratio(fraud_hits, n_hits),
                "recall": _ratio(fraud_hits, n_fraud),
                "recall_contribution": contrib,
                "cost_impact": impact,
                "overlap_model": _ratio(int((h & flagged).sum()), n_hits),
                "decided": int((by == j).sum()),
            }
        )
    total = cost(final)
    return {
        "version": version,
        "rules": rows,
        "lists": {
            "allow_hits": int(hits.any_allow().sum()),
            "deny_hits": int(hits.any_deny().sum()),
        },
        "cost_model_only": cost(model_decision),
        "cost_with_lists": base_cost,
        "cost_with_rules": total,
        "cost_impact": total - base_cost,
        "decided_by_rules": int((by >= 0).sum()),
    }
