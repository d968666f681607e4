from __future__ import annotations

from riskflow.watch import DecisionStats


def test_rate_window_and_quantiles() -> None:
    s = DecisionStats(window_s=10.0)
    for t in range(20):  # 100 decisions a second for 20 s
        s.update(
            [{"decision": "approve", "latency_ms": float(i % 10)} for i in range(100)], now=float(t)
        )
    snap = s.snapshot(now=19.0)
    assert snap.total == 2000
    assert 95 <= snap.rate_per_s <= 115  # only the last 10 s count
    assert snap.latency_p50_ms is not None and 4.0 <= snap.latency_p50_ms <= 5.0
    assert snap.mix == {"approve": 1.0}


def test_declines_kept_newest_first_and_fallbacks_counted() -> None:
    s = DecisionStats(keep_declines=2)
    s.update(
        [
            {"decision": "decline", "tx_id": f"t{i}", "reasons": [{"feature": "f"}]}
            for i in range(3)
        ],
        now=0,
    )
    s.update([{"decision": "review", "fallback": True, "model_version": "m2"}], now=0)
    snap = s.snapshot(now=0)
    assert [d["tx_id"] for d in snap.recent_declines] == ["t2", "t1"]
    assert snap.recent_declines[0]["reasons"] == ["f"]
    assert snap.fallbacks == 1 and snap.model_versions == ["m2"]


def test_latency_from_the_source_timestamp_the_worker_copies() -> None:
    s = DecisionStats()
    s.update(
        [
            {"decision": "approve", "source_ts_ms": 1_000.0},
            {"decision": "approve", "source_ts_ms": 990},
            {"decision": "approve", "source_ts_ms": None},  # no timestamp: no latency
            {"decision": "approve", "source_ts_ms": 0, "latency_ms": 4.0},  # given wins
        ],
        now=0.0,
        now_ms=1_010.0,
    )
    snap = s.snapshot(now=0.0)
    assert snap.latency_p50_ms == 10.0 and snap.latency_p99_ms is not None
    assert 19.0 < snap.latency_p99_ms <= 20.0
