"""A checkpoint writes the state as it was at its capture, whichever way it captures.

With ``stream.snapshot_capture = "fork"`` a forked child writes the snapshot
while the worker goes on deciding; with ``"copy"`` the tables are copied on
the loop and written in a thread. Either way the file holds the state at the
capture, not the state the worker has moved on to (no broker needed).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
import pytest

from riskflow.config import Config
from riskflow.features import FeatureEngine
from riskflow.pipeline import ScoringPipeline
from riskflow.policies import ThresholdPolicy
from riskflow.streams.app import build_app
from riskflow.streams.processor import InRecord
from riskflow.streams.scoring import PipelineScoring

T0 = 1_767_268_800_000


class _Flat:
    version = "flat-1"

    def predict_proba(self, X):  # type: ignore[no-untyped-def]
        import numpy as np

        return np.full(len(X), 0.01)

    def reason_codes(self, X, rows, k=3):  # type: ignore[no-untyped-def]
        return [[] for _ in rows]


def _records(n: int, start: int = 0) -> list[InRecord]:
    return [
        InRecord(
            "transactions",
            0,
            i,
            None,
            None,
            orjson.dumps(
                {
                    "schema_version": 1,
                    "tx_id": f"t{i}",
                    "event_time": T0 + i * 1000,
                    "card_token": f"c{i % 7}",
                    "merchant_id": f"m{i % 3}",
                    "amount": 3.0 + i,
                }
            ),
        )
        for i in range(start, start + n)
    ]


def _worker(tmp_path: Path, capture: str):  # type: ignore[no-untyped-def]
    config = Config.model_validate(
        {"stream": {"state_dir": str(tmp_path / "state"), "snapshot_capture": capture}}
    )
    scoring = PipelineScoring(
        ScoringPipeline(FeatureEngine(config.features), _Flat(), ThresholdPolicy(0.5, 0.9))
    )
    return build_app(config, scoring, web_port=18998, engine="bulk")


@pytest.mark.parametrize("capture", ["fork", "copy"])
def test_the_snapshot_is_the_state_at_its_capture(tmp_path: Path, capture: str) -> None:
    worker = _worker(tmp_path, capture)
    assert worker.fork_capture == (capture == "fork" and sys.platform.startswith("linux"))
    worker.processor.process_transactions(_records(300))
    expected = worker.processor.snapshot()  # reproducible bytes: the state now

    async def checkpoint_then_go_on() -> None:
        writing = worker._capture(0.0)
        # The worker moves on while the snapshot is written.
        worker.processor.process_transactions(_records(300, start=300))
        await asyncio.wait_for(writing, 60)

    asyncio.run(checkpoint_then_go_on())
    assert worker.snapshot_path.read_bytes() == expected
    assert worker.processor.snapshot() != expected  # the worker did move on
    assert not list(worker.state_dir.glob("*.tmp"))  # installed, nothing left behind
    assert worker.metrics.checkpoints._value.get() == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork capture is Linux-only")
def test_a_failing_forked_writer_fails_the_checkpoint(tmp_path: Path) -> None:
    worker = _worker(tmp_path, "fork")
    worker.processor.process_transactions(_records(50))
    worker.state_dir.rmdir()
    worker.state_dir.write_text("not a directory")  # the child cannot write there

    async def checkpoint() -> None:
        with pytest.raises(RuntimeError, match="snapshot writer .* exited with status 1"):
            await asyncio.wait_for(worker._capture(0.0), 60)

    asyncio.run(checkpoint())
    assert worker.metrics.checkpoints._value.get() == 0


def test_a_fork_that_fails_falls_back_to_copying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fork(2) can fail (ENOMEM under strict overcommit): the checkpoint still happens."""
    import os

    worker = _worker(tmp_path, "fork")
    worker.fork_capture = True

    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    worker.processor.process_transactions(_records(50))
    expected = worker.processor.snapshot()

    async def checkpoint() -> None:
        await asyncio.wait_for(worker._capture(0.0), 60)

    asyncio.run(checkpoint())
    assert worker.snapshot_path.read_bytes() == expected
    assert worker.fork_capture is False
