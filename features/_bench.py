"""`riskflow bench features`: engine throughput against a pandas groupby/rolling baseline.

The full catalogue is timed on a simulated stream; then a subset that pandas
can express directly (card count / sum / mean over 1h and 24h, seconds since
the card's last transaction, merchant counts over 1h and 24h) is computed by
the engine restricted to that subset and by an honest pandas implementation
(``groupby().rolling()`` on time windows, ``groupby().diff()``), on the same
rows in the same run.

Each figure is the median of ``repeats`` timed runs (fresh engine each run, kernel
compiled or loaded from the numba cache before timing). Both sides get the
same prepared input: the engine its :class:`TxBatch` (keys already hashed), pandas a
frame with those same integer keys, so neither pays for id hashing. The
loaded frames (millions of Python objects) are frozen out of the garbage
collector while timing, so neither side pays for traversing them either.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

from riskflow.batch import LabelBatch, TxBatch

from ._engine import FeatureEngine

__all__ = ["run_bench", "synthetic_stream", "SUBSET", "pandas_subset"]

#: The feature subset both implementations compute.
SUBSET: list[str] = [
    "card_count_1h",
    "card_amount_sum_1h",
    "card_amount_mean_1h",
    "card_count_24h",
    "card_amount_sum_24h",
    "card_amount_mean_24h",
    "card_secs_since_last",
    "merchant_count_1h",
    "merchant_count_24h",
]


#: Missing optional ids: an object scalar, so np.where keeps the None (a NaN would be a value).
_NONE = np.array(None, dtype=object)


def synthetic_stream(n: int, seed: int = 0, start_ms: int = 1_767_225_600_000) -> pd.DataFrame:
    """A canonical transactions frame with realistic skew, for when no simulator is available.

    Cards ~ n/25 (a card pays about once a day over a month), merchants
    Zipf-distributed (a few big retailers, a long tail), devices and IPs
    mostly per-customer with shared hot spots, a few missing optional fields.
    """
    rng = np.random.default_rng(seed)
    n_cards = max(n // 25, 10)
    n_merch = max(n // 200, 5)
    days = 30
    ts = np.sort(rng.integers(0, days * 86_400_000, n)) + start_ms
    card = rng.integers(0, n_cards, n)
    merch = np.minimum(rng.zipf(1.3, n) - 1, n_merch - 1)
    term = merch * 4 + rng.integers(0, 4, n)
    dev = np.where(rng.random(n) < 0.9, card, rng.integers(0, n_cards, n))
    ip = np.where(rng.random(n) < 0.8, card // 2, rng.integers(0, n_cards, n))
    home_lat = rng.uniform(35, 60, n_cards)
    home_lon = rng.uniform(-10, 30, n_cards)
    lat = home_lat[card] + rng.normal(0, 0.3, n)
    lon = home_lon[card] + rng.normal(0, 0.3, n)
    nogeo = rng.random(n) < 0.3
    lat[nogeo] = np.nan
    lon[nogeo] = np.nan
    channel = rng.choice(
        np.array(["pos", "ecom", "atm", "moto", "p2p"]), n, p=[0.55, 0.35, 0.05, 0.03, 0.02]
    )
    entry = rng.choice(
        np.array(["chip", "contactless", "magstripe", "manual", "cnp", "token"]),
        n,
        p=[0.3, 0.25, 0.03, 0.02, 0.3, 0.1],
    )
    mccs = np.array([5411, 5812, 5541, 5999, 5732, 4829, 7995, 5311, 5816, 6011])
    return pd.DataFrame(
        {
            "tx_id": np.arange(n).astype(str),
            "event_time": ts,
            "card_token": card.astype(str),
            "customer_id": (card // 2).astype(str),
            "merchant_id": merch.astype(str),
            "terminal_id": term.astype(str),
            "device_id": np.where(channel == "ecom", dev.astype(str), _NONE),
            "ip": np.where(channel == "ecom", ip.astype(str), _NONE),
            "mcc": mccs[merch % len(mccs)],
            "amount": np.round(rng.lognormal(3.2, 1.1, n), 2),
            "currency": "EUR",
            "country": np.where(rng.random(n) < 0.95, "DE", "FR"),
            "channel": channel,
            "entry_mode": entry,
            "lat": lat,
            "lon": lon,
            "card_bin": (400000 + card % 500).astype(str),
        }
    )


def _synthetic_labels(tx: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1)
    pick = rng.random(len(tx)) < 0.02
    delay = (rng.lognormal(np.log(10), 0.6, int(pick.sum())) * 86_400_000).astype(np.int64)
    return pd.DataFrame(
        {
            "tx_id": tx["tx_id"].to_numpy()[pick],
            "label": (rng.random(int(pick.sum())) < 0.3).astype(np.int8),
            "label_time": tx["event_time"].to_numpy()[pick] + delay,
        }
    )


def _load_stream(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    try:
        from riskflow.simulate import SimulationConfig, iter_chunks
    except ImportError:
        tx = synthetic_stream(n, seed)
        return (
            tx,
            _synthetic_labels(tx, seed),
            "synthetic (riskflow.simulate.iter_chunks not available)",
        )
    txs, lbs, total = [], [], 0
    customers = max(1000, n // 60)  # ~1 tx per customer-day over the simulated span
    for tx_df, lb_df in iter_chunks(SimulationConfig(customers=customers, days=63, seed=seed)):
        txs.append(tx_df)
        lbs.append(lb_df)
        total += len(tx_df)
        if total >= n:
            break
    tx = pd.concat(txs, ignore_index=True).iloc[:n]
    lb = pd.concat(lbs, ignore_index=True)
    return tx, lb, f"riskflow.simulate ({customers} customers)"


def pandas_subset(df: pd.DataFrame) -> pd.DataFrame:
    """The :data:`SUBSET` features with pandas, exact time windows, strictly before each row."""
    d = pd.DataFrame(
        {
            "card": df["card_token"].to_numpy(),
            "merchant": df["merchant_id"].to_numpy(),
            "amount": df["amount"].to_numpy(dtype=np.float64),
            "t": pd.to_datetime(df["event_time"].to_numpy(dtype=np.int64), unit="ms"),
        }
    )
    out = pd.DataFrame(index=d.index)
    for key, cols in (("card", True), ("merchant", False)):
        g = d.sort_values([key, "t"], kind="stable")
        for win in ("1h", "24h"):
            r = g.groupby(key, sort=False).rolling(win, on="t", closed="left")["amount"]
            cnt = r.count().to_numpy()
            out.loc[g.index, f"{key}_count_{win}"] = np.nan_to_num(cnt)
            if cols:
                sm = np.nan_to_num(r.sum().to_numpy())
                out.loc[g.index, f"card_amount_sum_{win}"] = sm
                out.loc[g.index, f"card_amount_mean_{win}"] = np.where(
                    cnt > 0, sm / np.maximum(cnt, 1), np.nan
                )
        if cols:
            gap = g.groupby(key, sort=False)["t"].diff().dt.total_seconds()
            out.loc[g.index, "card_secs_since_last"] = gap.to_numpy()
    return out[SUBSET]


def run_bench(
    n: int = 1_000_000,
    seed: int = 0,
    batch: int = 8_192,
    baseline_n: int | None = None,
    repeats: int = 3,
) -> dict[str, Any]:
    """Measure; returns the JSON-ready result (tx/s figures are medians of ``repeats`` runs)."""
    t0 = time.perf_counter()
    tx_df, lb_df, source = _load_stream(n, seed)
    tx = TxBatch.from_frame(tx_df)
    labels = LabelBatch.join(lb_df, tx_df) if len(lb_df) else None
    n = len(tx)
    bn = n if baseline_n is None else min(baseline_n, n)
    # pandas gets the engine's integer keys: id hashing is outside both timings.
    base_df = pd.DataFrame(
        {
            "card_token": tx.card[:bn],
            "merchant_id": tx.merchant[:bn],
            "amount": tx.amount[:bn],
            "event_time": tx.ts[:bn],
        }
    )
    del tx_df, lb_df
    prep_s = time.perf_counter() - t0

    def run(features: list[str] | None) -> tuple[float, float, FeatureEngine]:
        warm = FeatureEngine(features=features)  # compile / load the kernel cache
        warm.process(tx.take(slice(0, 1000)), labels)
        engine = FeatureEngine(features=features)
        cursor = 0
        t, c = time.perf_counter(), time.process_time()
        for start in range(0, n, batch):
            chunk = tx.take(slice(start, start + batch))
            lb = None
            if labels is not None:
                end = int(np.searchsorted(labels.label_time, chunk.ts[-1], side="right"))
                if end > cursor:
                    lb = LabelBatch(*(a[cursor:end] for a in labels))
                    cursor = end
            engine.process(chunk, lb)
        return time.perf_counter() - t, time.process_time() - c, engine

    def pandas_run() -> tuple[float, float, None]:
        t, c = time.perf_counter(), time.process_time()
        pandas_subset(base_df)
        return time.perf_counter() - t, time.process_time() - c, None

    gc.collect()
    gc.freeze()
    try:
        full_runs, subset_runs, base_runs = [], [], []
        for _ in range(repeats):  # interleaved, so load changes hit all three alike
            *times, full = run(None)
            full_runs.append(times)
            subset_runs.append(run(SUBSET)[:2])
            base_runs.append(pandas_run()[:2])
    finally:
        gc.unfreeze()

    def med(runs: list[Any], rows: int, k: int = 0) -> float:
        return rows / statistics.median(r[k] for r in runs)

    n_ent = int(full._ent.meta[0])
    n_pair = int(full._pair.meta[0])
    rows = FeatureEngine.row_bytes()
    subset_tps = med(subset_runs, n)
    base_tps = med(base_runs, bn)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "source": source,
        "n_transactions": n,
        "n_labels": 0 if labels is None else len(labels),
        "batch_size": batch,
        "repeats": repeats,
        "n_features": full.n_features,
        "tx_per_s": med(full_runs, n),
        "tx_per_s_runs": [n / r[0] for r in full_runs],
        # CPU time of this process: less sensitive than wall time to other load on the machine.
        "tx_per_s_cpu": med(full_runs, n, 1),
        "seconds_full": statistics.median(r[0] for r in full_runs),
        # What the output alone costs: one float32 per feature per transaction.
        "output_bytes_per_tx": 4 * full.n_features,
        # Allocated state (hash-table slack included) per live entity or pair.
        "state_bytes_per_entity": full.state_nbytes() / max(n_ent + n_pair, 1),
        # Bytes of the rows the live entities and pairs actually occupy.
        "state_row_bytes_per_entity": (n_ent * rows["entity"] + n_pair * rows["pair"])
        / max(n_ent + n_pair, 1),
        "state_row_bytes": rows,
        "state_bytes_total": full.state_nbytes(),
        "entities": n_ent,
        "pairs": n_pair,
        "subset": SUBSET,
        "subset_tx_per_s": subset_tps,
        "subset_tx_per_s_cpu": med(subset_runs, n, 1),
        "baseline_tx_per_s": base_tps,
        "baseline_tx_per_s_cpu": med(base_runs, bn, 1),
        "baseline_rows": bn,
        "ratio": subset_tps / base_tps,
        "prepare_s": prep_s,
        "load_avg_1m": load,
        "cpu_count": os.cpu_count(),
    }
