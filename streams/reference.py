"""A small deterministic scorer with real state, for tests and the null benchmarks.

:class:`CountingScorer` follows the :class:`~riskflow.streams.processor.Scoring`
protocol with features simple enough to check by hand: per card, the number
and amount sum of earlier transactions; per merchant, the number of earlier
transactions; per card, the number of fraud labels released so far. Its
reason codes carry those feature values for *every* transaction, so an
integration test can compare the features a stream produced with an
uninterrupted run. It is not a fraud model.

>>> import pandas as pd
>>> from riskflow.batch import TxBatch
>>> s = CountingScorer()
>>> tx = TxBatch.from_frame(pd.DataFrame({"tx_id": ["a", "b"], "event_time": [1, 2],
...     "card_token": ["c", "c"], "merchant_id": ["m", "n"], "amount": [5.0, 7.0]}))
>>> [r[0]["value"] for r in s.score_batch(tx).reasons]
[0, 1]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson

from riskflow.batch import LabelBatch, TxBatch
from riskflow.pipeline import DecisionBatch

__all__ = [
    "CountingScorer",
    "NullScorer",
    "LinearModel",
    "counting_scorer",
    "null_scorer",
    "features_linear_scorer",
]


class CountingScorer:
    """Stateful toy scorer (see module docstring); thresholds hot-swappable."""

    def __init__(
        self, t_review: float = 0.5, t_decline: float = 0.9, *, fail_on: str | None = None
    ) -> None:
        self.t_review = t_review
        self.t_decline = t_decline
        self.policy_version = "default"
        self.model_version = "counting-1"
        #: A tx_id that makes score_batch raise (to exercise the fallback).
        self.fail_on = fail_on
        self.card_n: dict[int, int] = {}
        self.card_sum: dict[int, float] = {}
        self.merchant_n: dict[int, int] = {}
        self.card_fraud: dict[int, int] = {}

    def _features(self, tx: TxBatch, labels: LabelBatch | None) -> np.ndarray:
        if labels is not None:
            for card, lab in zip(labels.card.tolist(), labels.label.tolist(), strict=True):
                if lab:
                    self.card_fraud[card] = self.card_fraud.get(card, 0) + 1
        X = np.zeros((len(tx), 4))
        for i, (card, merchant, amount) in enumerate(
            zip(tx.card.tolist(), tx.merchant.tolist(), tx.amount.tolist(), strict=True)
        ):
            n = self.card_n.get(card, 0)
            X[i] = (
                n,
                self.card_sum.get(card, 0.0),
                self.merchant_n.get(merchant, 0),
                self.card_fraud.get(card, 0),
            )
            self.card_n[card] = n + 1
            self.card_sum[card] = self.card_sum.get(card, 0.0) + amount
            self.merchant_n[merchant] = self.merchant_n.get(merchant, 0) + 1
        return X

    def advance(self, tx: TxBatch, labels: LabelBatch | None = None) -> None:
        self._features(tx, labels)

    def score_batch(self, tx: TxBatch, labels: LabelBatch | None = None) -> DecisionBatch:
        if self.fail_on is not None and self.fail_on in set(tx.tx_id.tolist()):
            raise RuntimeError(f"scoring told to fail on {self.fail_on}")
        t0 = time.perf_counter()
        X = self._features(tx, labels)
        t1 = time.perf_counter()
        # Deterministic score in [0, 1): grows with card activity and amount.
        score = 1.0 - 1.0 / (1.0 + 0.1 * X[:, 0] + 0.001 * tx.amount + X[:, 3])
        decision = np.where(
            score >= self.t_decline, 2, np.where(score >= self.t_review, 1, 0)
        ).astype(np.int8)
        t2 = time.perf_counter()
        names = ("card_count", "card_amount_sum", "merchant_count", "card_frauds")
        reasons = [
            [{"code": n, "value": round(float(v), 6)} for n, v in zip(names, row, strict=True)]
            for row in X.tolist()
        ]
        return DecisionBatch(
            tx_id=tx.tx_id,
            score=score,
            decision=decision,
            reasons=reasons,
            model_version=self.model_version,
            policy_version=self.policy_version,
            timings_ms={"features": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3},
        )

    def snapshot(self) -> bytes:
        return orjson.dumps(
            {
                "card_n": list(self.card_n.items()),
                "card_sum": list(self.card_sum.items()),
                "merchant_n": list(self.merchant_n.items()),
                "card_fraud": list(self.card_fraud.items()),
                "policy": [self.t_review, self.t_decline, self.policy_version],
            }
        )

    def restore(self, data: bytes) -> None:
        d = orjson.loads(data)
        self.card_n = {int(k): int(v) for k, v in d["card_n"]}
        self.card_sum = {int(k): float(v) for k, v in d["card_sum"]}
        self.merchant_n = {int(k): int(v) for k, v in d["merchant_n"]}
        self.card_fraud = {int(k): int(v) for k, v in d["card_fraud"]}
        self.t_review, self.t_decline, self.policy_version = d["policy"]

    def apply_policy(self, key: bytes | None, value: bytes | None) -> str | None:
        """Take ``{"t_review": .., "t_decline": .., "version": ..}``; return the new version."""
        if value is None:
            return None
        d: dict[str, Any] = orjson.loads(value)
        self.t_review = float(d["t_review"])
        self.t_decline = float(d["t_decline"])
        self.policy_version = str(d.get("version", "unversioned"))
        return self.policy_version


class NullScorer(CountingScorer):
    """Approves everything, keeps no state: the null pipeline of the benchmark."""

    def _features(self, tx: TxBatch, labels: LabelBatch | None) -> np.ndarray:
        return np.zeros((len(tx), 4))

    def score_batch(self, tx: TxBatch, labels: LabelBatch | None = None) -> DecisionBatch:
        n = len(tx)
        return DecisionBatch(
            tx_id=tx.tx_id,
            score=np.zeros(n),
            decision=np.zeros(n, dtype=np.int8),
            reasons=[[] for _ in range(n)],
            model_version="null",
            policy_version=self.policy_version,
        )


def counting_scorer(config: Any) -> CountingScorer:
    """Factory for ``riskflow worker --scorer riskflow.streams.reference:counting_scorer``."""
    return CountingScorer(config.policy.t_review, config.policy.t_decline)


def null_scorer(config: Any) -> NullScorer:
    """Factory for ``riskflow worker --scorer riskflow.streams.reference:null_scorer``."""
    return NullScorer(config.policy.t_review, config.policy.t_decline)


class LinearModel:
    """A fixed logistic model over the feature matrix: a stand-in for a trained ensemble.

    For benchmarking the full feature path without a trained artifact; its
    scores mean nothing.
    """

    version = "linear-reference-1"

    def __init__(self, n_features: int) -> None:
        self.w = np.sin(np.arange(n_features) * 0.7) * 1e-3

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = np.nan_to_num(np.asarray(X, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0) @ self.w
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def reason_codes(
        self, X: np.ndarray, rows: Any = None, k: int = 3, **_: Any
    ) -> list[list[dict[str, Any]]]:
        """One fixed code per row of ``X[rows]`` (``rows=None``: every row), as the ensemble."""
        n = len(X) if rows is None else len(rows)
        return [[{"feature": "linear", "description": "reference linear model"}] for _ in range(n)]


def features_linear_scorer(config: Any) -> Any:
    """Factory: the real FeatureEngine (all features) and pipeline with :class:`LinearModel`."""
    from riskflow.features import FeatureEngine
    from riskflow.pipeline import ScoringPipeline
    from riskflow.streams.scoring import PipelineScoring, Thresholds

    engine = FeatureEngine(config.features)
    return PipelineScoring(
        ScoringPipeline(
            engine,
            LinearModel(engine.n_features),
            Thresholds(config.policy.t_review, config.policy.t_decline),
        )
    )
