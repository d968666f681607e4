"""Both Kafka client libraries riskflow uses talk to the local broker."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from riskflow.config import KafkaConfig
from riskflow.errors import BrokerError
from riskflow.kafka import (
    aiokafka_kwargs,
    consumer_kwargs,
    producer_kwargs,
    wait_for_broker,
)

pytestmark = pytest.mark.kafka


def test_wait_for_broker_describes_the_cluster(kafka_bootstrap):
    cluster = wait_for_broker(KafkaConfig(bootstrap_servers=kafka_bootstrap), timeout=10)
    assert cluster["brokers"], cluster
    assert cluster["cluster_id"]


def test_wait_for_broker_names_the_fix_when_nothing_listens():
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(
        BrokerError, match=r"No Kafka broker at 127\.0\.0\.1:\d+.*make broker-start"
    ):
        wait_for_broker(KafkaConfig(bootstrap_servers=f"127.0.0.1:{port}"), timeout=1.0)
    assert time.monotonic() - t0 < 10


def test_kafka_python_round_trip_keeps_per_key_order(kafka_bootstrap, new_topic, new_group):
    from kafka import KafkaConsumer, KafkaProducer

    topic = new_topic(partitions=3)
    config = KafkaConfig(bootstrap_servers=kafka_bootstrap)
    producer = KafkaProducer(**producer_kwargs(config, linger_ms=5))
    sent = [(f"card{i % 7}".encode(), f"v{i}".encode()) for i in range(60)]
    for key, value in sent:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    # A real group join, as the stream processor does.
    consumer = KafkaConsumer(
        topic, **consumer_kwargs(config, new_group(), consumer_timeout_ms=15_000)
    )
    got = []
    for rec in consumer:
        got.append(rec)
        if len(got) == len(sent):
            break
    consumer.close()

    assert sorted((r.key, r.value) for r in got) == sorted(sent)
    by_key: dict[bytes, set[int]] = {}
    for r in got:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in by_key.values()), by_key  # one key, one partition
    for key in by_key:  # and in send order within it
        mine = [int(r.value[1:]) for r in sorted(got, key=lambda r: r.offset) if r.key == key]
        assert mine == sorted(mine)


def test_aiokafka_round_trip(kafka_bootstrap, new_topic, new_group):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = new_topic(partitions=2)
    config = KafkaConfig(bootstrap_servers=kafka_bootstrap)

    async def main() -> list[tuple[bytes, bytes]]:
        producer = AIOKafkaProducer(**aiokafka_kwargs(config, acks="all"))
        await producer.start()
        try:
            for i in range(40):
                await producer.send(topic, key=f"k{i % 5}".encode(), value=f"v{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            **aiokafka_kwargs(
                config,
                group_id=new_group(),
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            ),
        )
        await consumer.start()
        got: list[tuple[bytes, bytes]] = []
        try:
            async with asyncio.timeout(20):
                while len(got) < 40:
                    batches = await consumer.getmany(timeout_ms=500)
                    for recs in batches.values():
                        got.extend((r.key, r.value) for r in recs)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(main())
    assert sorted(got) == sorted((f"k{i % 5}".encode(), f"v{i}".encode()) for i in range(40))


def test_kafka_python_and_aiokafka_agree_on_partitions(kafka_bootstrap, new_topic, consume):
    """Both libraries (and riskflow.produce) must route a card to the same partition."""
    from aiokafka import AIOKafkaProducer
    from kafka import KafkaProducer

    from riskflow.produce import partition_for

    topic = new_topic(partitions=6)
    config = KafkaConfig(bootstrap_servers=kafka_bootstrap)
    keys = [f"tok_{i:04d}".encode() for i in range(30)]
    producer = KafkaProducer(**producer_kwargs(config))
    for k in keys:
        producer.send(topic, key=k, value=b"kp")
    producer.flush()
    producer.close()

    async def send_aio() -> None:
        p = AIOKafkaProducer(**aiokafka_kwargs(config))
        await p.start()
        try:
            for k in keys:
                await p.send(topic, key=k, value=b"aio")
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(send_aio())
    records = consume(topic, 2 * len(keys))
    assert len(records) == 2 * len(keys)
    placed: dict[bytes, set[int]] = {}
    for r in records:
        placed.setdefault(r.key, set()).add(r.partition)
    for k in keys:
        assert placed[k] == {partition_for(k, 6)}, k
