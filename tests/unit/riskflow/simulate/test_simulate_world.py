"""Legitimate behaviour: people shop near home, with their own devices, in habits."""

from __future__ import annotations

import numpy as np
import pandas as pd
from simulate_testkit import frames

from riskflow.simulate import SimulationConfig
from riskflow.simulate._world import build_world, entity_tables


def test_customers_mostly_shop_near_home_with_their_own_devices() -> None:
    tx, _ = frames()
    legit = tx[tx["is_fraud"] == 0]
    home_country = (
        legit[legit["channel"] == "pos"]
        .groupby("customer_id")["country"]
        .agg(lambda s: s.mode().iloc[0])
    )
    cp = legit[legit["channel"].isin(["pos", "atm"])]
    at_home = cp["country"].to_numpy() == home_country.reindex(cp["customer_id"]).to_numpy()
    assert 0.95 < at_home.mean() < 1.0  # some travel
    app = legit[legit["device_id"].notna()]
    devices = app.groupby("customer_id")["device_id"].nunique()
    assert devices.median() <= 2
    top = app.groupby(["customer_id", "device_id"]).size().groupby("customer_id").max()
    assert (top / app.groupby("customer_id").size()).median() >= 0.5


def test_merchant_popularity_is_heavy_tailed_and_amounts_depend_on_mcc() -> None:
    tx, _ = frames()
    legit = tx[(tx["is_fraud"] == 0) & (tx["currency"] == "EUR")]
    per_merchant = legit.groupby("merchant_id").size().sort_values(ascending=False)
    top = per_merchant.iloc[: max(1, len(per_merchant) // 10)].sum() / per_merchant.sum()
    assert top > 0.3  # top 10% of merchants take a large share
    med = legit.groupby("mcc")["amount"].median()
    assert med[5411] > 2 * med[4111] and med[4722] > 3 * med[5411]
    logs = np.log(legit.loc[legit["mcc"] == 5411, "amount"])
    assert abs(float(pd.Series(logs).skew())) < 0.5  # roughly lognormal


def test_entity_tables_are_consistent() -> None:
    world = build_world(SimulationConfig(customers=500, days=3, seed=1))
    t = entity_tables(world)
    assert t["customers"]["customer_id"].is_unique and len(t["customers"]) == 500
    assert t["cards"]["card_token"].is_unique
    assert t["cards"]["customer_id"].isin(t["customers"]["customer_id"]).all()
    assert t["terminals"]["merchant_id"].isin(t["merchants"]["merchant_id"]).all()
    phys = t["terminals"]["kind"].isin(["pos", "atm"])
    assert t["terminals"].loc[phys, ["lat", "lon"]].notna().all().all()
    assert (t["merchants"]["collusive"] == (t["merchants"]["opened_day"] == -1)).all()
