"""The training pipeline end to end on a small history, with a stand-in feature engine."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from riskflow.batch import LabelBatch, TxBatch
from riskflow.config import Config
from riskflow.models import TimeSplit, known_labels, load_model
from riskflow.train import train

DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01
FAST = {
    "lgbm_params": {"num_boost_round": 80, "early_stopping_rounds": 20},
    "mlp_params": {"max_epochs": 4, "patience": 2, "hidden": (32,)},
}


class StubEngine:
    """Point-in-time features from a TxBatch and the labels known so far."""

    feature_names = ["amount_log", "channel", "card_tx_count", "card_frauds_known"]
    catalogue_hash = "stub-catalogue-1"
    specs = [
        SimpleNamespace(name="amount_log", kind="numeric", description="Log of the amount"),
        SimpleNamespace(name="channel", kind="categorical", description="Payment channel"),
        SimpleNamespace(
            name="card_tx_count", kind="numeric", description="Card's transactions so far"
        ),
        SimpleNamespace(
            name="card_frauds_known", kind="numeric", description="Frauds known on the card"
        ),
    ]

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def process(self, tx: TxBatch, labels: LabelBatch | None) -> np.ndarray:
        self.calls.append((len(tx), 0 if labels is None else len(labels)))
        card = pd.Series(tx.card)
        count = card.groupby(card).cumcount().to_numpy()
        known = np.zeros(len(tx))
        if labels is not None:
            fraud = labels.label == 1
            for i in range(len(tx)):
                # Only labels already released at this transaction's time.
                known[i] = np.sum(
                    fraud & (labels.card == tx.card[i]) & (labels.label_time <= tx.ts[i])
                )
        return np.column_stack([np.log1p(tx.amount), tx.channel, count, known]).astype(np.float32)


def _history(
    path: Path, days: int = 35, per_day: int = 220, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = days * per_day
    ts = np.sort(T0 + rng.integers(0, days * DAY, n))
    amount = np.round(np.exp(rng.normal(3.5, 1.0, n)), 2)
    channel = rng.choice(["pos", "ecom", "atm"], n, p=[0.6, 0.3, 0.1])
    logit = -4.5 + 1.2 * (amount > 100) + 1.0 * (channel == "ecom")
    fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
    tx = pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(n)],
            "event_time": ts,
            "card_token": [f"tok_{c}" for c in rng.integers(0, 150, n)],
            "merchant_id": [f"m{m}" for m in rng.integers(0, 40, n)],
            "amount": amount,
            "channel": channel,
            "is_fraud": fraud.astype(int),  # ground truth: must never be used
        }
    )
    delay = rng.integers(1, 20, n) * DAY
    labels = pd.DataFrame(
        {"tx_id": tx["tx_id"][fraud], "label": 1, "label_time": (ts + delay)[fraud]}
    )
    (path / "transactions").mkdir(parents=True)
    (path / "labels").mkdir()
    tx.to_parquet(path / "transactions" / "part-0.parquet")
    labels.to_parquet(path / "labels" / "part-0.parquet")
    return tx, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp("train")
    tx, labels = _history(root / "data")
    engine = StubEngine()
    windows = {
        "train": ("2026-01-02", "2026-01-15"),
        "valid": ("2026-01-18", "2026-01-25"),
        "test": ("2026-01-28", "2026-02-05"),
    }
    result = train(
        root / "data",
        root / "model",
        windows=windows,
        gap="3d",
        config=Config(),
        engine=engine,
        num_threads=1,
        **FAST,
    )
    return root, tx, labels, engine, result


def test_outputs_and_metrics_keys(trained: tuple) -> None:
    root, tx, labels, engine, result = trained
    out = root / "model"
    m = json.loads((out / "metrics.json").read_text())
    for name in ("ensemble", "lightgbm", "mlp"):
        assert set(m[name]["recall_at_fpr"]) == {"0.001", "0.003", "0.01"}
        assert m[name]["roc_auc"] is not None and 0 <= m[name]["average_precision"] <= 1
    assert m["ensemble"]["roc_auc"] > 0.6
    assert (
        m["model_version"]
        == result.version
        == load_model(out, expected_catalogue_hash="stub-catalogue-1").version
    )
    scores = pd.read_parquet(out / "test_scores.parquet")
    assert list(scores.columns) == ["tx_id", "event_time", "label", "score", "lightgbm", "mlp"]
    assert len(scores) == result.rows["test"] == m["rows"]["test"]
    test = result.split.test
    assert scores["event_time"].between(test.start, test.end - 1).all()
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["training"]["data_fingerprint"] and meta["metrics"]["ensemble"] == m["ensemble"]


def test_labels_follow_each_window_cutoff(trained: tuple) -> None:
    root, tx, labels, engine, result = trained
    split: TimeSplit = result.split
    ts = tx["event_time"].to_numpy()
    for name in ("train", "valid"):
        rows = split.masks(ts)[name]
        expected = known_labels(
            tx["tx_id"][rows].to_numpy(object), labels, split.label_cutoff(name)
        )
        assert result.metrics["frauds_known"][name] == int(expected.sum())
        # Some frauds of the window were reported only after the cutoff: they count as unknown.
        assert int(expected.sum()) < int(tx["is_fraud"][rows].sum())
    scores = pd.read_parquet(root / "model" / "test_scores.parquet")
    truth = tx.set_index("tx_id")["is_fraud"]
    # Test labels: every label in the data (all frauds here are eventually labelled).
    assert (scores["label"].to_numpy() == truth[scores["tx_id"]].to_numpy()).all()


def test_engine_sees_history_but_not_after_test(trained: tuple) -> None:
    root, tx, labels, engine, result = trained
    n_tx, n_labels = engine.calls[0]
    assert n_tx == int((tx["event_time"] < result.split.test.end).sum())
    assert 0 < n_labels <= len(labels)


def test_training_is_reproducible(trained: tuple, tmp_path: Path) -> None:
    root, tx, labels, engine, result = trained
    again = train(
        root / "data",
        tmp_path / "model",
        split=result.split,
        config=Config(),
        engine=StubEngine(),
        num_threads=1,
        **FAST,
    )
    assert again.version.split("-")[1] == result.version.split("-")[1]
    a = pd.read_parquet(root / "model" / "test_scores.parquet")
    b = pd.read_parquet(tmp_path / "model" / "test_scores.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_empty_window_is_explained(trained: tuple, tmp_path: Path) -> None:
    root, *_ = trained
    windows = {
        "train": ("2025-01-01", "2025-01-08"),
        "valid": ("2026-01-18", "2026-01-25"),
        "test": ("2026-01-28", "2026-02-05"),
    }
    with pytest.raises(ValueError, match="train window .* holds no transactions"):
        train(
            root / "data",
            tmp_path / "m",
            windows=windows,
            gap="3d",
            config=Config(),
            engine=StubEngine(),
            **FAST,
        )


def test_partial_windows_are_completed_from_the_data() -> None:
    s = TimeSplit.resolve(T0, T0 + 60 * DAY, test=("2026-02-20", "2026-02-27"), gap="7d")
    assert s.valid.end + s.gap_ms == s.test.start and s.valid.days == 7
    assert s.train.end + s.gap_ms == s.valid.start and s.train.start >= T0
    s = TimeSplit.resolve(T0, T0 + 60 * DAY, train=("2026-01-01", "2026-01-08"), gap="7d")
    assert s.valid.start == s.train.end + s.gap_ms
    assert s.test.start == s.valid.end + s.gap_ms


def test_cli_train_json(trained: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import riskflow.features
    from riskflow.cli import main

    root, *_ = trained
    monkeypatch.setattr(riskflow.features, "FeatureEngine", lambda cfg: StubEngine(), raising=False)
    out = tmp_path / "cli-model"
    args = [
        "train",
        "--data",
        str(root / "data"),
        "--out",
        str(out),
        "--gap",
        "3d",
        "--threads",
        "1",
    ]
    args += ["--train", "2026-01-02..2026-01-15", "--valid", "2026-01-18..2026-01-25"]
    args += ["--test", "2026-01-28..2026-02-05", "--calibration", "platt", "--json"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    printed = json.loads(res.output)
    assert printed == json.loads((out / "metrics.json").read_text())
    assert printed["split"]["gap_days"] == 3 and printed["calibration"] == "platt"
    bad = CliRunner().invoke(main, [*args[:9], "--train", "2026-01-02"])
    assert bad.exit_code != 0 and "FROM..TO" in bad.output
