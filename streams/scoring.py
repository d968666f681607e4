"""The default scoring of the worker: the trained pipeline behind the Scoring protocol.

:class:`PipelineScoring` adapts :class:`riskflow.pipeline.ScoringPipeline`
(features -> ensemble -> policy, the one function replay also calls) to what
:class:`~riskflow.streams.processor.StreamProcessor` needs: snapshots of the
feature state and live policy updates.
"""

from __future__ import annotations

from typing import Any

from riskflow.batch import LabelBatch, TxBatch
from riskflow.config import Config
from riskflow.pipeline import DecisionBatch, ScoringPipeline

__all__ = ["PipelineScoring", "load_scoring"]


class PipelineScoring:
    """A :class:`ScoringPipeline` with snapshot / restore / policy updates."""

    def __init__(self, pipeline: ScoringPipeline) -> None:
        self.pipeline = pipeline

    def score_batch(self, tx: TxBatch, labels: LabelBatch | None = None) -> DecisionBatch:
        return self.pipeline.score_batch(tx, labels)

    def advance(self, tx: TxBatch, labels: LabelBatch | None = None) -> None:
        self.pipeline.features(tx, labels)

    def snapshot(self) -> bytes:
        return bytes(self.pipeline.engine.snapshot())  # type: ignore[attr-defined]

    def restore(self, data: bytes) -> None:
        self.pipeline.engine = type(self.pipeline.engine).restore(data)  # type: ignore[attr-defined]

    def apply_policy(self, key: bytes | None, value: bytes | None) -> str | None:
        if value is None:
            return None
        from riskflow.policies import decode_policy_update  # type: ignore[attr-defined]

        update: Any = decode_policy_update(value)
        holder = self.pipeline.policy
        if hasattr(holder, "update"):
            holder.update(update)
        else:
            self.pipeline.policy = update
        return str(getattr(update, "version", None))


def load_scoring(config: Config) -> PipelineScoring:
    """Feature engine, trained model (``config.model.path``) and threshold policy."""
    from riskflow.features import FeatureEngine  # type: ignore[attr-defined]
    from riskflow.models import load_model
    from riskflow.policies import ThresholdPolicy  # type: ignore[attr-defined]

    engine = FeatureEngine(config.features)
    model = load_model(config.model.path, expected_catalogue_hash=engine.catalogue_hash)
    policy = ThresholdPolicy(config.policy.t_review, config.policy.t_decline)
    return PipelineScoring(ScoringPipeline(engine, model, policy))
