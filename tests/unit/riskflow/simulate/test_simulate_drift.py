"""Each drift option changes what it says it changes, and nothing happens without it."""

from __future__ import annotations

import functools

import pandas as pd

from riskflow.simulate import SimulationConfig, iter_chunks

DAY_MS = 86_400_000
BASE = {"customers": 1_500, "days": 28, "seed": 5, "fraud_rate": 0.01}


@functools.cache
def _tx(drift: str) -> pd.DataFrame:
    cfg = SimulationConfig(**BASE, drift=drift)
    tx = pd.concat([t for t, _ in iter_chunks(cfg)], ignore_index=True)
    tx["day"] = (tx["event_time"] - cfg.start_ms) // DAY_MS
    return tx


def test_fraud_spike_raises_the_fraud_rate_inside_its_window_only() -> None:
    cfg = SimulationConfig(**BASE, drift="fraud_spike")
    lo, hi = cfg.drift_start, cfg.drift_start + cfg.drift_length
    tx = _tx("fraud_spike")
    # scenario rows can land a day or two later; compare the started-in-window share
    inside = tx[(tx["day"] >= lo) & (tx["day"] < hi)]["is_fraud"].mean()
    before = tx[tx["day"] < lo]["is_fraud"].mean()
    assert inside > 2.0 * before
    base = _tx("none")
    base_inside = base[(base["day"] >= lo) & (base["day"] < hi)]["is_fraud"].mean()
    assert inside > 2.0 * base_inside


def test_new_scenario_appears_mid_stream() -> None:
    cfg = SimulationConfig(**BASE, drift="new_scenario")
    tx = _tx("new_scenario")
    s = cfg.drift_scenario
    assert (tx.loc[tx["day"] < cfg.drift_start, "fraud_scenario"] == s).sum() == 0
    assert (tx.loc[tx["day"] >= cfg.drift_start, "fraud_scenario"] == s).sum() > 10
    base = _tx("none")
    assert (base.loc[base["day"] < cfg.drift_start, "fraud_scenario"] == s).sum() > 10


def test_volume_shift_raises_volume_and_the_online_share() -> None:
    cfg = SimulationConfig(**BASE, drift="volume_shift")
    tx = _tx("volume_shift")
    before, after = tx[tx["day"] < cfg.drift_start], tx[tx["day"] >= cfg.drift_start]
    per_day = len(after) / (cfg.days - cfg.drift_start) / (len(before) / cfg.drift_start)
    assert 1.3 < per_day < 1.7  # volume_factor 1.5, whole weeks on both sides
    online = ["ecom", "p2p", "moto"]
    assert after["channel"].isin(online).mean() > 1.15 * before["channel"].isin(online).mean()
    base = _tx("none")
    b_before, b_after = base[base["day"] < cfg.drift_start], base[base["day"] >= cfg.drift_start]
    assert 0.9 < len(b_after) / len(b_before) < 1.1


def test_weekly_rhythm_and_time_of_day() -> None:
    tx = _tx("none")
    hour = (tx["event_time"] // 3_600_000) % 24
    pos = tx["channel"] == "pos"
    assert (hour[pos] == 18).mean() > 5 * (hour[pos] == 3).mean()
    per_day = tx.groupby("day").size()
    weekday = per_day.groupby(per_day.index % 7).mean()  # day 0 is a Monday
    assert weekday[4] > weekday[6] * 1.15  # Friday busier than Sunday
