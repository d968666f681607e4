"""A `riskflow worker` subprocess for the deploy/ integration tests (toy scorer, own port)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

RISKFLOW = str(Path(sys.executable).with_name("riskflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningWorker:
    """``riskflow worker --scorer riskflow.streams.reference:counting_scorer`` until :meth:`stop`."""

    def __init__(self, env: dict[str, str], log: Path, engine: str = "bulk", instance: str = "0"):
        self.port = free_port()
        self.log = log
        self._fh = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                RISKFLOW,
                "worker",
                "--scorer",
                "riskflow.streams.reference:counting_scorer",
                "--engine",
                engine,
                "--instance-id",
                instance,
                "--web-port",
                str(self.port),
                "--checkpoint-interval",
                "0.5",
            ],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"worker not ready: {self.log.read_text()[-3000:]}"
            time.sleep(0.3)

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """Sample name -> {sorted label pairs: value}."""
        status, body = self.get("/metrics")
        assert status == 200, body[:500]
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
        return out

    def stop(self) -> None:
        """SIGTERM (the worker writes a last snapshot), then wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._fh.close()
