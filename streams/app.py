"""The faust application: agents that move bytes between Kafka and the processor.

:func:`build_app` returns a :class:`RiskWorker` holding the ``faust.App``; run
it with :meth:`RiskWorker.run` (what ``riskflow worker`` does). All decisions
are made by :class:`~riskflow.streams.processor.StreamProcessor`; this module
only consumes, produces, commits, checkpoints and reports.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import operator
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from riskflow.config import Config
from riskflow.kafka import aiokafka_kwargs, faust_settings
from riskflow.streams._partition import partitions
from riskflow.streams.metrics import WorkerMetrics, observe_many
from riskflow.streams.processor import InRecord, Output, Scoring, StreamProcessor

__all__ = ["RiskWorker", "build_app"]

log = logging.getLogger(__name__)

#: Seconds between state snapshots: bounds the gap replayed after a crash.
#: A snapshot is the whole feature state (~185 MB for the default engine
#: after 70k transactions: tables sized by capacity), about 0.2 s captured on
#: the loop and 1 s serialised and written in a thread on the loaded 2-core
#: box. Every 2 s that was half the worker (bench stream: 820 decided tx/s at
#: 2,000 offered); every 30 s it is a few percent, and a crash replays at most
#: 30 s of input into the state (features only, no scoring) before deciding.
CHECKPOINT_INTERVAL_S = 30.0
#: Seconds between reads of other workers' committed partitions (scale-out).
FOLLOW_INTERVAL_S = 0.25
#: Records the follower reads per hold of the worker's lock.
FOLLOW_CHUNK = 10_000
#: Seconds between consumer-lag probes.
LAG_INTERVAL_S = 5.0
#: Seconds between event-loop lag probes (riskflow_event_loop_lag_ms).
LOOP_PROBE_S = 0.05
_TX_ID = operator.itemgetter("tx_id")
_DECISION = operator.itemgetter("decision")
_SCORE = operator.itemgetter("score")
_SOURCE_TS = operator.itemgetter("source_ts_ms")


class RiskWorker:
    """One stream worker: a faust app, its producer and its processor.

    Parameters
    ----------
    config
        The riskflow configuration.
    scoring
        What scores batches (see :class:`~riskflow.streams.processor.Scoring`).
    instance_id
        Distinguishes workers of one group: names the snapshot file and the
        transactional id (exactly-once mode), so a restarted instance fences
        its crashed predecessor.
    web_port
        HTTP port of /metrics and /health (default ``config.stream.metrics_port``).
    """

    def __init__(
        self,
        config: Config,
        scoring: Scoring,
        *,
        instance_id: str = "0",
        web_port: int | None = None,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.config = config
        self.scoring = scoring
        self.instance_id = instance_id
        self.checkpoint_interval_s = checkpoint_interval_s
        s = config.stream
        self.exactly_once = s.processing_guarantee == "exactly_once"
        self.processor = StreamProcessor(
            scoring, fallback_decision=s.fallback_decision, waiting_labels=s.waiting_labels
        )
        self.metrics = WorkerMetrics()
        # Read at scrape time: labels wait and join on either topic's batches.
        self.metrics.labels_unmatched.set_function(lambda: self.processor.labels_unmatched)
        self.metrics.labels_waiting.set_function(lambda: self.processor.labels_waiting)
        self.state_dir = Path(s.state_dir)
        self.snapshot_path = self.state_dir / f"{s.app_id}-{instance_id}.snapshot"
        #: Checkpoints captured by a forked writer (see StreamConfig.snapshot_capture).
        self.fork_capture = s.snapshot_capture == "fork" and _CAN_FORK
        self.group_id = s.app_id
        self._lock = asyncio.Lock()
        self._producer: Any = None
        self._last_checkpoint = 0.0
        self._writing: asyncio.Future[None] | None = None
        self._preparing: asyncio.Future[None] | None = None
        self._prep_thread: asyncio.Future[None] | None = None
        self._growing: asyncio.Future[None] | None = None
        self._policy_ready = asyncio.Event()
        self._model_loaded = True
        self._emit_failing = False
        #: True while a processed batch's output is not yet produced: the
        #: in-memory state is then ahead of Kafka and must not be snapshotted.
        self._unemitted = False
        #: Rebalances that started taking partitions away (see _revoking).
        self._revocations = 0
        #: The faust consumer generation last revoked: its events are stale.
        self._revoked_generation: int | None = None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.web_port = config.stream.metrics_port if web_port is None else web_port
        self._build_app()

    def _build_app(self) -> None:
        import faust

        s = self.config.stream
        config = self.config
        instance_id = self.instance_id
        self.app = faust.App(
            s.app_id,
            **faust_settings(config.kafka),
            value_serializer="raw",
            key_serializer="raw",
            # Exactly-once is done here with one transactional producer per
            # instance (faust's own picks the transactional id by the output
            # partition, which only fits co-partitioned outputs).
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            topic_allow_declare=False,
            topic_disable_leader=True,
            store="memory://",
            datadir=str(self.state_dir / f"faust-{instance_id}"),
            web_enabled=True,
            web_port=self.web_port,
            web_bind="0.0.0.0",
            broker_commit_interval=1.0,
            # A worker killed with -9 holds its partitions until its session
            # times out; 10 s (broker minimum 6 s) bounds that stall.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
            broker_rebalance_timeout=20.0,
            stream_buffer_maxsize=max(4 * s.max_batch_size, 4096),
        )
        t = config.topics
        # Exactly-once: the group's offsets are written only inside our
        # transactions, so faust must not track acks on the inputs. Its own
        # commits (every broker_commit_interval, on rebalance and shutdown, from
        # another thread) carry the acked position, which can trail the last
        # transaction's offsets; landing after it, such a commit moved the
        # committed offset back, and a restart decided a committed batch again.
        acks = not self.exactly_once
        self.tx_topic = self.app.topic(
            t.transactions.name, value_type=bytes, key_type=bytes, acks=acks
        )
        self.labels_topic = self.app.topic(
            t.labels.name, value_type=bytes, key_type=bytes, acks=acks
        )
        self.app.agent(self.tx_topic, name="riskflow.transactions")(self._tx_agent)
        self.app.agent(self.labels_topic, name="riskflow.labels")(self._labels_agent)
        self.app.task(self._startup)
        self.app.timer(LAG_INTERVAL_S)(self._probe_lag)
        worker = self

        async def metrics(view: Any, request: Any) -> Any:
            return await worker._metrics_view(view, request)

        async def health(view: Any, request: Any) -> Any:
            return await worker._health_view(view, request)

        self.app.page("/metrics")(metrics)
        self.app.page("/health")(health)
        # faust's stubs type receivers as sync; it awaits coroutine receivers.
        self.app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]

    # -- life cycle ------------------------------------------------------------

    async def _startup(self) -> None:
        from aiokafka import AIOKafkaProducer

        from riskflow.features import warm_up

        # Kernels compiled off the event loop before anything is decided (a
        # cold numba cache otherwise compiles them inside the first batches).
        await asyncio.get_running_loop().run_in_executor(None, warm_up, self.config.features)
        kw = aiokafka_kwargs(self.config.kafka, acks="all", enable_idempotence=True, linger_ms=0)
        if self.exactly_once:
            kw["transactional_id"] = f"{self.group_id}-{self.instance_id}"
        producer = AIOKafkaProducer(**kw)
        await producer.start()
        self._producer = producer
        if self.snapshot_path.is_file():
            self.processor.restore(self.snapshot_path.read_bytes())
            log.info("restored state at positions %s", self.processor.positions)
        await self._catch_up()
        await self._load_policy()
        freeze_heap()
        self._spawn(self._probe_loop_lag())
        self._spawn(self._follow_policy())
        self._spawn(self._follow_others())

    # Hooks a non-faust runner (riskflow.streams.bulk) overrides.
    def _spawn(self, coro: Any) -> None:
        self.app.add_future(coro)

    def _stopping(self) -> bool:
        return bool(self.app.should_stop)

    def _assignment(self) -> set[Any]:
        return set(self.app.consumer.assignment())

    async def _revoking(self) -> None:
        """Hold a rebalance until the batch in flight has committed its output.

        Runs before partitions leave this worker (every rebalance: the group
        protocol is eager). A batch's decisions and offsets are committed
        together, but the group does not know a batch is in flight: without
        this wait the partitions' next owner could start from the committed
        offsets while this worker still commits the same records, and both
        decide them (a duplicate under exactly-once). Batches fetched before
        this call and not processed yet are then dropped (:meth:`_current`,
        ``BulkWorker._handle``); whoever owns their partitions after the
        rebalance fetches them again from the committed offsets.

        A worker stalled longer than the rebalance timeout is still a zombie
        that can commit late: aiokafka's transactional offset commit does not
        carry the group generation (KIP-447), so the broker cannot fence it.
        """
        self._revocations += 1
        async with self._lock:
            pass

    async def _on_revoked(self, app: Any, revoked: Any, **kwargs: Any) -> None:
        self._revoked_generation = self.app.consumer_generation_id
        await self._revoking()

    def _current(self, events: Sequence[Any]) -> Sequence[Any]:
        """``events`` without those fetched before the last revocation (exactly-once).

        faust's stream skips a message of an older consumer generation when it
        reaches the agent, but not one already taken into a batch. At-least-once
        keeps them: a duplicate is allowed there, and faust acks what the agent
        took (its offsets may be committed), so dropping could lose a decision.
        """
        if not self.exactly_once:
            return events
        now = self.app.consumer_generation_id
        keep = [
            ev
            for ev in events
            if ev.message.generation_id == now and now != self._revoked_generation
        ]
        if len(keep) < len(events):
            log.info(
                "dropped %d records fetched before a rebalance; "
                "their partitions' owner fetches them again",
                len(events) - len(keep),
            )
        return keep

    async def _on_shutdown(self, app: Any, **kwargs: Any) -> None:
        async with self._lock:
            if self.processor.positions and not self._unemitted:
                await self._maybe_checkpoint(force=True)
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None

    async def _policy_consumer(self) -> Any:
        """One consumer of the compacted policy and rules topics, from their beginnings."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(**aiokafka_kwargs(self.config.kafka), enable_auto_commit=False)
        await consumer.start()
        tps = []
        for topic in (self.config.topics.policy.name, self.config.topics.rules.name):
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            if not parts:
                log.warning("topic %s not found; starting without its updates", topic)
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return consumer, tps

    async def _load_policy(self) -> None:
        """Read the compacted policy topic to its end before deciding anything."""
        consumer, tps = await self._policy_consumer()
        self._policy_consumer_obj = consumer
        if tps:
            ends = await consumer.end_offsets(tps)
            while True:
                behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
                if not behind:
                    break
                batches = await consumer.getmany(timeout_ms=500)
                self._apply_policy(batches)
        else:
            log.warning(
                "policy topic %s not found; using configured thresholds",
                self.config.topics.policy.name,
            )
        self._policy_ready.set()

    async def _follow_policy(self) -> None:
        consumer = self._policy_consumer_obj
        try:
            while not self._stopping():
                self._apply_policy(await consumer.getmany(timeout_ms=500))
        finally:
            await consumer.stop()
            self._policy_consumer_obj = None

    def _apply_policy(self, batches: dict[Any, list[Any]]) -> None:
        rules_topic = self.config.topics.rules.name
        for records in batches.values():
            for r in records:
                if r.topic == rules_topic:
                    self._apply_rules(r)
                    continue
                try:
                    version = self.scoring.apply_policy(r.key, r.value)
                except Exception:  # noqa: BLE001 - a bad update must not stop the worker
                    log.exception("ignoring invalid policy update at offset %d", r.offset)
                    continue
                self.metrics.policy_updates.inc()
                log.info("policy update applied: version %s", version)

    def _apply_rules(self, r: Any) -> None:
        """Apply one rules-topic record between batches and log where it takes effect.

        Batches are decided synchronously (no await inside scoring), so the
        processor's positions now are the first input offsets decided with
        the new version. Logged at WARNING: a decision-changing event belongs
        in the log at the worker's default level.
        """
        apply = getattr(self.scoring, "apply_rules", None)
        if apply is None:
            log.warning(
                "scoring %s takes no rules; ignoring rules topic offset %d",
                type(self.scoring).__name__,
                r.offset,
            )
            return
        try:
            version = apply(r.key, r.value, r.offset)
        except Exception:  # noqa: BLE001 - a bad update must not stop the worker
            log.exception("ignoring invalid rules update at rules topic offset %d", r.offset)
            return
        log.warning(
            "rules version %s (rules topic offset %d) applies from input offsets %s",
            version,
            r.offset,
            orjson.dumps(self.processor.positions).decode(),
        )

    # -- agents ----------------------------------------------------------------

    def _records(self, events: Sequence[Any]) -> list[InRecord]:
        out = []
        for ev in events:
            m = ev.message
            ts = None if m.timestamp is None else int(m.timestamp * 1000)
            out.append(InRecord(m.topic, m.partition, m.offset, ts, m.key, m.value))
        return out

    async def _guarded(self, events: Sequence[Any], handle: Any) -> None:
        """Run ``handle()`` so that a batch is acknowledged only once its output is out.

        faust's ``take_events`` acks a batch when the agent body leaves it, even
        by an exception or a cancellation; a batch whose output is not all
        produced is marked as acknowledged-already so faust never commits its
        offsets, and it is consumed again after a restart.
        """
        try:
            await handle()
        except BaseException:
            for ev in events:
                ev.message.acked = True
            raise

    async def _emit_retrying(self, out: Output, records: Sequence[InRecord]) -> None:
        """Produce ``out``; broker errors are retried with backoff, never skipped."""
        delay = 0.1
        self._unemitted = True
        while True:
            try:
                await self._emit(out, records)
                break
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - retried; a batch is never dropped
                self._emit_failing = True
                log.exception(
                    "producing a batch of %d failed; retrying in %.1f s", len(records), delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._emit_failing = False
        self._unemitted = False

    async def _tx_agent(self, stream: Any) -> None:
        s = self.config.stream
        async for events in stream.take_events(s.max_batch_size, within=s.max_wait_ms / 1000.0):
            await self._guarded(events, lambda events=events: self._handle_tx(events))

    async def _handle_tx(self, events: Sequence[Any]) -> None:
        await self._policy_ready.wait()
        t_consumed = min((ev.message.time_in or time.time()) for ev in events)
        async with self._lock:
            records = self._records(self._current(events))
            if not records:
                return
            await self._replay_gaps(records)
            out = self.processor.process_transactions(records)
            await self._emit_retrying(out, records)
            self._observe(out, records, t_consumed)
            await self._maybe_checkpoint()

    async def _labels_agent(self, stream: Any) -> None:
        s = self.config.stream
        async for events in stream.take_events(s.max_batch_size, within=s.max_wait_ms / 1000.0):
            await self._guarded(events, lambda events=events: self._handle_labels(events))

    async def _handle_labels(self, events: Sequence[Any]) -> None:
        await self._policy_ready.wait()
        async with self._lock:
            records = self._records(self._current(events))
            if not records:
                return
            await self._replay_gaps(records, labels=True)
            out = self.processor.process_labels(records)
            await self._emit_retrying(out, records)
            self.metrics.consumed.labels(self.config.topics.labels.name).inc(len(records))
            self.metrics.dead_letters.labels(self.config.topics.labels.name).inc(
                len(out.dead_letters)
            )
            # Labels may wait for their transaction: checkpoint them as the bulk engine does.
            await self._maybe_checkpoint()

    async def _replay_gaps(self, records: Sequence[InRecord], labels: bool = False) -> None:
        """Bring the restored state up to the consumer's position (see module docs)."""
        first: dict[tuple[str, int], int] = {}
        for r in records:
            key = (r.topic, r.partition)
            if key not in first or r.offset < first[key]:
                first[key] = r.offset
        unknown = self.processor.unknown(first)
        if not unknown and not self.processor.gaps(first):
            return
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self.config.kafka),
            enable_auto_commit=False,
            isolation_level="read_committed" if self.exactly_once else "read_uncommitted",
        )
        await consumer.start()
        try:
            beginnings: dict[tuple[str, int], int] = {}
            if unknown:
                starts = await consumer.beginning_offsets(
                    [TopicPartition(t, p) for t, p in unknown]
                )
                beginnings = {(tp.topic, tp.partition): off for tp, off in starts.items()}
            gaps = self.processor.gaps(first, beginnings)
            for (topic, part), (start, stop) in sorted(gaps.items()):
                log.info("replaying %s[%d] offsets %d..%d into state", topic, part, start, stop)
                await self._read_range(consumer, topic, part, start, stop, labels=labels)
        finally:
            await consumer.stop()

    async def _read_range(
        self, consumer: Any, topic: str, part: int, start: int, stop: int, *, labels: bool
    ) -> None:
        """Advance the state (no output) by offsets ``[start, stop)`` of one partition."""
        from aiokafka import TopicPartition

        tp = TopicPartition(topic, part)
        consumer.assign([tp])
        consumer.seek(tp, start)
        while await consumer.position(tp) < stop:
            got = (await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)).get(tp, [])
            batch = [
                InRecord(topic, part, r.offset, r.timestamp, r.key, r.value)
                for r in got
                if r.offset < stop
            ]
            if labels:
                self.processor.process_labels(batch)
            else:
                self.processor.process_transactions(batch, emit=False)
            self.metrics.replayed.inc(len(batch))
        # Control records (transaction markers) leave holes: jump to stop.
        key = f"{topic}/{part}"
        self.processor.positions[key] = max(self.processor.positions.get(key, 0), stop)

    def _follow_clients(self) -> tuple[Any, Any]:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**aiokafka_kwargs(self.config.kafka))
        consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self.config.kafka),
            enable_auto_commit=False,
            isolation_level="read_committed" if self.exactly_once else "read_uncommitted",
        )
        return admin, consumer

    async def _catch_up(self) -> None:
        """Before deciding anything: every partition up to the group's committed offsets.

        One follow pass over all partitions, owned ones included (faust may
        have assigned them already; its agents wait for the policy, read
        after this): the restart gap ``[P, C)`` of every partition, also those that stay
        quiet after the restart (a labels partition whose labels were
        committed after the last snapshot would otherwise be replayed only
        when its next label arrives, and its labels missed until then).
        """
        admin, consumer = self._follow_clients()
        await admin.start()
        await consumer.start()
        try:
            await self._follow_once(admin, consumer)
        except Exception:  # noqa: BLE001 - the per-batch gap replay still covers it
            log.warning("catching up to the committed offsets failed", exc_info=True)
        finally:
            await consumer.stop()
            await admin.close()

    async def _follow_others(self) -> None:
        """Keep the feature state fed with the partitions other workers own.

        Every worker's state follows the whole transactions and labels topics
        (a replica, like a faust GlobalTable), but only up to the offsets the
        group has committed: records another worker has already decided. So
        merchant / device / IP features see every partition, and a partition
        handed over in a rebalance always starts at or after this replica's
        position. Owned partitions are followed too: for them the committed
        offset is ahead of this replica only just after a rebalance handed
        them over (their records were decided by the previous owner), and
        replaying that gap here, off the deciding path, means the first batch
        after a handover does not wait for it, and a handed-over partition
        that stays quiet does not show as lagging (the per-batch gap replay
        remains the backstop).
        """
        admin, consumer = self._follow_clients()
        await admin.start()
        await consumer.start()
        try:
            while not self._stopping():
                await asyncio.sleep(FOLLOW_INTERVAL_S)
                try:
                    await self._follow_once(admin, consumer)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - retried next round
                    log.warning("following other partitions failed; retrying", exc_info=True)
        finally:
            await consumer.stop()
            await admin.close()

    async def _follow_once(self, admin: Any, consumer: Any) -> None:
        from aiokafka import TopicPartition

        committed = await admin.list_consumer_group_offsets(self.group_id)
        t = self.config.topics
        for topic, labels in ((t.transactions.name, False), (t.labels.name, True)):
            for tp, meta in sorted(committed.items()):
                if tp.topic != topic or meta.offset < 0:
                    continue
                key = f"{tp.topic}/{tp.partition}"
                while True:
                    # A chunk per lock: a rebalance waits for the lock (_revoking),
                    # so a long catch-up must not hold it past the rebalance timeout.
                    async with self._lock:
                        pos = self.processor.positions.get(key)
                        if pos is None:
                            tp2 = TopicPartition(topic, tp.partition)
                            pos = (await consumer.beginning_offsets([tp2]))[tp2]
                        if meta.offset <= pos:
                            break
                        stop = min(meta.offset, pos + FOLLOW_CHUNK)
                        await self._read_range(
                            consumer, topic, tp.partition, pos, stop, labels=labels
                        )

    async def _emit(self, out: Output, records: Sequence[InRecord]) -> None:
        """Produce decisions and dead letters; in exactly-once mode with the offsets, atomically."""
        producer = self._producer
        t = self.config.topics
        if self.exactly_once:
            from aiokafka import TopicPartition

            offsets: dict[Any, int] = {}
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            async with producer.transaction():
                await self._send_all(out, t)
                await producer.send_offsets_to_transaction(offsets, self.group_id)
        else:
            await self._send_all(out, t)

    async def _send_all(self, out: Output, t: Any) -> None:
        """Produce decisions and dead letters as per-partition record batches.

        One ``send_batch`` per partition instead of one ``send`` per record
        (aiokafka's per-record path costs more than scoring a record). The
        partition is the default partitioner's (murmur2 of the key, computed
        for the whole batch by :func:`~riskflow.streams._partition.partitions`),
        so decisions land where a keyed ``send`` would put them.
        """
        await asyncio.gather(*await self._queue_all(out, t))

    async def _queue_all(self, out: Output, t: Any) -> list[Any]:
        """Hand ``out`` to the producer (see :meth:`_send_all`); its delivery futures."""
        futs: list[Any] = []
        if out.decisions:
            topic = t.decisions.name
            keys = list(map(str.encode, map(_TX_ID, out.decisions)))
            values = list(map(orjson.dumps, out.decisions))
            n = len(await self._producer.partitions_for(topic))
            await self._send_grouped(topic, keys, values, partitions(keys, n).tolist(), futs)
        if out.dead_letters:
            from aiokafka.partitioner import murmur2

            topic = t.dead_letter.name
            keys = [k for k, _ in out.dead_letters]
            n = len(await self._producer.partitions_for(topic))
            parts = [(murmur2(k) & 0x7FFFFFFF) % n if k else 0 for k in keys]
            values = [v for _, v in out.dead_letters]
            await self._send_grouped(topic, keys, values, parts, futs)
        return futs

    async def _send_grouped(
        self,
        topic: str,
        keys: Sequence[bytes | None],
        values: Sequence[bytes],
        parts: Sequence[int],
        futs: list[Any],
    ) -> None:
        """Append each record to its partition's open batch; send batches as they fill."""
        producer = self._producer
        open_: dict[int, Any] = {}
        for key, value, part in zip(keys, values, parts, strict=True):
            batch = open_.get(part)
            if batch is None:
                batch = open_[part] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                futs.append(await producer.send_batch(batch, topic, partition=part))
                batch = open_[part] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a {len(value)}-byte record does not fit a producer batch")
        for part, batch in open_.items():
            if batch.record_count():
                futs.append(await producer.send_batch(batch, topic, partition=part))

    def _observe(self, out: Output, records: Sequence[InRecord], t_consumed: float) -> None:
        m = self.metrics
        now_ms = time.time() * 1000
        m.consumed.labels(self.config.topics.transactions.name).inc(len(records))
        m.dead_letters.labels(self.config.topics.transactions.name).inc(len(out.dead_letters))
        m.fallbacks.inc(out.fallback)
        m.skipped.inc(out.skipped)
        if not out.decisions:
            return
        m.batches.inc()
        m.batch_size.observe(len(out.decisions))
        for stage, ms in out.timings_ms.items():
            m.stage_ms.labels(stage).observe(ms)
        # Columns by C-level passes (itemgetter), not a Python loop per decision.
        for name, count in collections.Counter(map(_DECISION, out.decisions)).items():
            m.decisions.labels(name).inc(count)
        scores = list(map(_SCORE, out.decisions))
        if None in scores:
            scores = [s for s in scores if s is not None]
        observe_many(m.scores, np.asarray(scores, dtype=np.float64))
        src = list(map(_SOURCE_TS, out.decisions))
        if None in src:
            src = [ts for ts in src if ts is not None]
        lat = now_ms - np.asarray(src, dtype=np.float64)
        observe_many(m.latency_event, np.maximum(lat, 0.0))
        consume_ms = max(now_ms - t_consumed * 1000, 0.0)
        observe_many(m.latency_consume, np.full(len(out.decisions), consume_ms))

    def _maybe_prepare_growth(self) -> None:
        """When a state table nears its growth, a thread makes the grown arrays ready.

        The growth itself rebuilds the table on the event loop; into memory
        never touched that took 0.5-1.5 s here (the pages fault in one by one),
        into memory a thread touched ahead ~0.1 s.
        """
        if self._growing is not None and not self._growing.done():
            return
        if self._growing is not None and self._growing.exception() is not None:
            log.warning("preparing a state table's growth failed: %r", self._growing.exception())
        self._growing = None
        if self.processor.growth_due_soon():
            self._growing = asyncio.ensure_future(asyncio.to_thread(self.processor.prepare_growth))

    async def _quiesce(self) -> None:
        """Before a capture (lock held): until no decided output is in flight.

        Here every batch's output is produced before the lock is released, so
        there is nothing to wait for; the bulk engine's at-least-once pipeline
        overrides it.
        """

    async def _maybe_checkpoint(self, force: bool = False) -> None:
        """Checkpoint when due: capture the state (consistent with the positions), write it in a thread.

        Capturing is synchronous (array copies, under the worker's lock, after
        a thread made the buffers ready: :meth:`_prepare_then_capture`);
        serialising, writing and fsyncing hundreds of MB is not done on the
        event loop, so decisions go on meanwhile. One write at a time: a
        checkpoint due while the last is still being written waits for the
        next batch. ``force`` (shutdown) captures now and waits for the write.
        """
        if not force:
            self._maybe_prepare_growth()  # after every batch, like this check
        now = time.monotonic()
        writing = self._writing
        if writing is not None and not writing.done():
            if not force:
                return
            await writing
        if writing is not None and writing.done() and writing.exception() is not None:
            log.error("writing a state snapshot failed: %r", writing.exception())
            self._writing = None
        if not force and now - self._last_checkpoint < self.checkpoint_interval_s:
            return
        if force:
            await self._settle_prepare()
            await self._quiesce()
            await self._capture(now)
        elif self.fork_capture:
            # Nothing to prepare: the fork freezes the state where it is (the
            # lock is held, and a batch's output is emitted before this runs).
            await self._quiesce()
            if not self._unemitted:
                self._capture(now)
        elif self._preparing is None:
            self._preparing = asyncio.ensure_future(self._prepare_then_capture())

    async def _prepare_then_capture(self) -> None:
        """A due checkpoint: a thread makes the capture's buffers ready, then the capture runs.

        New memory faulted in during the capture, on the event loop, stalled
        decisions for 0.3-1 s whenever the tables had grown since the last one.
        """
        try:
            self._prep_thread = asyncio.ensure_future(
                asyncio.to_thread(self.processor.prepare_snapshot)
            )
            await self._prep_thread
        except Exception:  # noqa: BLE001 - the capture allocates what is missing
            log.warning("preparing a state snapshot failed", exc_info=True)
        finally:
            self._prep_thread = None
        async with self._lock:
            self._preparing = None
            await self._quiesce()
            writing = self._writing
            if self._unemitted or (writing is not None and not writing.done()):
                return
            self._capture(time.monotonic())

    async def _settle_prepare(self) -> None:
        """At shutdown (lock held): let a preparing thread finish, drop its pending capture."""
        if self._prep_thread is not None:
            with contextlib.suppress(Exception):
                await self._prep_thread
        if self._preparing is not None:
            self._preparing.cancel()
            self._preparing = None

    def _capture(self, now: float) -> asyncio.Future[None]:
        """Capture the state; it is written meanwhile (the returned future).

        With :attr:`fork_capture` a forked child writes the snapshot from the
        memory the fork froze and the event loop waits only for the fork;
        otherwise the tables are copied here and written in a thread.
        """
        self._last_checkpoint = now
        t0 = time.perf_counter()
        writing = None
        if self.fork_capture:
            try:
                writing = self._fork_write()
            except OSError as exc:  # e.g. ENOMEM under strict overcommit
                log.warning(
                    "forking the snapshot writer failed (%s); copying the state instead "
                    "from now on (stream.snapshot_capture = 'copy')",
                    exc,
                )
                self.fork_capture = False
        if writing is None:
            later = self.processor.snapshot_later()
            writing = asyncio.ensure_future(asyncio.to_thread(self._write_snapshot, later))
        self.metrics.capture_ms.observe((time.perf_counter() - t0) * 1000)
        self._writing = writing
        return writing

    def _write_snapshot(self, later: Any) -> None:
        self._write_snapshot_file(later)
        self.metrics.checkpoints.inc()

    def _write_snapshot_file(self, later: Any) -> None:
        """Write, fsync and atomically install a snapshot (a temporary file per process)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Per process: a writer orphaned by a killed worker may still be
        # writing while the restarted worker's own writer starts.
        tmp = self.snapshot_path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            later.write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.snapshot_path)

    def _fork_write(self) -> asyncio.Future[None]:
        """Fork a child that writes the state as it is now; the future ends with the child.

        The child shares the parent's pages copy-on-write, so what it writes is
        the state at the fork, consistent with the positions, while the parent
        goes on deciding. It runs no event loop, no thread and no logging (only
        the forking thread exists in it) and leaves with ``os._exit``.
        """
        later = self.processor.snapshot_later(copy_tables=False)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; tested through the snapshot it writes
            code = 1
            try:
                _forget_parent_signals()
                self._write_snapshot_file(later)
                code = 0
            except BaseException:  # noqa: BLE001 - reported on stderr, then the exit code
                with contextlib.suppress(BaseException):
                    os.write(2, traceback.format_exc().encode())
            finally:
                os._exit(code)
        return asyncio.ensure_future(self._reap_writer(pid))

    async def _reap_writer(self, pid: int) -> None:
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"the snapshot writer (pid {pid}) exited with status {code}")
        self.metrics.checkpoints.inc()

    async def _probe_loop_lag(self) -> None:
        """Observe how late a timer fires every :data:`LOOP_PROBE_S`: the loop's stalls.

        Whatever holds the event loop (a large batch, a state capture, a table
        growing, a GC pass) delays every decision behind it; this shows how
        long, whatever the cause.
        """
        while not self._stopping():
            t0 = time.perf_counter()
            await asyncio.sleep(LOOP_PROBE_S)
            late = time.perf_counter() - t0 - LOOP_PROBE_S
            self.metrics.loop_lag_ms.observe(max(late, 0.0) * 1000)

    async def _probe_lag(self) -> None:
        consumer = getattr(self, "_policy_consumer_obj", None)
        if consumer is None:
            return
        from aiokafka import TopicPartition

        tps = []
        for key in list(self.processor.positions):
            topic, _, part = key.rpartition("/")
            tps.append(TopicPartition(topic, int(part)))
        if not tps:
            return
        try:
            ends = await consumer.end_offsets(tps)
        except Exception:  # noqa: BLE001 - lag is best effort
            return
        for tp, end in ends.items():
            pos = self.processor.positions.get(f"{tp.topic}/{tp.partition}", end)
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(end - pos, 0))

    # -- web ---------------------------------------------------------------------

    async def _metrics_view(self, web: Any, request: Any) -> Any:
        from prometheus_client import generate_latest

        return web.bytes(generate_latest(self.metrics.registry), content_type="text/plain")

    async def health(self) -> dict[str, Any]:
        """Readiness: broker answering, model loaded, policy read, partitions assigned."""
        broker = False
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=2.0)
                broker = True
            except Exception:  # noqa: BLE001
                broker = False
        try:
            assigned = bool(self._assignment())
        except Exception:  # noqa: BLE001
            assigned = False
        checks = {
            "broker": broker,
            "model_loaded": self._model_loaded,
            "policy_loaded": self._policy_ready.is_set(),
            "assigned": assigned,
            "producing": not self._emit_failing,
        }
        return {"ready": all(checks.values()), **checks}

    async def _health_view(self, web: Any, request: Any) -> Any:
        h = await self.health()
        return web.json(h, status=200 if h["ready"] else 503)

    # -- running -----------------------------------------------------------------

    def run(self, loglevel: str = "info") -> None:
        """Run until SIGTERM / SIGINT (blocks)."""
        from faust import Worker

        worker = Worker(self.app, loglevel=loglevel, quiet=True)
        worker.execute_from_commandline()


def build_app(
    config: Config,
    scoring: Scoring | None = None,
    *,
    instance_id: str = "0",
    web_port: int | None = None,
    checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    engine: str = "faust",
) -> RiskWorker:
    """The stream worker for ``config``; ``scoring`` defaults to the trained pipeline.

    See :func:`riskflow.streams.scoring.load_scoring` for the default.
    ``engine="bulk"`` feeds the same worker from aiokafka batches instead of
    faust agents (:mod:`riskflow.streams.bulk`).
    """
    if scoring is None:
        from riskflow.streams.scoring import load_scoring

        scoring = load_scoring(config)
    pin_threads(config.model.num_threads)
    if engine not in ("faust", "bulk"):
        raise ValueError(
            f"The 'engine' parameter must be 'faust' or 'bulk'. Got {engine!r} instead."
        )
    cls = RiskWorker
    if engine == "bulk":
        from riskflow.streams.bulk import BulkWorker

        cls = BulkWorker
    return cls(
        config,
        scoring,
        instance_id=instance_id,
        web_port=web_port,
        checkpoint_interval_s=checkpoint_interval_s,
    )


def freeze_heap() -> None:
    """Exempt every object alive now from the cyclic garbage collector (``gc.freeze``).

    After start-up the worker holds ~375,000 GC-tracked objects (torch,
    LightGBM, faust, the loaded model) that live as long as the process. A
    full (generation 2) collection scans them all, ~250 ms on the 2-core bench
    box, and the decisions that queue up meanwhile show as P99 latency. Frozen,
    they are never scanned; what the stream allocates afterwards is collected
    as usual. Reference counting still frees frozen objects; only reference
    cycles among them are never collected, so call this once the long-lived
    state is loaded.
    """
    gc.collect()
    gc.freeze()


#: Fork-based checkpoints need fork(2) with copy-on-write (Linux).
_CAN_FORK = hasattr(os, "fork") and sys.platform.startswith("linux")


def _forget_parent_signals() -> None:  # pragma: no cover - runs in the forked writer
    """In a forked snapshot writer: default signal handling, no wake-up of the parent's loop.

    The parent's event loop handles SIGTERM / SIGINT through a wake-up file
    descriptor the child shares; a signal to the child must not reach it.
    """
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, signal.SIG_DFL)


def pin_threads(num_threads: int) -> None:
    """Cap BLAS (numpy) and, when loaded, torch at ``num_threads`` threads, process-wide.

    A worker scores micro-batches: threads hand-offs cost more than they win
    there, and the worker shares the cores with the broker and other workers
    (measured on the 2-core box under load: the MLP member's 512-row batch
    took 73 ms with the default BLAS threads, 29 ms with one). LightGBM takes
    its thread count per call from the model (``model.num_threads``). Unlike
    :func:`riskflow.models.pin_threads` this never imports torch itself.
    """
    import sys

    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=num_threads, user_api="blas")
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
