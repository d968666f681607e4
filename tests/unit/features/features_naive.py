"""Slow, obvious reference implementations of a representative feature subset."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

HOUR = 3_600_000
DAY = 86_400_000


def naive(df: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Row-by-row Python over a canonical frame (event-time order)."""
    rows = []
    card_events: dict[str, list[tuple[int, float, str]]] = {}
    pair_seen: dict[tuple[str, str], int] = {}
    geo_prev: dict[str, tuple[float, float]] = {}
    lab = labels.sort_values("label_time", kind="stable") if labels is not None else None
    tx_merchant = dict(zip(df["tx_id"], df["merchant_id"], strict=True))
    for r in df.itertuples(index=False):
        t, card, a, m = int(r.event_time), r.card_token, float(r.amount), r.merchant_id
        ev = card_events.setdefault(card, [])
        out: dict[str, float] = {}
        for win, tau in (("1h", HOUR), ("24h", DAY)):
            w = [math.exp(-(t - et) / tau) for et, _, _ in ev]
            c = sum(w)
            s = sum(wi * ea for wi, (_, ea, _) in zip(w, ev, strict=True))
            out[f"card_count_{win}"] = c
            out[f"card_amount_sum_{win}"] = s
            out[f"card_amount_mean_{win}"] = s / c if c > 1e-9 else np.nan
        out["card_secs_since_last"] = (t - ev[-1][0]) / 1000 if ev else np.nan
        last8 = ev[-8:]
        out["card_count_10m"] = float(sum(t - et <= 600_000 for et, _, _ in last8))
        out["card_merchant_new"] = float(all(em != m for _, _, em in last8))
        out["card_merchant_n_lifetime"] = float(pair_seen.get((card, m), 0))
        if not (isinstance(r.lat, float) and math.isnan(r.lat)):
            if card in geo_prev:
                la0, lo0 = geo_prev[card]
                p1, p2 = math.radians(la0), math.radians(r.lat)
                h = (
                    math.sin((p2 - p1) / 2) ** 2
                    + math.cos(p1) * math.cos(p2) * math.sin(math.radians(r.lon - lo0) / 2) ** 2
                )
                out["card_geo_dist_prev_km"] = 2 * 6371.0088 * math.asin(min(1, math.sqrt(h)))
            geo_prev[card] = (r.lat, r.lon)
        if lab is not None:
            known = lab[(lab["label_time"] <= t) & (lab["label"] == 1)]
            frauds = [
                lt
                for lt, tid in zip(known["label_time"], known["tx_id"], strict=True)
                if tx_merchant[tid] == m
            ]
            out["merchant_fraud_count_30d"] = sum(math.exp(-(t - lt) / (30 * DAY)) for lt in frauds)
        rows.append(out)
        ev.append((t, a, m))
        pair_seen[(card, m)] = pair_seen.get((card, m), 0) + 1
    return pd.DataFrame(rows)
