"""Rows of the simulated stream as integer arrays, before they become strings."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Channel codes (= riskflow.schema.Channel) and entry modes (= EntryMode).
POS, ECOM, ATM, MOTO, P2P = 0, 1, 2, 3, 4
CHIP, CONTACTLESS, MAGSTRIPE, MANUAL, CNP, TOKEN = 0, 1, 2, 3, 4, 5
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: uids: day << 32 | sequence; bit 31 marks rows made by a fraud scenario.
FRAUD_UID_BIT = np.int64(1 << 31)


@dataclass
class Rows:
    """A batch of transactions: entity indices, times, amounts (EUR) and truth."""

    uid: np.ndarray  # int64, unique, source of tx_id
    time: np.ndarray  # int64 epoch ms
    card: np.ndarray  # int64 card index
    term: np.ndarray  # int64 terminal index
    amount: np.ndarray  # float64 in EUR (converted at output)
    channel: np.ndarray  # int8
    entry: np.ndarray  # int8
    device: np.ndarray  # int64, -1 absent
    ip: np.ndarray  # int64, -1 absent
    scen: np.ndarray  # int8, 0 legitimate
    incident: np.ndarray  # int64, -1 legitimate; rows of one incident are reported together

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def empty(cls) -> Rows:
        return cls.build(0)

    @classmethod
    def build(cls, n: int, **cols: np.ndarray | int | float) -> Rows:
        """``n`` rows; missing columns get their absent value, scalars are broadcast."""
        default = {"device": -1, "ip": -1, "scen": 0, "incident": -1, "uid": 0}
        dtypes = {
            "uid": np.int64,
            "time": np.int64,
            "card": np.int64,
            "term": np.int64,
            "amount": np.float64,
            "channel": np.int8,
            "entry": np.int8,
            "device": np.int64,
            "ip": np.int64,
            "scen": np.int8,
            "incident": np.int64,
        }
        out = {}
        for f in fields(cls):
            v = cols.get(f.name, default.get(f.name, 0))
            a = np.asarray(v, dtype=dtypes[f.name])
            out[f.name] = np.full(n, a, dtype=dtypes[f.name]) if a.ndim == 0 else a
        return cls(**out)

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        parts = [p for p in parts if len(p)] or [Rows.empty()]
        return Rows(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Rows)}
        )
