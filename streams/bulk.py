"""The bulk-fetch runner: the same worker without faust's per-event delivery.

faust hands an agent one event at a time (a task switch and a ``wait_first``
per record), which caps a worker at a few thousand records/s on a small
machine. :class:`BulkWorker` keeps everything of
:class:`~riskflow.streams.app.RiskWorker` (processor, output, exactly-once
transactions, snapshots, gap replay, replica of other partitions, policy
follower, metrics and health) and replaces only the faust app: one aiokafka
group consumer whose ``getmany(max_records=max_batch_size)`` *is* the
micro-batch (what arrived while the last batch was decided; see
:data:`IDLE_WAIT_MS`), and an aiohttp server for
``/metrics`` and ``/health``. Offsets are committed after each batch's output
is acknowledged (at-least-once) or inside its transaction (exactly-once).

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
from riskflow.streams.processor import InRecord

__all__ = ["BulkWorker"]

log = logging.getLogger(__name__)

#: Milliseconds a fetch waits at the broker, and ``getmany`` in the worker,
#: while there is nothing to read. Neither delays a record: the broker answers
#: a fetch as soon as one byte is there (``fetch_min_bytes`` 1) and ``getmany``
#: returns as soon as the fetcher has records, so a batch is what arrived
#: while the last one was decided, as before. What this bounds is idle
#: polling: at ``stream.max_wait_ms`` (5 ms) an idle worker made ~200 empty
#: fetches a second, measured at 21-23 % of a core in the worker and 15-18 %
#: in the broker on the 2-core box (5-9 % and 4 % at 100 ms), CPU that the
#: scoring shares with them. Longer would also delay a stop and, when one
#: partition's records wait in the fetcher for over 0.1 s while a fetch for
#: the others is held at the broker, that partition's next fetch.
IDLE_WAIT_MS = 100


class BulkWorker(RiskWorker):
    """:class:`RiskWorker` fed by aiokafka ``getmany`` batches instead of faust agents."""

    def _build_app(self) -> None:
        self.app = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._consumer: Any = None

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
                # How long a rebalance waits for the batch in flight (_revoking).
                rebalance_timeout_ms=20_000,
                max_poll_records=s.max_batch_size,
                fetch_max_wait_ms=IDLE_WAIT_MS,
            )
            consumer.subscribe([t.transactions.name, t.labels.name], listener=_Rebalance(self))
            await consumer.start()
            try:
                while not self._stopping():
                    batches = await consumer.getmany(
                        timeout_ms=IDLE_WAIT_MS, max_records=s.max_batch_size
                    )
                    # Read as the batch arrives: a revocation from here on makes it stale.
                    revocations = self._revocations
                    if batches:
                        await self._handle(batches, revocations)
            finally:
                async with self._lock:
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

    async def _handle(self, batches: dict[Any, list[Any]], revocations: int) -> None:
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
            if revocations != self._revocations:
                await self._drop_stale(batches)
                return
            if lab_recs:
                await self._replay_gaps(lab_recs, labels=True)
                out = self.processor.process_labels(lab_recs)
                await self._emit_retrying(out, lab_recs)
                self.metrics.consumed.labels(labels_topic).inc(len(lab_recs))
                self.metrics.dead_letters.labels(labels_topic).inc(len(out.dead_letters))
            if tx_recs:
                await self._replay_gaps(tx_recs)
                out = self.processor.process_transactions(tx_recs)
                await self._emit_retrying(out, tx_recs)
                self._observe(out, tx_recs, t_consumed)
            if not self.exactly_once:
                from aiokafka.errors import CommitFailedError, IllegalStateError

                try:
                    await self._consumer.commit(_next_offsets(batches))
                except (CommitFailedError, IllegalStateError) as exc:
                    # Partitions moved meanwhile: their new owner decides these
                    # records again (at-least-once: same keys, same content).
                    log.warning("offset commit after a rebalance failed: %s", exc)
            await self._maybe_checkpoint()

    async def _drop_stale(self, batches: dict[Any, list[Any]]) -> None:
        """Forget a batch fetched before a revocation (see ``RiskWorker._revoking``).

        Its partitions may belong to another worker now, which decides these
        records from the committed offsets. A partition this worker got back
        restarts from its committed offset; the seek only guards that no record
        of the dropped batch is skipped.
        """
        from aiokafka.errors import IllegalStateError

        log.info(
            "dropped a batch of %d records fetched before a rebalance; "
            "their partitions' owner fetches them again",
            sum(len(r) for r in batches.values()),
        )
        for tp, records in batches.items():
            if not records or tp not in self._consumer.assignment():
                continue
            with contextlib.suppress(IllegalStateError):
                if await self._consumer.position(tp) > records[0].offset:
                    self._consumer.seek(tp, records[0].offset)

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


class _Rebalance(ConsumerRebalanceListener):
    """Holds each revocation until the worker's batch in flight is committed."""

    def __init__(self, worker: BulkWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.worker._revoking()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


def _next_offsets(batches: dict[Any, list[Any]]) -> dict[Any, int]:
    return {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
