"""Rate pacing, record encoding and batching of `riskflow produce` (no network)."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from riskflow.cli import main
from riskflow.config import Config
from riskflow.errors import SchemaError
from riskflow.produce import (
    RatePacer,
    label_records,
    partition_for,
    produce,
    send_records,
    transaction_records,
)
from riskflow.schema import TRANSACTION_COLUMNS, encode, parse_label, parse_transaction

_T0 = 1_767_225_600_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def _pacer(rate: float, burst: float | None = None) -> tuple[RatePacer, FakeClock]:
    clock = FakeClock()
    return RatePacer(rate, burst, clock=clock, sleep=clock.sleep), clock


# ---------------------------------------------------------------- pacing


@pytest.mark.parametrize(
    ("rate", "burst", "chunk", "n"),
    [(100, 10, 10, 300), (1000, 1, 1, 500), (5000, 250, 50, 10_000), (37.5, 3, 7, 210)],
)
def test_pacer_long_run_rate_is_exact(rate, burst, chunk, n):
    pacer, clock = _pacer(rate, burst)
    for _ in range(n // chunk):
        pacer.acquire(chunk)
    # Everything but the initially full bucket is paid for at `rate`.
    assert clock.now == pytest.approx((n - burst) / rate)


def test_pacer_matches_a_naive_per_message_schedule():
    """Slow reference: message i may leave at max(0, (i + 1 - burst) / rate)."""
    rate, burst = 40.0, 4
    pacer, clock = _pacer(rate, burst)
    leave = []
    for _ in range(50):
        pacer.acquire(1)
        leave.append(clock.now)
    naive = [max(0.0, (i + 1 - burst) / rate) for i in range(50)]
    assert leave == pytest.approx(naive)


def test_pacer_idle_time_refills_only_up_to_burst():
    pacer, clock = _pacer(10, burst=5)
    pacer.acquire(5)
    clock.now += 100.0  # a long pause
    for _ in range(5):
        assert pacer.acquire(1) == 0.0  # the full bucket: free
    assert pacer.acquire(1) == pytest.approx(0.1)  # then the rate again


def test_pacer_does_not_sleep_when_the_caller_is_slow_enough():
    pacer, clock = _pacer(100, burst=1)
    for _ in range(20):
        clock.now += 0.02  # slower than 100/s by itself
        assert pacer.acquire(1) == 0.0
    assert clock.slept == []


def test_pacer_rate_zero_is_unlimited():
    pacer, clock = _pacer(0)
    for _ in range(1000):
        assert pacer.acquire(1000) == 0.0
    assert clock.now == 0.0 and pacer.chunk() == 1000


@pytest.mark.parametrize(("rate", "chunk"), [(50, 1), (1000, 10), (50_000, 500), (1e7, 1000)])
def test_pacer_chunk_is_about_10ms_of_messages(rate, chunk):
    assert RatePacer(rate).chunk() == chunk


@pytest.mark.parametrize("rate", [-1, math.nan, math.inf, "100"])
def test_pacer_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="The 'rate' parameter of RatePacer"):
        RatePacer(rate)


def test_pacer_rejects_bad_burst():
    with pytest.raises(ValueError, match="'burst'.*Got 0 instead"):
        RatePacer(10, burst=0)


# ---------------------------------------------------------------- encoding


def _frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    geo = rng.random(n) < 0.5
    return pd.DataFrame(
        {
            "schema_version": np.ones(n, dtype="int64"),
            "tx_id": [f"t{i}" for i in range(n)],
            "event_time": _T0 + np.arange(n, dtype="int64") * 1000,
            "card_token": [f"tok_{i % 6}" for i in range(n)],
            "customer_id": [None if i % 3 else f"c{i}" for i in range(n)],
            "merchant_id": [f"m{i % 4}" for i in range(n)],
            "terminal_id": None,
            "mcc": pd.array([None if i % 5 == 0 else 5411 + i for i in range(n)], dtype="Int32"),
            "amount": rng.gamma(2.0, 30.0, n).round(2),
            "currency": "EUR",
            "country": None,
            "channel": rng.choice(["pos", "ecom"], n),
            "entry_mode": None,
            "device_id": None,
            "ip": [None if i % 2 else "10.0.0.1" for i in range(n)],
            "lat": np.where(geo, 52.5, np.nan),
            "lon": np.where(geo, 13.4, np.nan),
            "card_bin": "411111",
            "is_fraud": 0,  # not canonical: never sent
        }
    )


def _reference_encode(row: pd.Series) -> bytes:
    """The slow way: schema.encode on the row with pandas' missing values as None."""
    rec = {c: (None if pd.isna(row[c]) else row[c]) for c in TRANSACTION_COLUMNS if c in row}
    return encode(rec)


def test_transaction_records_match_schema_encode_byte_for_byte():
    df = _frame()
    got = list(transaction_records(df))
    assert len(got) == len(df)
    for (t, key, value), (_, row) in zip(got, df.iterrows(), strict=True):
        assert value == _reference_encode(row)
        assert key == row["card_token"].encode()
        assert t == row["event_time"]


def test_transaction_records_validate_and_drop_absent_fields():
    df = _frame()
    for (_, _, value), (_, row) in zip(transaction_records(df), df.iterrows(), strict=True):
        body = orjson.loads(value)
        assert None not in body.values()
        assert "is_fraud" not in body and "terminal_id" not in body
        assert ("lat" in body) == (not np.isnan(row["lat"]))
        assert ("mcc" in body) == (not pd.isna(row["mcc"]))
        tx = parse_transaction(value)
        assert tx["tx_id"] == row["tx_id"] and tx["amount"] == row["amount"]
        if "mcc" in body:
            assert isinstance(body["mcc"], int) and tx["mcc"] == row["mcc"]


def test_transaction_records_fill_in_the_schema_version():
    df = _frame(5).drop(columns=["schema_version"])
    for _, _, value in transaction_records(df):
        assert orjson.loads(value)["schema_version"] == 1
        assert value.startswith(b'{"schema_version":1,')


def test_transaction_records_use_schema_order_whatever_the_frame_order():
    df = _frame(3)
    shuffled = df[list(reversed(df.columns))]
    assert list(transaction_records(df)) == list(transaction_records(shuffled))


def test_transaction_records_need_the_required_columns():
    with pytest.raises(SchemaError, match=r"lacks required column\(s\) \['card_token'\]"):
        transaction_records(_frame(3).drop(columns=["card_token"]))


def test_float_typed_integer_columns_are_sent_as_integers():
    df = _frame(4)
    df["mcc"] = df["mcc"].astype("float64")  # e.g. read from CSV with gaps
    for _, _, value in transaction_records(df):
        body = orjson.loads(value)
        if "mcc" in body:
            assert isinstance(body["mcc"], int)


def test_label_records():
    labels = pd.DataFrame(
        {"tx_id": ["a", "b"], "label": np.array([1, 0], dtype="int8"), "label_time": [_T0, _T0 + 5]}
    )
    got = list(label_records(labels))
    assert [(t, k) for t, k, _ in got] == [(_T0, b"a"), (_T0 + 5, b"b")]
    assert got[0][2] == b'{"tx_id":"a","label":1,"label_time":1767225600000}'
    assert parse_label(got[1][2]) == {"tx_id": "b", "label": 0, "label_time": _T0 + 5}


def test_partition_for_is_kafkas_murmur2():
    # Values of Kafka's Java Utils.murmur2 (its own unit test vectors), positive mod n.
    vectors = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    for key, java in vectors.items():
        assert partition_for(key, 1_000_003) == (java & 0x7FFFFFFF) % 1_000_003


# ---------------------------------------------------------------- batching and sending


class FakeBatch:
    def __init__(self, cap: int, log: list[bytes]) -> None:
        self.cap = cap
        self.items: list[tuple[bytes, bytes]] = []
        self.log = log

    def append(self, *, key, value, timestamp):
        if len(self.items) >= self.cap:
            return None
        self.items.append((key, value))
        self.log.append(value)
        return object()

    def record_count(self) -> int:
        return len(self.items)


class FakeProducer:
    """Just enough of AIOKafkaProducer: partitions_for, create_batch, send_batch."""

    def __init__(self, partitions: dict[str, int], cap: int = 4, failing: str | None = None):
        self.partitions = partitions
        self.cap = cap
        self.failing = failing
        self.batches: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []
        self.appended: list[bytes] = []  # values in the order they were batched

    async def partitions_for(self, topic):
        return set(range(self.partitions[topic]))

    def create_batch(self):
        return FakeBatch(self.cap, self.appended)

    async def send_batch(self, batch, topic, *, partition):
        self.batches.append((topic, partition, list(batch.items)))
        fut = asyncio.get_running_loop().create_future()
        if topic == self.failing:
            fut.set_exception(RuntimeError("broker said no"))
        else:
            fut.set_result(None)
        return fut

    def delivered(self) -> list[tuple[str, int, bytes, bytes]]:
        return [(t, p, k, v) for t, p, items in self.batches for k, v in items]


def _stream(prefix: str, times: list[int], cards: int = 5) -> list[tuple[int, bytes, bytes]]:
    return [
        (t, f"{prefix}{i % cards}".encode(), f"{prefix}-{i}".encode()) for i, t in enumerate(times)
    ]


def test_send_records_batches_by_kafka_partition_and_keeps_order():
    recs = _stream("card", list(range(50)))
    fake = FakeProducer({"tx": 3}, cap=4)
    summary = asyncio.run(send_records(fake, [("tx", recs)]))
    assert summary.sent == 50 and summary.failed == 0 and summary.by_topic == {"tx": 50}
    assert summary.bytes == sum(len(v) for _, _, v in recs)
    assert all(len(items) <= 4 for _, _, items in fake.batches)
    delivered = fake.delivered()
    assert sorted(v for *_, v in delivered) == sorted(v for _, _, v in recs)
    for _, p, k, _ in delivered:
        assert p == partition_for(k, 3)
    for part in range(3):  # per partition: the input order
        mine = [v for _, p, _, v in delivered if p == part]
        assert mine == [v for _, k, v in recs if partition_for(k, 3) == part]


def test_send_records_merges_streams_by_time_like_a_stable_sort():
    tx = _stream("tx", [1, 3, 3, 5, 9, 9, 12])
    labels = _stream("lab", [0, 3, 9, 10, 20])
    fake = FakeProducer({"tx": 1, "labels": 1})
    summary = asyncio.run(send_records(fake, [("tx", tx), ("labels", labels)]))
    assert summary.by_topic == {"tx": 7, "labels": 5}
    reference = sorted(
        [(t, 0, v) for t, _, v in tx] + [(t, 1, v) for t, _, v in labels], key=lambda r: r[:2]
    )
    assert fake.appended == [v for _, _, v in reference]
    assert sorted(v for *_, v in fake.delivered()) == sorted(fake.appended)


def test_send_records_limit():
    fake = FakeProducer({"tx": 2})
    summary = asyncio.run(send_records(fake, [("tx", _stream("c", list(range(100))))], limit=13))
    assert summary.sent == 13 and len(fake.delivered()) == 13
    with pytest.raises(ValueError, match="'limit'"):
        asyncio.run(send_records(fake, [("tx", [])], limit=-1))


def test_send_records_counts_undelivered_records():
    fake = FakeProducer({"tx": 2, "bad": 2}, cap=3, failing="bad")
    summary = asyncio.run(
        send_records(
            fake, [("tx", _stream("a", list(range(10)))), ("bad", _stream("b", list(range(7))))]
        )
    )
    assert summary.failed == 7 and summary.sent == 10
    assert summary.first_error == "RuntimeError: broker said no"


def test_send_records_paces_and_flushes_batches_while_waiting():
    fake = FakeProducer({"tx": 1}, cap=10_000)
    t0 = time.perf_counter()
    summary = asyncio.run(send_records(fake, [("tx", _stream("c", list(range(60))))], rate=400))
    elapsed = time.perf_counter() - t0
    # 60 at 400/s with a 20-message bucket: >= 0.1 s, so at most 600/s on
    # average (exactly the bound when the sleeps are exact: 2 % of slack for the
    # clock); a batch leaves at each wait.
    assert elapsed >= 0.09
    assert summary.rate <= 60 / ((60 - 20) / 400) * 1.02
    assert len(fake.batches) > 3
    assert [v for *_, v in fake.delivered()] == [f"c-{i}".encode() for i in range(60)]


def test_send_records_reports_progress():
    seen: list[int] = []
    fake = FakeProducer({"tx": 1})
    asyncio.run(
        send_records(fake, [("tx", _stream("c", list(range(2500))))], on_progress=seen.append)
    )
    assert seen[0] == 0 and seen[-1] == 2500 and seen == sorted(seen) and len(seen) >= 3


# ---------------------------------------------------------------- entry points


def test_produce_needs_something_to_send():
    with pytest.raises(SchemaError, match="Nothing to produce"):
        produce(Config())
    with pytest.raises(SchemaError, match="--topic names one topic"):
        produce(Config(), data="x", labels="y", topic="t")


def test_cli_produce_without_files_is_a_usage_error():
    result = CliRunner().invoke(main, ["produce"])
    assert result.exit_code == 2
    assert "--data FILE and/or --labels FILE" in result.output


def test_docstring_examples_run():
    import doctest

    import riskflow.produce

    result = doctest.testmod(riskflow.produce, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0


def test_encoding_in_slices_is_seamless(monkeypatch):
    import riskflow.produce as rp

    df = _frame(23)
    whole = list(transaction_records(df))
    monkeypatch.setattr(rp, "_SLICE_ROWS", 5)
    assert list(transaction_records(df)) == whole
