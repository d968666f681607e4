"""Batches: entity keys (hash_each gives hash_keys' keys), frame conversion, the label join."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskflow.batch import LabelBatch, TxBatch, hash_each, hash_keys
from riskflow.schema import CHANNELS


def test_hash_each_equals_hash_keys_on_mixed_ids() -> None:
    rng = np.random.default_rng(5)
    ids: list[str | None] = [f"tok_{x:x}" for x in rng.integers(0, 2**63, 500)]
    ids += ["", None, "0", "00", "12345", "ü-ñ-日本", "a" * 128, "fe80::1", "10.0.0.1"]
    ids += ids[:50]  # repeats
    order = rng.permutation(len(ids))
    ids = [ids[i] for i in order]
    got, want = hash_each(ids), hash_keys(ids)
    assert got.dtype == want.dtype == np.uint64
    np.testing.assert_array_equal(got, want)
    assert int(hash_each([None])[0]) == int(hash_each([""])[0]) == 0
    assert hash_each([]).shape == (0,)


def _mixed_ids() -> list[str | None]:
    rng = np.random.default_rng(7)
    ids: list[str | None] = [f"tok_{x:x}" for x in rng.integers(0, 2**40, 300)]
    ids += ["", None, "0", "ü-ñ-日本", "fe80::1"] + ids[:40]
    return [ids[i] for i in rng.permutation(len(ids))]


def test_text_columns_hash_like_object_columns() -> None:
    """The factorize-in-place path for pandas string columns gives the object path's keys."""
    ids = _mixed_ids()
    for dtype in ("str", "string"):
        np.testing.assert_array_equal(hash_keys(pd.Series(ids, dtype=dtype)), hash_keys(ids))


def test_from_frame_codes_and_keys_agree_for_text_and_object_frames() -> None:
    ids = _mixed_ids()
    n = len(ids)
    channels = (["ecom", "pos", None, "nonsense", ""] * n)[:n]
    frame = pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(n)],
            "event_time": np.arange(n),
            "amount": np.ones(n),
            "card_token": ids,
            "channel": channels,
        }
    )
    text = TxBatch.from_frame(frame.astype({"tx_id": "str", "card_token": "str", "channel": "str"}))
    obj = TxBatch.from_frame(frame.astype(object).astype({"event_time": int, "amount": float}))
    for name, a, b in zip(TxBatch._fields, text, obj, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    want = [int(CHANNELS[c]) if c in CHANNELS else -1 for c in channels]
    np.testing.assert_array_equal(text.channel, want)


def test_long_frames_hash_their_keys_in_threads_to_the_same_keys(monkeypatch) -> None:
    """Above the threading threshold every array equals the one-thread build, column by column."""
    import riskflow.batch as batch

    ids = _mixed_ids()
    n = len(ids)
    frame = pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(n)],
            "event_time": np.arange(n),
            "amount": np.ones(n),
            "card_token": ids,
            "merchant_id": ids[::-1],
            "ip": ids[3:] + ids[:3],
        }
    ).astype({"card_token": "str", "merchant_id": "str", "ip": "str"})
    one = TxBatch.from_frame(frame)
    monkeypatch.setattr(batch, "_THREADED_ROWS", 1)
    monkeypatch.setattr(batch, "usable_cpus", lambda: 2)
    threaded = TxBatch.from_frame(frame)
    for name, a, b in zip(TxBatch._fields, one, threaded, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert (threaded.merchant != threaded.card).any()  # columns not swapped


def test_labels_join_keeps_label_order_by_time_and_refuses_duplicate_ids() -> None:
    tx = pd.DataFrame(
        {"tx_id": ["a", "b", "c"], "event_time": [1, 2, 3], "amount": [1.0, 2.0, 3.0]}
    )
    labels = pd.DataFrame(
        {"tx_id": ["c", "zz", "a", "c"], "label": [1, 1, 0, 0], "label_time": [9, 5, 7, 7]}
    )
    lb = LabelBatch.join(labels, tx)
    assert list(lb.tx_id) == ["a", "c", "c"]  # "zz" is not a transaction; stable by label_time
    assert list(lb.label) == [0, 0, 1]
    assert list(lb.tx_ts) == [1, 3, 3]
    with pytest.raises(ValueError, match="'b' appears more than once"):
        LabelBatch.join(labels, pd.concat([tx, tx.iloc[[1]]]))
