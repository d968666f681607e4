"""The stream benchmark's offered-transaction source (the broker parts are integration tests)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from riskflow.simulate import SimulationConfig, simulate
from riskflow.streams.bench import _Source


def test_a_simulator_folder_is_taken_in_order_and_counts_what_is_left(tmp_path: Path) -> None:
    summary = simulate(SimulationConfig(customers=120, days=4, seed=11), tmp_path / "data")
    total = summary.transactions
    source = _Source(tmp_path / "data")
    assert source.remaining() == total
    first = source.take(50)
    assert source.remaining() == total - 50
    rest = source.take(total - 50)
    assert source.remaining() == 0
    ids = [orjson.loads(v)["tx_id"] for _, v in first + rest]
    assert len(set(ids)) == total  # nothing taken twice
    with pytest.raises(ValueError, match="too few transactions"):
        source.take(1)


def test_synthetic_transactions_never_run_out() -> None:
    source = _Source(None)
    assert source.remaining() is None
    assert len(source.take(10)) == 10
