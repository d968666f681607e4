"""Is a Kafka broker at HOST:PORT answering? Exit 0 if yes, 1 if not by the deadline.

Used by broker.sh: a bare TCP connect is not enough (a KRaft broker accepts
connections before it has caught up with the metadata log), so this sends a
real Metadata request (API key 3, version 1, no topics) and waits until the
broker lists at least one live broker. Standard library only, so it works
before any virtualenv exists.

    python3 ready.py 127.0.0.1 9092 60
"""

from __future__ import annotations

import socket
import struct
import sys
import time

_METADATA, _VERSION = 3, 1


def _request(correlation_id: int) -> bytes:
    client = b"riskflow-ready"
    header = struct.pack(">hhih", _METADATA, _VERSION, correlation_id, len(client)) + client
    body = struct.pack(">i", 0)  # topics: empty array = metadata about brokers only
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def brokers(host: str, port: int, timeout: float = 3.0) -> list[tuple[int, str, int]]:
    """The (node_id, host, port) list a Metadata request returns."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(_request(7))
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    (correlation_id, n) = struct.unpack_from(">ii", data, 0)
    if correlation_id != 7:
        raise ConnectionError(f"unexpected correlation id {correlation_id}")
    pos, out = 8, []
    for _ in range(n):
        (node_id, hlen) = struct.unpack_from(">ih", data, pos)
        pos += 6
        bhost = data[pos : pos + hlen].decode()
        pos += hlen
        (bport, rlen) = struct.unpack_from(">ih", data, pos)
        pos += 6 + max(rlen, 0)
        out.append((node_id, bhost, bport))
    return out


def main(argv: list[str]) -> int:
    host, port = argv[1], int(argv[2])
    deadline = time.monotonic() + (float(argv[3]) if len(argv) > 3 else 0.0)
    last = "no attempt"
    while True:
        try:
            found = brokers(host, port)
            if found:
                print(f"broker answers at {host}:{port}: {found}")
                return 0
            last = "metadata lists no broker yet"
        except (OSError, ConnectionError, struct.error) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            print(f"no Kafka broker answering at {host}:{port} ({last})", file=sys.stderr)
            return 1
        time.sleep(0.25)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
