"""The default scoring of the worker: the trained pipeline behind the Scoring protocol.

:class:`PipelineScoring` adapts :class:`riskflow.pipeline.ScoringPipeline`
(features -> ensemble -> policy, the one function replay also calls) to what
:class:`~riskflow.streams.processor.StreamProcessor` needs: snapshots of the
feature state, live policy updates from the compacted policy topic, and live
rules / list updates from the compacted rules topic (:mod:`riskflow.policies.rules`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from riskflow.batch import LabelBatch, TxBatch
from riskflow.config import Config
from riskflow.pipeline import DecisionBatch, ScoringPipeline
from riskflow.streams._snapshot import uncopied

__all__ = ["PipelineScoring", "Thresholds", "load_scoring"]


class Thresholds:
    """Two thresholds: score >= t_decline declines, >= t_review reviews, else approves.

    Used when :mod:`riskflow.policies` offers no ``ThresholdPolicy``.

    >>> Thresholds(0.5, 0.9).decide(np.array([0.1, 0.5, 0.95])).tolist()
    [0, 1, 2]
    """

    def __init__(self, t_review: float, t_decline: float, version: str = "config") -> None:
        self.t_review = t_review
        self.t_decline = t_decline
        self.version = version

    def decide(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores)
        return np.where(s >= self.t_decline, 2, np.where(s >= self.t_review, 1, 0)).astype(np.int8)


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

    def snapshot_later(self, *, copy_tables: bool = True) -> Callable[[], bytes]:
        """Capture the feature state now, serialise it when called (in a thread).

        The engine's :meth:`~riskflow.features.FeatureEngine.snapshot_later`
        where it has one; another engine is serialised at once instead.
        ``copy_tables=False``: the tables are not copied (a forked writer's).
        """
        later = getattr(self.pipeline.engine, "snapshot_later", None)
        if later is None:
            data = self.snapshot()
            return lambda: data
        return later() if copy_tables else uncopied(later)

    def growth_due_soon(self) -> bool:
        """Whether the engine's tables near their growth (see :meth:`prepare_growth`)."""
        due = getattr(self.pipeline.engine, "growth_due_soon", None)
        return bool(due()) if due is not None else False

    def prepare_growth(self) -> None:
        """Let the engine make a nearly full table's grown arrays ready (in a thread)."""
        prepare = getattr(self.pipeline.engine, "prepare_growth", None)
        if prepare is not None:
            prepare()

    def prepare_snapshot(self) -> None:
        """Let the engine make its capture buffers ready (in a thread, before :meth:`snapshot_later`)."""
        prepare = getattr(self.pipeline.engine, "prepare_capture", None)
        if prepare is not None:
            prepare()

    def restore(self, data: bytes) -> None:
        eng: Any = self.pipeline.engine
        self.pipeline.engine = type(eng).restore(
            data, getattr(eng, "config", None), features=getattr(eng, "_features", None)
        )

    def apply_policy(self, key: bytes | None, value: bytes | None) -> str | None:
        """Apply one policy-topic value (riskflow.policies' encoding, else threshold JSON)."""
        if value is None:
            return None
        try:
            from riskflow.policies import decode_policy_update
        except ImportError:
            d = orjson.loads(value)
            update: Any = Thresholds(
                float(d["t_review"]), float(d["t_decline"]), str(d.get("version", "unversioned"))
            )
        else:
            update = decode_policy_update(value)
        holder: Any = self.pipeline.policy
        if hasattr(holder, "update"):
            holder.update(update)
        else:
            self.pipeline.policy = update
        return str(getattr(update, "version", None))

    def apply_rules(self, key: bytes | None, value: bytes | None, offset: int | None = None) -> str:
        """Apply one rules-topic record (rule set or list entry); return the version in force."""
        from riskflow.policies.rules import LiveRules

        if self.pipeline.rules is None:
            self.pipeline.rules = LiveRules(self.pipeline.engine.feature_names)
        return str(self.pipeline.rules.apply_update(key, value, offset))


def load_scoring(config: Config) -> PipelineScoring:
    """Feature engine, trained model (``config.model.path``) and threshold policy."""
    from riskflow.features import FeatureEngine
    from riskflow.models import load_model

    engine = FeatureEngine(config.features)
    model = load_model(
        config.model.path,
        expected_catalogue_hash=engine.catalogue_hash,
        num_threads=config.model.num_threads,
    )
    try:
        from riskflow.policies import ThresholdPolicy

        policy: Any = ThresholdPolicy(config.policy.t_review, config.policy.t_decline)
    except ImportError:
        policy = Thresholds(config.policy.t_review, config.policy.t_decline)
    rules = None
    if config.rules.path is not None:
        from riskflow.policies.rules import LiveRules, RuleSet

        rules = LiveRules(engine.feature_names, RuleSet.load(config.rules.path))
    return PipelineScoring(ScoringPipeline(engine, model, policy, rules=rules))
