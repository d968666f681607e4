"""`riskflow bench stream --json` runs end to end on the real broker and reports what it promises."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from riskflow.cli import main

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(300)
def test_bench_stream_reports_throughput_latency_and_stalls(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RISKFLOW_CONFIG", raising=False)
    monkeypatch.setenv("RISKFLOW_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    # The counting scorer drains 3,000 records in tens of ms: commit after every
    # batch so the drain is resolved at all (the default commits every 100 ms).
    monkeypatch.setenv("RISKFLOW_STREAM__COMMIT_INTERVAL_MS", "0")
    args = [
        "bench", "stream", "--json",
        "--scorer", "riskflow.streams.reference:counting_scorer",
        "-n", "3000", "--rate", "400", "--seconds", "3", "--sustain-seconds", "3",
        "--threads", "2", "--checkpoint-interval", "1",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["model_num_threads"] == 2 and out["commit_interval_ms"] == 0
    assert out["null_pipeline_tx_per_s"] > 0 and out["drain_tx_per_s"] > 0
    assert out["max_sustained_tx_per_s"] is None or out["max_sustained_tx_per_s"] > 0
    assert out["sustained_trials"]
    lat = out["latency_ms"]["400"]
    assert lat["undecided"] == 0 and lat["n"] > 0
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    # The worker's own view and its stalls over the same window: a 3 s run
    # with a checkpoint every second captured at least once.
    assert lat["worker_p99_le"] is not None and lat["worker_max_le"] >= lat["worker_p99_le"]
    # Consumption to production is part of record to production.
    assert lat["worker_consume_p99_le"] is not None
    assert lat["worker_consume_p50_le"] <= lat["worker_p50_le"]
    assert lat["worker_loop_lag_max_le"] is not None
    assert lat["checkpoint_captures"] >= 1 and lat["checkpoint_capture_max_le"] is not None
