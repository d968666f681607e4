from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from simulate_testkit import RICH, frames

from riskflow.schema import TRANSACTION_COLUMNS, looks_like_pan, validate_transaction
from riskflow.simulate import SimulationConfig, SimulationOutputError, iter_chunks, simulate

SMALL = SimulationConfig(customers=400, days=5, seed=3, fraud_rate=0.02)
DAY_MS = 86_400_000


def _collect(cfg: SimulationConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    txs, labels = zip(*iter_chunks(cfg), strict=True)
    return pd.concat(txs, ignore_index=True), pd.concat(labels, ignore_index=True)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a_tx, a_lab = _collect(SMALL)
    b_tx, b_lab = _collect(SMALL)
    pd.testing.assert_frame_equal(a_tx, b_tx)
    pd.testing.assert_frame_equal(a_lab, b_lab)
    c_tx, _ = _collect(SimulationConfig(customers=400, days=5, seed=4, fraud_rate=0.02))
    assert len(c_tx) != len(a_tx) or not a_tx["amount"].equals(c_tx["amount"])
    assert not set(a_tx["tx_id"]) & set(c_tx["tx_id"])  # ids differ between seeds


def test_chunks_are_days_in_time_order_with_a_final_labels_chunk() -> None:
    chunks = list(iter_chunks(SMALL))
    assert len(chunks) == SMALL.days + 1
    assert len(chunks[-1][0]) == 0 and len(chunks[-1][1]) > 0  # chargebacks after the end
    for d, (tx, _) in enumerate(chunks[:-1]):
        t = tx["event_time"].to_numpy()
        assert np.all(np.diff(t) >= 0)
        assert (
            t.min() >= SMALL.start_ms + d * DAY_MS and t.max() < SMALL.start_ms + (d + 1) * DAY_MS
        )
    lt = pd.concat([lab for _, lab in chunks])["label_time"].to_numpy()
    assert np.all(np.diff(lt) >= 0)


def test_schema_of_every_row() -> None:
    tx, labels = frames()
    assert tuple(tx.columns) == (*TRANSACTION_COLUMNS, "is_fraud", "fraud_scenario")
    assert tx["tx_id"].is_unique
    assert tx["event_time"].dtype == np.int64 and tx["is_fraud"].dtype == np.int8
    assert tx["card_token"].str.fullmatch(r"tok_[0-9a-f]{16}").all()
    assert not any(looks_like_pan(t) for t in tx["card_token"].unique()[:2000])
    assert tx["card_bin"].str.fullmatch(r"\d{6}").all()
    assert (
        tx["currency"].str.fullmatch(r"[A-Z]{3}").all()
        and tx["country"].str.fullmatch(r"[A-Z]{2}").all()
    )
    assert set(tx["channel"]) == {"pos", "ecom", "atm", "moto", "p2p"}
    assert set(tx["entry_mode"]) <= {"chip", "contactless", "magstripe", "manual", "cnp", "token"}
    present = tx["channel"].isin(["pos", "atm"])
    assert tx.loc[present, ["lat", "lon"]].notna().all().all()
    assert tx.loc[~present, ["lat", "lon"]].isna().all().all()  # online: no location (documented)
    assert tx.loc[present, "device_id"].isna().all() and tx.loc[present, "ip"].isna().all()
    app = tx["channel"].isin(["ecom", "p2p"])
    assert tx.loc[app, "device_id"].notna().all() and tx.loc[app, "ip"].notna().all()
    assert (tx["amount"] > 0).all() and tx["mcc"].between(0, 9999).all()
    assert ((tx["fraud_scenario"] != "") == (tx["is_fraud"] == 1)).all()
    sample = tx.sample(3_000, random_state=0)
    for rec in sample.astype(object).where(sample.notna(), None).to_dict("records"):
        out = validate_transaction(rec)
        assert out["tx_id"] == rec["tx_id"]
    assert list(labels.columns) == ["tx_id", "label", "label_time"]


def test_labels_follow_their_transactions() -> None:
    tx, labels = frames()
    assert labels["tx_id"].is_unique
    j = labels.merge(
        tx[["tx_id", "event_time", "is_fraud"]], on="tx_id", how="left", validate="1:1"
    )
    assert j["event_time"].notna().all()  # every label is about a transaction in the data
    assert (j["label_time"] >= j["event_time"] + RICH.label_delay_min_days * DAY_MS).all()
    assert (j["label"] == j["is_fraud"]).all()  # 1 = fraud; 0 = dispute found legitimate
    assert (j["label"] == 0).sum() > 0
    reported = labels["label"].sum() / tx["is_fraud"].sum()
    assert 0.65 < reported < 0.92  # ~20% of incidents never reported
    delay_days = (
        j.loc[j["label"] == 1, "label_time"] - j.loc[j["label"] == 1, "event_time"]
    ) / DAY_MS
    assert 10 < delay_days.median() < 30 and delay_days.min() >= 1


def test_fraud_rate_and_mix_are_as_configured() -> None:
    tx, _ = frames()
    # skimming and bust-outs scheduled past the end are cut, so a bit under target
    assert 0.6 * RICH.fraud_rate < tx["is_fraud"].mean() < 1.2 * RICH.fraud_rate
    counts = tx.loc[tx["is_fraud"] == 1, "fraud_scenario"].value_counts(normalize=True)
    assert set(counts.index) == set(RICH.scenario_mix)
    assert counts.min() > 0.03
    default = SimulationConfig(customers=3_000, days=14, seed=2)
    d_tx, _ = _collect(default)
    assert 0.001 <= d_tx["is_fraud"].mean() <= 0.01  # realistic base rate


def test_simulate_writes_the_documented_layout(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    summary = simulate(SMALL, out)
    parts = sorted((out / "transactions").glob("part-*.parquet"))
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(SMALL.days)]
    times = [pq.read_table(p, columns=["event_time"])["event_time"].to_numpy() for p in parts]
    for a, b in zip(times, times[1:], strict=False):
        assert a.max() <= b.min()  # globally sorted across parts
    tx = pd.read_parquet(out / "transactions")
    labels = pd.read_parquet(out / "labels")
    assert np.all(np.diff(labels["label_time"].to_numpy()) >= 0)
    e_tx, e_lab = _collect(SMALL)
    pd.testing.assert_frame_equal(tx, e_tx, check_dtype=False)
    pd.testing.assert_frame_equal(labels, e_lab, check_dtype=False)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == SMALL.seed and manifest["schema_version"] == 1
    assert manifest["parameters"] == SMALL.to_dict()
    assert manifest["counts"]["transactions"] == len(tx) == summary.transactions
    assert manifest["counts"]["labels"] == len(labels) == summary.labels
    assert (
        manifest["scenario_counts"]
        == tx.loc[tx["is_fraud"] == 1, "fraud_scenario"]
        .value_counts()
        .reindex(list(manifest["scenario_counts"]), fill_value=0)
        .to_dict()
    )

    ent = {
        n: pd.read_parquet(out / f"{n}.parquet")
        for n in ("customers", "cards", "merchants", "terminals")
    }
    assert set(tx["card_token"]) <= set(ent["cards"]["card_token"])
    assert set(tx["customer_id"]) <= set(ent["customers"]["customer_id"])
    assert set(tx["terminal_id"]) <= set(ent["terminals"]["terminal_id"])
    owner = ent["cards"].set_index("card_token")["customer_id"]
    assert (owner.loc[tx["card_token"]].to_numpy() == tx["customer_id"].to_numpy()).all()
    mcc = ent["merchants"].set_index("merchant_id")["mcc"]
    assert (mcc.loc[tx["merchant_id"]].to_numpy() == tx["mcc"].to_numpy()).all()
    for name, df in ent.items():
        assert manifest["counts"][name] == len(df)

    # same config, same files
    again = simulate(SMALL, tmp_path / "again")
    assert again.transactions == summary.transactions
    assert json.loads((tmp_path / "again" / "manifest.json").read_text()) == manifest


def test_output_folder_is_protected(tmp_path: Path) -> None:
    cfg = SimulationConfig(customers=100, days=1, seed=0)
    simulate(cfg, tmp_path)
    with pytest.raises(SimulationOutputError, match="already holds a dataset"):
        simulate(cfg, tmp_path)
    (tmp_path / "transactions" / "part-00099.parquet").write_bytes(b"stale")
    simulate(cfg, tmp_path, overwrite=True)  # stale parts are removed
    assert not (tmp_path / "transactions" / "part-00099.parquet").exists()


def test_progress_is_called_once_per_day(tmp_path: Path) -> None:
    seen: list[tuple[int, int, int]] = []
    simulate(SMALL, tmp_path, progress=lambda d, t, n: seen.append((d, t, n)))
    assert [s[0] for s in seen] == list(range(1, SMALL.days + 1))
    assert all(s[1] == SMALL.days for s in seen) and seen[-1][2] > 0


def test_output_loads_as_a_training_history(tmp_path: Path) -> None:
    from riskflow.table import load_dataset

    simulate(SMALL, tmp_path)
    ds = load_dataset(tmp_path)
    n = sum(
        len(pq.read_metadata(p).to_dict()["row_groups"]) >= 0 and pq.read_metadata(p).num_rows
        for p in (tmp_path / "transactions").glob("*.parquet")
    )
    assert len(ds.transactions) == n
    assert len(ds.labels) == len(pd.read_parquet(tmp_path / "labels"))


def test_summary_reports_label_delay_quantiles() -> None:
    from riskflow.simulate.engine import _Run

    run = _Run(SMALL)
    for _ in run.days():
        pass
    q = run.summary.label_delay_days
    assert set(q) == {"min", "p10", "p50", "p90", "p99", "max"}
    assert q["min"] <= q["p10"] <= q["p50"] <= q["p90"] <= q["max"]
    d = run.summary.to_dict()
    assert re.fullmatch(r"\d+\.\d+", str(d["tx_per_s"])) is None or d["tx_per_s"] >= 0
