"""Fixtures for tests against a real Apache Kafka broker.

Where the broker comes from, in order:

1. ``RISKFLOW_TEST_BOOTSTRAP`` (``host:port[,host:port]``): that cluster, which
   must answer.
2. The local broker on ``localhost:${RISKFLOW_KAFKA_PORT:-9092}`` if it answers
   (``make broker-start``).
3. Otherwise one is started with ``deploy/kafka/broker.sh start`` and stopped
   at the end of the session (only if this session started it).

If no broker can be had, the tests fail when ``CI`` is true (a CI run must
never pass by skipping its broker tests) and are skipped with the reason
otherwise.

Every test gets its own uuid-named topics (``new_topic``) and consumer groups
(``new_group``), so tests never see each other's records.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# kafka-python 3.0 loads its protocol schemas with importlib.resources.read_text,
# deprecated on Python 3.11/3.12, once at import; the warning names
# importlib, not kafka, so pyproject's "kafka.*" filter misses it.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
BROKER_SCRIPT = ROOT / "deploy" / "kafka" / "broker.sh"
#: A first start may download the Kafka jars through Maven before starting.
_START_TIMEOUT_S = 300


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _no_broker(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI needs a Kafka broker for the integration tests: {reason}", pytrace=False)
    pytest.skip(f"no Kafka broker: {reason}")


def _tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _answers(bootstrap: str, timeout: float) -> str | None:
    """None if the cluster answers a metadata request, else why not."""
    from riskflow.config import KafkaConfig
    from riskflow.errors import BrokerError
    from riskflow.kafka import wait_for_broker

    try:
        wait_for_broker(KafkaConfig(bootstrap_servers=bootstrap), timeout=timeout)
    except BrokerError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a live broker for this test session."""
    given = os.environ.get("RISKFLOW_TEST_BOOTSTRAP", "").strip()
    if given:
        why = _answers(given, timeout=30.0)
        if why:
            pytest.fail(f"RISKFLOW_TEST_BOOTSTRAP={given} does not answer: {why}", pytrace=False)
        yield given
        return

    port = int(os.environ.get("RISKFLOW_KAFKA_PORT", "9092"))
    local = f"localhost:{port}"
    if _tcp_open("127.0.0.1", port) and _answers(local, timeout=15.0) is None:
        yield local
        return

    env = {**os.environ, "RISKFLOW_KAFKA_PORT": str(port)}
    try:
        run = subprocess.run(
            [str(BROKER_SCRIPT), "start"],
            env=env,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _no_broker(f"`{BROKER_SCRIPT} start` did not complete: {exc}")
        raise  # unreachable: _no_broker raises
    if run.returncode != 0:
        _no_broker(
            f"`{BROKER_SCRIPT} start` failed (exit {run.returncode}):\n{run.stdout}{run.stderr}"
        )
    try:
        yield local
    finally:
        subprocess.run([str(BROKER_SCRIPT), "stop"], env=env, capture_output=True, timeout=120)


class TopicFactory:
    """``new_topic(partitions=1, **configs)`` creates a uuid-named topic and returns its name.

    Topic configs are given with underscores for dots
    (``new_topic(3, cleanup_policy="compact")``). ``new_topic.name()`` only
    reserves a fresh name (for code under test that creates the topic itself).
    Every name handed out is deleted at the end of the test (best effort).
    """

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaAdminClient

        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="riskflow-tests")
        self.names: list[str] = []

    def name(self, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return name

    def __call__(self, partitions: int = 1, **configs: Any) -> str:
        name = self.name()
        self._admin.create_topics(
            {
                name: {
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": {k.replace("_", "."): str(v) for k, v in configs.items()},
                }
            }
        )
        self._admin.wait_for_topics([name], timeout_ms=15_000)
        return name

    def close(self) -> None:
        try:
            present = set(self._admin.list_topics())
            doomed = [n for n in self.names if n in present]
            if doomed:
                self._admin.delete_topics(doomed, raise_errors=False)
        except Exception:  # best effort: a leftover uuid topic harms nobody
            pass
        finally:
            self._admin.close()


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    factory = TopicFactory(kafka_bootstrap)
    yield factory
    factory.close()


@pytest.fixture
def new_group() -> Callable[[], str]:
    """``new_group()`` returns a fresh consumer group id."""
    return lambda: f"test-group-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def riskflow_env(
    kafka_bootstrap: str, new_topic: TopicFactory, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Point riskflow's config at the test broker with uuid names for every topic role.

    Returns role -> topic name. The topics are not created.
    """
    from riskflow.config import TopicsConfig

    monkeypatch.delenv("RISKFLOW_CONFIG", raising=False)
    monkeypatch.setenv("RISKFLOW_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    names = {}
    for role in TopicsConfig.model_fields:
        names[role] = new_topic.name(f"rf-{role.replace('_', '-')}")
        monkeypatch.setenv(f"RISKFLOW_TOPICS__{role.upper()}__NAME", names[role])
    return names


@pytest.fixture
def consume(kafka_bootstrap: str) -> Callable[..., list[Any]]:
    """``consume(topic, expected, timeout=20, settle=0, bootstrap=None, **consumer_kwargs)``.

    Returns the records of every partition of ``topic``.

    Reads from the beginning with manual assignment (no group join, so it is
    fast) until ``expected`` records arrived or ``timeout`` seconds passed,
    then keeps reading ``settle`` seconds more to catch records that should
    not be there.
    """
    import time

    from kafka import KafkaConsumer, TopicPartition

    def run(
        topic: str,
        expected: int,
        timeout: float = 20.0,
        settle: float = 0.0,
        bootstrap: str | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap or kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **kwargs,
        )
        try:
            deadline = time.monotonic() + timeout
            parts = None
            while not parts and time.monotonic() < deadline:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    time.sleep(0.1)
            assert parts, f"topic {topic} has no partitions after {timeout} s"
            consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
            consumer.seek_to_beginning()
            out: list[Any] = []
            while len(out) < expected and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    out.extend(batch)
            settle_until = time.monotonic() + settle
            while time.monotonic() < settle_until:
                for batch in consumer.poll(timeout_ms=100).values():
                    out.extend(batch)
            return out
        finally:
            consumer.close()

    return run
