"""The processor's columnar lookup of recent transactions (labels join to it)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from riskflow.streams._lookup import Lookup


def _batch(ids: list[str], base: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    n = len(ids)
    ts = np.arange(base, base + n, dtype=np.int64)
    amount = ts * 1.5
    # Keys on both sides of 2**63 stay exact.
    keys = (np.arange(n, dtype=np.uint64)[:, None] + np.uint64(2**63 - 2)) * np.ones(
        (1, 3), np.uint64
    )
    return ids, ts, amount, keys


def _reference(capacity: int, batches: list[tuple]) -> OrderedDict:
    """A bounded OrderedDict updated record by record, the oldest dropped past capacity.

    (The processor once trimmed after each batch; record by record, what is kept
    does not depend on where batches end.)
    """
    od: OrderedDict = OrderedDict()
    for ids, ts, amount, keys in batches:
        rows = zip(ts.tolist(), amount.tolist(), *keys.T.tolist(), strict=True)
        for tx_id, row in zip(ids, rows, strict=True):
            od[tx_id] = row
            while len(od) > capacity:
                od.popitem(last=False)
    return od


@pytest.mark.parametrize("capacity", [1, 3, 7, 50])
def test_keeps_what_a_bounded_ordered_dict_keeps(capacity: int) -> None:
    rng = np.random.default_rng(5)
    lk = Lookup(capacity, n_keys=3)
    batches = []
    for b in range(30):
        # Repeated ids (a redelivered transaction) keep their place and take the new values.
        ids = [f"t{int(i)}" for i in rng.integers(0, 40, rng.integers(1, 12))]
        batches.append(_batch(ids, base=100 * b))
        lk.add(*batches[-1])
        ref = _reference(capacity, batches)
        assert len(lk) == len(ref)
        for tx_id, row in ref.items():
            assert lk.get(tx_id) == row
        assert lk.columns()[0] == list(ref)  # oldest first
    assert lk.get("never") is None


def test_a_capture_is_not_changed_by_later_batches() -> None:
    lk = Lookup(4, n_keys=3)
    lk.add(*_batch(["a", "b", "c"]))
    later = lk.capture()
    lk.add(*_batch(["d", "e", "f"], base=10))
    ids, ts, amount, keys = later()
    assert ids == ["a", "b", "c"]
    assert ts.tolist() == [0, 1, 2]
    assert keys[:, 0].tolist() == [2**63 - 2, 2**63 - 1, 2**63]


def test_columns_round_trip_through_from_columns() -> None:
    lk = Lookup(5, n_keys=3)
    for b in range(4):
        lk.add(*_batch([f"x{b}-{i}" for i in range(3)], base=10 * b))
    again = Lookup.from_columns(5, *lk.columns())
    assert again.columns()[0] == lk.columns()[0]
    for tx_id in lk.columns()[0]:
        assert again.get(tx_id) == lk.get(tx_id)
    # ... and it goes on forgetting in the same order.
    lk.add(*_batch(["new"], base=99))
    again.add(*_batch(["new"], base=99))
    assert again.columns()[0] == lk.columns()[0]


def test_empty_and_bad_capacity() -> None:
    lk = Lookup(3, n_keys=3)
    ids, ts, amount, keys = lk.columns()
    assert ids == [] and ts.size == 0 and keys.shape == (0, 3)
    assert Lookup.from_columns(3, ids, ts, amount, keys).columns()[0] == []
    with pytest.raises(ValueError, match="capacity"):
        Lookup(0, n_keys=3)
