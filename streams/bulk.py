"""The bulk-fetch runner: the same worker without faust's per-event delivery.

faust hands an agent one event at a time (a task switch and a ``wait_first``
per record), which caps a worker at a few thousand records/s on a small
machine. :class:`BulkWorker` keeps everything of
:class:`~riskflow.streams.app.RiskWorker` (processor, output, exactly-once
transactions, snapshots, gap replay, replica of other partitions, policy
follower, metrics and health) and replaces only the faust app: one aiokafka
group consumer whose ``getmany(max_records=max_batch_size,
timeout_ms=max_wait_ms)`` *is* the micro-batch, and an aiohttp server for
``/metrics`` and ``/health``. Offsets are committed after each batch's output
is acknowledged (at-least-once) or inside a transaction (exactly-once).

Exactly-once transactions span micro-batches and commit in the background:
while one transaction (begin, produce, offsets, commit: four or more broker
round trips, ~25-40 ms on the loaded 2-core box whatever its size) is in
flight, the next batches are scored and their output waits; when it commits,
everything that waited goes out in the next transaction. So the worker never
idles on a commit, transactions grow with the load (one per batch when
idle), and a decision waits at most for the transaction in flight plus its
own. Exactly-once holds as before: a batch's decisions and its input offsets
are in the same transaction, and a snapshot is taken only when nothing
processed is uncommitted (a due checkpoint first waits for the commits).
The faust engine keeps one transaction per batch (faust acknowledges a batch
when the agent returns, so its output must be out by then).

``riskflow worker --engine bulk`` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from aiokafka.abc import ConsumerRebalanceListener

from riskflow.kafka import aiokafka_kwargs
from riskflow.streams.app import LAG_INTERVAL_S, RiskWorker
from riskflow.streams.processor import InRecord, Output

__all__ = ["BulkWorker"]

log = logging.getLogger(__name__)

#: Batches of output that may wait for the transaction in flight before the
#: worker stops consuming to let it catch up (bounds memory and latency).
_MAX_WAITING_BATCHES = 8


class BulkWorker(RiskWorker):
    """:class:`RiskWorker` fed by aiokafka ``getmany`` batches instead of faust agents."""

    def _build_app(self) -> None:
        self.app = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._consumer: Any = None
        #: Exactly-once: output of processed batches not yet in a transaction,
        #: with what to call once it is committed.
        self._waiting_out: list[tuple[Output, list[InRecord], Any]] = []
        self._committer: asyncio.Task[None] | None = None

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    def _stopping(self) -> bool:
        return self._stop.is_set()

    def _assignment(self) -> set[Any]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def _serve_web(self) -> Any:
        from aiohttp import web

        async def metrics(request: Any) -> Any:
            from prometheus_client import generate_latest

            return web.Response(
                body=generate_latest(self.metrics.registry), content_type="text/plain"
            )

        async def health(request: Any) -> Any:
            h = await self.health()
            return web.json_response(h, status=200 if h["ready"] else 503)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", self.web_port).start()
        return runner

    async def _lag_loop(self) -> None:
        while not self._stopping():
            await asyncio.sleep(LAG_INTERVAL_S)
            await self._probe_lag()

    async def main(self) -> None:
        """Run until :meth:`stop` (or SIGTERM / SIGINT under :meth:`run`)."""
        from aiokafka import AIOKafkaConsumer

        s = self.config.stream
        t = self.config.topics
        runner = await self._serve_web()
        try:
            await self._startup()
            self._spawn(self._lag_loop())
            self._consumer = consumer = AIOKafkaConsumer(
                **aiokafka_kwargs(self.config.kafka),
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed" if self.exactly_once else "read_uncommitted",
                # As in the faust app: a killed worker's partitions move after 10 s.
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
                max_poll_records=s.max_batch_size,
                fetch_max_wait_ms=max(s.max_wait_ms, 1),
            )
            await consumer.start()
            consumer.subscribe([t.transactions.name, t.labels.name], listener=_Revoke(self))
            try:
                while not self._stopping():
                    batches = await consumer.getmany(
                        timeout_ms=s.max_wait_ms, max_records=s.max_batch_size
                    )
                    if batches:
                        await self._handle(batches)
            finally:
                async with self._lock:
                    await self._flush_transactions()
                    if self.processor.positions and not self._unemitted:
                        await self._maybe_checkpoint(force=True)
                await consumer.stop()
        finally:
            self._stop.set()
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(BaseException):
                    await task
            if self._producer is not None:
                await self._producer.stop()
            await runner.cleanup()

    async def _handle(self, batches: dict[Any, list[Any]]) -> None:
        t_consumed = time.time()
        labels_topic = self.config.topics.labels.name
        tx_recs: list[InRecord] = []
        lab_recs: list[InRecord] = []
        for tp, records in batches.items():
            dest = lab_recs if tp.topic == labels_topic else tx_recs
            dest.extend(
                InRecord(tp.topic, tp.partition, r.offset, r.timestamp, r.key, r.value)
                for r in records
            )
        async with self._lock:
            if lab_recs:
                await self._replay_gaps(lab_recs, labels=True)
                out = self.processor.process_labels(lab_recs)
                await self._emit_retrying(out, lab_recs)
                self.metrics.consumed.labels(labels_topic).inc(len(lab_recs))
                self.metrics.dead_letters.labels(labels_topic).inc(len(out.dead_letters))
            if tx_recs:
                await self._replay_gaps(tx_recs)
                out = self.processor.process_transactions(tx_recs)
                await self._emit_retrying(
                    out,
                    tx_recs,
                    after=lambda out=out, recs=tx_recs: self._observe(out, recs, t_consumed),
                )
            if not self.exactly_once:
                from aiokafka.errors import CommitFailedError, IllegalStateError

                try:
                    await self._consumer.commit(_next_offsets(batches))
                except (CommitFailedError, IllegalStateError) as exc:
                    # Partitions moved meanwhile: their new owner decides these
                    # records again (at-least-once: same keys, same content).
                    log.warning("offset commit after a rebalance failed: %s", exc)
            await self._maybe_checkpoint()

    # -- exactly-once: transactions across batches, committed in the background --

    async def _emit_retrying(
        self, out: Output, records: list[InRecord] | Any, after: Any = None
    ) -> None:
        if not self.exactly_once:
            await super()._emit_retrying(out, records, after)
            return
        self._waiting_out.append((out, list(records), after))
        self._unemitted = True
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_waiting())
        elif len(self._waiting_out) >= _MAX_WAITING_BATCHES:
            await self._flush_transactions()

    async def _commit_waiting(self) -> None:
        """Commit what waits, one transaction at a time, until nothing waits."""
        while self._waiting_out:
            group, self._waiting_out = self._waiting_out, []
            merged = Output()
            records: list[InRecord] = []
            for out, recs, _ in group:
                merged.decisions.extend(out.decisions)
                merged.dead_letters.extend(out.dead_letters)
                records.extend(recs)
            await self._emit_with_retries(merged, records)  # retried, never dropped
            self._unemitted = bool(self._waiting_out)
            for _, _, after in group:
                if after is not None:
                    after()

    async def _flush_transactions(self) -> None:
        """Return once every processed batch's output is committed."""
        while self._waiting_out or (self._committer is not None and not self._committer.done()):
            if self._committer is None or self._committer.done():
                self._committer = asyncio.ensure_future(self._commit_waiting())
            await asyncio.shield(self._committer)

    async def _maybe_checkpoint(self, force: bool = False) -> None:
        # A snapshot must not hold state whose output is uncommitted: a due
        # checkpoint first waits for the transactions (every 30 s by default).
        if self.exactly_once and self._unemitted:
            writing = self._writing
            due = force or (
                time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s
                and (writing is None or writing.done())
            )
            if not due:
                return
            await self._flush_transactions()
        await super()._maybe_checkpoint(force)

    def stop(self) -> None:
        self._stop.set()

    def run(self, loglevel: str = "info") -> None:
        """Run until SIGTERM / SIGINT (blocks)."""

        async def _main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            await self.main()

        asyncio.run(_main())


class _Revoke(ConsumerRebalanceListener):
    """Rebalance listener: commit waiting output before partitions move away.

    Output committed after the new owner read the group's offsets would be
    decided twice; flushing on revoke keeps that window to a batch being
    scored at that moment, as with one transaction per batch.
    """

    def __init__(self, worker: BulkWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self.worker.exactly_once:
            await self.worker._flush_transactions()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


def _next_offsets(batches: dict[Any, list[Any]]) -> dict[Any, int]:
    return {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
