"""Struct-of-arrays batches: what the feature engine and the models consume.

A :class:`TxBatch` is the numeric view of a run of canonical transactions, in
the order they are to be processed (event-time order). Entity ids become
``uint64`` keys (0 = absent), enums become small integer codes (-1 = absent),
absent numbers become NaN. Streaming and replay both build batches here, from
records or from a DataFrame, so the feature engine sees exactly the same input
whichever way the data came: this module is the train/serve parity boundary.

>>> import pandas as pd
>>> df = pd.DataFrame({"tx_id": ["a", "b"], "event_time": [1, 2],
...     "card_token": ["c1", "c1"], "merchant_id": ["m", "m"], "amount": [5.0, 7.0]})
>>> b = TxBatch.from_frame(df)
>>> len(b), bool(b.card[0] == b.card[1] != 0), b.device.tolist(), b.channel.tolist()
(2, True, [0, 0], [-1, -1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from riskflow.schema import CHANNELS, ENTRY_MODES

__all__ = ["TxBatch", "LabelBatch", "hash_keys", "ENTITY_FIELDS"]

#: Batch attribute -> canonical field whose value is hashed into that key.
ENTITY_FIELDS: dict[str, str] = {
    "card": "card_token",
    "customer": "customer_id",
    "merchant": "merchant_id",
    "terminal": "terminal_id",
    "device": "device_id",
    "ip": "ip",
    "country": "country",
    "currency": "currency",
    "bin": "card_bin",
}

# Fixed key so that keys are stable across processes, restarts and machines
# (state snapshots store keys). Not a secret: ids are already tokenised.
_HASH_KEY = "riskflow-keys-v1"


def hash_keys(values: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
    """Map ids to stable non-zero ``uint64`` keys; absent ids (None, NaN, "") map to 0.

    >>> k = hash_keys(["a", None, "a", ""])
    >>> bool(k[0] == k[2] != 0), int(k[1]), int(k[3])
    (True, 0, 0)
    """
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    if len(codes) == 0:
        return np.zeros(0, dtype=np.uint64)
    # Hash each distinct id once (ids repeat a lot: cards, merchants, ...).
    texts = np.array([u if isinstance(u, str) else str(u) for u in uniques], dtype=object)
    table = pd.util.hash_array(texts, hash_key=_HASH_KEY, categorize=False) if len(texts) else texts
    table = np.asarray(table, dtype=np.uint64)
    table[table == 0] = 1  # 0 is reserved for "absent"
    table[texts == ""] = 0
    keys = np.append(table, np.uint64(0))[codes]  # code -1 (None / NaN) -> the appended 0
    return keys


def _codes(values: np.ndarray, table: Mapping[str, Any]) -> np.ndarray:
    out = np.full(len(values), -1, dtype=np.int8)
    s = pd.Series(values, dtype=object)
    for name, code in table.items():
        out[(s == name).to_numpy()] = int(code)
    return out


def _float(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )


class TxBatch(NamedTuple):
    """Transactions as contiguous arrays, in processing order.

    Attributes are arrays of equal length: ``ts`` (int64 epoch ms), ``amount``
    (float64), ``mcc`` (int32, -1 absent), ``channel`` / ``entry_mode`` (int8
    codes of :class:`~riskflow.schema.Channel` / ``EntryMode``, -1 absent),
    ``lat`` / ``lon`` (float64, NaN absent), and uint64 entity keys ``card``,
    ``customer``, ``merchant``, ``terminal``, ``device``, ``ip``, ``country``,
    ``currency``, ``bin`` (0 absent). ``tx_id`` is an object array kept for
    joining; kernels never see it.
    """

    tx_id: np.ndarray
    ts: np.ndarray
    amount: np.ndarray
    mcc: np.ndarray
    channel: np.ndarray
    entry_mode: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    card: np.ndarray
    customer: np.ndarray
    merchant: np.ndarray
    terminal: np.ndarray
    device: np.ndarray
    ip: np.ndarray
    country: np.ndarray
    currency: np.ndarray
    bin: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.ts.shape[0])

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> TxBatch:
        """Build from a canonical DataFrame (see :mod:`riskflow.table`), keeping row order."""
        n = len(df)

        def col(name: str) -> Any:
            return df[name].to_numpy() if name in df.columns else None

        def keys(name: str) -> np.ndarray:
            v = col(name)
            return np.zeros(n, dtype=np.uint64) if v is None else hash_keys(v)

        mcc = col("mcc")
        return cls(
            tx_id=np.asarray(df["tx_id"].to_numpy(), dtype=object),
            ts=np.ascontiguousarray(df["event_time"].to_numpy(dtype=np.int64)),
            amount=np.ascontiguousarray(df["amount"].to_numpy(dtype=np.float64)),
            mcc=(
                np.full(n, -1, dtype=np.int32)
                if mcc is None
                else np.nan_to_num(_float(mcc, n), nan=-1.0).astype(np.int32)
            ),
            channel=np.full(n, -1, np.int8)
            if col("channel") is None
            else _codes(col("channel"), CHANNELS),
            entry_mode=(
                np.full(n, -1, np.int8)
                if col("entry_mode") is None
                else _codes(col("entry_mode"), ENTRY_MODES)
            ),
            lat=_float(col("lat"), n),
            lon=_float(col("lon"), n),
            **{attr: keys(field) for attr, field in ENTITY_FIELDS.items()},
        )

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> TxBatch:
        """Build from validated transaction dicts (:func:`riskflow.schema.validate_transaction`)."""
        if not records:
            return cls.from_frame(pd.DataFrame({"tx_id": [], "event_time": [], "amount": []}))
        return cls.from_frame(pd.DataFrame.from_records(list(records)))

    def take(self, index: np.ndarray | slice) -> TxBatch:
        """Rows ``index`` of every array, as a new batch."""
        return TxBatch(*(np.ascontiguousarray(a[index]) for a in self))


class LabelBatch(NamedTuple):
    """Labels joined to the entities of the transactions they are about.

    ``label_time`` (int64 epoch ms) decides when the label becomes visible to
    features; ``tx_ts`` is the labelled transaction's own time. Entity keys
    are those of the labelled transaction (0 where unknown).
    """

    tx_id: np.ndarray
    label_time: np.ndarray
    label: np.ndarray
    tx_ts: np.ndarray
    amount: np.ndarray
    card: np.ndarray
    customer: np.ndarray
    merchant: np.ndarray
    terminal: np.ndarray
    device: np.ndarray
    ip: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.label_time.shape[0])

    @classmethod
    def join(cls, labels: pd.DataFrame, transactions: pd.DataFrame) -> LabelBatch:
        """Join canonical labels (tx_id, label, label_time) to canonical transactions.

        Labels whose tx_id is not among ``transactions`` are dropped; the
        result is sorted by ``label_time`` (stable).
        """
        tx_cols = [
            c
            for c in ("tx_id", "event_time", "amount", *ENTITY_FIELDS.values())
            if c in transactions
        ]
        merged = labels[["tx_id", "label", "label_time"]].merge(
            transactions[tx_cols], on="tx_id", how="inner", validate="many_to_one"
        )
        merged = merged.sort_values("label_time", kind="stable").reset_index(drop=True)
        return cls.from_frame(merged)

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> LabelBatch:
        """Build from a frame with label columns plus the labelled transaction's fields."""
        n = len(df)

        def keys(field: str) -> np.ndarray:
            return hash_keys(df[field].to_numpy()) if field in df else np.zeros(n, np.uint64)

        return cls(
            tx_id=np.asarray(df["tx_id"].to_numpy(), dtype=object),
            label_time=np.ascontiguousarray(df["label_time"].to_numpy(dtype=np.int64)),
            label=np.ascontiguousarray(df["label"].to_numpy(dtype=np.int8)),
            tx_ts=(
                df["event_time"].to_numpy(dtype=np.int64)
                if "event_time" in df
                else np.zeros(n, dtype=np.int64)
            ),
            amount=_float(df["amount"].to_numpy() if "amount" in df else None, n),
            **{
                a: keys(ENTITY_FIELDS[a])
                for a in ("card", "customer", "merchant", "terminal", "device", "ip")
            },
        )
