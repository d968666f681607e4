"""``riskflow bench stream``: the worker's throughput and latency on a real broker.

One run, one broker, fresh uuid-named topics, one ``riskflow worker``
subprocess (the real CLI, scoring with the trained pipeline unless told
otherwise):

1. **null pipeline**: consume -> produce with no work, in this process, with
   the worker's own I/O pattern (``getmany`` micro-batches of
   ``stream.max_batch_size``, one ``send_batch`` per partition, ``acks=all``,
   idempotent; one Kafka transaction per batch under exactly-once): the
   ceiling that broker and client allow on this machine.
2. **drain rate**: ``n`` transactions are written before the worker starts;
   after a warm-up slice (JIT, group join, first batches) the rate at which
   the worker's group commits offsets through the backlog. Batches are full
   here, so this is an upper bound, not a sustained rate. Over the same
   window: the worker process's CPU time and each stage's time per
   transaction (``drain_*_us_per_tx``, from ``/proc`` and ``/metrics``), so
   what the worker spends outside its timed stages is a measured figure.
3. **max sustained throughput**: transactions are offered at fixed rates
   (starting at 0.9x the drain rate; up in steps of 5 % of it while they
   hold, down below what the worker decided while none holds, then halving
   the gap between the highest that held and the lowest that did not, to
   500 tx/s; at most 6 trials) for ``sustain_seconds`` each; a rate
   is sustained when the producer delivered it and the group's lag (end
   offsets minus committed offsets, sampled every 0.25 s) stays bounded and
   does not grow (median of the last third against the first). The highest
   sustained rate tried is the headline figure; every trial is reported.
4. **latency at fixed offered rates**: transactions offered at ``rate``/s for
   ``seconds``; each decision's latency is the time this process receives it
   minus its ``source_ts_ms`` (the input record's Kafka timestamp, set when
   the producer appended it): end to end, through the broker both ways. The
   first second (pacing settles) is left out. The default 60 s spans two of
   the worker's 30 s checkpoints (with ``stream.snapshot_capture = "copy"``
   their capture holds the event loop for tens of ms or more, so a shorter
   run that happens to hold none reads low). Beside it the worker's own view
   over the same window: its latency histograms (from the record's timestamp,
   ``worker_p*_le``; from the batch's consumption, ``worker_consume_p*_le``,
   i.e. without the broker and the fetch), how late its loop's timer fired
   (``worker_loop_lag_*``) and its state captures.

Offered transactions come from a simulator folder (``data``: realistic mix,
so the share of flagged transactions that get reason codes is realistic) or
from :func:`make_transactions` (synthetic; its random entity reuse makes an
unusual stream, so more are flagged). The load generator, the decision
reader and the broker share the machine with the worker, as they would on
this 2-core box in any run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from riskflow.config import Config
from riskflow.kafka import aiokafka_kwargs
from riskflow.streams._partition import partitions

__all__ = ["bench_stream", "make_transactions", "load_transactions"]

_T0 = 1_767_268_800_000
#: Transactions decided before the drain is timed (JIT compile, group join).
_WARMUP = 5_000
#: Seconds between lag samples in the sustained trials.
_LAG_EVERY_S = 0.25
#: Producer tick: records due are sent as one batch per partition every tick.
_TICK_S = 0.002

Items = list[tuple[bytes, bytes]]


def make_transactions(n: int, start: int = 0, seed: int = 7) -> Items:
    """``n`` valid wire transactions (key = card token) with random entity reuse."""
    rng = np.random.default_rng(seed + start)
    card = rng.integers(0, 50_000, n)
    merchant = rng.integers(0, 5_000, n)
    device = rng.integers(0, 60_000, n)
    ip = rng.integers(0, 2**24, n)
    amount = np.round(rng.lognormal(3.5, 1.0, n), 2)
    out = []
    for i in range(n):
        token = f"tok_{card[i]:x}"
        rec = {
            "schema_version": 1,
            "tx_id": f"b{start + i:09d}",
            "event_time": _T0 + (start + i) * 5,
            "card_token": token,
            "customer_id": f"cu{card[i] // 2}",
            "merchant_id": f"m{merchant[i]}",
            "terminal_id": f"t{merchant[i]}-{i % 3}",
            "mcc": int(5000 + merchant[i] % 900),
            "amount": float(amount[i]),
            "currency": "EUR",
            "country": "DE",
            "channel": "ecom" if i % 3 else "pos",
            "device_id": f"d{device[i]}",
            "ip": f"10.{ip[i] >> 16 & 255}.{ip[i] >> 8 & 255}.{ip[i] & 255}",
        }
        out.append((token.encode(), orjson.dumps(rec)))
    return out


def load_transactions(path: str | Path, n: int) -> Items:
    """The first ``n`` transactions of a dataset (time order; all if ``n`` is 0) as wire records."""
    from riskflow.produce import transaction_records
    from riskflow.table import read_transactions

    df = read_transactions(path)
    return [(key, value) for _, key, value in transaction_records(df.iloc[: n or None])]


class _Source:
    """The transactions to offer, taken in order as the phases need them."""

    def __init__(self, data: str | Path | None) -> None:
        self.data = data
        self._taken = 0
        self._rest: Items = []
        self._parts: list[Path] = []
        if data is not None:
            self._parts = sorted((Path(data) / "transactions").glob("*.parquet"))
            if not self._parts:
                self._rest = load_transactions(data, 0)

    def remaining(self) -> int | None:
        """Transactions not taken yet (None: synthetic, unlimited)."""
        if self.data is None:
            return None
        import pyarrow.parquet as pq

        return len(self._rest) + sum(pq.ParquetFile(p).metadata.num_rows for p in self._parts)

    def take(self, count: int) -> Items:
        if self.data is None:
            out = make_transactions(count, start=self._taken)
        else:
            while len(self._rest) < count and self._parts:
                from riskflow.produce import transaction_records
                from riskflow.table import read_transactions

                df = read_transactions(self._parts.pop(0))
                self._rest += [(k, v) for _, k, v in transaction_records(df)]
            if len(self._rest) < count:
                raise ValueError(f"{self.data} has too few transactions for this benchmark.")
            out, self._rest = self._rest[:count], self._rest[count:]
        self._taken += count
        return out


class _Sender:
    """Sends pre-encoded records as one batch per partition (the producer is not the bottleneck)."""

    def __init__(self, config: Config, topic: str, n_partitions: int, **kw: Any) -> None:
        from aiokafka import AIOKafkaProducer

        self.topic = topic
        self.n_partitions = n_partitions
        self.producer = AIOKafkaProducer(
            **aiokafka_kwargs(config.kafka, acks="all", enable_idempotence=True, **kw)
        )

    async def __aenter__(self) -> _Sender:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.producer.stop()

    async def send(self, items: Sequence[tuple[bytes, bytes]], parts: Sequence[int]) -> list[Any]:
        """Queue ``items``; return the delivery futures."""
        producer, futs = self.producer, []
        open_: dict[int, Any] = {}
        for (key, value), part in zip(items, parts, strict=True):
            batch = open_.get(part)
            if batch is None:
                batch = open_[part] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                futs.append(await producer.send_batch(batch, self.topic, partition=part))
                batch = open_[part] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for part, batch in open_.items():
            futs.append(await producer.send_batch(batch, self.topic, partition=part))
        return futs

    async def send_all(self, items: Items) -> None:
        parts = partitions([k for k, _ in items], self.n_partitions).tolist()
        for lo in range(0, len(items), 20_000):
            await asyncio.gather(*await self.send(items[lo : lo + 20_000], parts[lo : lo + 20_000]))

    async def paced(self, items: Items, rate: float) -> float:
        """Offer ``items`` at ``rate``/s (every tick, what is due); return the achieved rate."""
        parts = partitions([k for k, _ in items], self.n_partitions).tolist()
        t0 = time.perf_counter()
        i, futs = 0, []
        while i < len(items):
            due = min(len(items), int((time.perf_counter() - t0) * rate) + 1)
            if due > i:
                futs += await self.send(items[i:due], parts[i:due])
                i = due
            await asyncio.sleep(_TICK_S)
        await asyncio.gather(*futs)
        return len(items) / max(time.perf_counter() - t0, 1e-9)


async def _null_pipeline(config: Config, src: str, dst: str, n: int, partitions_: int) -> float:
    """Consume ``n`` records of ``src`` and produce each to ``dst`` as the worker would; records/s."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    s = config.stream
    eos = s.processing_guarantee == "exactly_once"
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(config.kafka), enable_auto_commit=False, max_poll_records=s.max_batch_size
    )
    kw = {"transactional_id": f"{dst}-null"} if eos else {}
    await consumer.start()
    try:
        async with _Sender(config, dst, partitions_, linger_ms=0, **kw) as out:
            tps = [TopicPartition(src, p) for p in range(partitions_)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            done, t0 = 0, None
            while done < n:
                batches = await consumer.getmany(timeout_ms=1000, max_records=s.max_batch_size)
                if t0 is None and batches:
                    t0 = time.perf_counter()
                items = [(r.key, r.value) for recs in batches.values() for r in recs]
                if not items:
                    continue
                parts = partitions([k for k, _ in items], partitions_).tolist()
                if eos:
                    async with out.producer.transaction():
                        await asyncio.gather(*await out.send(items, parts))
                else:
                    await asyncio.gather(*await out.send(items, parts))
                done += len(items)
            return n / (time.perf_counter() - (t0 or time.perf_counter()))
    finally:
        await consumer.stop()


class _Lag:
    """The worker group's committed offsets and the topic's end offsets."""

    def __init__(self, config: Config, topic: str, group: str, n_partitions: int) -> None:
        self.config, self.topic, self.group = config, topic, group
        self.n_partitions = n_partitions

    async def __aenter__(self) -> _Lag:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        self.tps = [TopicPartition(self.topic, p) for p in range(self.n_partitions)]
        self.admin = AIOKafkaAdminClient(**aiokafka_kwargs(self.config.kafka))
        self.consumer = AIOKafkaConsumer(**aiokafka_kwargs(self.config.kafka))
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def committed(self) -> int:
        from aiokafka.errors import (
            CoordinatorLoadInProgressError,
            GroupCoordinatorNotAvailableError,
            NotCoordinatorForGroupError,
        )

        # On a fresh broker the first group lookup creates __consumer_offsets:
        # its coordinator answers "not available" for a few seconds.
        deadline = time.monotonic() + 30
        while True:
            try:
                got = await self.admin.list_consumer_group_offsets(self.group)
            except (
                GroupCoordinatorNotAvailableError,
                CoordinatorLoadInProgressError,
                NotCoordinatorForGroupError,
            ):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
                continue
            return sum(max(m.offset, 0) for tp, m in got.items() if tp.topic == self.topic)

    async def lag(self) -> tuple[int, int]:
        """(end offsets, lag) summed over partitions."""
        ends = await self.consumer.end_offsets(self.tps)
        end = sum(ends.values())
        return end, end - await self.committed()

    async def wait_committed(self, target: int, timeout: float, proc: Any) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.committed() >= target:
                return time.perf_counter()
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited ({proc.returncode})")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the worker committed {await self.committed()}/{target} in {timeout} s")


class _Collector:
    """Reads decisions in the background: latency of each (receive time - source_ts_ms)."""

    def __init__(self, config: Config, topic: str, n_partitions: int) -> None:
        self.config, self.topic, self.n_partitions = config, topic, n_partitions
        self.latency_ms: dict[str, float] = {}
        self.flagged = 0
        self.seen = 0
        self.decided: set[str] = set()
        self.model_version: str | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self._consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self.config.kafka),
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=1,
        )
        await self._consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(self.n_partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            now_ms = time.time() * 1000
            for records in batches.values():
                for r in records:
                    d = orjson.loads(r.value)
                    self.seen += 1
                    self.decided.add(d["tx_id"])
                    self.flagged += d["decision"] != "approve"
                    self.model_version = d.get("model_version")
                    if d.get("source_ts_ms") is not None:
                        self.latency_ms[d["tx_id"]] = now_ms - d["source_ts_ms"]

    async def wait_for(self, ids: Sequence[str], timeout: float) -> None:
        """Until every id is decided, checking each once it was (not all ids on every poll:
        that held this process's loop for ms at a time while decisions came in)."""
        deadline = time.monotonic() + timeout
        k = 0
        while time.monotonic() < deadline:
            while k < len(ids) and ids[k] in self.decided:
                k += 1
            if k == len(ids):
                return
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        await self._consumer.stop()


def bench_stream(
    config: Config,
    *,
    n: int = 100_000,
    rates: Sequence[int] = (2_000,),
    seconds: float = 60.0,
    sustain_seconds: float = 12.0,
    partitions: int = 2,
    scorer: str | None = None,
    engine: str = "bulk",
    data: str | Path | None = None,
    checkpoint_interval_s: float | None = None,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Run the measurements (see module docstring) and return the figures."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from riskflow.kafka import admin_kwargs

    run = uuid.uuid4().hex[:10]
    roles = ("transactions", "labels", "decisions", "dead_letter", "policy", "rules")
    names = {
        role: f"bench-{run}-{role}" for role in roles if role in type(config.topics).model_fields
    }
    names.update({"null_in": f"bench-{run}-null-in", "null_out": f"bench-{run}-null-out"})
    admin = KafkaAdminClient(**admin_kwargs(config.kafka))
    single = ("dead_letter", "policy", "rules")
    admin.create_topics(
        [NewTopic(t, 1 if r in single else partitions, 1) for r, t in names.items()]
    )
    admin.wait_for_topics(list(names.values()), timeout_ms=15_000)
    from riskflow.streams.app import CHECKPOINT_INTERVAL_S

    checkpoint = CHECKPOINT_INTERVAL_S if checkpoint_interval_s is None else checkpoint_interval_s
    s = config.stream
    result: dict[str, Any] = {
        "scorer": scorer or "pipeline",
        "model_path": None if scorer else str(config.model.path),
        "engine": engine,
        "guarantee": s.processing_guarantee,
        "max_batch_size": s.max_batch_size,
        "max_wait_ms": s.max_wait_ms,
        # Offsets are committed this often: the drain and lag figures (from the
        # group's committed offsets) are resolved no finer.
        "commit_interval_ms": s.commit_interval_ms,
        "model_num_threads": config.model.num_threads,
        "checkpoint_interval_s": checkpoint,
        "partitions": partitions,
        "data": str(data) if data else "synthetic",
        "n": n,
    }
    t_load = time.perf_counter()
    source = _Source(data)
    items = source.take(_WARMUP + n)
    result["prepare_s"] = round(time.perf_counter() - t_load, 1)
    proc = None
    state = tempfile.TemporaryDirectory(prefix="riskflow-bench-")
    try:

        async def preload() -> float:
            async with _Sender(config, names["null_in"], partitions, linger_ms=5) as p:
                await p.send_all(items[_WARMUP:])
            rate = await _null_pipeline(config, names["null_in"], names["null_out"], n, partitions)
            async with _Sender(config, names["transactions"], partitions, linger_ms=5) as p:
                await p.send_all(items)
            return rate

        result["null_pipeline_tx_per_s"] = round(asyncio.run(preload()))
        port = _free_port()
        env = {
            **os.environ,
            "RISKFLOW_KAFKA__BOOTSTRAP_SERVERS": config.kafka.bootstrap,
            "RISKFLOW_STREAM__APP_ID": f"bench-{run}",
            "RISKFLOW_STREAM__STATE_DIR": state.name,
            "RISKFLOW_STREAM__PROCESSING_GUARANTEE": s.processing_guarantee,
            "RISKFLOW_STREAM__MAX_BATCH_SIZE": str(s.max_batch_size),
            "RISKFLOW_STREAM__MAX_WAIT_MS": str(s.max_wait_ms),
            "RISKFLOW_STREAM__COMMIT_INTERVAL_MS": str(s.commit_interval_ms),
            "RISKFLOW_MODEL__PATH": str(config.model.path),
            "RISKFLOW_MODEL__NUM_THREADS": str(config.model.num_threads),
            **{
                f"RISKFLOW_TOPICS__{r.upper()}__NAME": t
                for r, t in names.items()
                if not r.startswith("null")
            },
        }
        cmd = [sys.executable, "-c", "from riskflow.cli import main; main()", "worker"]
        cmd += ["--web-port", str(port), "--checkpoint-interval", str(checkpoint)]
        cmd += ["--engine", engine]
        if scorer:
            cmd += ["--scorer", scorer]
        log = Path(state.name) / "worker.log"
        with open(log, "wb") as log_fh:
            proc = subprocess.Popen(cmd, env=env, stdout=log_fh, stderr=subprocess.STDOUT)
            try:
                result.update(
                    asyncio.run(
                        _measure(
                            config,
                            names,
                            f"bench-{run}",
                            source,
                            n,
                            rates,
                            seconds,
                            sustain_seconds,
                            timeout,
                            proc,
                            partitions,
                            port,
                        )
                    )
                )
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; worker log: {log.read_text()[-2000:]}") from None
            result.update(_worker_metrics(port))
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        with contextlib.suppress(Exception):  # best effort: uuid topics harm nobody
            admin.delete_topics(list(names.values()))
        admin.close()
        state.cleanup()
    return result


async def _measure(
    config: Config,
    names: dict[str, str],
    group: str,
    source: _Source,
    n: int,
    rates: Sequence[int],
    seconds: float,
    sustain_seconds: float,
    timeout: float,
    proc: subprocess.Popen[bytes],
    n_partitions: int,
    port: int,
) -> dict[str, Any]:
    topic = names["transactions"]
    out: dict[str, Any] = {}
    async with _Lag(config, topic, group, n_partitions) as lag:
        t_first = await lag.wait_committed(_WARMUP, timeout, proc)
        first = await lag.committed()
        at_first = _usage(proc.pid, port)
        t_last = await lag.wait_committed(_WARMUP + n, timeout, proc)
        at_last = _usage(proc.pid, port)
        out["drain_tx_per_s"] = round((_WARMUP + n - first) / max(t_last - t_first, 1e-9))
        out.update(_drain_costs(at_first, at_last, _WARMUP + n - first, t_last - t_first))
        trials: list[dict[str, Any]] = []
        drain = out["drain_tx_per_s"]
        rate = max(_RATE_STEP, int(drain * 0.9) // _RATE_STEP * _RATE_STEP)
        held: int | None = None  # highest rate that held
        failed: int | None = None  # lowest rate that did not
        # What the latency runs need is kept back: the search ends when a trial would eat it.
        reserve = sum(int(r * seconds) for r in rates)
        async with _Sender(config, topic, n_partitions, linger_ms=0) as sender:
            while len(trials) < _MAX_TRIALS:
                left = source.remaining()
                if left is not None and left - reserve < int(rate * sustain_seconds):
                    out["sustained_search_stopped"] = (
                        f"the data ran out: {left} transactions left, the latency runs "
                        f"keep {reserve}, a trial at {rate} tx/s needs "
                        f"{int(rate * sustain_seconds)}"
                    )
                    break
                trial = await _sustain(
                    lag, sender, source.take(int(rate * sustain_seconds)), rate, proc
                )
                trials.append(trial)
                if trial["sustained"]:
                    held = rate
                else:
                    failed = rate
                step = _next_rate(held, failed, trial["decided_tx_per_s"], drain)
                if step is None:
                    break
                rate = step
            out["max_sustained_tx_per_s"] = max(
                [t["offered_tx_per_s"] for t in trials if t["sustained"]], default=None
            )
            out["sustained_trials"] = trials
            col = _Collector(config, names["decisions"], n_partitions)
            await col.start()
            try:
                latency: dict[str, dict[str, Any]] = {}
                for r in rates:
                    count = int(r * seconds)
                    batch = source.take(count)
                    # Decoded before pacing, not while the last decisions come in:
                    # the collector stamps their arrival on this same event loop.
                    ids = [orjson.loads(v)["tx_id"] for _, v in batch]
                    before = _histogram(port, "riskflow_latency_from_record_ms")
                    consumed_before = _histogram(port, "riskflow_latency_from_consume_ms")
                    stalls_before = {
                        h: _histogram(port, h)
                        for h in ("riskflow_event_loop_lag_ms", "riskflow_checkpoint_capture_ms")
                    }
                    achieved = await sender.paced(batch, r)
                    await col.wait_for(ids, timeout=60)
                    skip = min(int(r), count // 5)  # first second: pacing settles
                    lat = np.array([col.latency_ms[i] for i in ids[skip:] if i in col.latency_ms])
                    latency[str(r)] = {
                        "p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                        "p99": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
                        "max": round(float(lat.max()), 2) if lat.size else None,
                        "n": int(lat.size),
                        "undecided": sum(i not in col.decided for i in ids),
                        "offered_tx_per_s": round(achieved),
                        # The worker's own view (decision produced - record timestamp),
                        # from its histogram: bucket bounds, so an upper estimate.
                        "worker_p50_le": _quantile(before, port, 0.5),
                        "worker_p99_le": _quantile(before, port, 0.99),
                        "worker_max_le": _quantile(before, port, 1.0),
                        # From the batch's consumption to its decisions produced:
                        # the worker's own share, without the broker and fetch.
                        "worker_consume_p50_le": _quantile(
                            consumed_before, port, 0.5, "riskflow_latency_from_consume_ms"
                        ),
                        "worker_consume_p99_le": _quantile(
                            consumed_before, port, 0.99, "riskflow_latency_from_consume_ms"
                        ),
                        **_stalls(stalls_before, port),
                    }
                out["latency_ms"] = latency
                out["model_version"] = col.model_version
                out["flagged_share"] = round(col.flagged / max(col.seen, 1), 4)
            finally:
                await col.stop()
    return out


#: Sustained-search granularity (tx/s) and budget (trials of sustain_seconds each).
_RATE_STEP = 500
_MAX_TRIALS = 6


def _next_rate(held: int | None, failed: int | None, decided: int, drain: int) -> int | None:
    """The next offered rate of the sustained search, or None when it is done.

    Up in steps of 5 % of the drain rate while every rate holds (never past the
    drain rate, an upper bound); down to 0.9x what the worker decided while
    none holds; then halving the gap between the highest rate that held and the
    lowest that did not, to :data:`_RATE_STEP`.

    >>> _next_rate(None, 24000, 20165, 27177)  # nothing held yet: below what was decided
    18000
    >>> _next_rate(18000, 24000, 17776, 27177)
    21000
    >>> _next_rate(21000, 21500, 0, 27177) is None  # bracketed to one step
    True
    >>> _next_rate(24000, None, 24000, 27177)  # all held: up by 5 % of the drain
    25000
    """
    step = _RATE_STEP
    if failed is None:
        assert held is not None
        up = held + max(step, int(drain * 0.05) // step * step)
        return up if up <= drain else None
    if held is None:
        down = max(step, int(min(failed, decided) * 0.9) // step * step)
        return down if down < failed else None
    mid = (held + failed) // 2 // step * step
    return mid if held < mid < failed else None


async def _sustain(
    lag: _Lag, sender: _Sender, items: Items, rate: int, proc: Any
) -> dict[str, Any]:
    """Offer ``items`` at ``rate``; sample the group's lag; then let the backlog drain."""
    samples: list[tuple[float, int]] = []
    start_committed = await lag.committed()
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            _, behind = await lag.lag()
            samples.append((time.perf_counter(), behind))
            await asyncio.sleep(_LAG_EVERY_S)

    sampler = asyncio.ensure_future(sample())
    t0 = time.perf_counter()
    achieved = await sender.paced(items, rate)
    t1 = time.perf_counter()
    stop.set()
    await sampler
    decided = await lag.committed() - start_committed
    # Kept up: the producer delivered the rate, the worker decided (committed)
    # at least 98 % of it, and the lag is bounded and not growing: the last
    # third's median is within 0.1 s of input of the first third's (medians:
    # one checkpoint pause is not a trend) and the end lag under 0.5 s of input.
    k = max(len(samples) // 3, 1)
    early = float(np.median([b for _, b in samples[:k]]))
    late = float(np.median([b for _, b in samples[-k:]]))
    end_lag = samples[-1][1] if samples else 0
    decided_rate = decided / max(t1 - t0, 1e-9)
    ok = (
        achieved >= 0.97 * rate
        and decided_rate >= 0.98 * achieved
        and late - early <= 0.1 * rate
        and end_lag <= 0.5 * rate
    )
    # Drain what is left before the next measurement.
    await lag.wait_committed(start_committed + len(items), 120.0, proc)
    return {
        "offered_tx_per_s": rate,
        "producer_tx_per_s": round(achieved),
        "decided_tx_per_s": round(decided_rate),
        "lag_first_third": round(early),
        "lag_last_third": round(late),
        "lag_end": int(end_lag),
        "sustained": bool(ok),
    }


def _scrape(port: int) -> str | None:
    """The worker's ``/metrics`` text, or None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())
    except OSError:
        return None


def _sums(text: str) -> dict[str, float]:
    """The samples this bench reads from a ``/metrics`` text, by flat name.

    ``fallback`` (decisions), ``stage.<stage>`` / ``stage_count.<stage>`` (the
    stage-time histogram's ms sum and count), ``batch_size_sum`` and
    ``batch_size_count``.

    >>> _sums('riskflow_stage_ms_sum{stage="model"} 12.5\\nriskflow_batch_size_count 3.0')
    {'stage.model': 12.5, 'batch_size_count': 3.0}
    """
    got: dict[str, float] = {}
    for ln in text.splitlines():
        value = ln.rsplit(" ", 1)[-1]
        if ln.startswith("riskflow_fallback_decisions_total"):
            got["fallback"] = got.get("fallback", 0.0) + float(value)
        elif ln.startswith(("riskflow_stage_ms_sum{", "riskflow_stage_ms_count{")):
            stage = ln.split('stage="', 1)[1].split('"', 1)[0]
            kind = "stage." if ln.startswith("riskflow_stage_ms_sum{") else "stage_count."
            got[kind + stage] = float(value)
        elif ln.startswith(("riskflow_batch_size_sum ", "riskflow_batch_size_count ")):
            got[ln.split()[0].removeprefix("riskflow_")] = float(value)
    return got


def _worker_metrics(port: int) -> dict[str, Any]:
    """Fallback count and mean stage times (ms per batch) from the worker's /metrics."""
    text = _scrape(port)
    if text is None:
        return {}
    got = _sums(text)
    stages = {}
    for key, ms in got.items():
        stage = key.removeprefix("stage.")
        if stage != key and got.get(f"stage_count.{stage}"):
            stages[stage] = round(ms / got[f"stage_count.{stage}"], 3)
    batches = got.get("batch_size_count", 0.0)
    return {
        "fallback_decisions": got.get("fallback", 0.0),
        # Means over every batch of the run (full ones in the drain, small ones when paced).
        "stage_ms_per_batch": stages,
        "mean_batch_size": round(got["batch_size_sum"] / batches, 1) if batches else None,
    }


def _usage(pid: int, port: int) -> dict[str, float]:
    """The worker's CPU seconds so far and its stage / batch-size histogram sums.

    ``cpu_s`` is user + system time of every thread of the process,
    ``loop_run_s`` / ``loop_wait_s`` the main thread's (the event loop's)
    time on a CPU and time runnable but waiting for one (``/proc``, Linux;
    absent elsewhere). Stage sums are ms, ``batch_size_*`` the histogram's
    sum and count.
    """
    got: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        got["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/schedstat") as fh:  # ns on CPU, ns waiting on a run queue
            run_ns, wait_ns = fh.read().split()[:2]
        got["loop_run_s"], got["loop_wait_s"] = int(run_ns) / 1e9, int(wait_ns) / 1e9
    text = _scrape(port)
    if text is not None:
        got.update(_sums(text))
    return got


def _drain_costs(
    before: dict[str, float], after: dict[str, float], tx: int, wall_s: float
) -> dict[str, Any]:
    """Per transaction of the drain window: the worker's CPU, each stage's time, the rest.

    The run-wide ``stage_ms_per_batch`` mixes the drain's full batches with
    the paced phases' small ones; these figures cover only the drain.
    ``drain_worker_cpu_us_per_tx`` minus the stages' sum is the CPU the worker
    spends outside them (Kafka client, encoding, commits, checkpoints, other
    threads); the stages' times are wall time on the event loop, so on a
    loaded machine they hold some waiting for a CPU. The event loop's wall
    time per transaction splits into ``on_cpu`` (running), ``runqueue``
    (runnable, waiting for a CPU: other processes) and ``idle`` (the rest:
    waiting for the broker's acks, commits and fetches).

    >>> c = _drain_costs({"cpu_s": 1.0, "loop_run_s": 1.0, "loop_wait_s": 0.0,
    ...                   "stage.model": 10.0, "batch_size_sum": 0.0, "batch_size_count": 0.0},
    ...                  {"cpu_s": 3.0, "loop_run_s": 2.5, "loop_wait_s": 0.5,
    ...                   "stage.model": 1010.0, "batch_size_sum": 10000.0,
    ...                   "batch_size_count": 20.0}, 10_000, 2.5)
    >>> c["drain_worker_cpu_us_per_tx"], c["drain_stage_us_per_tx"], c["drain_mean_batch_size"]
    (200.0, {'model': 100.0}, 500.0)
    >>> c["drain_outside_stages_us_per_tx"], c["drain_loop_us_per_tx"]
    (100.0, {'wall': 250.0, 'on_cpu': 150.0, 'runqueue': 50.0, 'idle': 50.0})
    """
    out: dict[str, Any] = {}
    if tx <= 0:
        return out

    def per_tx(key: str, scale: float = 1e6) -> float | None:
        if key not in before or key not in after:
            return None
        return round((after[key] - before[key]) * scale / tx, 1)

    cpu = per_tx("cpu_s")
    if cpu is not None:
        out["drain_worker_cpu_us_per_tx"] = cpu
    stages = {
        k.removeprefix("stage."): per_tx(k, 1e3)
        for k in sorted(after)
        if k.startswith("stage.") and k in before
    }
    if stages:
        out["drain_stage_us_per_tx"] = stages
        if cpu is not None:
            out["drain_outside_stages_us_per_tx"] = round(cpu - sum(stages.values()), 1)  # type: ignore[arg-type]
    run, wait = per_tx("loop_run_s"), per_tx("loop_wait_s")
    if run is not None and wait is not None:
        wall = round(wall_s * 1e6 / tx, 1)
        out["drain_loop_us_per_tx"] = {
            "wall": wall,
            "on_cpu": run,
            "runqueue": wait,
            "idle": round(wall - run - wait, 1),
        }
    batches = after.get("batch_size_count", 0.0) - before.get("batch_size_count", 0.0)
    if batches > 0:
        size = after.get("batch_size_sum", 0.0) - before.get("batch_size_sum", 0.0)
        out["drain_mean_batch_size"] = round(size / batches, 1)
    return out


def _histogram(port: int, name: str) -> dict[float, float]:
    """Cumulative bucket counts (upper bound -> count) of a worker histogram."""
    out: dict[float, float] = {}
    for ln in (_scrape(port) or "").splitlines():
        if ln.startswith(name + "_bucket{"):
            le = ln.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(ln.split()[-1])
    return out


def _window(before: dict[float, float], port: int, name: str) -> list[tuple[float, float]]:
    """(bucket bound, cumulative count) of what histogram ``name`` observed since ``before``."""
    after = _histogram(port, name)
    return sorted((le, after[le] - before.get(le, 0.0)) for le in after)


def _quantile(
    before: dict[float, float],
    port: int,
    q: float,
    name: str = "riskflow_latency_from_record_ms",
) -> float | None:
    """The smallest bucket bound holding quantile ``q`` of what was observed since ``before``."""
    diff = _window(before, port, name)
    if not diff or diff[-1][1] <= 0:
        return None
    return next(le for le, c in diff if c >= q * diff[-1][1])


def _stalls(before: dict[str, dict[float, float]], port: int) -> dict[str, Any]:
    """The worker's event-loop stalls and state captures since ``before`` (bucket bounds)."""
    lag, cap = "riskflow_event_loop_lag_ms", "riskflow_checkpoint_capture_ms"
    captures = _window(before[cap], port, cap)
    return {
        "worker_loop_lag_p99_le": _quantile(before[lag], port, 0.99, lag),
        "worker_loop_lag_max_le": _quantile(before[lag], port, 1.0, lag),
        "checkpoint_captures": int(captures[-1][1]) if captures else 0,
        "checkpoint_capture_max_le": _quantile(before[cap], port, 1.0, cap),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
