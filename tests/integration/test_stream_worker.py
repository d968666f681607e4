"""`riskflow worker` against the real broker, run as a subprocess (so kill -9 is real).

The worker scores with :class:`riskflow.streams.reference.CountingScorer`
(deterministic per-card features carried in the reason codes), so the
decisions of a stream can be compared with an offline run of the same scorer.
Set ``RISKFLOW_TEST_LOGLEVEL=info`` to get the workers' rebalance and replay logs
in their log files (under each test's ``tmp_path/state``).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from riskflow.batch import TxBatch
from riskflow.schema import validate_transaction
from riskflow.streams.reference import CountingScorer

pytestmark = [pytest.mark.kafka]

RISKFLOW = str(Path(sys.executable).with_name("riskflow"))
T0 = 1_767_268_800_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tx(i: int, cards: int = 23, merchants: int = 7) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "tx_id": f"tx-{i:06d}",
        "event_time": T0 + i * 10,
        "card_token": f"card-{i % cards}",
        "merchant_id": f"m-{i % merchants}",
        "amount": float(5 + (i * 37) % 400),
    }


def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in items:
            p.send(topic, value, key=key)
        p.flush(30)
    finally:
        p.close()


def tx_items(records: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    # Keyed by card: a card's transactions stay in order on one partition.
    return [(r["card_token"].encode(), orjson.dumps(r)) for r in records]


def offline(records: list[dict[str, Any]], **policy: float) -> dict[str, dict[str, Any]]:
    """The same scorer over the whole stream at once: tx_id -> card features, score."""
    scorer = CountingScorer(**policy)
    batch = scorer.score_batch(TxBatch.from_records([validate_transaction(r) for r in records]))
    return {d["tx_id"]: _card_view(d) for d in batch.to_records()}


def assert_all_decided(
    decisions: list[dict[str, Any]], records: list[dict[str, Any]], guarantee: str
) -> None:
    """Every record decided with an uninterrupted run's card features; once, if exactly-once."""
    ids = collections.Counter(d["tx_id"] for d in decisions)
    assert set(ids) == {r["tx_id"] for r in records}, "a transaction went undecided"
    if guarantee == "exactly_once":
        assert max(ids.values()) == 1, "a read_committed reader saw a tx_id twice"
    expected = offline(records)
    for d in decisions:  # duplicates (at-least-once) must carry the same features
        assert _card_view(d) == expected[d["tx_id"]], d["tx_id"]


def _card_view(d: dict[str, Any]) -> dict[str, Any]:
    # Per-card features and score depend only on the card's own order, which
    # Kafka keeps (one partition per card); merchant counts depend on how
    # partitions interleave, in a stream as in any parallel run.
    r = {c["code"]: c["value"] for c in d["reasons"]}
    return {
        "card_count": r["card_count"],
        "card_amount_sum": r["card_amount_sum"],
        "card_frauds": r["card_frauds"],
        "score": round(d["score"], 9),
    }


def make_topics(bootstrap: str, names: dict[str, str], partitions: int) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(names["transactions"], partitions, 1),
                NewTopic(names["labels"], partitions, 1),
                NewTopic(names["decisions"], partitions, 1),
                NewTopic(names["dead_letter"], 1, 1),
                NewTopic(names["policy"], 1, 1, topic_configs={"cleanup.policy": "compact"}),
                NewTopic(names["rules"], 1, 1, topic_configs={"cleanup.policy": "compact"}),
            ]
        )
        admin.wait_for_topics(list(names.values()), timeout_ms=15_000)
    finally:
        admin.close()


class Worker:
    """A `riskflow worker` subprocess with its own web port and state dir."""

    def __init__(
        self,
        env: dict[str, str],
        instance: str = "0",
        checkpoint: float = 2.0,
        engine: str = "faust",
        scorer: str = "riskflow.streams.reference:counting_scorer",
    ) -> None:
        self.port = _free_port()
        self.log = Path(env["RISKFLOW_STREAM__STATE_DIR"]) / f"worker-{instance}-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                RISKFLOW,
                "worker",
                "--scorer",
                scorer,
                "--instance-id",
                instance,
                "--web-port",
                str(self.port),
                "--checkpoint-interval",
                str(checkpoint),
                "--engine",
                engine,
                "--loglevel",
                os.environ.get("RISKFLOW_TEST_LOGLEVEL", "warning"),
            ],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_ready(self, timeout: float = 40.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker exited: {self.log.read_text()[-3000:]}"
            try:
                status, body = self.get("/health")
                last = orjson.loads(body)
                if status == 200:
                    return last
            except OSError as exc:
                last = exc
            time.sleep(0.3)
        raise AssertionError(
            f"worker not ready after {timeout} s: {last}\n{self.log.read_text()[-3000:]}"
        )

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._fh.close()


@pytest.fixture
def stream_env(
    kafka_bootstrap: str, riskflow_env: dict[str, str], tmp_path: Path, new_group: Callable[[], str]
) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    env = {
        **os.environ,
        "RISKFLOW_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RISKFLOW_STREAM__STATE_DIR": str(tmp_path / "state"),
        "RISKFLOW_STREAM__APP_ID": new_group(),
        "RISKFLOW_STREAM__MAX_BATCH_SIZE": "64",
        **{f"RISKFLOW_TOPICS__{role.upper()}__NAME": name for role, name in riskflow_env.items()},
    }
    env.pop("RISKFLOW_CONFIG", None)
    yield env, riskflow_env


def read_decisions(
    consume: Callable[..., list[Any]], topic: str, expected: int, **kw: Any
) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in consume(topic, expected, **kw)]


ENGINES = pytest.mark.parametrize("engine", ["faust", "bulk"])


@pytest.mark.timeout(90)
@ENGINES
def test_every_transaction_decided_once_and_garbage_dead_lettered(
    kafka_bootstrap: str, stream_env: Any, consume: Callable[..., list[Any]], engine: str
) -> None:
    env, topics = stream_env
    make_topics(kafka_bootstrap, topics, partitions=3)
    records = [tx(i) for i in range(1500)]
    good = tx_items(records)
    bad: list[tuple[bytes | None, bytes]] = [
        (None, b"{not json"),
        (None, orjson.dumps({**tx(10**6), "schema_version": 99})),
        (None, orjson.dumps({k: v for k, v in tx(10**6 + 1).items() if k != "amount"})),
        (None, orjson.dumps({**tx(10**6 + 2), "card_token": "4111111111111111"})),
        (None, b"x" * 70_000),
        (None, b"[1, 2]"),
    ] * 50
    # Garbage interleaved with good records on every partition.
    mixed = []
    for i, item in enumerate(good):
        mixed.append(item)
        if i % 5 == 0 and bad:
            mixed.append(bad.pop())
    mixed.extend(bad)
    n_bad = 300
    sent_from_ms = time.time() * 1000
    produce(kafka_bootstrap, topics["transactions"], mixed)
    sent_to_ms = time.time() * 1000

    w = Worker(env, engine=engine)
    try:
        health = w.wait_ready()
        assert health["broker"] and health["assigned"] and health["model_loaded"]
        decisions = read_decisions(
            consume, topics["decisions"], len(records), timeout=45, settle=1.0
        )
        dead = consume(topics["dead_letter"], n_bad, timeout=15, settle=0.5)
        metrics = w.metrics()
    finally:
        w.stop()

    ids = collections.Counter(d["tx_id"] for d in decisions)
    assert set(ids) == {r["tx_id"] for r in records}
    assert max(ids.values()) == 1
    expected = offline(records)
    assert {d["tx_id"]: _card_view(d) for d in decisions} == expected
    one = decisions[0]
    assert one["decision"] in ("approve", "review", "decline")
    assert one["model_version"] == "counting-1" and one["policy_version"] == "default"
    assert "features" in one["timings_ms"] and one["fallback"] is False
    # Each decision carries its input record's (producer) timestamp: watch's latency.
    assert all(sent_from_ms - 1 <= d["source_ts_ms"] <= sent_to_ms + 1 for d in decisions)

    assert len(dead) == n_bad
    body = orjson.loads(dead[0].value)
    assert set(body) >= {"error", "source", "original_b64"}
    assert body["source"]["topic"] == topics["transactions"]
    fields = collections.Counter(orjson.loads(r.value)["error"]["field"] for r in dead)
    assert fields["schema_version"] == 50 and fields["amount"] == 50 and fields["card_token"] == 50
    # The raw card number is never echoed.
    assert not any(b"4111111111111111" in r.value for r in dead)
    assert "riskflow_dead_letters_total" in metrics
    assert 'riskflow_decisions_total{decision="approve"}' in metrics


@pytest.mark.timeout(120)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
@ENGINES
def test_kill9_restart_keeps_features_and_decides_everything(
    kafka_bootstrap: str,
    stream_env: Any,
    consume: Callable[..., list[Any]],
    guarantee: str,
    engine: str,
) -> None:
    env, topics = stream_env
    env["RISKFLOW_STREAM__PROCESSING_GUARANTEE"] = guarantee
    make_topics(kafka_bootstrap, topics, partitions=2)
    records = [tx(i) for i in range(3000)]
    items = tx_items(records)

    def paced() -> None:  # ~3000 tx over ~6 s, so the kill lands mid-stream
        for start in range(0, len(items), 100):
            produce(kafka_bootstrap, topics["transactions"], items[start : start + 100])
            time.sleep(0.2)

    producer = threading.Thread(target=paced, daemon=True)
    # A long checkpoint interval: the only snapshot is taken at the first
    # batch, so the restart must replay the gap up to the committed offsets.
    w = Worker(env, checkpoint=3600, engine=engine)
    iso = {"isolation_level": "read_committed"}
    try:
        w.wait_ready()
        producer.start()
        got = read_decisions(consume, topics["decisions"], 800, timeout=40, **iso)
        assert len(got) >= 800
        w.kill9()
    finally:
        w.stop()
    producer.join(60)
    assert len(got) < len(records), "the worker finished before the kill: not mid-stream"
    w2 = Worker(env, checkpoint=3600, engine=engine)
    try:
        w2.wait_ready()
        decisions = read_decisions(
            consume, topics["decisions"], len(records), timeout=45, settle=2.0, **iso
        )
        metrics = w2.metrics()
    finally:
        w2.stop()

    assert_all_decided(decisions, records, guarantee)
    replayed = [
        ln for ln in metrics.splitlines() if ln.startswith("riskflow_gap_replayed_records_total")
    ]
    assert replayed and float(replayed[0].split()[-1]) > 0, "the restart did not replay the gap"


@pytest.mark.timeout(90)
def test_threshold_update_applies_without_restart(
    kafka_bootstrap: str, stream_env: Any, consume: Callable[..., list[Any]]
) -> None:
    env, topics = stream_env
    make_topics(kafka_bootstrap, topics, partitions=1)
    produce(kafka_bootstrap, topics["transactions"], tx_items([tx(i) for i in range(100)]))
    w = Worker(env)
    try:
        w.wait_ready()
        before = read_decisions(consume, topics["decisions"], 100, timeout=30)
        assert {d["policy_version"] for d in before} == {"default"}
        update = {"t_review": 0.0, "t_decline": 0.0, "version": "v2-all-decline"}
        produce(kafka_bootstrap, topics["policy"], [(b"thresholds", orjson.dumps(update))])
        deadline = time.monotonic() + 20
        while "riskflow_policy_updates_total 1.0" not in w.metrics():
            assert time.monotonic() < deadline, "policy update not applied"
            time.sleep(0.2)
        produce(kafka_bootstrap, topics["transactions"], tx_items([tx(i) for i in range(100, 200)]))
        after = read_decisions(consume, topics["decisions"], 200, timeout=30)[100:]
    finally:
        w.stop()
    assert len(after) == 100
    assert {d["policy_version"] for d in after} == {"v2-all-decline"}
    assert {d["decision"] for d in after} == {"decline"}


def _full_view(d: dict[str, Any]) -> dict[str, Any]:
    return {**{c["code"]: c["value"] for c in d["reasons"]}, "score": round(d["score"], 9)}


@pytest.mark.timeout(120)
@ENGINES
def test_two_workers_share_cross_entity_features_and_labels(
    kafka_bootstrap: str, stream_env: Any, consume: Callable[..., list[Any]], engine: str
) -> None:
    """Cards are partitioned, merchants and labels are not: each worker must still count them all."""
    from riskflow.streams.processor import InRecord, StreamProcessor

    env, topics = stream_env
    make_topics(kafka_bootstrap, topics, partitions=4)
    workers = [Worker(env, instance="a", engine=engine), Worker(env, instance="b", engine=engine)]
    # The offline twin: the same processor and scorer fed the same rounds in order.
    twin = StreamProcessor(CountingScorer())
    expected: dict[str, dict[str, Any]] = {}
    n_rounds, per_round = 10, 7  # one transaction per merchant per round
    try:
        for w in workers:
            w.wait_ready(60)
        deadline = time.monotonic() + 30
        while not all(orjson.loads(w.get("/health")[1])["assigned"] for w in workers):
            assert time.monotonic() < deadline, "both workers never got partitions"
            time.sleep(0.3)
        time.sleep(2)  # let the group settle into its final assignment
        for r in range(n_rounds):
            batch = [tx(i, cards=11) for i in range(r * per_round, (r + 1) * per_round)]
            produce(kafka_bootstrap, topics["transactions"], tx_items(batch))
            out = twin.process_transactions(
                [
                    InRecord("t", 0, r * per_round + k, None, None, orjson.dumps(b))
                    for k, b in enumerate(batch)
                ]
            )
            expected.update({d["tx_id"]: _full_view(d) for d in out.decisions})
            read_decisions(consume, topics["decisions"], (r + 1) * per_round, timeout=20)
            if r == 3:  # every transaction of round 3 is confirmed fraud
                labels = [
                    {"tx_id": b["tx_id"], "label": 1, "label_time": b["event_time"] + 1}
                    for b in batch
                ]
                produce(
                    kafka_bootstrap,
                    topics["labels"],
                    [(lab["tx_id"].encode(), orjson.dumps(lab)) for lab in labels],
                )
                twin.process_labels(
                    [
                        InRecord("l", 0, k, None, None, orjson.dumps(lab))
                        for k, lab in enumerate(labels)
                    ]
                )
            time.sleep(1.5)  # > commit interval + follow interval: the round is in every replica
        decisions = read_decisions(
            consume, topics["decisions"], n_rounds * per_round, timeout=20, settle=1.0
        )
        per_worker = [_decided(w) for w in workers]
    finally:
        for w in workers:
            w.stop()
    assert all(n > 0 for n in per_worker), f"one worker decided nothing: {per_worker}"
    got = {d["tx_id"]: _full_view(d) for d in decisions}
    assert len(decisions) == len(got) == n_rounds * per_round
    assert any(v["card_frauds"] > 0 for v in got.values())
    assert got == expected


def _metric(w: Worker, name: str) -> float:
    got = [ln for ln in w.metrics().splitlines() if ln.startswith(name + " ")]
    return float(got[0].split()[-1]) if got else -1.0


@pytest.mark.timeout(120)
@ENGINES
def test_labels_before_their_transactions_wait_through_kill9(
    kafka_bootstrap: str, stream_env: Any, consume: Callable[..., list[Any]], engine: str
) -> None:
    """The label race made deterministic: labels are consumed (and committed) before the
    transactions they refer to exist, the worker is killed with -9, and the restarted
    worker still applies them, at their label time, as an uninterrupted run does."""
    from riskflow.streams.processor import InRecord, StreamProcessor

    env, topics = stream_env
    make_topics(kafka_bootstrap, topics, partitions=2)
    round_a = [tx(i, cards=5) for i in range(20)]
    round_b = [tx(i, cards=5) for i in range(20, 40)]
    # Due after round A (event times T0 .. T0 + 190), before round B.
    labels = [
        {"tx_id": r["tx_id"], "label": 1, "label_time": round_a[-1]["event_time"] + 5}
        for r in round_a[::3]
    ]
    label_items = [(lab["tx_id"].encode(), orjson.dumps(lab)) for lab in labels]
    twin = StreamProcessor(CountingScorer())
    twin.process_transactions(
        [InRecord("t", 0, k, None, None, orjson.dumps(r)) for k, r in enumerate(round_a)]
    )
    twin.process_labels(
        [InRecord("l", 0, k, None, None, v) for k, (_, v) in enumerate(label_items)]
    )
    expected = {
        d["tx_id"]: _full_view(d)
        for d in twin.process_transactions(
            [InRecord("t", 0, 20 + k, None, None, orjson.dumps(r)) for k, r in enumerate(round_b)]
        ).decisions
    }
    assert any(v["card_frauds"] > 0 for v in expected.values())

    w = Worker(env, checkpoint=0.5, engine=engine)
    try:
        w.wait_ready()
        produce(kafka_bootstrap, topics["labels"], label_items)
        deadline = time.monotonic() + 30
        consumed = f'riskflow_consumed_records_total{{topic="{topics["labels"]}"}}'
        while not (
            _metric(w, consumed) == len(labels) and _metric(w, "riskflow_checkpoints_total") >= 1
        ):
            assert time.monotonic() < deadline, w.metrics()
            time.sleep(0.2)
        # Each checkpoint's capture is timed, and the loop-lag probe runs.
        assert _metric(w, "riskflow_checkpoint_capture_ms_count") >= 1
        assert _metric(w, "riskflow_event_loop_lag_ms_count") >= 1
        time.sleep(1.5)  # > faust's commit interval: the labels' offsets are committed
        w.kill9()
    finally:
        w.stop()
    w2 = Worker(env, checkpoint=0.5, engine=engine)
    try:
        w2.wait_ready()
        # From the snapshot, the catch-up to committed offsets, or redelivery
        # (faust may not have committed the last labels before the kill).
        deadline = time.monotonic() + 20
        while _metric(w2, "riskflow_labels_waiting") != len(labels):
            assert time.monotonic() < deadline, f"labels lost in the crash: {w2.metrics()}"
            time.sleep(0.2)
        produce(kafka_bootstrap, topics["transactions"], tx_items(round_a))
        read_decisions(consume, topics["decisions"], len(round_a), timeout=30)
        produce(kafka_bootstrap, topics["transactions"], tx_items(round_b))
        decisions = read_decisions(
            consume, topics["decisions"], len(round_a) + len(round_b), timeout=30, settle=0.5
        )
        assert _metric(w2, "riskflow_labels_waiting") == 0
        assert _metric(w2, "riskflow_labels_unmatched") == 0
    finally:
        w2.stop()
    got = {d["tx_id"]: _full_view(d) for d in decisions if d["tx_id"] in expected}
    # Per card (each card's transactions stay in order on one partition).
    card = {k: v["card_frauds"] for k, v in got.items()}
    assert card == {k: v["card_frauds"] for k, v in expected.items()}


def _decided(w: Worker) -> float:
    return sum(
        float(ln.split()[-1])
        for ln in w.metrics().splitlines()
        if ln.startswith("riskflow_decisions_total")
    )


def _wait(
    what: str, cond: Callable[[], bool], timeout: float, detail: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {detail()}"
        time.sleep(0.2)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
@ENGINES
def test_rebalances_mid_stream_keep_features_and_decide_everything(
    kafka_bootstrap: str,
    stream_env: Any,
    consume: Callable[..., list[Any]],
    guarantee: str,
    engine: str,
) -> None:
    """A second worker joins mid-stream, then the first leaves, while records flow.

    Each rebalance moves partitions between live workers: the new owner must
    start from the group's committed offsets with state that already holds
    everything before them (the replica it follows), so every transaction is
    decided with the features of an uninterrupted run, and under exactly-once
    a read_committed reader sees each tx_id once.
    """
    env, topics = stream_env
    env["RISKFLOW_STREAM__PROCESSING_GUARANTEE"] = guarantee
    make_topics(kafka_bootstrap, topics, partitions=4)
    records = [tx(i) for i in range(40_000)]
    items = tx_items(records)
    stop_producing = threading.Event()
    produced = [0]

    def flowing() -> None:
        # ~250 tx/s until told to stop: records are in flight through the
        # join, while both workers own partitions, and through the leave.
        while not stop_producing.is_set() and produced[0] < len(items):
            produce(kafka_bootstrap, topics["transactions"], items[produced[0] : produced[0] + 50])
            produced[0] += 50
            time.sleep(0.2)

    iso = {"isolation_level": "read_committed"}

    def n_decided() -> int:
        return len(consume(topics["decisions"], 10**9, timeout=0.5, **iso))

    producer = threading.Thread(target=flowing, daemon=True)
    a = Worker(env, instance="a", engine=engine)
    b: Worker | None = None
    try:
        a.wait_ready()
        producer.start()
        _wait("600 decisions from the first worker", lambda: n_decided() >= 600, 40, a.metrics)
        b = Worker(env, instance="b", engine=engine)
        b.wait_ready(60)  # ready = assigned: the join's rebalance is done
        time.sleep(2.0)  # both decide
        decided_by_a = _decided(a)
        a.stop()  # SIGTERM: a graceful leave, the group rebalances again
        time.sleep(2.0)  # the second worker owns everything
        stop_producing.set()
        producer.join(30)
        records = records[: produced[0]]
        decisions = read_decisions(
            consume, topics["decisions"], len(records), timeout=60, settle=2.0, **iso
        )
        decided_by_b = _decided(b)
        # Drained: the lag gauge (what RiskflowStalled alerts on) reads 0 on
        # every partition, handed-over ones included.
        lag = f'riskflow_consumer_lag{{partition="%d",topic="{topics["transactions"]}"}}'
        _wait(
            "the lag gauge to drain",
            lambda: all(_metric(b, lag % p) == 0 for p in range(4)),
            15,
            b.metrics,
        )
    finally:
        stop_producing.set()
        a.stop()
        if b is not None:
            b.stop()
    assert decided_by_a > 0 and decided_by_b > 0, (decided_by_a, decided_by_b)
    assert_all_decided(decisions, records, guarantee)


def slow_commit_scorer(config: Any) -> Any:
    """``--scorer`` of the rebalance-race test: the counting scorer in a slow-to-commit worker.

    The first worker to produce output holds that batch's output (and, under
    exactly-once, its transaction) for ``RISKFLOW_TEST_SLOW_S`` seconds, as if
    the broker were slow to take it; ``RISKFLOW_TEST_SLOW_MARK`` appears when
    the hold starts, and only the worker that created it holds.
    """
    from riskflow.streams.app import RiskWorker
    from riskflow.streams.reference import counting_scorer

    mark = os.environ["RISKFLOW_TEST_SLOW_MARK"]
    hold_s = float(os.environ["RISKFLOW_TEST_SLOW_S"])
    emit = RiskWorker._emit

    async def slow_emit(self: Any, out: Any, records: Any) -> None:
        if records:
            try:
                os.close(os.open(mark, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                await asyncio.sleep(hold_s)
        await emit(self, out, records)

    RiskWorker._emit = slow_emit  # type: ignore[method-assign]
    return counting_scorer(config)


@pytest.mark.timeout(120)
@ENGINES
def test_rebalance_waits_for_the_batch_in_flight(
    kafka_bootstrap: str,
    stream_env: Any,
    consume: Callable[..., list[Any]],
    engine: str,
    tmp_path: Path,
) -> None:
    """A worker joining while a batch's transaction is pending: no tx_id decided twice.

    The first worker takes all records in one batch (spanning the four
    partitions) and holds its output for 12 s; the second joins meanwhile. If
    the revocation did not wait for that batch, the second worker would start
    from the committed offsets, before it, and decide half of its records
    again: a read_committed reader would see them twice.
    """
    env, topics = stream_env
    mark = tmp_path / "slow.mark"
    env |= {
        "RISKFLOW_STREAM__PROCESSING_GUARANTEE": "exactly_once",
        "RISKFLOW_STREAM__MAX_BATCH_SIZE": "1000",
        "RISKFLOW_TEST_SLOW_MARK": str(mark),
        "RISKFLOW_TEST_SLOW_S": "12",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]),
    }
    make_topics(kafka_bootstrap, topics, partitions=4)
    records = [tx(i) for i in range(600)]
    produce(kafka_bootstrap, topics["transactions"], tx_items(records))
    scorer = "test_stream_worker:slow_commit_scorer"
    iso = {"isolation_level": "read_committed"}
    a = Worker(env, instance="a", engine=engine, scorer=scorer)
    b: Worker | None = None
    try:
        _wait("the first worker to hold its batch", mark.exists, 60, lambda: a.log.read_text())
        b = Worker(env, instance="b", engine=engine, scorer=scorer)
        b.wait_ready(60)  # assigned: the rebalance is done
        decisions = read_decisions(
            consume, topics["decisions"], len(records), timeout=60, settle=3.0, **iso
        )
    finally:
        a.stop()
        if b is not None:
            b.stop()
    assert_all_decided(decisions, records, "exactly_once")


class _LinearModel:
    """A fixed logistic model over the real feature matrix (stands in for a trained ensemble)."""

    version = "linear-test-1"

    def __init__(self, n_features: int) -> None:
        self.w = np.sin(np.arange(n_features) * 0.7) * 1e-3

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = np.nan_to_num(np.asarray(X, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0) @ self.w
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def reason_codes(self, X: np.ndarray, rows: Any, k: int = 3) -> list[list[dict[str, Any]]]:
        return [[{"feature": "linear", "value": float(np.nan_to_num(X[r]).sum())}] for r in rows]


def feature_pipeline_scorer(config: Any) -> Any:
    """Worker factory: the real FeatureEngine and ScoringPipeline with the linear model."""
    from riskflow.features import FeatureEngine
    from riskflow.pipeline import ScoringPipeline
    from riskflow.streams.scoring import PipelineScoring, Thresholds

    engine = FeatureEngine(config.features)
    model = _LinearModel(engine.n_features)
    policy = Thresholds(config.policy.t_review, config.policy.t_decline)
    return PipelineScoring(ScoringPipeline(engine, model, policy))


@pytest.mark.timeout(120)
def test_real_feature_pipeline_decisions_match_offline_scoring(
    kafka_bootstrap: str, stream_env: Any, consume: Callable[..., list[Any]]
) -> None:
    """Through Kafka in micro-batches, the real features give the offline pipeline's scores."""
    from riskflow.config import load_config
    from riskflow.streams.bench import make_transactions

    env, topics = stream_env
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    make_topics(kafka_bootstrap, topics, partitions=1)  # one partition: one total order
    items = make_transactions(600, seed=11)
    produce(kafka_bootstrap, topics["transactions"], items)
    config = load_config(env={k: v for k, v in env.items() if k.startswith("RISKFLOW_")})
    records = [validate_transaction(orjson.loads(v)) for _, v in items]
    offline_batch = feature_pipeline_scorer(config).score_batch(TxBatch.from_records(records))
    # Thresholds at the offline score quantiles, so all three decisions occur.
    t_review, t_decline = np.quantile(offline_batch.score, [0.5, 0.9])
    env["RISKFLOW_POLICY__T_REVIEW"] = repr(float(t_review))
    env["RISKFLOW_POLICY__T_DECLINE"] = repr(float(t_decline))
    names = np.array(["approve", "review", "decline"])
    codes = np.where(
        offline_batch.score >= t_decline, 2, np.where(offline_batch.score >= t_review, 1, 0)
    )
    expected = {
        t: {"score": s, "decision": names[c]}
        for t, s, c in zip(offline_batch.tx_id, offline_batch.score, codes, strict=True)
    }

    w = Worker(env, scorer="test_stream_worker:feature_pipeline_scorer", checkpoint=30.0)
    try:
        w.wait_ready(60)
        decisions = read_decisions(consume, topics["decisions"], len(items), timeout=60, settle=0.5)
    finally:
        w.stop()
    assert len(decisions) == len(items) == len({d["tx_id"] for d in decisions})
    for d in decisions:
        e = expected[d["tx_id"]]
        assert d["score"] == pytest.approx(e["score"], rel=1e-9, abs=1e-12), d["tx_id"]
        assert d["decision"] == e["decision"], d["tx_id"]
    assert {d["decision"] for d in decisions} == {"approve", "review", "decline"}


def late_output_scorer(config: Any) -> Any:
    """``--scorer`` of the commit-order test: the counting scorer in a worker whose
    output reaches the producer only ``RISKFLOW_TEST_LATE_S`` after each batch is
    decided, as if the broker were slow to take it."""
    from riskflow.streams.bulk import BulkWorker
    from riskflow.streams.reference import counting_scorer

    late_s = float(os.environ["RISKFLOW_TEST_LATE_S"])
    queue_all = BulkWorker._queue_all

    async def late_queue_all(self: Any, out: Any, t: Any) -> list[Any]:
        async def later() -> None:
            await asyncio.sleep(late_s)
            await asyncio.gather(*await queue_all(self, out, t))

        return [asyncio.ensure_future(later())]

    BulkWorker._queue_all = late_queue_all  # type: ignore[method-assign]
    return counting_scorer(config)


@pytest.mark.timeout(120)
def test_bulk_commits_only_offsets_whose_decisions_are_out(
    kafka_bootstrap: str, stream_env: Any, consume: Callable[..., list[Any]]
) -> None:
    """At-least-once, bulk engine: batches are decided while earlier ones are in flight,
    yet a committed offset never runs ahead of the decisions on the topic.

    Each batch's output reaches the broker 0.2 s after the batch is decided.
    While records are produced in waves, the group's committed offsets are
    sampled, each time followed by the decisions topic's end offsets. Every
    input record below a sampled committed offset must have its decision
    among the decisions written before that sample.
    """
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    env, topics = stream_env
    env |= {
        "RISKFLOW_STREAM__COMMIT_INTERVAL_MS": "20",
        "RISKFLOW_TEST_LATE_S": "0.2",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]),
    }
    make_topics(kafka_bootstrap, topics, partitions=3)
    records = [tx(i) for i in range(3000)]
    items = tx_items(records)
    group = env["RISKFLOW_STREAM__APP_ID"]
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    ends = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    out_tps = [TopicPartition(topics["decisions"], p) for p in range(3)]
    samples: list[tuple[dict[int, int], dict[int, int]]] = []
    w = Worker(env, engine="bulk", scorer="test_stream_worker:late_output_scorer")
    try:
        w.wait_ready()
        for lo in range(0, len(items), 300):
            produce(kafka_bootstrap, topics["transactions"], items[lo : lo + 300])
            for _ in range(3):
                got = admin.list_group_offsets({group: None}).get(group, {})
                committed = {
                    tp.partition: meta.offset
                    for tp, meta in got.items()
                    if tp.topic == topics["transactions"] and meta.offset >= 0
                }
                out_end = {tp.partition: off for tp, off in ends.end_offsets(out_tps).items()}
                samples.append((committed, out_end))
                time.sleep(0.05)
        raw = consume(topics["decisions"], len(records), timeout=45, settle=0.5)
    finally:
        w.stop()
        admin.close()
        ends.close()

    assert {orjson.loads(r.value)["tx_id"] for r in raw} == {r["tx_id"] for r in records}
    # (input partition, offset) -> the earliest (decisions partition, offset) deciding it
    where: dict[tuple[int, int], tuple[int, int]] = {}
    for r in raw:
        src = orjson.loads(r.value)["source"]
        key = (src["partition"], src["offset"])
        if key not in where or r.offset < where[key][1]:
            where[key] = (r.partition, r.offset)
    checked = 0
    for committed, out_end in samples:
        for part, upto in committed.items():
            for off in range(upto):
                dpart, doff = where[(part, off)]
                assert doff < out_end[dpart], (
                    f"offset {off} of partition {part} was committed before its decision"
                )
                checked += 1
    assert checked > len(records), "the samples saw too few commits to check anything"
