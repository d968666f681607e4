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

import operator
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from riskflow.cpus import usable_cpus
from riskflow.schema import CHANNELS, ENTRY_MODES

__all__ = ["TxBatch", "LabelBatch", "hash_keys", "hash_each", "ENTITY_FIELDS"]

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
#: Frames at least this long get their key columns hashed in threads
#: (:meth:`TxBatch.from_frame`); a stream's micro-batches stay in one.
_THREADED_ROWS = 100_000


def hash_keys(values: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
    """Map ids to stable non-zero ``uint64`` keys; absent ids (None, NaN, "") map to 0.

    >>> k = hash_keys(["a", None, "a", ""])
    >>> bool(k[0] == k[2] != 0), int(k[1]), int(k[3])
    (True, 0, 0)
    """
    if isinstance(values, pd.Series) and _is_text(values.dtype):
        # Text columns (what Parquet loads as): factorized without a Python
        # object per row (~4x faster on 1M ids); the same codes and texts.
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = np.asarray(uniques, dtype=object)
    else:
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        texts = np.array([u if isinstance(u, str) else str(u) for u in uniques], dtype=object)
    if len(codes) == 0:
        return np.zeros(0, dtype=np.uint64)
    # Hash each distinct id once (ids repeat a lot: cards, merchants, ...).
    table = pd.util.hash_array(texts, hash_key=_HASH_KEY, categorize=False) if len(texts) else texts
    table = np.asarray(table, dtype=np.uint64)
    table[table == 0] = 1  # 0 is reserved for "absent"
    table[texts == ""] = 0
    keys = np.append(table, np.uint64(0))[codes]  # code -1 (None / NaN) -> the appended 0
    return keys


def _is_text(dtype: Any) -> bool:
    """A pandas string dtype (``str``, ``string``), not ``object``."""
    return isinstance(dtype, pd.StringDtype)


def hash_each(values: Sequence[str | None]) -> np.ndarray:
    """:func:`hash_keys` of ids that are ``str`` or None, each hashed where it stands.

    The same keys as :func:`hash_keys` (the same hash of the same text)
    without its factorize step, which pays off only when ids repeat a lot:
    a stream micro-batch's ids are mostly distinct (measured on the
    ``standard`` data, 512-record batches: ~5.5 us per transaction for its
    nine entity columns, against ~6.5 with ``hash_keys`` and ~10 with a
    dict remembering every id's key).

    >>> bool((hash_each(["a", None, "", "a"]) == hash_keys(["a", None, "", "a"])).all())
    True
    """
    arr = np.array(values, dtype=object).reshape(len(values))
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    absent = np.fromiter(map(operator.not_, values), bool, len(arr))  # None or ""
    if absent.any():
        arr[absent] = ""
    keys = np.asarray(pd.util.hash_array(arr, hash_key=_HASH_KEY, categorize=False), np.uint64)
    keys[keys == 0] = 1  # 0 is reserved for "absent"
    keys[absent] = 0
    return keys


def _codes(values: Any, table: Mapping[str, Any]) -> np.ndarray:
    """``table[value]`` per value as int8, -1 for absent or unknown values."""
    values = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lut = np.array(
        [int(table[u]) if isinstance(u, str) and u in table else -1 for u in uniques] + [-1],
        dtype=np.int8,
    )
    return lut[codes]  # code -1 (absent) -> the appended -1


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

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> TxBatch:
        """Build from a canonical DataFrame (see :mod:`riskflow.table`), keeping row order."""
        n = len(df)

        def col(name: str) -> Any:
            return df[name].to_numpy() if name in df.columns else None

        def keys(name: str) -> np.ndarray:
            return hash_keys(df[name]) if name in df.columns else np.zeros(n, dtype=np.uint64)

        # A long frame's key columns are hashed side by side (pandas'
        # factorize of text releases the GIL): 1M transactions, nine columns,
        # 0.27-0.40 s in one thread against 0.16-0.19 s in two (2026-11-30).
        threads = min(usable_cpus(), len(ENTITY_FIELDS)) if n >= _THREADED_ROWS else 1
        if threads > 1:
            with ThreadPoolExecutor(threads, thread_name_prefix="riskflow-keys") as pool:
                done = pool.map(keys, ENTITY_FIELDS.values())
                hashed = dict(zip(ENTITY_FIELDS, done, strict=True))
        else:
            hashed = {attr: keys(field) for attr, field in ENTITY_FIELDS.items()}
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
            if "channel" not in df.columns
            else _codes(df["channel"], CHANNELS),
            entry_mode=(
                np.full(n, -1, np.int8)
                if "entry_mode" not in df.columns
                else _codes(df["entry_mode"], ENTRY_MODES)
            ),
            lat=_float(col("lat"), n),
            lon=_float(col("lon"), n),
            **hashed,
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

    def __len__(self) -> int:
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
        # A hash lookup of the labels' ids (what merge(validate=...) did at
        # ~3x the cost on a million transactions); the same rows, same order.
        index = pd.Index(transactions["tx_id"])
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise ValueError(
                f"Transaction ids must be unique to join labels to them; {dup!r} appears more "
                "than once. De-duplicate the transactions (or fix the id column mapping)."
            )
        pos = index.get_indexer(labels["tx_id"])
        found = pos >= 0
        merged = labels.loc[found, ["tx_id", "label", "label_time"]].reset_index(drop=True)
        rows = transactions[tx_cols].iloc[pos[found]].reset_index(drop=True)
        for c in tx_cols[1:]:
            merged[c] = rows[c]
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
