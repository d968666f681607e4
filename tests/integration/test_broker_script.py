"""deploy/kafka/broker.sh: start, stop, restart with state kept, nothing left behind.

Runs a second, private broker on free ports with its own runtime folder, so
it never touches the session's broker.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "broker.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_stop_restart_keeps_topics_and_leaves_nothing(kafka_bootstrap, tmp_path, consume):
    from kafka import KafkaProducer

    port, controller = _free_port(), _free_port()
    runtime = tmp_path / "runtime"
    env = {
        **os.environ,
        "RISKFLOW_KAFKA_PORT": str(port),
        "RISKFLOW_KAFKA_CONTROLLER_PORT": str(controller),
        "RISKFLOW_KAFKA_RUNTIME": str(runtime),
    }

    def broker(cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), cmd], env=env, capture_output=True, text=True, timeout=300
        )

    pids: list[int] = []
    try:
        first = broker("start")
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"ready at localhost:{port}" in first.stdout
        assert str(runtime / "logs" / "server.log") in first.stdout  # the log is findable
        pids.append(int((runtime / "broker.pid").read_text()))
        assert broker("status").returncode == 0

        again = broker("start")  # idempotent
        assert again.returncode == 0 and "already running" in again.stdout

        producer = KafkaProducer(bootstrap_servers=f"localhost:{port}")
        for i in range(5):
            producer.send("survivor", key=b"k", value=f"m{i}".encode())
        producer.flush()
        producer.close()

        stop = broker("stop")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert not _alive(pids[0])
        assert not (runtime / "broker.pid").exists()
        assert broker("status").returncode == 1

        (runtime / "broker.pid").write_text("999999\n")  # stale pid file
        restart = broker("start")
        assert restart.returncode == 0, restart.stdout + restart.stderr
        assert "formatting" not in restart.stdout  # the old log dir is reused
        pids.append(int((runtime / "broker.pid").read_text()))

        records = consume("survivor", 5, bootstrap=f"localhost:{port}")
        assert [r.value for r in records] == [f"m{i}".encode() for i in range(5)]
    finally:
        broker("stop")
    assert not any(_alive(p) for p in pids)
    assert not (runtime / "broker.pid").exists()
    with socket.socket() as s:  # the port is free again
        s.bind(("127.0.0.1", port))
