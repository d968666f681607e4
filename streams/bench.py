"""``riskflow bench stream``: the worker's throughput and latency on a real broker.

One run, one broker, fresh uuid-named topics:

1. **null pipeline**: consume -> produce with no work (aiokafka, in this
   process), the ceiling the broker and client allow;
2. **max sustained throughput**: ``n`` transactions are written before a
   ``riskflow worker`` subprocess starts; after a warm-up slice (JIT, first
   rebalance) the rate at which their decisions arrive is the drain rate;
3. **latency at fixed offered rates**: transactions sent at ``rate``/s for
   ``seconds``; latency is the time from each send to this process receiving
   its decision (end to end, through the broker both ways).
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

__all__ = ["bench_stream", "make_transactions"]

_T0 = 1_767_268_800_000
#: Transactions decided before the drain is timed (JIT compile, group join).
_WARMUP = 2_000


def make_transactions(n: int, start: int = 0, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """``n`` valid wire transactions (key = card token) with realistic entity reuse."""
    rng = np.random.default_rng(seed + start)
    card = rng.integers(0, 50_000, n)
    merchant = rng.integers(0, 5_000, n)
    device = rng.integers(0, 60_000, n)
    ip = rng.integers(0, 2**24, n)
    amount = np.round(rng.lognormal(3.5, 1.0, n), 2)
    out = []
    for i in range(n):
        rec = {
            "schema_version": 1,
            "tx_id": f"b{start + i:09d}",
            "event_time": _T0 + (start + i) * 5,
            "card_token": f"tok_{card[i]:x}",
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
        out.append((rec["card_token"].encode(), orjson.dumps(rec)))
    return out


async def _produce(config: Config, topic: str, items: Sequence[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(**aiokafka_kwargs(config.kafka, linger_ms=5, max_batch_size=256 * 1024))
    await p.start()
    try:
        futs = [await p.send(topic, v, key=k) for k, v in items]
        await asyncio.gather(*futs)
    finally:
        await p.stop()


async def _null_pipeline(config: Config, src: str, dst: str, n: int, partitions: int) -> float:
    """Consume ``n`` records of ``src`` and produce each to ``dst``; records/s."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(config.kafka), enable_auto_commit=False, max_poll_records=5000
    )
    producer = AIOKafkaProducer(**aiokafka_kwargs(config.kafka, linger_ms=1, acks="all"))
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(src, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done = 0
        t0 = None
        while done < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if t0 is None and batches:
                t0 = time.perf_counter()
            futs = []
            for records in batches.values():
                for r in records:
                    futs.append(await producer.send(dst, r.value, key=r.key))
            if futs:
                await asyncio.gather(*futs)
            done += len(futs)
        return n / (time.perf_counter() - (t0 or time.perf_counter()))
    finally:
        await consumer.stop()
        await producer.stop()


class _Collector:
    """Receives decisions in the background: tx_id -> receive time."""

    def __init__(self, config: Config, topic: str, partitions: int) -> None:
        self.config = config
        self.partitions = partitions
        self.topic = topic
        self.seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self._consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self.config.kafka),
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_poll_records=10_000,
            fetch_max_wait_ms=5,
        )
        await self._consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    self.seen[orjson.loads(r.value)["tx_id"]] = now

    async def wait_for(self, ids: Sequence[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(i in self.seen for i in ids[-1:]) and all(i in self.seen for i in ids):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()


async def _paced(
    config: Config, topic: str, items: Sequence[tuple[bytes, bytes]], rate: float
) -> list[float]:
    """Send ``items`` at ``rate``/s (1 ms ticks); return each send time (perf_counter)."""
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(**aiokafka_kwargs(config.kafka, linger_ms=0))
    await p.start()
    sent: list[float] = []
    try:
        t0 = time.perf_counter()
        i = 0
        while i < len(items):
            due = min(len(items), int((time.perf_counter() - t0) * rate) + 1)
            while i < due:
                k, v = items[i]
                await p.send(topic, v, key=k)
                sent.append(time.perf_counter())
                i += 1
            await asyncio.sleep(0.001)
        await p.flush()
    finally:
        await p.stop()
    return sent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_stream(
    config: Config,
    *,
    n: int = 100_000,
    rates: Sequence[int] = (2_000,),
    seconds: float = 10.0,
    partitions: int = 2,
    scorer: str | None = None,
    engine: str = "bulk",
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Run the three measurements (see module docstring) and return the figures."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from riskflow.kafka import admin_kwargs

    run = uuid.uuid4().hex[:10]
    names = {
        "transactions": f"bench-{run}-tx",
        "labels": f"bench-{run}-labels",
        "decisions": f"bench-{run}-decisions",
        "dead_letter": f"bench-{run}-dlq",
        "policy": f"bench-{run}-policy",
        "null_in": f"bench-{run}-null-in",
        "null_out": f"bench-{run}-null-out",
    }
    admin = KafkaAdminClient(**admin_kwargs(config.kafka))
    admin.create_topics(
        [
            NewTopic(t, 1 if r in ("dead_letter", "policy") else partitions, 1)
            for r, t in names.items()
        ]
    )
    admin.wait_for_topics(list(names.values()), timeout_ms=15_000)
    result: dict[str, Any] = {
        "n": n,
        "partitions": partitions,
        "scorer": scorer or "pipeline",
        "engine": engine,
    }
    proc = None
    state = tempfile.TemporaryDirectory(prefix="riskflow-bench-")
    try:
        items = make_transactions(_WARMUP + n)
        asyncio.run(_produce(config, names["null_in"], items[_WARMUP:]))
        result["null_pipeline_tx_per_s"] = round(
            asyncio.run(_null_pipeline(config, names["null_in"], names["null_out"], n, partitions))
        )
        asyncio.run(_produce(config, names["transactions"], items))
        port = _free_port()
        env = {
            **os.environ,
            "RISKFLOW_KAFKA__BOOTSTRAP_SERVERS": config.kafka.bootstrap,
            "RISKFLOW_STREAM__APP_ID": f"bench-{run}",
            "RISKFLOW_STREAM__STATE_DIR": state.name,
            **{
                f"RISKFLOW_TOPICS__{r.upper()}__NAME": t
                for r, t in names.items()
                if not r.startswith("null")
            },
        }
        cmd = [
            sys.executable,
            "-c",
            "from riskflow.cli import main; main()",
            "worker",
            "--web-port",
            str(port),
            "--checkpoint-interval",
            "30",
        ]
        cmd += ["--engine", engine]
        if scorer:
            cmd += ["--scorer", scorer]
        log = Path(state.name) / "worker.log"
        log_fh = open(log, "wb")  # noqa: SIM115 - the worker writes it until it exits
        proc = subprocess.Popen(cmd, env=env, stdout=log_fh, stderr=subprocess.STDOUT)
        result.update(
            asyncio.run(
                _measure(config, names, items, rates, seconds, timeout, proc, log, partitions)
            )
        )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            result["fallback_decisions"] = sum(
                float(ln.split()[-1])
                for ln in text.splitlines()
                if ln.startswith("riskflow_fallback_decisions_total")
            )
        except OSError:
            pass
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
        if proc is not None:
            log_fh.close()
        state.cleanup()
    return result


async def _measure(
    config: Config,
    names: dict[str, str],
    items: list[tuple[bytes, bytes]],
    rates: Sequence[int],
    seconds: float,
    timeout: float,
    proc: subprocess.Popen[bytes],
    log: Path,
    partitions: int,
) -> dict[str, Any]:
    col = _Collector(config, names["decisions"], partitions)
    await col.start()
    try:
        ids = [orjson.loads(v)["tx_id"] for _, v in items]
        if not await col.wait_for(ids[:_WARMUP], timeout):
            raise RuntimeError(
                f"worker decided no warm-up batch in {timeout} s: {log.read_text()[-2000:]}"
            )
        if not await col.wait_for(ids, timeout):
            done = sum(i in col.seen for i in ids)
            raise RuntimeError(
                f"worker decided {done}/{len(ids)} in {timeout} s (exit {proc.poll()})"
            )
        t_first = col.seen[ids[_WARMUP]]
        t_last = max(col.seen[i] for i in ids[_WARMUP:])
        drained = len(ids) - _WARMUP
        out: dict[str, Any] = {
            "max_sustained_tx_per_s": round(drained / max(t_last - t_first, 1e-9))
        }
        latency: dict[str, dict[str, float]] = {}
        start = len(items)
        for rate in rates:
            count = int(rate * seconds)
            batch = make_transactions(count, start=start)
            start += count
            sent = await _paced(config, names["transactions"], batch, rate)
            bids = [orjson.loads(v)["tx_id"] for _, v in batch]
            await col.wait_for(bids, timeout=60)
            skip = min(int(rate), count // 5)  # first second: pacing settles
            lat = np.array(
                [
                    (col.seen[i] - s) * 1e3
                    for i, s in zip(bids[skip:], sent[skip:], strict=True)
                    if i in col.seen
                ]
            )
            missing = sum(i not in col.seen for i in bids)
            latency[str(rate)] = {
                "p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                "p99": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
                "n": int(lat.size),
                "undecided": int(missing),
            }
        out["latency_ms"] = latency
        return out
    finally:
        await col.stop()
