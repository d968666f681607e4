"""Kafka's default partitioner for a whole batch of keys, compiled.

The worker writes each decision to the partition a keyed ``send`` would pick:
``murmur2(key) & 0x7fffffff % partitions`` (Java's ``Utils.murmur2``, as
aiokafka's ``DefaultPartitioner``). aiokafka's murmur2 is pure Python, a few
microseconds per key, more than scoring the transaction; this is the same
hash as one numba loop over the batch's concatenated keys.
``tests/unit/streams/test_streams_partition.py`` checks it against aiokafka's
on keys of every length, and that the compiled kernel is what runs.

>>> from aiokafka.partitioner import murmur2
>>> keys = [b"t1", b"tx-000042", b""]
>>> partitions(keys, 6).tolist() == [(murmur2(k) & 0x7FFFFFFF) % 6 for k in keys]
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

__all__ = ["partitions"]

_M = np.uint64(0x5BD1E995)
_SEED = np.uint64(0x9747B28C)
_MASK = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def _partitions(data, offsets, n_partitions, out):  # pragma: no cover - compiled
    m, mask = _M, _MASK
    for j in range(offsets.size - 1):
        lo = offsets[j]
        length = offsets[j + 1] - lo
        h = (_SEED ^ np.uint64(length)) & mask
        for i in range(length // 4):
            p = lo + 4 * i
            k = (
                np.uint64(data[p])
                | (np.uint64(data[p + 1]) << np.uint64(8))
                | (np.uint64(data[p + 2]) << np.uint64(16))
                | (np.uint64(data[p + 3]) << np.uint64(24))
            )
            k = (k * m) & mask
            k ^= k >> np.uint64(24)
            k = (k * m) & mask
            h = (h * m) & mask
            h ^= k
        tail = lo + (length & ~3)
        extra = length % 4
        if extra >= 3:
            h ^= np.uint64(data[tail + 2]) << np.uint64(16)
        if extra >= 2:
            h ^= np.uint64(data[tail + 1]) << np.uint64(8)
        if extra >= 1:
            h ^= np.uint64(data[tail])
            h = (h * m) & mask
        h ^= h >> np.uint64(13)
        h = (h * m) & mask
        h ^= h >> np.uint64(15)
        out[j] = np.int64(h & np.uint64(0x7FFFFFFF)) % n_partitions


def partitions(keys: Sequence[bytes], n_partitions: int) -> np.ndarray:
    """The default partitioner's partition of every key, ``int64`` (len(keys),)."""
    lengths = np.fromiter(map(len, keys), np.int64, len(keys))
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(keys), dtype=np.uint8)
    out = np.empty(len(keys), dtype=np.int64)
    _partitions(data, offsets, np.int64(n_partitions), out)
    return out
