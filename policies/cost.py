"""What a decision costs a card issuer, and the cost of a run of decisions.

Parts (all in the transaction currency):

* ``fraud_loss`` -- an approved fraud is lost in full (``amount``) plus a
  ``chargeback_fee`` for handling the dispute.
* ``false_decline_cost`` -- declining a good customer loses the interchange
  margin (``margin_rate * amount``) plus a ``friction`` constant (support
  call, card abandonment risk).
* ``review_cost`` -- each case sent to an analyst costs ``review_cost``;
  reviewed fraud is stopped, reviewed good payments go through.
* ``overflow_cost`` -- analysts handle ``review_capacity_per_hour`` cases per
  event-time hour. Reviews beyond it, in arrival order, follow
  ``overflow_rule``: ``penalty`` (still reviewed, at ``overflow_penalty``
  each: overtime / SLA breach), ``approve`` or ``decline`` (spilled: they are
  costed as approved / declined payments).

>>> import numpy as np
>>> cm = CostModel(review_capacity_per_hour=1, overflow_rule="approve")
>>> d = np.array([0, 1, 1, 2], np.int8); a = np.array([100., 50., 80., 20.])
>>> y = np.array([1, 0, 1, 0]); ts = np.array([0, 1, 2, 3])
>>> c = cost_breakdown(d, a, y, ts, model=cm)
>>> c["fraud_loss"], c["reviews"], c["overflow"]   # the 2nd review spilled to approve
(220.0, 1, 1)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from riskflow.policies.decide import APPROVE, DECLINE, REVIEW
from riskflow.policies.exceptions import bad_param

__all__ = ["CostModel", "cost_breakdown", "effective_decisions", "per_transaction_costs"]

HOUR_MS = 3_600_000
OVERFLOW_RULES = ("penalty", "approve", "decline")


@dataclass(frozen=True)
class CostModel:
    """Issuer cost assumptions; the defaults are typical card-issuer figures.

    Parameters
    ----------
    chargeback_fee
        Handling cost of a fraud chargeback on top of the lost amount
        (issuers quote 15-25 per dispute).
    margin_rate
        Interchange + FX margin lost on a declined good payment (about 1.5-2%).
    friction
        Fixed cost of insulting a good customer: support call, retry, share of
        customers who stop using the card (5-15 is common in issuer studies).
    review_cost
        Analyst cost per reviewed case (2-4 minutes of a fraud analyst).
    review_capacity_per_hour
        Cases the review team clears per event-time hour.
    overflow_rule
        ``penalty``, ``approve`` or ``decline``: what happens beyond capacity.
    overflow_penalty
        Extra cost per review beyond capacity when ``overflow_rule="penalty"``.
    """

    chargeback_fee: float = 20.0
    margin_rate: float = 0.02
    friction: float = 10.0
    review_cost: float = 3.0
    review_capacity_per_hour: float = 40.0
    overflow_rule: str = "penalty"
    overflow_penalty: float = 25.0

    def __post_init__(self) -> None:
        for name in ("chargeback_fee", "friction", "review_cost", "overflow_penalty"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (0 <= v < math.inf):
                raise bad_param("CostModel", name, "a finite number >= 0", v)
        if not isinstance(self.margin_rate, int | float) or not 0 <= self.margin_rate <= 1:
            raise bad_param("CostModel", "margin_rate", "a number in [0, 1]", self.margin_rate)
        cap = self.review_capacity_per_hour
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not cap >= 0:
            raise bad_param("CostModel", "review_capacity_per_hour", "a number >= 0 (inf ok)", cap)
        if self.overflow_rule not in OVERFLOW_RULES:
            raise bad_param(
                "CostModel", "overflow_rule", f"one of {OVERFLOW_RULES}", self.overflow_rule
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if math.isinf(d["review_capacity_per_hour"]):
            d["review_capacity_per_hour"] = None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CostModel:
        d = dict(d)
        if d.get("review_capacity_per_hour", 0) is None:
            d["review_capacity_per_hour"] = math.inf
        return cls(**d)


def _overflow_mask(decisions: np.ndarray, ts: np.ndarray, capacity: float) -> np.ndarray:
    """True for each review beyond the hour's capacity (arrival order within the hour)."""
    out = np.zeros(decisions.shape[0], dtype=bool)
    if not math.isfinite(capacity):
        return out
    rev = np.flatnonzero(decisions == REVIEW)
    cap = int(capacity)
    if rev.size <= cap:  # no hour can hold more reviews than there are
        return out
    t = ts[rev]
    order = rev if np.all(t[1:] >= t[:-1]) else rev[np.argsort(t, kind="stable")]
    hour = ts[order] // HOUR_MS
    if hour[0] == hour[-1]:
        out[order[cap:]] = True
        return out
    change = np.flatnonzero(hour[1:] != hour[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [order.size])))
    rank = np.arange(order.size) - np.repeat(starts, lengths)  # position of the review in its hour
    out[order[rank >= cap]] = True
    return out


def effective_decisions(
    decisions: np.ndarray, ts: np.ndarray, model: CostModel
) -> tuple[np.ndarray, np.ndarray]:
    """``(decisions after overflow spill, overflow mask)``; unchanged for ``penalty``."""
    d = np.asarray(decisions, dtype=np.int8)
    over = _overflow_mask(d, np.asarray(ts, dtype=np.int64), model.review_capacity_per_hour)
    if model.overflow_rule != "penalty" and over.any():
        d = d.copy()
        d[over] = APPROVE if model.overflow_rule == "approve" else DECLINE
    return d, over


def per_transaction_costs(amounts: np.ndarray, labels: np.ndarray, model: CostModel) -> np.ndarray:
    """``(n, 3)`` cost of approving / reviewing / declining each payment (no overflow)."""
    a = np.asarray(amounts, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    out = np.empty((a.shape[0], 3))
    out[:, APPROVE] = y * (a + model.chargeback_fee)
    out[:, REVIEW] = model.review_cost
    out[:, DECLINE] = (1 - y) * (model.margin_rate * a + model.friction)
    return out


def cost_breakdown(
    decisions: np.ndarray,
    amounts: np.ndarray,
    labels: np.ndarray,
    ts: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    model: CostModel | None = None,
) -> dict[str, Any]:
    """Total cost of ``decisions`` and its parts, with counts.

    ``labels`` is the truth (1 fraud); ``ts`` (epoch ms) places reviews in
    hours for the capacity rule. ``scores`` is accepted for interface
    symmetry and unused: the cost depends on what was decided, not why.
    """
    del scores
    cm = model if model is not None else CostModel()
    a = np.asarray(amounts, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    d, over = effective_decisions(decisions, ts, cm)
    approved_fraud = (d == APPROVE) & y
    declined_good = (d == DECLINE) & ~y
    reviewed = d == REVIEW
    n_over = int(over.sum())
    parts = {
        "fraud_loss": float(a[approved_fraud].sum() + cm.chargeback_fee * approved_fraud.sum()),
        "false_decline_cost": float(
            cm.margin_rate * a[declined_good].sum() + cm.friction * declined_good.sum()
        ),
        "review_cost": float(cm.review_cost * reviewed.sum()),
        "overflow_cost": float(cm.overflow_penalty * n_over)
        if cm.overflow_rule == "penalty"
        else 0.0,
    }
    parts["total"] = float(sum(parts.values()))
    parts.update(
        approved_fraud=int(approved_fraud.sum()),
        false_declines=int(declined_good.sum()),
        reviews=int(reviewed.sum()),
        overflow=n_over,
        n=int(d.shape[0]),
    )
    return parts
