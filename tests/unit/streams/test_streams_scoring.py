"""PipelineScoring: the real feature engine and pipeline behind the worker's Scoring protocol."""

from __future__ import annotations

import numpy as np
import orjson

from riskflow.config import Config
from riskflow.features import FeatureEngine
from riskflow.pipeline import ScoringPipeline
from riskflow.policies import ThresholdPolicy, encode_policy_update
from riskflow.streams.processor import InRecord, StreamProcessor
from riskflow.streams.scoring import PipelineScoring, Thresholds

T0 = 1_767_268_800_000


class _Linear:
    version = "linear-1"

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0).sum(axis=1) * 1e-3
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def reason_codes(self, X: np.ndarray, rows: object, k: int = 3) -> list[list[dict]]:
        return [[{"feature": "sum"}] for _ in rows]  # type: ignore[attr-defined]


def _scoring() -> PipelineScoring:
    cfg = Config()
    return PipelineScoring(
        ScoringPipeline(FeatureEngine(cfg.features), _Linear(), ThresholdPolicy(0.5, 0.9))
    )


def _records(n: int, start: int = 0) -> list[InRecord]:
    out = []
    for i in range(start, start + n):
        tx = {
            "schema_version": 1,
            "tx_id": f"t{i}",
            "event_time": T0 + i * 1000,
            "card_token": f"c{i % 5}",
            "merchant_id": f"m{i % 3}",
            "amount": 3.0 + i,
        }
        out.append(InRecord("tx", 0, i, None, None, orjson.dumps(tx)))
    return out


def test_snapshot_restore_with_the_real_engine_continues_bit_identically() -> None:
    a = StreamProcessor(_scoring())
    a.process_transactions(_records(30))
    blob = a.snapshot()
    expected = a.process_transactions(_records(20, 30)).decisions
    b = StreamProcessor(_scoring())
    b.process_transactions(_records(7))  # state to be replaced entirely
    b.restore(blob)
    got = b.process_transactions(_records(20, 30)).decisions
    assert [d["score"] for d in got] == [d["score"] for d in expected]


def test_snapshot_captured_now_and_serialised_later_is_the_state_when_captured() -> None:
    a = StreamProcessor(_scoring())
    a.process_transactions(_records(30))
    engine = a.scoring.pipeline.engine  # type: ignore[union-attr]
    snapshot = engine.snapshot
    later = a.snapshot_later()
    # Serialising happens later (the worker: in a thread), from the copies:
    engine.snapshot = None  # the live engine is not asked again
    a.process_transactions(_records(10, 30))  # the live state moves on meanwhile
    blob = later()
    engine.snapshot = snapshot
    # The engine part was copied, not serialised at capture (or the worker would stall).
    deferred = a.scoring.snapshot_later()  # type: ignore[union-attr]
    held = deferred._engine  # type: ignore[attr-defined]
    assert isinstance(held, FeatureEngine) and held is not engine
    expected = a.process_transactions(_records(20, 40)).decisions
    b = StreamProcessor(_scoring())
    b.restore(blob)
    assert b.positions == {"tx/0": 30}
    b.process_transactions(_records(10, 30))
    got = b.process_transactions(_records(20, 40)).decisions
    assert [d["score"] for d in got] == [d["score"] for d in expected]


def test_replay_without_output_equals_scoring() -> None:
    a, b = StreamProcessor(_scoring()), StreamProcessor(_scoring())
    a.process_transactions(_records(25))
    b.process_transactions(_records(25), emit=False)

    def strip(ds: list[dict]) -> list[dict]:
        return [{k: v for k, v in d.items() if k != "timings_ms"} for d in ds]

    got = strip(b.process_transactions(_records(5, 25)).decisions)
    assert strip(a.process_transactions(_records(5, 25)).decisions) == got


def test_policy_topic_update_changes_decisions_and_version() -> None:
    s = _scoring()
    p = StreamProcessor(s)
    version = s.apply_policy(
        b"thresholds", encode_policy_update(ThresholdPolicy(0.0, 0.0, version="v9"))
    )
    assert version == "v9"
    out = p.process_transactions(_records(4))
    assert {d["decision"] for d in out.decisions} == {"decline"}
    assert {d["policy_version"] for d in out.decisions} == {"v9"}
    assert s.apply_policy(b"thresholds", None) is None  # a tombstone changes nothing


def test_thresholds_decide() -> None:
    assert Thresholds(0.2, 0.4).decide(np.array([0.1, 0.2, 0.4])).tolist() == [0, 1, 2]


def test_snapshot_written_to_a_file_is_the_same_snapshot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The worker streams the capture into its file (the engine's npz in slices, its
    length filled in afterwards); restoring that file continues as the bytes do."""
    a = StreamProcessor(_scoring())
    a.process_transactions(_records(30))
    later = a.snapshot_later()
    path = tmp_path / "state.snapshot"
    with open(path, "wb") as fh:
        later.write(fh)
    blob = later()
    expected = a.process_transactions(_records(20, 30)).decisions
    for data in (path.read_bytes(), blob):
        b = StreamProcessor(_scoring())
        b.restore(data)
        got = b.process_transactions(_records(20, 30)).decisions
        assert [d["score"] for d in got] == [d["score"] for d in expected]
        assert [d["reasons"] for d in got] == [d["reasons"] for d in expected]
