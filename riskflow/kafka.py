"""Kafka client settings built from the one config object.

Every Kafka client riskflow opens (kafka-python for the CLI and tests,
aiokafka / faust for the stream processor) takes its connection settings from
:class:`~riskflow.config.KafkaConfig` through these functions, so security
settings (SASL, TLS) are written once.

>>> from riskflow.config import KafkaConfig
>>> kw = producer_kwargs(KafkaConfig(bootstrap_servers="k1:9092,k2:9092"), linger_ms=5)
>>> kw["bootstrap_servers"], kw["acks"], kw["linger_ms"], kw["security_protocol"]
(['k1:9092', 'k2:9092'], 'all', 5, 'PLAINTEXT')
>>> sorted(aiokafka_kwargs(KafkaConfig()))
['bootstrap_servers', 'client_id', 'security_protocol']
"""

from __future__ import annotations

import socket
import time
from typing import Any

from riskflow.config import KafkaConfig
from riskflow.errors import BrokerError

__all__ = [
    "client_kwargs",
    "producer_kwargs",
    "consumer_kwargs",
    "admin_kwargs",
    "aiokafka_kwargs",
    "faust_settings",
    "compression_type",
    "wait_for_broker",
    "no_broker_message",
]


def client_kwargs(config: KafkaConfig) -> dict[str, Any]:
    """Settings every kafka-python client takes: servers, client id, security."""
    return {
        "bootstrap_servers": list(config.bootstrap_servers),
        "client_id": config.client_id,
        **config.security.kafka_python_kwargs(),
    }


def producer_kwargs(config: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """``KafkaProducer(**producer_kwargs(cfg))``: durable by default.

    ``acks="all"`` with the producer's idempotence (kafka-python's default) so
    a retried send never duplicates a transaction. ``overrides`` win.
    """
    return {**client_kwargs(config), "acks": "all", **overrides}


def consumer_kwargs(
    config: KafkaConfig, group_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """``KafkaConsumer(*topics, **consumer_kwargs(cfg, group))``.

    Reads from the earliest offset when the group has none, and only committed
    records of transactional producers (``read_committed``), since riskflow's
    exactly-once mode writes decisions in transactions.
    """
    return {
        **client_kwargs(config),
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        **overrides,
    }


def admin_kwargs(config: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """``KafkaAdminClient(**admin_kwargs(cfg))``."""
    return {**client_kwargs(config), **overrides}


def aiokafka_kwargs(config: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """Settings for aiokafka's ``AIOKafkaProducer`` / ``AIOKafkaConsumer`` / admin.

    aiokafka takes TLS as an ``ssl_context`` (built from the configured files)
    instead of file paths.
    """
    sec = config.security
    kw: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap,
        "client_id": config.client_id,
        "security_protocol": sec.protocol,
    }
    if sec.sasl_mechanism:
        kw["sasl_mechanism"] = sec.sasl_mechanism
        kw["sasl_plain_username"] = sec.sasl_username
        kw["sasl_plain_password"] = (
            sec.sasl_password.get_secret_value() if sec.sasl_password else None
        )
    ctx = sec.ssl_context()
    if ctx is not None:
        kw["ssl_context"] = ctx
    return {**kw, **overrides}


def faust_settings(config: KafkaConfig) -> dict[str, Any]:
    """``faust.App(id, **faust_settings(cfg))``: the broker URLs and credentials.

    faust picks the security protocol from the credentials object: SASL with
    an SSL context is SASL_SSL, without one SASL_PLAINTEXT; SSL alone is
    ``SSLCredentials``.

    >>> faust_settings(KafkaConfig(bootstrap_servers="k1:9092,k2:9092"))
    {'broker': 'kafka://k1:9092;kafka://k2:9092', 'broker_credentials': None}
    """
    sec = config.security
    credentials: Any = None
    if sec.protocol != "PLAINTEXT":
        from faust.auth import SASLCredentials, SSLCredentials

        ctx = sec.ssl_context()
        if sec.sasl_mechanism:
            credentials = SASLCredentials(
                username=sec.sasl_username,
                password=sec.sasl_password.get_secret_value() if sec.sasl_password else None,
                mechanism=sec.sasl_mechanism,
                ssl_context=ctx,
            )
        else:
            credentials = SSLCredentials(ctx)
    return {
        "broker": ";".join(f"kafka://{hp}" for hp in config.bootstrap_servers),
        "broker_credentials": credentials,
    }


def compression_type(client: str = "kafka-python") -> str | None:
    """``"lz4"`` if ``client`` ("kafka-python" or "aiokafka") can compress with it, else None.

    LZ4 costs little CPU for JSON records that compress 3-5x; kafka-python
    needs the ``lz4`` package for it, aiokafka ``cramjam``. Without them,
    records go uncompressed rather than failing.
    """
    try:
        if client == "aiokafka":
            from aiokafka.codec import has_lz4
        else:
            from kafka.codec import has_lz4
    except ImportError:  # pragma: no cover - both are dependencies
        return None
    return "lz4" if has_lz4() else None


def no_broker_message(config: KafkaConfig, detail: object = None) -> str:
    """What to tell a user when no broker answers at the configured address."""
    where = config.bootstrap
    why = f" ({detail})" if detail else ""
    return (
        f"No Kafka broker at {where}{why}: start one with `make broker-start` "
        "(or deploy/kafka/broker.sh start) or set RISKFLOW_KAFKA__BOOTSTRAP_SERVERS "
        "to your cluster."
    )


def wait_for_broker(config: KafkaConfig, timeout: float = 10.0) -> dict[str, Any]:
    """Block until the cluster answers a metadata request; return its description.

    Returns kafka-python's ``describe_cluster()`` dict (``cluster_id``,
    ``controller_id``, ``brokers``).

    Raises
    ------
    BrokerError
        If no broker answered within ``timeout`` seconds.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        # A plain TCP probe first: cheaper than a client, and kafka-python
        # 3.0 leaks the socket of a refused connection.
        refused = _tcp_refusal(config.bootstrap_servers, min(max(remaining, 0.2), 2.0))
        if refused is not None:
            last = refused
        else:
            remaining_ms = max(int((deadline - time.monotonic()) * 1000), 500)
            try:
                admin = KafkaAdminClient(
                    **admin_kwargs(
                        config, bootstrap_timeout_ms=remaining_ms, request_timeout_ms=remaining_ms
                    )
                )
                try:
                    cluster: dict[str, Any] = admin.describe_cluster()
                finally:
                    admin.close()
                if cluster.get("brokers"):
                    return cluster
                last = None
            except (KafkaError, OSError) as exc:
                last = exc
        if time.monotonic() >= deadline:
            detail = (str(last) or type(last).__name__) if last else "no live broker in metadata"
            raise BrokerError(no_broker_message(config, detail)) from last
        time.sleep(0.2)


def _tcp_refusal(servers: tuple[str, ...], timeout: float) -> OSError | None:
    """None if any bootstrap server accepts a TCP connection, else the last error."""
    last: OSError | None = None
    for hostport in servers:
        host, _, port = hostport.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return None
        except OSError as exc:
            last = OSError(exc.errno, f"{hostport}: {exc.strerror or exc}")
    return last
