"""Kafka transactions work on the local broker.

The stream processor's exactly-once mode writes decisions and commits input
offsets in one transaction; these tests check the broker settings that needs
(transaction log replication 1, min ISR 1) and both client libraries.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from riskflow.config import KafkaConfig
from riskflow.kafka import aiokafka_kwargs, producer_kwargs

pytestmark = pytest.mark.kafka


def test_kafka_python_commit_and_abort(kafka_bootstrap, new_topic, consume):
    from kafka import KafkaProducer

    topic = new_topic(partitions=2)
    producer = KafkaProducer(
        **producer_kwargs(
            KafkaConfig(bootstrap_servers=kafka_bootstrap),
            transactional_id=f"test-tx-{uuid.uuid4().hex[:8]}",
        )
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for i in range(3):
            producer.send(topic, key=b"k", value=f"committed-{i}".encode())
        producer.commit_transaction()

        producer.begin_transaction()
        for i in range(2):
            producer.send(topic, key=b"k", value=f"aborted-{i}".encode())
        producer.flush()  # the aborted records really reach the log
        producer.abort_transaction()

        producer.begin_transaction()
        producer.send(topic, key=b"j", value=b"committed-3")
        producer.commit_transaction()
    finally:
        producer.close()

    committed = consume(topic, 4, settle=1.0, isolation_level="read_committed")
    assert sorted(r.value for r in committed) == [
        b"committed-0",
        b"committed-1",
        b"committed-2",
        b"committed-3",
    ]
    everything = consume(topic, 6, settle=0.5, isolation_level="read_uncommitted")
    assert sorted(r.value for r in everything) == sorted(
        [b"aborted-0", b"aborted-1"] + [f"committed-{i}".encode() for i in range(4)]
    )


def test_aiokafka_consume_transform_produce_exactly_once(
    kafka_bootstrap, new_topic, new_group, consume
):
    """Read input, write output and commit the input offsets in one transaction.

    The first attempt aborts after writing: its output must stay invisible
    and its offsets uncommitted, so the retry processes the same input again.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    source, sink = new_topic(partitions=1), new_topic(partitions=1)
    group = new_group()
    config = KafkaConfig(bootstrap_servers=kafka_bootstrap)

    async def main() -> int:
        feeder = AIOKafkaProducer(**aiokafka_kwargs(config))
        await feeder.start()
        try:
            for i in range(10):
                await feeder.send(source, value=f"in-{i}".encode())
            await feeder.flush()
        finally:
            await feeder.stop()

        producer = AIOKafkaProducer(
            **aiokafka_kwargs(config, transactional_id=f"test-eos-{uuid.uuid4().hex[:8]}")
        )
        await producer.start()
        tp = TopicPartition(source, 0)
        try:
            for attempt in ("abort", "commit"):
                consumer = AIOKafkaConsumer(
                    **aiokafka_kwargs(
                        config,
                        group_id=group,
                        enable_auto_commit=False,
                        auto_offset_reset="earliest",
                        isolation_level="read_committed",
                    )
                )
                await consumer.start()
                try:
                    consumer.assign([tp])
                    got = []
                    async with asyncio.timeout(20):
                        while len(got) < 10:
                            got.extend((await consumer.getmany(tp, timeout_ms=500)).get(tp, []))
                    assert [r.value for r in got] == [f"in-{i}".encode() for i in range(10)]
                    await producer.begin_transaction()
                    for r in got:
                        await producer.send(sink, value=r.value.replace(b"in", b"out"))
                    await producer.send_offsets_to_transaction({tp: got[-1].offset + 1}, group)
                    if attempt == "abort":
                        await producer.abort_transaction()
                    else:
                        await producer.commit_transaction()
                finally:
                    await consumer.stop()
        finally:
            await producer.stop()

        checker = AIOKafkaConsumer(**aiokafka_kwargs(config, group_id=group))
        await checker.start()
        try:
            return await checker.committed(tp)
        finally:
            await checker.stop()

    committed_offset = asyncio.run(main())
    assert committed_offset == 10
    out = consume(sink, 10, settle=1.0, isolation_level="read_committed")
    assert sorted(r.value for r in out) == sorted(f"out-{i}".encode() for i in range(10))
