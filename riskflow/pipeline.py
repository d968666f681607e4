"""The scoring pipeline: features -> ensemble -> policy, for one batch.

:meth:`ScoringPipeline.score_batch` is the one function that turns
transactions into decisions. Replay calls it on history, the stream worker on
micro-batches from Kafka: the same code path, so a backtest shows what the live
system would have done (train/serve parity).

Each batch is scored by exactly one model version and one policy version
(read once at the start of the batch), so a hot reload between batches never
splits or double-scores a batch.
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
        self, X: np.ndarray, rows: Sequence[int], k: int = 3
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
    """

    def __init__(self, engine: _Features, model: Any, policy: Any, *, reason_k: int = 3) -> None:
        self.engine = engine
        self.model = model
        self.policy = policy
        self.reason_k = reason_k

    def _current_model(self) -> _Model:
        return self.model.model if hasattr(self.model, "model") else self.model

    def _current_policy(self) -> _Policy:
        return self.policy.policy if hasattr(self.policy, "policy") else self.policy

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
        t0 = time.perf_counter()
        X = self.engine.process(tx, labels)
        t1 = time.perf_counter()
        scores = np.asarray(model.predict_proba(X), dtype=np.float64)
        t2 = time.perf_counter()
        decisions = np.asarray(policy.decide(scores), dtype=np.int8)
        t3 = time.perf_counter()
        flagged = np.flatnonzero(decisions > 0)
        reasons: list[list[dict[str, Any]]] = [[] for _ in range(len(scores))]
        if flagged.size:
            for row, codes in zip(
                flagged, model.reason_codes(X, flagged, k=self.reason_k), strict=True
            ):
                reasons[int(row)] = codes
        t4 = time.perf_counter()
        return DecisionBatch(
            tx_id=tx.tx_id,
            score=scores,
            decision=decisions,
            reasons=reasons,
            model_version=model.version,
            policy_version=policy.version,
            timings_ms={
                "features": (t1 - t0) * 1e3,
                "model": (t2 - t1) * 1e3,
                "policy": (t3 - t2) * 1e3,
                "reasons": (t4 - t3) * 1e3,
            },
        )
