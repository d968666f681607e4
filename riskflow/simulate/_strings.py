"""Fast construction of Arrow string columns from integers (no Python str per row)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DEC = np.frombuffer(b"0123456789", dtype=np.uint8)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a fast, well-mixed uint64 -> uint64 bijection."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _fixed(prefix: bytes, body: np.ndarray) -> pa.StringArray:
    """Rows ``prefix + body[i]`` where ``body`` is an (n, w) uint8 array of ASCII."""
    n, w = body.shape
    width = len(prefix) + w
    buf = np.empty((n, width), dtype=np.uint8)
    buf[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    buf[:, len(prefix) :] = body
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf.tobytes()))


def hex_strings(prefix: str, values: np.ndarray, digits: int = 16) -> pa.StringArray:
    """``prefix`` followed by the low ``digits`` hex digits of each uint64.

    >>> hex_strings("tok_", np.array([255], dtype=np.uint64), 4).to_pylist()
    ['tok_00ff']
    """
    v = np.asarray(values, dtype=np.uint64)
    shifts = np.arange(digits - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nib = (v[:, None] >> shifts[None, :]) & np.uint64(15)
    return _fixed(prefix.encode(), _HEX[nib.astype(np.intp)])


def dec_strings(prefix: str, values: np.ndarray, digits: int) -> pa.StringArray:
    """``prefix`` followed by each non-negative integer zero-padded to ``digits``.

    >>> dec_strings("c", np.array([7, 1234]), 5).to_pylist()
    ['c00007', 'c01234']
    """
    v = np.asarray(values, dtype=np.int64)
    pows = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    d = (v[:, None] // pows[None, :]) % 10
    return _fixed(prefix.encode(), _DEC[d.astype(np.intp)])


def ipv4_strings(values: np.ndarray) -> pa.StringArray:
    """Dotted-quad text for uint32 addresses.

    >>> ipv4_strings(np.array([3232235777], dtype=np.uint32)).to_pylist()
    ['192.168.1.1']
    """
    v = np.asarray(values, dtype=np.uint64)
    return pa.array(
        [
            f"{a}.{b}.{c}.{d}"
            for a, b, c, d in zip(
                (v >> 24).tolist(),
                ((v >> 16) & 255).tolist(),
                ((v >> 8) & 255).tolist(),
                (v & 255).tolist(),
                strict=True,
            )
        ],
        type=pa.string(),
    )


def take(dictionary: pa.Array, idx: np.ndarray) -> pa.Array:
    """``dictionary[idx]`` with negative indices as nulls."""
    idx = np.asarray(idx)
    if idx.size and idx.min() < 0:
        ind = pa.array(idx.astype(np.int64, copy=False), mask=idx < 0)
    else:
        ind = pa.array(idx.astype(np.int64, copy=False))
    return dictionary.take(ind)
