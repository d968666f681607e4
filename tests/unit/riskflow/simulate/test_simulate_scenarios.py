"""Each fraud scenario leaves the signature it claims, and legit data has look-alikes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from simulate_testkit import RICH, frames

from riskflow.simulate._world import build_world

MIN_MS = 60_000
DAY_MS = 86_400_000


def _speed_to_previous(tx: pd.DataFrame) -> pd.Series:
    """km/h from each card-present row to the card's previous card-present row."""
    cp = tx[tx["lat"].notna()].sort_values(["card_token", "event_time"], kind="stable")
    same = cp["card_token"].eq(cp["card_token"].shift())
    lat1, lon1 = np.radians(cp["lat"].shift()), np.radians(cp["lon"].shift())
    lat2, lon2 = np.radians(cp["lat"]), np.radians(cp["lon"])
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    km = 2 * 6371 * np.arcsin(np.sqrt(a))
    hours = (cp["event_time"] - cp["event_time"].shift()) / 3.6e6
    speed = (km / np.maximum(hours, 1 / 60)).where(same)
    return speed.reindex(tx.index)


def test_stolen_cards_make_impossible_travel_pairs() -> None:
    tx, _ = frames()
    speed = _speed_to_previous(tx)
    # Door to door, no traveller beats ~500 km/h over a few hours.
    fast = (speed > 500).groupby(tx["card_token"]).any()
    stolen_cards = tx.loc[tx["fraud_scenario"] == "stolen_card", "card_token"].unique()
    fraud_cards = tx.loc[tx["is_fraud"] == 1, "card_token"].unique()
    legit_cards = tx.loc[~tx["card_token"].isin(fraud_cards), "card_token"].unique()
    fast_fraud = fast[stolen_cards].mean()
    fast_legit = fast[legit_cards].mean()
    assert fast_fraud > 0.3  # the owner shopped at home hours before
    assert fast_legit < 0.04 and fast_fraud > 10 * fast_legit
    assert fast[legit_cards].sum() > 0  # travellers: not a perfect rule
    stolen = tx["fraud_scenario"] == "stolen_card"
    # and far from home: most stolen-card rows are in another country than the card's usual
    home = tx[tx["is_fraud"] == 0].groupby("card_token")["country"].agg(lambda s: s.mode().iloc[0])
    abroad = (
        tx.loc[stolen, "country"].to_numpy()
        != home.reindex(tx.loc[stolen, "card_token"]).to_numpy()
    )
    assert abroad.mean() > 0.4


def test_card_testing_bursts_then_a_large_payment() -> None:
    tx, _ = frames()
    ct = tx[tx["fraud_scenario"] == "card_testing"]
    ok = 0
    cards = ct["card_token"].unique()
    for _, g in ct.groupby("card_token"):
        small = g[(g["amount"] < 5 * 40) & (g["channel"] == "ecom")]  # < 5 EUR in any currency
        small = small[small["amount"] <= small["amount"].min() * 60]
        t = small["event_time"].to_numpy()
        burst = len(t) >= 3 and (t[2:] - t[:-2]).min() <= 10 * MIN_MS
        big_after = (g["event_time"] > t.max()).any() and g["amount"].max() > 20 * g["amount"].min()
        ok += bool(burst and big_after and g["device_id"].nunique() == 1)
    assert ok >= 0.9 * len(cards)
    # legit customers also make runs of small digital purchases
    legit_small = tx[(tx["is_fraud"] == 0) & (tx["mcc"].isin([5816, 5818])) & (tx["amount"] < 5)]
    assert legit_small.groupby("card_token").size().gt(2).sum() > 10


def test_skimmed_cards_share_a_terminal_before_their_fraud() -> None:
    tx, _ = frames()
    sk = tx[tx["fraud_scenario"] == "skimming"]
    first_fraud = sk.groupby("card_token")["event_time"].min()
    legit = tx[(tx["is_fraud"] == 0) & tx["channel"].isin(["pos", "atm"])]
    legit = legit[legit["card_token"].isin(first_fraud.index)]
    before = legit[
        legit["event_time"].to_numpy() < first_fraud.reindex(legit["card_token"]).to_numpy()
    ]
    visits = before.drop_duplicates(["card_token", "terminal_id"])
    victims_per_terminal = visits.groupby("terminal_id")["card_token"].nunique()
    shared = victims_per_terminal[victims_per_terminal >= 3].index
    covered = visits.loc[visits["terminal_id"].isin(shared), "card_token"].nunique()
    assert covered >= 0.9 * len(first_fraud)
    assert victims_per_terminal.max() >= 5
    # the fraud itself is elsewhere: mostly not at a terminal the card used before
    at_known = sk.set_index(["card_token", "terminal_id"]).index.isin(
        visits.set_index(["card_token", "terminal_id"]).index
    )
    assert at_known.mean() < 0.1
    # control: random legit cards do not cluster like that
    rng = np.random.default_rng(0)
    ctrl_cards = rng.choice(
        tx.loc[tx["is_fraud"] == 0, "card_token"].unique(), len(first_fraud), replace=False
    )
    ctrl = tx[tx["card_token"].isin(ctrl_cards) & tx["channel"].isin(["pos", "atm"])]
    ctrl_max = (
        ctrl.drop_duplicates(["card_token", "terminal_id"]).groupby("terminal_id").size().max()
    )
    assert victims_per_terminal.max() > ctrl_max


def test_account_takeover_uses_a_new_device_and_ip() -> None:
    tx, _ = frames()
    ato = tx[tx["fraud_scenario"] == "account_takeover"]
    legit = tx[(tx["is_fraud"] == 0) & tx["device_id"].notna()]
    seen_dev = set(zip(legit["customer_id"], legit["device_id"], strict=True))
    seen_ip = set(zip(legit["customer_id"], legit["ip"], strict=True))
    new_dev = [
        (c, d) not in seen_dev for c, d in zip(ato["customer_id"], ato["device_id"], strict=True)
    ]
    new_ip = [(c, i) not in seen_ip for c, i in zip(ato["customer_id"], ato["ip"], strict=True)]
    assert np.mean(new_dev) > 0.95 and np.mean(new_ip) > 0.9
    typical = legit.groupby("customer_id")["amount"].median()
    ratio = ato["amount"].to_numpy() / typical.reindex(ato["customer_id"]).to_numpy()
    assert np.nanmedian(ratio) > 3  # changed spending


def test_high_amount_is_far_above_the_customers_habit() -> None:
    tx, _ = frames()
    ha = tx[tx["fraud_scenario"] == "high_amount"]
    typical = tx[tx["is_fraud"] == 0].groupby("card_token")["amount"].median()
    ratio = ha["amount"].to_numpy() / typical.reindex(ha["card_token"]).to_numpy()
    assert np.nanmedian(ratio) > 5


def test_merchant_bustout_bursts_many_cards_at_one_merchant() -> None:
    tx, _ = frames()
    bo = tx[tx["fraud_scenario"] == "merchant_bustout"]
    assert bo["merchant_id"].nunique() >= 4
    world = build_world(RICH)  # merchants created for bust-outs (the rest turn collusive)
    pool = set(world.s_merchant.take(world.term_merchant[world.bustout_terms]).to_pylist())
    new = 0
    for _, g in tx[tx["merchant_id"].isin(bo["merchant_id"].unique())].groupby("merchant_id"):
        fraud = g[g["fraud_scenario"] == "merchant_bustout"]  # (not ATO etc. at that shop)
        assert fraud["card_token"].nunique() >= 10
        assert (g["is_fraud"] == 0).any()  # real customers too
        assert fraud["event_time"].max() - fraud["event_time"].min() < 5 * DAY_MS  # a burst
        assert (fraud["channel"].isin(["ecom", "moto"])).all()
        # a new merchant trades a little first, busts out within days, then vanishes
        if g["merchant_id"].iloc[0] in pool:
            new += 1
            assert g["event_time"].max() - g["event_time"].min() < 7 * DAY_MS
            assert g["is_fraud"].mean() > 0.3
            assert fraud["event_time"].min() > g["event_time"].min() + DAY_MS / 2
    assert 1 <= new < bo["merchant_id"].nunique()
