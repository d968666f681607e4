"""Every series the Grafana dashboard and the alert rules query is one a real worker exports.

A `riskflow worker` subprocess (the toy CountingScorer, so no trained model is
needed) runs against the real broker on topics made by `riskflow topics
create`; after it has decided valid transactions, dead-lettered an invalid one
and read a label, its /metrics must hold every metric name, with every label,
that deploy/grafana/dashboards/*.json and deploy/prometheus/alerts.yml use.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from deploy_worker import RISKFLOW, RunningWorker

pytestmark = [pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_767_268_800_000


def _queries_module():
    name = "riskflow_deploy_queries"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / "queries.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _missing(needed: dict[str, set[str]], exported: dict[str, set[str]]) -> list[str]:
    out = []
    for metric, labels in sorted(needed.items()):
        if metric not in exported:
            out.append(f"{metric} (not exported)")
        elif labels - exported[metric]:
            out.append(f"{metric} lacks label(s) {sorted(labels - exported[metric])}")
    return out


def test_queries_are_collected_from_both_sources():
    q = _queries_module()
    sources = {query.source.split()[0] for query in q.all_queries()}
    assert {"alerts.yml", "riskflow.json"} <= sources


@pytest.mark.parametrize("engine", ["bulk", "faust"])
def test_dashboard_and_alerts_query_only_what_the_worker_exports(
    engine: str,
    kafka_bootstrap: str,
    riskflow_env: dict[str, str],
    new_group: Callable[[], str],
    tmp_path: Path,
) -> None:
    q = _queries_module()
    needed: dict[str, set[str]] = {}
    for query in q.all_queries():
        for need in query.needs():
            if need.metric not in q.SYNTHETIC_SERIES:
                needed.setdefault(need.metric, set()).update(need.labels)
    assert len(needed) >= 15, needed

    env = {
        **os.environ,
        "RISKFLOW_STREAM__STATE_DIR": str(tmp_path / "state"),
        "RISKFLOW_STREAM__APP_ID": new_group(),
        "RISKFLOW_STREAM__MAX_BATCH_SIZE": "64",
    }
    # The topics as compose's `topics` service and the Kubernetes Job make them.
    subprocess.run(
        [RISKFLOW, "topics", "create"], env=env, check=True, capture_output=True, timeout=120
    )

    worker = RunningWorker(env, tmp_path / f"worker-{engine}.log", engine=engine)
    try:
        worker.wait_ready()
        _feed(kafka_bootstrap, riskflow_env)
        # Labelled series appear once observed; the lag gauge after a lag probe (every 5 s).
        deadline = time.monotonic() + 45
        while True:
            exported = {n: {k for key in v for k, _ in key} for n, v in worker.metrics().items()}
            missing = _missing(needed, exported)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not missing, (
            "the dashboard / alert rules query series this worker does not export:\n  "
            + "\n  ".join(missing)
            + "\n(fix deploy/grafana/build_dashboard.py or deploy/prometheus/alerts.yml, "
            "or streams/metrics.py if a metric was renamed)"
        )
    finally:
        worker.stop()


def _feed(bootstrap: str, topics: dict[str, str]) -> None:
    """Valid transactions, one invalid record (a dead letter) and a label."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for i in range(200):
            rec = {
                "schema_version": 1,
                "tx_id": f"tx-{i:05d}",
                "event_time": T0 + i * 10,
                "card_token": f"card-{i % 17}",
                "merchant_id": f"m-{i % 5}",
                "amount": float(10 + i % 300),
            }
            key = rec["card_token"].encode()
            producer.send(topics["transactions"], orjson.dumps(rec), key=key)
        producer.send(topics["transactions"], b"{not json", key=b"card-0")
        label = {"tx_id": "tx-00003", "label": 1, "label_time": T0 + 60_000}
        producer.send(topics["labels"], orjson.dumps(label), key=b"tx-00003")
        producer.flush(30)
    finally:
        producer.close()


def test_a_missing_metric_is_reported() -> None:
    assert _missing({"riskflow_nope_total": set()}, {"riskflow_batches_total": set()}) == [
        "riskflow_nope_total (not exported)"
    ]
    assert _missing(
        {"riskflow_decisions_total": {"decision"}}, {"riskflow_decisions_total": set()}
    ) == ["riskflow_decisions_total lacks label(s) ['decision']"]
