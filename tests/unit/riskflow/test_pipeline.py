"""ScoringPipeline composes engine, model and policy; one version per batch."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from riskflow.batch import TxBatch
from riskflow.pipeline import ScoringPipeline


class Engine:
    feature_names = ["amount"]

    def __init__(self) -> None:
        self.seen = 0

    def process(self, tx, labels=None):  # noqa: ANN001, ANN201
        self.seen += len(tx)
        return tx.amount[:, None].astype(np.float32)


class Model:
    def __init__(self, version: str, scale: float) -> None:
        self.version, self.scale = version, scale

    def predict_proba(self, X):  # noqa: ANN001, ANN201
        return np.clip(X[:, 0] / self.scale, 0, 1)

    def reason_codes(self, X, rows, k=3):  # noqa: ANN001, ANN201
        return [
            [{"feature": "amount", "description": "Amount", "contribution": float(X[r, 0])}]
            for r in rows
        ]


class Thresholds:
    def __init__(self, t_review: float, t_decline: float, version: str) -> None:
        self.t_review, self.t_decline, self.version = t_review, t_decline, version

    def decide(self, scores):  # noqa: ANN001, ANN201
        return (scores >= self.t_review).astype(np.int8) + (scores >= self.t_decline).astype(
            np.int8
        )


def _batch() -> TxBatch:
    return TxBatch.from_frame(
        pd.DataFrame(
            {
                "tx_id": ["a", "b", "c"],
                "event_time": [1, 2, 3],
                "card_token": ["x"] * 3,
                "merchant_id": ["m"] * 3,
                "amount": [10.0, 60.0, 95.0],
            }
        )
    )


def test_score_batch_decides_and_explains_flagged_rows_only() -> None:
    engine = Engine()
    out = ScoringPipeline(engine, Model("m1", 100.0), Thresholds(0.5, 0.9, "p1")).score_batch(
        _batch()
    )
    assert engine.seen == 3
    assert out.decision.tolist() == [0, 1, 2]
    assert out.reasons[0] == [] and out.reasons[2][0]["feature"] == "amount"
    recs = out.to_records()
    assert [r["decision"] for r in recs] == ["approve", "review", "decline"]
    assert {r["model_version"] for r in recs} == {"m1"} and {r["policy_version"] for r in recs} == {
        "p1"
    }
    assert set(recs[0]["timings_ms"]) == {"features", "model", "policy", "reasons"}
    assert out.to_frame()["decision"].tolist() == ["approve", "review", "decline"]


def test_hot_swapped_model_and_policy_apply_from_the_next_batch() -> None:
    model_holder = SimpleNamespace(model=Model("m1", 100.0))
    policy_holder = SimpleNamespace(policy=Thresholds(0.5, 0.9, "p1"))
    pipe = ScoringPipeline(Engine(), model_holder, policy_holder)
    first = pipe.score_batch(_batch())
    model_holder.model = Model("m2", 200.0)
    policy_holder.policy = Thresholds(0.2, 0.45, "p2")
    second = pipe.score_batch(_batch())
    assert (first.model_version, first.policy_version) == ("m1", "p1")
    assert (second.model_version, second.policy_version) == ("m2", "p2")
    assert second.decision.tolist() == [0, 1, 2]  # scores 0.05, 0.3, 0.475 against 0.2 / 0.45
