"""observe_many must leave a histogram exactly as per-value observe does."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from riskflow.streams.metrics import WorkerMetrics, observe_many


def test_observe_many_equals_observe_loop() -> None:
    values = np.random.default_rng(0).exponential(20.0, 500)
    values[:5] = [1.0, 2.0, 20.0, 60000.0, 1e9]  # on bucket bounds and beyond the last
    samples = []
    for bulk in (False, True):
        reg = CollectorRegistry()
        h = Histogram("lat", "latency", buckets=(1, 2, 5, 20, 100, 60000), registry=reg)
        if bulk:
            observe_many(h, values)
        else:
            for v in values:
                h.observe(float(v))
        samples.append(
            {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for metric in reg.collect()
                for s in metric.samples
                if not s.name.endswith("_created")
            }
        )
    loop, bulk_ = samples
    sum_key = ("lat_sum", ())
    assert bulk_.pop(sum_key) == pytest.approx(loop.pop(sum_key), rel=1e-12)
    assert loop == bulk_


def test_worker_metrics_have_their_own_registry() -> None:
    a, _ = WorkerMetrics(), WorkerMetrics()  # no duplicate-registration error
    a.decisions.labels("approve").inc()
    assert b"riskflow_decisions_total" in generate_latest(a.registry)
