"""Kafka client settings built from the config (no network)."""

from __future__ import annotations

import ssl
import warnings

import pytest

from riskflow.config import KafkaConfig, KafkaSecurity, load_config
from riskflow.kafka import (
    admin_kwargs,
    aiokafka_kwargs,
    client_kwargs,
    compression_type,
    consumer_kwargs,
    no_broker_message,
    producer_kwargs,
)

SASL = KafkaSecurity(
    protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="svc",
    sasl_password="s3cret",
    ssl_check_hostname=False,
)


def test_plaintext_defaults():
    cfg = KafkaConfig(bootstrap_servers="a:1,b:2", client_id="me")
    assert client_kwargs(cfg) == {
        "bootstrap_servers": ["a:1", "b:2"],
        "client_id": "me",
        "security_protocol": "PLAINTEXT",
    }
    assert admin_kwargs(cfg, request_timeout_ms=5) == {
        **client_kwargs(cfg),
        "request_timeout_ms": 5,
    }


def test_producer_is_durable_and_overridable():
    cfg = KafkaConfig()
    assert producer_kwargs(cfg)["acks"] == "all"
    assert producer_kwargs(cfg, acks=1, linger_ms=5)["acks"] == 1


def test_consumer_reads_committed_from_the_start():
    kw = consumer_kwargs(KafkaConfig(), "g1")
    assert kw["group_id"] == "g1"
    assert kw["isolation_level"] == "read_committed"
    assert kw["auto_offset_reset"] == "earliest"
    assert consumer_kwargs(KafkaConfig(), isolation_level="read_uncommitted")[
        "isolation_level"
    ] == ("read_uncommitted")


def test_sasl_ssl_for_both_libraries():
    cfg = KafkaConfig(bootstrap_servers="k:9093", security=SASL)
    kp = client_kwargs(cfg)
    assert kp["security_protocol"] == "SASL_SSL"
    assert kp["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kp["sasl_plain_username"], kp["sasl_plain_password"]) == ("svc", "s3cret")
    assert kp["ssl_check_hostname"] is False

    aio = aiokafka_kwargs(cfg)
    assert aio["bootstrap_servers"] == "k:9093"
    assert aio["sasl_plain_password"] == "s3cret"
    assert isinstance(aio["ssl_context"], ssl.SSLContext)
    assert aio["ssl_context"].check_hostname is False
    assert "ssl_check_hostname" not in aio  # aiokafka takes the context only


def test_aiokafka_plaintext_has_no_tls_or_sasl():
    assert aiokafka_kwargs(KafkaConfig(), linger_ms=5) == {
        "bootstrap_servers": "localhost:9092",
        "client_id": "riskflow",
        "security_protocol": "PLAINTEXT",
        "linger_ms": 5,
    }


def test_compression_only_when_the_codec_is_installed():
    import importlib.util

    expected = {"kafka-python": "lz4", "aiokafka": "lz4"}
    if importlib.util.find_spec("lz4") is None:
        expected["kafka-python"] = None
    if importlib.util.find_spec("cramjam") is None:
        expected["aiokafka"] = None
    assert compression_type("aiokafka") == expected["aiokafka"]
    with warnings.catch_warnings():  # kafka-python 3.0's import-time read_text deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        assert compression_type("kafka-python") == expected["kafka-python"]


def test_no_broker_message_says_how_to_fix():
    msg = no_broker_message(KafkaConfig(bootstrap_servers="h:1"), "refused")
    assert msg.startswith("No Kafka broker at h:1 (refused)")
    assert "make broker-start" in msg and "RISKFLOW_KAFKA__BOOTSTRAP_SERVERS" in msg


@pytest.mark.parametrize("role", ["policy", "labels", "dead_letter"])
def test_renaming_a_topic_keeps_its_role_defaults(role):
    """`riskflow topics create` relies on this: an env rename must not reset partitions etc."""
    default = load_config(env={}).topics.all()[role]
    renamed = load_config(env={f"RISKFLOW_TOPICS__{role.upper()}__NAME": "x-1"}).topics.all()[role]
    assert renamed.name == "x-1"
    assert renamed.model_dump(exclude={"name"}) == default.model_dump(exclude={"name"})


def test_docstring_examples_run():
    import doctest

    import riskflow.kafka

    result = doctest.testmod(riskflow.kafka)
    assert result.attempted >= 2 and result.failed == 0


def test_faust_settings():
    from riskflow.kafka import faust_settings

    plain = faust_settings(KafkaConfig(bootstrap_servers="a:1,b:2"))
    assert plain == {"broker": "kafka://a:1;kafka://b:2", "broker_credentials": None}

    creds = faust_settings(KafkaConfig(security=SASL))["broker_credentials"]
    assert type(creds).__name__ == "SASLCredentials"
    assert (creds.username, creds.password) == ("svc", "s3cret")
    assert creds.protocol.value == "SASL_SSL" and creds.ssl_context is not None
