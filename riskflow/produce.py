"""Publish a transactions (and labels) file to Kafka at a controlled rate.

The replay side of a demo or a load test: rows are read through
:func:`riskflow.table.read_transactions` (so a column mapping applies and bad
rows are caught before anything is sent), encoded as canonical JSON records
(the bytes :func:`riskflow.schema.encode` gives) and sent in event-time order,
keyed by ``card_token`` so one card's transactions stay in order on one
partition. Labels go to the labels topic keyed by ``tx_id``.

Pacing is a token bucket (:class:`RatePacer`); ``rate=0`` sends as fast as the
producer takes records.

>>> import pandas as pd
>>> df = pd.DataFrame({"schema_version": [1], "tx_id": ["t1"], "event_time": [1767268800000],
...     "card_token": ["tok_1"], "merchant_id": ["m1"], "amount": [9.5], "lat": [float("nan")]})
>>> [(t, k, v) for t, k, v in transaction_records(df)]  # doctest: +NORMALIZE_WHITESPACE
[(1767268800000, b'tok_1', b'{"schema_version":1,"tx_id":"t1","event_time":1767268800000,"card_token":"tok_1","merchant_id":"m1","amount":9.5}')]
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from riskflow.errors import BrokerError, SchemaError
from riskflow.schema import LABEL_FIELDS, SCHEMA_VERSION, TRANSACTION_FIELDS

__all__ = [
    "RatePacer",
    "ProduceSummary",
    "transaction_records",
    "label_records",
    "partition_for",
    "send_records",
    "produce",
]

#: (time ms, key, value) of one message, before a topic is attached.
Record = tuple[int, bytes, bytes]
_TX_KINDS = {f.name: f.kind for f in TRANSACTION_FIELDS}
_TX_REQUIRED = tuple(
    f.name for f in TRANSACTION_FIELDS if f.required and f.name != "schema_version"
)
_LABEL_KINDS = {f.name: f.kind for f in LABEL_FIELDS}
#: Pacing granularity: the bucket is asked for this many seconds' worth of
#: messages at a time, so a 50k msg/s target costs one clock read per 500.
_CHUNK_SECONDS = 0.01
_MAX_CHUNK = 1000
#: Rows converted to Python values at a time while encoding (bounds memory).
_SLICE_ROWS = 65_536


class RatePacer:
    """Token bucket: on average at most ``rate`` messages per second.

    The bucket holds up to ``burst`` tokens (default: 50 ms worth, at least
    1) and refills continuously. :meth:`acquire` may overdraw the bucket; the
    caller then sleeps until the debt is repaid, so a long run averages exactly
    ``rate`` whatever the chunk size. ``rate=0`` means no limit.

    Parameters
    ----------
    rate
        Messages per second, >= 0 (0 = unlimited).
    burst
        Bucket capacity in messages.
    clock, sleep
        Injectable for tests (default ``time.monotonic`` / ``time.sleep``).

    Examples
    --------
    >>> now = [0.0]
    >>> pacer = RatePacer(100, burst=10, clock=lambda: now[0],
    ...                   sleep=lambda s: now.__setitem__(0, now[0] + s))
    >>> for _ in range(30):
    ...     _ = pacer.acquire(10)
    >>> round(now[0], 6)  # 300 messages at 100/s, the first 10 free from the full bucket
    2.9
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (isinstance(rate, int | float) and np.isfinite(rate) and rate >= 0):
            raise ValueError(
                f"The 'rate' parameter of RatePacer must be a finite number >= 0 (0 = unlimited). "
                f"Got {rate!r} instead."
            )
        if burst is not None and not burst > 0:
            raise ValueError(
                f"The 'burst' parameter of RatePacer must be > 0. Got {burst!r} instead."
            )
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate * 0.05)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last: float | None = None

    def reserve(self, n: int = 1) -> float:
        """Take ``n`` tokens now; return how many seconds the caller must wait before sending.

        For async callers (``await asyncio.sleep(pacer.reserve(n))``); the
        state assumes the caller does wait.
        """
        if self.rate == 0:
            return 0.0
        now = self._clock()
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, n: int = 1) -> float:
        """Take ``n`` tokens, sleeping as long as needed; return the seconds slept."""
        wait = self.reserve(n)
        if wait > 0:
            self._sleep(wait)
        return wait

    def chunk(self) -> int:
        """Messages to send per :meth:`acquire` call for smooth pacing."""
        if self.rate == 0:
            return _MAX_CHUNK
        return int(min(_MAX_CHUNK, max(1, self.rate * _CHUNK_SECONDS)))


@dataclass(frozen=True)
class ProduceSummary:
    """What a produce run did."""

    sent: int
    bytes: int
    seconds: float
    target_rate: float
    by_topic: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    first_error: str | None = None

    @property
    def rate(self) -> float:
        """Achieved messages per second (send start to last acknowledgement)."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
            "rate": round(self.rate, 1),
            "target_rate": self.target_rate,
            "by_topic": dict(self.by_topic),
            "first_error": self.first_error,
        }


def _column_values(s: pd.Series, kind: str) -> list[Any]:
    """One column as Python values of the schema's type, ``None`` where missing."""
    missing = s.isna().to_numpy()
    has_missing = bool(missing.any())
    if kind in ("int", "time"):
        if not has_missing:
            return s.astype("int64").tolist()
        # float64 holds every epoch-ms time and code exactly (< 2**53).
        vals = s.astype("float64").tolist()
        return [None if m else int(v) for v, m in zip(vals, missing, strict=True)]
    if kind == "float":
        vals = s.astype("float64").tolist()
        if not has_missing:
            return vals
        return [None if m else v for v, m in zip(vals, missing, strict=True)]
    vals = s.astype(object).tolist()
    return [
        None if m else (v if isinstance(v, str) else str(v))
        for v, m in zip(vals, missing, strict=True)
    ]


def _records(
    df: pd.DataFrame, kinds: dict[str, str], time_col: str, key_col: str
) -> Iterator[Record]:
    names = [c for c in kinds if c in df.columns]
    ti, ki = names.index(time_col), names.index(key_col)
    dumps = orjson.dumps
    # Python objects for one slice of rows at a time, so a 10-million-row
    # file does not become 10 million boxed values per column at once.
    for start in range(0, len(df), _SLICE_ROWS):
        part = df.iloc[start : start + _SLICE_ROWS]
        cols = [_column_values(part[c], kinds[c]) for c in names]
        # The tight loop: one dict and one orjson call per row. Same bytes as
        # riskflow.schema.encode (absent fields dropped; tests check parity).
        for row in zip(*cols, strict=True):
            yield (
                row[ti],
                row[ki].encode(),
                dumps({k: v for k, v in zip(names, row, strict=True) if v is not None}),
            )


def transaction_records(df: pd.DataFrame) -> Iterator[Record]:
    """``(event_time, card_token key, JSON value)`` for each row of a canonical frame.

    Only canonical columns are sent (others are ignored); missing or NaN
    optional fields are left out of the record; ``schema_version`` defaults
    to the current version. Rows are sent in the frame's order, which
    :func:`riskflow.table.read_transactions` makes event-time order.
    """
    missing = [c for c in _TX_REQUIRED if c not in df.columns]
    if missing:
        raise SchemaError(
            f"The transactions frame lacks required column(s) {missing}; read files with "
            "riskflow.table.read_transactions (and a --mapping for foreign column names)."
        )
    if "schema_version" not in df.columns or df["schema_version"].isna().any():
        df = df.assign(
            schema_version=df["schema_version"].fillna(SCHEMA_VERSION)
            if "schema_version" in df.columns
            else SCHEMA_VERSION
        )
    # The schema's order (schema_version first), whatever the frame's column order.
    df = df[[c for c in _TX_KINDS if c in df.columns]]
    return _records(df, _TX_KINDS, "event_time", "card_token")


def label_records(df: pd.DataFrame) -> Iterator[Record]:
    """``(label_time, tx_id key, JSON value)`` for each row of a labels frame."""
    missing = [c for c in _LABEL_KINDS if c not in df.columns]
    if missing:
        raise SchemaError(
            f"The labels frame lacks column(s) {missing}; read files with riskflow.table.read_labels."
        )
    return _records(df[list(_LABEL_KINDS)], _LABEL_KINDS, "label_time", "tx_id")


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2, as the Java client).

    >>> partition_for(b"tok_0001", 6) == partition_for(b"tok_0001", 6)
    True
    """
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _tag(topic: str, records: Iterable[Record]) -> Iterator[tuple[int, str, bytes, bytes]]:
    for t, k, v in records:
        yield t, topic, k, v


class _Batches:
    """Per-partition record batches of an aiokafka producer, sent when full or on demand."""

    def __init__(self, producer: Any, partitions: dict[str, int]) -> None:
        self._producer = producer
        self._partitions = partitions
        self._slots: dict[str, dict[bytes, int]] = {topic: {} for topic in partitions}
        self._open: dict[tuple[str, int], Any] = {}
        self.pending: list[tuple[Any, int]] = []  # (delivery future, record count)

    def partition(self, topic: str, key: bytes) -> int:
        slots = self._slots[topic]
        p = slots.get(key)
        if p is None:
            # Cached: a card's partition is hashed once, not per transaction.
            p = slots[key] = partition_for(key, self._partitions[topic])
        return p

    async def add(self, topic: str, key: bytes, value: bytes) -> None:
        tp = (topic, self.partition(topic, key))
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            await self._send(tp, batch)
            batch = self._open[tp] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise SchemaError(
                    f"A {len(value)}-byte record does not fit an empty producer batch; "
                    "records must stay under riskflow.schema.MAX_MESSAGE_BYTES."
                )

    async def _send(self, tp: tuple[str, int], batch: Any) -> None:
        fut = await self._producer.send_batch(batch, tp[0], partition=tp[1])
        self.pending.append((fut, batch.record_count()))

    async def send_open(self) -> None:
        """Send every non-empty open batch (the linger step)."""
        open_, self._open = self._open, {}
        for tp, batch in open_.items():
            if batch.record_count():
                await self._send(tp, batch)

    async def delivered(self) -> tuple[int, str | None]:
        """Wait for every sent batch; return (records failed, first error)."""
        import asyncio

        futures = [f for f, _ in self.pending]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed, first = 0, None
        for (_, count), res in zip(self.pending, results, strict=True):
            if isinstance(res, BaseException):
                failed += count
                first = first or f"{type(res).__name__}: {res}"
        self.pending.clear()
        return failed, first


async def send_records(
    producer: Any,
    streams: Sequence[tuple[str, Iterable[Record]]],
    *,
    rate: float = 0.0,
    limit: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    pacer: RatePacer | None = None,
) -> ProduceSummary:
    """Send records to their topics, merged in time order, at ``rate`` messages per second.

    Records are packed into per-partition batches (partitioned by key exactly
    as Kafka's default partitioner), which costs about a microsecond per record
    instead of the tens a per-record ``send()`` costs in Python. Batches go out
    when full and, when pacing, at every pacing step (~10 ms), so a slow rate
    still delivers promptly.

    Parameters
    ----------
    producer
        A started ``aiokafka.AIOKafkaProducer`` (anything with
        ``partitions_for``, ``create_batch`` and ``send_batch``).
    streams
        ``(topic, records)`` pairs, each time-ordered. Several streams are
        interleaved by time (ties: in the order given), so labels reach the
        stream when they would have become known.
    rate
        Target messages per second over all streams; 0 = unlimited.
    limit
        Stop after this many messages in total.
    on_progress
        Called with the running count every pacing step and at the end.
    """
    import asyncio

    if limit is not None and limit < 0:
        raise ValueError(f"The 'limit' parameter must be >= 0 or None. Got {limit!r} instead.")
    pacer = pacer or RatePacer(rate)
    partitions = {}
    for topic, _ in streams:
        parts = await producer.partitions_for(topic)
        if not parts:
            raise BrokerError(f"Topic {topic!r} has no partitions in the cluster metadata.")
        partitions[topic] = len(parts)
    batches = _Batches(producer, partitions)
    tagged = [_tag(topic, recs) for topic, recs in streams]
    merged: Iterable[tuple[int, str, bytes, bytes]] = (
        tagged[0] if len(tagged) == 1 else heapq.merge(*tagged, key=itemgetter(0))
    )
    by_topic = {topic: 0 for topic, _ in streams}
    chunk = pacer.chunk()
    budget = 0
    sent = nbytes = 0
    start = time.perf_counter()
    for _, topic, key, value in merged:
        if limit is not None and sent >= limit:
            break
        if budget == 0:
            if on_progress is not None:
                on_progress(sent)
            wait = pacer.reserve(chunk)
            if wait > 0:
                # Linger step: ship what is batched, then sleep what is left.
                until = time.monotonic() + wait
                await batches.send_open()
                left = until - time.monotonic()
                if left > 0:
                    await asyncio.sleep(left)
            budget = chunk
        await batches.add(topic, key, value)
        budget -= 1
        sent += 1
        nbytes += len(value)
        by_topic[topic] += 1
    await batches.send_open()
    failed, first_error = await batches.delivered()
    seconds = time.perf_counter() - start
    if on_progress is not None:
        on_progress(sent)
    return ProduceSummary(
        sent=sent - failed,
        bytes=nbytes,
        seconds=seconds,
        target_rate=pacer.rate,
        by_topic=by_topic,
        failed=failed,
        first_error=first_error,
    )


def _producer_settings() -> dict[str, Any]:
    from riskflow.kafka import compression_type

    return {
        # Durable and duplicate-free: a retried batch is not written twice.
        "acks": "all",
        "enable_idempotence": True,
        # ~1500 records of ~300 bytes per partition batch, under the
        # broker's 1 MiB default message.max.bytes.
        "max_batch_size": 512 * 1024,
        "compression_type": compression_type("aiokafka"),
    }


def produce(
    config: Any,
    *,
    data: str | Path | None = None,
    labels: str | Path | None = None,
    with_labels: bool = False,
    mapping: str | Path | None = None,
    rate: float = 0.0,
    limit: int | None = None,
    topic: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ProduceSummary:
    """Read ``data`` (transactions) and/or labels and publish them.

    Parameters
    ----------
    config
        The :class:`~riskflow.config.Config` (where the broker is, topic names,
        tokenisation key for mapped card numbers, default label delay).
    data
        Transactions: a Parquet/CSV file or folder, or a simulator output
        folder (its ``transactions/``).
    labels
        A labels file or folder (``tx_id``, ``label``, ``label_time``, or as
        the mapping's ``[labels]`` says).
    with_labels
        Also send the labels that come with ``data``: a simulator folder's
        ``labels/``, or the mapping's label column in the transactions file.
    mapping
        Column mapping TOML for files not in the canonical layout.
    rate
        Target messages per second over both streams; 0 = as fast as possible.
    limit
        Stop after this many messages in total.
    topic
        Send to this topic instead of the configured one (only with a single
        stream); created like the topic it replaces if missing. Without it,
        missing configured topics are created first.
    on_progress, on_total
        Progress callbacks: the running count, and once the number to send.

    Raises
    ------
    SchemaError
        Bad input (the first invalid row is named; card numbers never shown).
    BrokerError
        No broker at ``config.kafka.bootstrap_servers``.
    """
    import asyncio

    from riskflow.table import load_dataset, read_labels

    if data is None and labels is None:
        raise SchemaError("Nothing to produce: give a transactions file (--data) and/or --labels.")
    if with_labels and data is None:
        raise SchemaError("--with-labels sends the labels that come with --data; give --data.")
    send_labels = labels is not None or with_labels
    if topic is not None and data is not None and send_labels:
        raise SchemaError(
            "--topic names one topic, but transactions and labels were both asked for; "
            "produce them separately to override topics."
        )
    key = config.security.tokenisation_key.get_secret_value().encode()
    delay_days = config.features.default_label_delay_days
    tx = lab = None
    if data is not None:
        dataset = load_dataset(
            data,
            mapping,
            labels_path=labels,
            tokenisation_key=key,
            with_labels=send_labels,
            default_label_delay_days=delay_days,
        )
        tx = dataset.transactions
        if send_labels:
            lab = dataset.labels
            if labels is None and len(lab) == 0:
                raise SchemaError(
                    f"--with-labels: {str(data)!r} brings no labels (no labels/ folder and no "
                    "label column in the mapping). Give --labels FILE instead."
                )
    else:
        assert labels is not None
        lab = read_labels(labels, mapping, default_delay_ms=int(delay_days * 86_400_000))

    streams: list[tuple[str, Iterable[Record]]] = []
    roles: list[str] = []
    total = 0
    if tx is not None:
        streams.append((topic or config.topics.transactions.name, transaction_records(tx)))
        roles.append("transactions")
        total += len(tx)
    if lab is not None:
        streams.append((topic or config.topics.labels.name, label_records(lab)))
        roles.append("labels")
        total += len(lab)
    if limit is not None:
        total = min(total, limit)

    from riskflow.kafka import wait_for_broker
    from riskflow.topics import ensure_topics

    wait_for_broker(config.kafka, timeout=5.0)
    ensure_topics(config if topic is None else _renamed(config, roles[0], topic), roles)
    if on_total is not None:
        on_total(total)
    return asyncio.run(_produce(config, streams, rate, limit, on_progress))


def _renamed(config: Any, role: str, name: str) -> Any:
    """``config`` with topic ``role`` renamed to ``name``, its other settings kept."""
    topic = getattr(config.topics, role).model_copy(update={"name": name})
    return config.model_copy(update={"topics": config.topics.model_copy(update={role: topic})})


async def _produce(
    config: Any,
    streams: list[tuple[str, Iterable[Record]]],
    rate: float,
    limit: int | None,
    on_progress: Callable[[int], None] | None,
) -> ProduceSummary:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from riskflow.kafka import aiokafka_kwargs

    producer = AIOKafkaProducer(**aiokafka_kwargs(config.kafka, **_producer_settings()))
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise BrokerError(f"Could not open a producer to {config.kafka.bootstrap}: {exc}") from exc
    try:
        return await send_records(
            producer, streams, rate=rate, limit=limit, on_progress=on_progress
        )
    except KafkaError as exc:
        raise BrokerError(
            f"Producing to {config.kafka.bootstrap} failed mid-run ({type(exc).__name__}: {exc}); "
            "records sent before the failure stay in the topic."
        ) from exc
    finally:
        await producer.stop()
