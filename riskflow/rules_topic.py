"""Read and write the compacted rules topic (rule sets and list entries) from the CLI.

Workers follow the topic themselves (:mod:`riskflow.streams.app`); this module
is what ``riskflow rules`` and ``riskflow lists`` use: publish one record, or
read the topic from its beginning to its end into a
:class:`~riskflow.policies.rules.LiveRules`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from riskflow.config import Config
from riskflow.errors import BrokerError

__all__ = ["publish", "read_current"]

#: Seconds to wait for the broker to acknowledge a record.
_SEND_TIMEOUT_S = 30.0
#: Seconds to read the topic to its end before giving up.
_READ_TIMEOUT_S = 30.0


def publish(config: Config, key: bytes, value: bytes | None) -> int:
    """Send one record (value None: a tombstone) and return its offset."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from riskflow.kafka import no_broker_message, producer_kwargs, wait_for_broker

    wait_for_broker(config.kafka, timeout=5.0)
    producer = KafkaProducer(**producer_kwargs(config.kafka))
    try:
        meta = producer.send(config.topics.rules.name, value=value, key=key).get(
            timeout=_SEND_TIMEOUT_S
        )
    except KafkaError as exc:
        raise BrokerError(
            f"Publishing to {config.topics.rules.name!r} failed: {exc}. "
            "Create the topic with `riskflow topics create`. " + no_broker_message(config.kafka)
        ) from exc
    finally:
        producer.close(timeout=5)
    return int(meta.offset)


def read_current(config: Config, feature_names: Sequence[str] = ()) -> tuple[object, int]:
    """The rules topic read to its end: ``(LiveRules, records read)``."""
    from kafka import KafkaConsumer, TopicPartition

    from riskflow.kafka import consumer_kwargs, wait_for_broker
    from riskflow.policies.rules import LiveRules

    wait_for_broker(config.kafka, timeout=5.0)
    topic = config.topics.rules.name
    consumer = KafkaConsumer(**consumer_kwargs(config.kafka, enable_auto_commit=False))
    live = LiveRules(feature_names)
    n = 0
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise BrokerError(
                f"Rules topic {topic!r} does not exist; create it with `riskflow topics create`."
            )
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + _READ_TIMEOUT_S
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise BrokerError(f"Reading {topic!r} to its end took over {_READ_TIMEOUT_S} s.")
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    # Lenient: a record this version cannot read is skipped, as workers do.
                    try:
                        live.apply_update(r.key, r.value, r.offset)
                    except Exception:  # noqa: BLE001
                        continue
                    n += 1
    finally:
        consumer.close()
    return live, n
