"""Shared helpers for the rules tests: a small batch, a feature matrix, a slow reference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskflow.batch import TxBatch

FEATURES = ["card_count_10m", "card_amount_sum_24h", "hour"]


def batch(n: int = 64, seed: int = 0) -> tuple[TxBatch, np.ndarray, np.ndarray]:
    """A batch with every field varied, a float32 feature matrix and scores."""
    rng = np.random.default_rng(seed)
    channels = np.array(["pos", "ecom", "atm", None], dtype=object)
    countries = np.array(["DE", "NG", "FR", None], dtype=object)
    df = pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(n)],
            "event_time": 1_767_268_800_000 + np.arange(n) * 1000,
            "card_token": [f"c{i % 7}" for i in range(n)],
            "customer_id": [f"u{i % 5}" for i in range(n)],
            "merchant_id": [f"m{i % 3}" for i in range(n)],
            "device_id": [None if i % 4 == 0 else f"d{i % 6}" for i in range(n)],
            "ip": [f"10.0.0.{i % 9}" for i in range(n)],
            "card_bin": [f"4{i % 4:05d}" for i in range(n)],
            "amount": np.round(rng.lognormal(5, 1.5, n), 2),
            "mcc": rng.choice([5411, 7995, 5967, -1], n),
            "channel": channels[rng.integers(0, 4, n)],
            "country": countries[rng.integers(0, 4, n)],
        }
    )
    df.loc[df["mcc"] < 0, "mcc"] = None
    tx = TxBatch.from_frame(df)
    X = np.column_stack(
        [rng.integers(0, 10, n), rng.lognormal(6, 1, n), rng.integers(0, 24, n)]
    ).astype(np.float32)
    X[rng.random(n) < 0.1, 1] = np.nan
    return tx, X, rng.random(n)
