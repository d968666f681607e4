"""Foreign-schema files map onto the canonical schema (issue: column mapping)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskflow.batch import TxBatch
from riskflow.errors import MappingError, SchemaError, ValidationError
from riskflow.mapping import ColumnMapping, builtin_mappings
from riskflow.schema import TRANSACTION_COLUMNS, validate_transaction
from riskflow.table import canonicalize, load_dataset, read_labels, read_transactions

PANS = ["4111111111111111", "5500005555555559", "340000000000009"]


def sparkov_csv(path: Path, n: int = 30) -> Path:
    rng = np.random.default_rng(0)
    t0 = 1_640_995_200  # 2022-01-01, epoch seconds
    df = pd.DataFrame(
        {
            "trans_date_trans_time": pd.to_datetime(t0 + np.arange(n) * 60, unit="s").astype(str),
            "cc_num": [
                int(PANS[i % 3]) for i in range(n)
            ],  # read back as int64, as in the real files
            "merchant": [f"fraud_Shop {i % 4}" for i in range(n)],
            "category": "grocery_pos",
            "amt": rng.gamma(2.0, 30.0, n).round(2),
            "unix_time": (t0 + np.arange(n) * 60)[::-1],  # out of order on purpose
            "merch_lat": rng.uniform(30, 45, n),
            "merch_long": rng.uniform(-120, -80, n),
            "is_fraud": (np.arange(n) % 10 == 3).astype(int),
            "trans_num": [f"{i:032x}" for i in range(n)],
        }
    )
    out = path / "sparkov.csv"
    df.to_csv(out, index=False)
    return out


def test_builtin_mappings_listed() -> None:
    assert {"sparkov", "handbook"} <= set(builtin_mappings())


def test_sparkov_file_maps_onto_schema(tmp_path: Path) -> None:
    src = sparkov_csv(tmp_path)
    ds = load_dataset(src, "sparkov", tokenisation_key=b"k")
    tx = ds.transactions
    assert list(tx.columns) == list(TRANSACTION_COLUMNS)
    assert len(tx) == 30 and tx["event_time"].is_monotonic_increasing
    assert tx["event_time"].iloc[0] == 1_640_995_200_000
    # Raw card numbers are gone: tokens plus the non-secret BIN.
    flat = [str(v) for v in tx.to_numpy().ravel()]
    assert not any(p in v for p in PANS for v in flat)
    assert tx["card_token"].str.startswith("tok_").all() and tx["card_token"].nunique() == 3
    assert set(tx["card_bin"]) == {"411111", "550000", "340000"}
    assert (tx["currency"] == "USD").all() and (tx["channel"] == "pos").all()
    for rec in tx.head(5).to_dict("records"):
        validate_transaction({k: (None if pd.isna(v) else v) for k, v in rec.items()})
    # Labels from the is_fraud column, released after the mapping's 14-day delay.
    labels = ds.labels
    assert len(labels) == 3 and (labels["label"] == 1).all()
    joined = labels.merge(tx[["tx_id", "event_time"]], on="tx_id")
    assert ((joined["label_time"] - joined["event_time"]) == 14 * 86_400_000).all()
    # Missing optional fields degrade to absent keys / NaN, not errors.
    b = TxBatch.from_frame(tx)
    assert (b.device == 0).all() and (b.customer == 0).all() and np.isfinite(b.lat).all()


def test_handbook_relative_and_iso_times(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "TRANSACTION_ID": [0, 1, 2],
            "TX_DATETIME": ["2018-04-01 00:00:31", "2018-04-01 00:02:10", "2018-04-01 00:07:56"],
            "CUSTOMER_ID": [596, 4961, 2],
            "TERMINAL_ID": [3156, 3412, 1365],
            "TX_AMOUNT": [57.16, 81.51, 146.00],
            "TX_FRAUD": [0, 1, 0],
        }
    )
    df.to_parquet(tmp_path / "h.parquet")
    ds = load_dataset(tmp_path / "h.parquet", "handbook")
    assert ds.transactions["tx_id"].tolist() == ["0", "1", "2"]
    assert (
        ds.transactions["event_time"].iloc[0]
        == pd.Timestamp("2018-04-01 00:00:31", tz="UTC").value // 10**6
    )
    assert ds.labels["tx_id"].tolist() == ["1"]


def test_relative_seconds_with_origin(tmp_path: Path) -> None:
    m = ColumnMapping.from_dict(
        {
            "transactions": {
                "tx_id": "id",
                "event_time": {"column": "secs", "unit": "s", "origin": "2026-01-01"},
                "card_token": "card",
                "merchant_id": "shop",
                "amount": "amt",
            }
        }
    )
    raw = pd.DataFrame({"id": ["a"], "secs": [90], "card": ["c"], "shop": ["s"], "amt": [1.0]})
    tx, _ = canonicalize(m.apply(raw, b"k"))
    assert tx["event_time"].iloc[0] == 1_767_225_690_000


def test_separate_labels_file_with_delay(tmp_path: Path) -> None:
    tx = pd.DataFrame(
        {
            "tx_id": ["a", "b"],
            "event_time": [1_767_225_600_000, 1_767_225_700_000],
            "card_token": ["c", "c"],
            "merchant_id": ["m", "m"],
            "amount": [1.0, 2.0],
        }
    )
    tx.to_parquet(tmp_path / "tx.parquet")
    pd.DataFrame({"ID": ["b", "a"], "FRAUD": [1, 0]}).to_csv(tmp_path / "lab.csv", index=False)
    m = ColumnMapping.from_dict({"labels": {"tx_id": "ID", "label": "FRAUD", "delay": "2d"}})
    ds = load_dataset(tmp_path / "tx.parquet", m, labels_path=tmp_path / "lab.csv")
    assert ds.labels["tx_id"].tolist() == ["a", "b"]  # label-time order
    assert ds.labels["label"].tolist() == [0, 1]
    assert ds.labels["label_time"].tolist() == [
        1_767_225_600_000 + 2 * 86_400_000,
        1_767_225_700_000 + 2 * 86_400_000,
    ]
    with pytest.raises(SchemaError, match="pass the transactions"):
        read_labels(tmp_path / "lab.csv", m)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"transactions": {"amout": "x"}}, "not a canonical field"),
        ({"transactions": {"amount": {"column": "x", "value": 1}}}, "exactly one of"),
        ({"transactions": {"event_time": {"column": "t", "unit": "days"}}}, "unit 'days'"),
        ({"transactions": {"amount": {"colum": "x"}}}, "unknown option"),
        ({"labels": {"delay": "two weeks"}}, "not a duration"),
        ({"extra": {}}, "unknown section"),
    ],
)
def test_bad_mappings_explain(data: dict, needle: str) -> None:
    with pytest.raises(MappingError, match=needle):
        ColumnMapping.from_dict(data)


def test_missing_source_column_named(tmp_path: Path) -> None:
    m = ColumnMapping.from_dict({"transactions": {"amount": "AMOUNT_EUR"}})
    with pytest.raises(MappingError, match="'AMOUNT_EUR'"):
        m.apply(pd.DataFrame({"amt": [1.0]}), b"k")
    with pytest.raises(MappingError, match="does not exist"):
        ColumnMapping.load(tmp_path / "nope.toml")


def test_canonicalize_reports_bad_rows() -> None:
    df = pd.DataFrame(
        {
            "tx_id": ["a", "b", "b", "c", "d"],
            "event_time": [
                1_767_225_600_000,
                1_767_225_600_000,
                1_767_225_600_001,
                5,
                1_767_225_600_002,
            ],
            "card_token": ["c", "4111111111111111", "c", "c", "c"],
            "merchant_id": ["m"] * 5,
            "amount": [1.0, 2.0, 3.0, 4.0, -1.0],
            "channel": ["pos", "pos", "pos", "pos", "warp"],
        }
    )
    good, rejects = canonicalize(df, errors="report")
    assert good["tx_id"].tolist() == ["a"]
    got = set(zip(rejects["row"], rejects["field"], strict=True))
    assert {
        (1, "card_token"),
        (2, "tx_id"),
        (3, "event_time"),
        (4, "amount"),
        (4, "channel"),
    } <= got
    assert not rejects["reason"].str.contains("4111111111111111").any()
    with pytest.raises(ValidationError, match="row 1"):
        canonicalize(df)


def test_missing_required_column_tells_how_to_map(tmp_path: Path) -> None:
    pd.DataFrame({"tx_id": ["a"], "amount": [1.0]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(SchemaError, match="--mapping"):
        read_transactions(tmp_path / "x.parquet")
