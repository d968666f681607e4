"""The scoring pipeline: features -> ensemble -> policy, for one batch.

:meth:`ScoringPipeline.score_batch` is the one function that turns
transactions into decisions. Replay calls it on history, the stream worker on
micro-batches from Kafka: the same code path, so a backtest shows what the live
system would have done (train/serve parity).

Each batch is scored by exactly one model version and one policy version
(read once at the start of the batch), so a hot reload between batches never
splits or double-scores a batch. The same holds for analyst rules and lists
(:mod:`riskflow.policies.rules`): when given, they are applied after the
policy in the documented order (allow list, deny list, active rules by
priority, then the model's decision), and every hit is added to the reason codes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from riskflow.batch import LabelBatch, TxBatch

__all__ = ["DECISION_NAMES", "DecisionBatch", "ScoringPipeline"]

#: Decision code -> name (codes are what riskflow.policies.decide returns).
DECISION_NAMES: tuple[str, ...] = ("approve", "review", "decline")


class _Features(Protocol):
    feature_names: list[str]

    def process(self, tx: TxBatch, labels: LabelBatch | None = None) -> np.ndarray: ...


class _Model(Protocol):
    version: str

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    def reason_codes(
        self, X: np.ndarray, rows: Sequence[int] | np.ndarray, k: int = 3
    ) -> list[list[dict[str, Any]]]: ...


class _Policy(Protocol):
    version: str

    def decide(self, scores: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class DecisionBatch:
    """Decisions for one batch, as arrays in the batch's order."""

    tx_id: np.ndarray
    score: np.ndarray
    decision: np.ndarray
    reasons: list[list[dict[str, Any]]]
    model_version: str
    policy_version: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    fallback: bool = False
    #: Version of the rules + lists applied (None: no rules stage).
    rules_version: str | None = None
    #: The policy's own decisions before rules and lists (None: no rules stage).
    model_decision: np.ndarray | None = None
    #: What rules and lists found (a riskflow.policies.rules.RuleHits), for backtests.
    rule_hits: Any = None

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per transaction: what the decisions topic carries."""
        names = np.asarray(DECISION_NAMES, dtype=object)[self.decision]
        timings = {k: round(v, 4) for k, v in self.timings_ms.items()}
        return [
            {
                "tx_id": tx,
                "decision": name,
                "score": float(s),
                "reasons": r,
                "model_version": self.model_version,
                "policy_version": self.policy_version,
                "fallback": self.fallback,
                "rules_version": self.rules_version,
                "timings_ms": timings,
            }
            for tx, name, s, r in zip(self.tx_id, names, self.score, self.reasons, strict=True)
        ]

    def to_frame(self) -> pd.DataFrame:
        """The batch as a table (replay's decisions.parquet rows)."""
        return pd.DataFrame(
            {
                "tx_id": self.tx_id,
                "score": self.score,
                "decision": np.asarray(DECISION_NAMES, dtype=object)[self.decision],
                "reasons": [
                    "; ".join(str(c.get("description", c.get("feature", ""))) for c in r)
                    for r in self.reasons
                ],
                "model_version": self.model_version,
                "policy_version": self.policy_version,
            }
        )


class ScoringPipeline:
    """Features, model and policy composed; see :meth:`score_batch`.

    Parameters
    ----------
    engine
        A :class:`riskflow.features.FeatureEngine` (stateful: the pipeline
        advances it).
    model
        A loaded model (``predict_proba``, ``reason_codes``, ``version``) or a
        hot-reload holder exposing the current one as ``.model``.
    policy
        A threshold policy (``decide(scores) -> int8 codes``, ``version``) or a
        holder exposing the current one as ``.policy``.
    reason_k
        Reason codes per reviewed or declined transaction.
    rules
        Optional rules and lists: a :class:`riskflow.policies.rules.LiveRules`
        (hot-updated; read once per batch through ``current()``) or a fixed
        :class:`riskflow.policies.rules.RulesView`.
    """

    def __init__(
        self, engine: _Features, model: Any, policy: Any, *, reason_k: int = 3, rules: Any = None
    ) -> None:
        self.engine = engine
        self.model = model
        self.policy = policy
        self.reason_k = reason_k
        self.rules = rules
        self._feature_index: dict[str, int] | None = None

    def _current_model(self) -> _Model:
        return self.model.model if hasattr(self.model, "model") else self.model

    def _current_policy(self) -> _Policy:
        return self.policy.policy if hasattr(self.policy, "policy") else self.policy

    def _current_rules(self) -> Any:
        r = self.rules
        return r.current() if hasattr(r, "current") else r

    def feature_index(self) -> dict[str, int]:
        """Feature name -> column of the feature matrix (what rules read)."""
        if self._feature_index is None:
            self._feature_index = {n: i for i, n in enumerate(self.engine.feature_names)}
        return self._feature_index

    def features(self, tx: TxBatch, labels: LabelBatch | None = None) -> np.ndarray:
        """Advance the feature state by ``tx`` (and ``labels``) and return the matrix."""
        return self.engine.process(tx, labels)

    def score_batch(self, tx: TxBatch, labels: LabelBatch | None = None) -> DecisionBatch:
        """Decide every transaction of ``tx``, in order.

        Labels are handed to the feature engine, which releases each at its
        label time; the features of a transaction reflect state strictly
        before it.
        """
        model, policy = self._current_model(), self._current_policy()
        rules = self._current_rules() if self.rules is not None else None
        t0 = time.perf_counter()
        X = self.engine.process(tx, labels)
        t1 = time.perf_counter()
        scores = np.asarray(model.predict_proba(X), dtype=np.float64)
        t2 = time.perf_counter()
        decisions = np.asarray(policy.decide(scores), dtype=np.int8)
        t3 = time.perf_counter()
        model_decision, hits, rule_codes = decisions, None, {}
        if rules is not None:
            hits = rules.evaluate(tx, X, scores, self.feature_index())
            decisions, decided_by = hits.decide(model_decision)
            rule_codes = hits.reason_codes(decided_by)
        t_rules = time.perf_counter()
        # Model reasons where the model flagged and the final decision still flags.
        flagged = np.flatnonzero((decisions > 0) & (model_decision > 0))
        reasons: list[list[dict[str, Any]]] = [[] for _ in range(len(scores))]
        if flagged.size:
            for row, codes in zip(
                flagged, model.reason_codes(X, flagged, k=self.reason_k), strict=True
            ):
                reasons[int(row)] = codes
        for row, codes in rule_codes.items():
            reasons[row] = codes + reasons[row]
        t4 = time.perf_counter()
        timings = {
            "features": (t1 - t0) * 1e3,
            "model": (t2 - t1) * 1e3,
            "policy": (t3 - t2) * 1e3,
            "reasons": (t4 - t_rules) * 1e3,
        }
        if rules is not None:
            timings["rules"] = (t_rules - t3) * 1e3
        return DecisionBatch(
            tx_id=tx.tx_id,
            score=scores,
            decision=decisions,
            reasons=reasons,
            model_version=model.version,
            policy_version=policy.version,
            timings_ms=timings,
            rules_version=None if rules is None else rules.version,
            model_decision=None if rules is None else model_decision,
            rule_hits=hits,
        )
