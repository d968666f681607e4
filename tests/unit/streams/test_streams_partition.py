"""The compiled batch partitioner equals aiokafka's default (Java murmur2) partitioner."""

from __future__ import annotations

import numpy as np
from aiokafka.partitioner import murmur2

from riskflow.streams import _partition
from riskflow.streams._partition import partitions


def test_same_partition_as_a_keyed_send_for_keys_of_every_length() -> None:
    rng = np.random.default_rng(0)
    keys = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in range(0, 64) for _ in range(5)]
    keys += [f"tx-{i:09d}".encode() for i in range(500)] + ["tx-é€".encode()]
    for n in (1, 2, 3, 12, 64):
        expected = [(murmur2(k) & 0x7FFFFFFF) % n for k in keys]
        assert partitions(keys, n).tolist() == expected


def test_empty_batch_and_the_compiled_kernel_is_what_runs() -> None:
    assert partitions([], 3).tolist() == []
    # A parity test is only worth it if the fast path loaded: numba compiled it.
    assert hasattr(_partition._partitions, "signatures") and _partition._partitions.signatures
