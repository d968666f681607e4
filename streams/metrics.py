"""Prometheus metrics of one worker, in their own registry (no import-time globals)."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics", "observe_many"]

#: Milliseconds: from 1 ms to a minute, denser below 50 ms where the P99 target is.
_LATENCY_BUCKETS_MS = (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 250, 500, 1000, 5000, 60000)
_SCORE_BUCKETS = tuple(i / 20 for i in range(1, 20)) + (1.0,)


class WorkerMetrics:
    """Counters, gauges and histograms of the stream worker."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.consumed = Counter(
            "riskflow_consumed_records", "Records consumed", ["topic"], registry=r
        )
        self.decisions = Counter(
            "riskflow_decisions", "Decisions produced, by decision", ["decision"], registry=r
        )
        self.dead_letters = Counter(
            "riskflow_dead_letters",
            "Invalid records sent to the dead-letter topic",
            ["topic"],
            registry=r,
        )
        self.fallbacks = Counter(
            "riskflow_fallback_decisions", "Fallback decisions (scoring failed)", registry=r
        )
        self.skipped = Counter(
            "riskflow_redelivered_skipped", "Redelivered records already in the state", registry=r
        )
        self.replayed = Counter(
            "riskflow_gap_replayed_records",
            "Records replayed into state after a restart",
            registry=r,
        )
        self.labels_unmatched = Gauge(
            "riskflow_labels_unmatched",
            "Labels dropped: their transaction was not seen while they waited",
            registry=r,
        )
        self.labels_waiting = Gauge(
            "riskflow_labels_waiting",
            "Labels held until their transaction arrives (bound: stream.waiting_labels)",
            registry=r,
        )
        self.policy_updates = Counter(
            "riskflow_policy_updates", "Policy updates applied", registry=r
        )
        self.batches = Counter("riskflow_batches", "Micro-batches scored", registry=r)
        self.batch_size = Histogram(
            "riskflow_batch_size",
            "Transactions per micro-batch",
            buckets=(1, 8, 32, 128, 512, 2048, 8192, 32768),
            registry=r,
        )
        self.latency_event = Histogram(
            "riskflow_latency_from_record_ms",
            "Decision produced minus the input record's timestamp (ms)",
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.latency_consume = Histogram(
            "riskflow_latency_from_consume_ms",
            "Decision produced minus the time the record was consumed (ms)",
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.stage_ms = Histogram(
            "riskflow_stage_ms",
            "Time per stage per batch (ms)",
            ["stage"],
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.scores = Histogram(
            "riskflow_score",
            "Calibrated scores of decided transactions",
            buckets=_SCORE_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "riskflow_consumer_lag",
            "End offset minus processed position",
            ["topic", "partition"],
            registry=r,
        )
        self.checkpoints = Counter("riskflow_checkpoints", "State snapshots written", registry=r)
        self.capture_ms = Histogram(
            "riskflow_checkpoint_capture_ms",
            "Time the event loop spent capturing the state for a snapshot (ms)",
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.loop_lag_ms = Histogram(
            "riskflow_event_loop_lag_ms",
            "How late a periodic timer fired: time the event loop was held by one step (ms)",
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )


def observe_many(hist: Histogram, values: np.ndarray) -> None:
    """``hist.observe(v)`` for every value, with one counter update per bucket.

    prometheus_client has no bulk observe and a per-record ``observe`` costs
    as much as scoring the record; this fills the same (non-cumulative)
    bucket counters and sum the loop would. Relies on prometheus_client's
    ``_upper_bounds`` / ``_buckets`` / ``_sum`` (checked by a unit test).

    >>> h = Histogram("h", "h", buckets=(1, 5), registry=CollectorRegistry())
    >>> observe_many(h, np.array([0.5, 3.0, 9.0, 1.0]))
    >>> [b.get() for b in h._buckets], h._sum.get()
    ([2.0, 1.0, 1.0], 13.5)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return
    bounds = np.asarray(hist._upper_bounds, dtype=np.float64)
    idx = np.searchsorted(bounds, values, side="left")  # le: value <= bound
    for i, n in zip(*np.unique(idx, return_counts=True), strict=True):
        hist._buckets[int(i)].inc(int(n))
    hist._sum.inc(float(values.sum()))
