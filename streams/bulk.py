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
``/metrics`` and ``/health``.

Exactly-once: each batch's output and offsets go in one Kafka transaction,
committed before the next batch is fetched. At-least-once: a batch's output
is handed to the producer and the next batch is fetched and decided while
it is in flight (up to :data:`MAX_IN_FLIGHT` batches); a settling task awaits
the acknowledgements in order and commits the offsets of acknowledged
batches every ``stream.commit_interval_ms``. Waiting for the broker's
acknowledgement and then for the offset commit before fetching again took
1.7 of the 2.7 ms a batch's round took at 2,000 tx/s here, and put every
pause of the broker (its young GCs: ~10-18 ms every few seconds) in series
with deciding. What is safe stays so: offsets are committed only up to
batches whose whole output is acknowledged, a failed batch is produced again
(never skipped) before anything after it is committed, and a checkpoint,
a rebalance and a shutdown first wait for everything in flight.

``riskflow worker --engine bulk`` runs it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.abc import ConsumerRebalanceListener

from riskflow.kafka import aiokafka_kwargs
from riskflow.streams.app import LAG_INTERVAL_S, RiskWorker
from riskflow.streams.processor import InRecord, Output

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

#: At-least-once: batches whose output may be in flight (handed to the
#: producer, not acknowledged yet) while the next one is fetched and decided.
#: The bound is the backpressure: a broker that stops acknowledging stops the
#: worker after this many batches instead of filling the producer's buffer.
MAX_IN_FLIGHT = 4


@dataclass
class _InFlight:
    """A decided batch whose output the producer has, waiting for its acknowledgement."""

    futures: list[Any]
    outputs: list[tuple[Output, list[InRecord]]]
    offsets: dict[Any, int]
    #: The transactions' output and when the batch was consumed (for the metrics).
    tx: tuple[Output, list[InRecord], float] | None = None


class BulkWorker(RiskWorker):
    """:class:`RiskWorker` fed by aiokafka ``getmany`` batches instead of faust agents."""

    def _build_app(self) -> None:
        self.app = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._consumer: Any = None
        #: At-least-once pipeline (see the module docs): batches in flight, oldest
        #: first; offsets of acknowledged batches not committed yet.
        self._in_flight: collections.deque[_InFlight] = collections.deque()
        self._queued = asyncio.Event()
        self._settled = asyncio.Event()
        self._to_commit: dict[Any, int] = {}
        self._last_commit = 0.0
        self._committing = asyncio.Lock()
        self._settle_failed = False

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
            if not self.exactly_once:
                self._spawn(self._settle_loop())
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
                await self._drain()
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
        if not self.exactly_once:
            await self._handle_pipelined(batches, revocations, tx_recs, lab_recs, t_consumed)
            return
        async with self._lock:
            if revocations != self._revocations:
                await self._drop_stale(batches)
                return
            out = await self._decide(lab_recs, tx_recs, self._emit_retrying)
            if out is not None:
                self._observe(out, tx_recs, t_consumed)
            await self._maybe_checkpoint()

    async def _decide(
        self,
        lab_recs: list[InRecord],
        tx_recs: list[InRecord],
        emit: Callable[[Output, list[InRecord]], Awaitable[None]],
    ) -> Output | None:
        """Decide a batch, labels first, handing each output to ``await emit(out, records)``.

        Returns the transactions' output (None without transactions).
        """
        labels_topic = self.config.topics.labels.name
        out_tx = None
        if lab_recs:
            await self._replay_gaps(lab_recs, labels=True)
            out = self.processor.process_labels(lab_recs)
            await emit(out, lab_recs)
            self.metrics.consumed.labels(labels_topic).inc(len(lab_recs))
            self.metrics.dead_letters.labels(labels_topic).inc(len(out.dead_letters))
        if tx_recs:
            await self._replay_gaps(tx_recs)
            out_tx = self.processor.process_transactions(tx_recs)
            await emit(out_tx, tx_recs)
        return out_tx

    async def _handle_pipelined(
        self,
        batches: dict[Any, list[Any]],
        revocations: int,
        tx_recs: list[InRecord],
        lab_recs: list[InRecord],
        t_consumed: float,
    ) -> None:
        """At-least-once: decide a batch and hand its output over; its acknowledgement is awaited
        by :meth:`_settle_loop` while the next batch is fetched."""
        async with self._lock:
            if revocations != self._revocations:
                await self._drop_stale(batches)
                return
            entry = _InFlight([], [], _next_offsets(batches))

            async def queue(out: Output, records: list[InRecord]) -> None:
                entry.futures += await self._queue_all(out, self.config.topics)
                entry.outputs.append((out, records))

            # From here until its acknowledgement the state is ahead of Kafka.
            self._unemitted = True
            out = await self._decide(lab_recs, tx_recs, queue)
            if out is not None:
                entry.tx = (out, tx_recs, t_consumed)
            self._in_flight.append(entry)
            self._queued.set()
            await self._maybe_checkpoint()
        await self._until_in_flight_below(MAX_IN_FLIGHT)

    async def _settle_loop(self) -> None:
        """Await the batches in flight in order; commit the offsets of acknowledged ones.

        Should it ever fail, the worker stops (nothing in flight is committed,
        so a restart decides those batches again) instead of waiting forever.
        """
        try:
            await self._settle_forever()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("settling produced batches failed; stopping the worker")
            self._settle_failed = True
            self._settled.set()
            self.stop()

    async def _settle_forever(self) -> None:
        interval = self.config.stream.commit_interval_ms / 1000
        while True:
            if not self._in_flight:
                wait = None
                if self._to_commit:
                    wait = max(self._last_commit + interval - time.monotonic(), 0.0)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._queued.wait(), wait)
                self._queued.clear()
            if self._in_flight:
                await self._settle(self._in_flight[0])
                self._in_flight.popleft()
                self._unemitted = bool(self._in_flight)
                self._settled.set()
            if self._to_commit and time.monotonic() - self._last_commit >= interval:
                await self._commit()

    async def _settle(self, entry: _InFlight) -> None:
        """Until ``entry``'s whole output is acknowledged (a failed part is produced again)."""
        try:
            await asyncio.gather(*entry.futures)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - produced again below; a batch is never dropped
            log.exception("producing a batch failed; producing it again")
            for out, records in entry.outputs:
                await self._emit_retrying(out, records)
        if entry.tx is not None:
            self._observe(*entry.tx)
        self._to_commit.update(entry.offsets)

    async def _commit(self) -> None:
        """Commit the offsets of the acknowledged batches (at-least-once)."""
        from aiokafka.errors import CommitFailedError, IllegalStateError

        async with self._committing:
            offsets, self._to_commit = self._to_commit, {}
            self._last_commit = time.monotonic()
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # Partitions moved meanwhile: their new owner decides these
                # records again (at-least-once: same keys, same content).
                log.warning("offset commit after a rebalance failed: %s", exc)
            except Exception as exc:  # noqa: BLE001 - e.g. the coordinator moving: retried
                log.warning("offset commit failed (%r); retrying with the next commit", exc)
                for tp, off in offsets.items():
                    self._to_commit[tp] = max(off, self._to_commit.get(tp, 0))

    async def _quiesce(self) -> None:
        """No capture while a decided batch's output could still be lost (see _maybe_checkpoint)."""
        await self._drain(commit=False)

    async def _until_in_flight_below(self, limit: int) -> None:
        """Until fewer than ``limit`` batches are in flight (or settling has failed)."""
        while len(self._in_flight) >= limit and not self._settle_failed:
            self._settled.clear()
            await self._settled.wait()

    async def _drain(self, commit: bool = True) -> None:
        """Until no batch is in flight; then (``commit``) commit their offsets now."""
        await self._until_in_flight_below(1)
        if self._settle_failed:
            return
        if commit and self._to_commit:
            await self._commit()

    async def _revoking(self) -> None:
        """As :meth:`RiskWorker._revoking`, and the batches in flight are acknowledged and
        their offsets committed before the partitions leave."""
        await super()._revoking()
        await self._drain()

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
