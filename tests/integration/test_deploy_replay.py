"""The runbook's "replaying a topic from an offset", done as it says, against the real broker.

docs/runbook.md: to re-decide transactions from offset X, stop the workers,
move the consumer group back to X, delete the workers' snapshots, start them.
This checks both halves of that advice: with the snapshot kept, the moved-back
offsets count as redeliveries and nothing is re-decided; with it deleted, the
state is rebuilt from the log up to X without output and every transaction
from X on is decided again, with the features of the first run.
"""

from __future__ import annotations

import collections
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from deploy_worker import RISKFLOW, RunningWorker

pytestmark = [pytest.mark.kafka]

T0 = 1_767_268_800_000
N = 100
X = 60


def _metric(worker: RunningWorker, name: str) -> float:
    return sum(worker.metrics().get(name, {}).values())


def _wait_for(what: str, cond: Callable[[], bool], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _reset_group(bootstrap: str, group: str, topic: str, offset: int) -> None:
    """What `kafka-consumer-groups.sh --reset-offsets --to-offset` does (the group is empty)."""
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.structs import OffsetAndMetadata

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_group_offsets(
            group, {TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)}
        )
        got = admin.list_group_offsets({group: None})
    finally:
        admin.close()
    assert any(o.offset == offset for o in _offsets(got)), got


def _offsets(got: Any) -> list[Any]:
    # list_group_offsets returns {group: {tp: OffsetAndMetadata}} (or {tp: ...} on older clients).
    inner = next(iter(got.values())) if got and isinstance(next(iter(got.values())), dict) else got
    return list(inner.values())


def test_replay_from_an_offset_as_the_runbook_says(
    kafka_bootstrap: str,
    riskflow_env: dict[str, str],
    new_group: Callable[[], str],
    consume: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    group = new_group()
    state = tmp_path / "state"
    env = {
        **os.environ,
        "RISKFLOW_STREAM__STATE_DIR": str(state),
        "RISKFLOW_STREAM__APP_ID": group,
        "RISKFLOW_STREAM__MAX_BATCH_SIZE": "16",
        # One partition: offsets are transaction numbers.
        "RISKFLOW_TOPICS__TRANSACTIONS__PARTITIONS": "1",
    }
    subprocess.run(
        [RISKFLOW, "topics", "create"], env=env, check=True, capture_output=True, timeout=120
    )
    tx_topic, decisions = riskflow_env["transactions"], riskflow_env["decisions"]

    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(N):
        rec = {
            "schema_version": 1,
            "tx_id": f"tx-{i:05d}",
            "event_time": T0 + i * 1000,
            "card_token": f"card-{i % 7}",
            "merchant_id": f"m-{i % 3}",
            "amount": float(10 + (i * 37) % 400),
        }
        producer.send(tx_topic, orjson.dumps(rec), key=rec["card_token"].encode())
    producer.flush(30)
    producer.close()

    def decided() -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in consume(decisions, N + N - X, timeout=5, settle=1)]

    log = tmp_path / "worker.log"
    worker = RunningWorker(env, log)
    try:
        worker.wait_ready()
        _wait_for(
            "the first run's decisions", lambda: _metric(worker, "riskflow_decisions_total") >= N
        )
    finally:
        worker.stop()
    first = {d["tx_id"]: d for d in decided()}
    assert len(first) == N
    assert list(state.glob("*.snapshot")), "the worker left no snapshot"

    # Group moved back, snapshot kept: [X, N) is already in the state -> skipped, not re-decided.
    _reset_group(kafka_bootstrap, group, tx_topic, X)
    worker = RunningWorker(env, log)
    try:
        worker.wait_ready()
        _wait_for(
            "the redeliveries to be skipped",
            lambda: _metric(worker, "riskflow_redelivered_skipped_total") >= N - X,
        )
        assert _metric(worker, "riskflow_decisions_total") == 0
    finally:
        worker.stop()
    assert len(decided()) == N

    # Group moved back and snapshots deleted: state rebuilt from [0, X), [X, N) decided again.
    _reset_group(kafka_bootstrap, group, tx_topic, X)
    for snap in state.glob("*.snapshot"):
        snap.unlink()
    worker = RunningWorker(env, log)
    try:
        worker.wait_ready()
        _wait_for(
            "the replayed decisions", lambda: _metric(worker, "riskflow_decisions_total") >= N - X
        )
        assert _metric(worker, "riskflow_gap_replayed_records_total") == X
    finally:
        worker.stop()
    # The decisions topic has several partitions: find the re-decided ones by count, not by position.
    counts = collections.Counter(d["tx_id"] for d in decided())
    assert sum(counts.values()) == N + N - X
    assert sorted(t for t, c in counts.items() if c == 2) == [f"tx-{i:05d}" for i in range(X, N)]
    for rec in consume(decisions, N + N - X, timeout=5):
        d = orjson.loads(rec.value)
        before = first[d["tx_id"]]
        # Features rebuilt from the log equal the first run's: same score, same reasons.
        assert (d["decision"], d["score"], d["reasons"]) == (
            before["decision"],
            before["score"],
            before["reasons"],
        ), d["tx_id"]
