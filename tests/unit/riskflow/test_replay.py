"""Replay: the live code path offline, its outputs, and its agreement with streaming scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from riskflow.batch import LabelBatch, TxBatch
from riskflow.config import Config
from riskflow.features import FeatureEngine
from riskflow.models import load_model
from riskflow.pipeline import ScoringPipeline
from riskflow.policies import CostModel, ThresholdPolicy
from riskflow.replay import ReplayRun, evaluate_run, replay, write_outputs
from riskflow.simulate import SimulationConfig, simulate
from riskflow.table import load_dataset
from riskflow.train import train

FAST = {
    "lgbm_params": {"num_boost_round": 40, "early_stopping_rounds": 10},
    "mlp_params": {"max_epochs": 3, "patience": 1, "hidden": (32,)},
}
STATIC = ThresholdPolicy(0.05, 0.5, version="test-static", source="static")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small simulated history and an ensemble trained on the real feature catalogue."""
    root = tmp_path_factory.mktemp("replay")
    # Short chargeback delays, so the small windows below hold enough known frauds.
    sim = SimulationConfig(
        customers=400, days=42, seed=3, fraud_rate=0.03, label_delay_median_days=2.0
    )
    simulate(sim, root / "data")
    windows = {
        "train": ("2026-01-05", "2026-01-26"),
        "valid": ("2026-01-28", "2026-02-04"),
        "test": ("2026-02-06", "2026-02-16"),
    }
    train(
        root / "data",
        root / "model",
        windows=windows,
        gap="2d",
        config=Config(),
        num_threads=1,
        **FAST,
    )
    ds = load_dataset(root / "data")
    model = load_model(root / "model")
    # Thresholds that flag a few percent of this small model's scores, so that
    # decisions and reason codes are exercised whatever the calibration came to.
    probe = replay(ds, FeatureEngine, [("m", model)], [("static", lambda _m, _s: STATIC)])
    scores = probe.runs[0].score
    q = np.quantile(scores, [0.97, 0.995])
    if q[0] <= scores.min():  # a flat, tiny model: take the upper distinct values instead
        q = np.quantile(np.unique(scores), [0.7, 0.9])
    policy = ThresholdPolicy(float(q[0]), float(q[1]), version="test-quantiles", source="static")
    return {"root": root, "ds": ds, "model": model, "policy": policy}


def _run(world: dict, **kw) -> object:  # noqa: ANN003
    return replay(
        world["ds"],
        FeatureEngine,
        [("m", world["model"])],
        [("static", lambda _m, _s: world["policy"])],
        **kw,
    )


def test_replay_equals_streaming_micro_batches(world: dict) -> None:
    """What replay decides is what the stream's pipeline decides, batch boundaries and all."""
    result = _run(world, chunk_size=4096)
    ds = world["ds"]
    tx, labels = TxBatch.from_frame(ds.transactions), LabelBatch.join(ds.labels, ds.transactions)
    pipe = ScoringPipeline(FeatureEngine(), world["model"], world["policy"])
    rng = np.random.default_rng(0)
    scores, decisions, reasons, start, cursor = [], [], [], 0, 0
    while start < len(tx):
        stop = min(start + int(rng.integers(1, 700)), len(tx))
        batch = tx.take(slice(start, stop))
        # the labels topic delivers each label by its label time
        end = int(np.searchsorted(labels.label_time, batch.ts[-1], side="right"))
        lb = LabelBatch(*(a[cursor:end] for a in labels)) if end > cursor else None
        cursor = max(cursor, end)
        out = pipe.score_batch(batch, lb)
        scores.append(out.score)
        decisions.append(out.decision)
        reasons += ["; ".join(c["description"] or c["feature"] for c in r) for r in out.reasons]
        start = stop
    run = result.runs[0]
    np.testing.assert_array_equal(np.concatenate(scores), run.score)
    np.testing.assert_array_equal(np.concatenate(decisions), run.decision)
    # Replay explains its flagged rows in one batch through arrays; the stream
    # per micro-batch through dicts: the same codes, in the same order.
    assert run.reasons == reasons
    assert sum(run.reason_counts.values()) == sum(len(r.split("; ")) for r in reasons if r)
    assert (run.decision > 0).any(), "the test needs some reviews or declines to mean something"


@pytest.mark.parametrize("threads", [1, 3])
def test_scoring_threads_change_nothing(world: dict, threads: int) -> None:
    """Chunks scored side by side (finished in order) give the serial replay's results exactly."""
    serial = _run(world, chunk_size=1024, overlap=False).runs[0]
    side = _run(world, chunk_size=1024, overlap=True, score_threads=threads).runs[0]
    np.testing.assert_array_equal(side.score, serial.score)
    np.testing.assert_array_equal(side.decision, serial.decision)
    assert side.reasons == serial.reasons
    assert (serial.decision > 0).any()


@pytest.mark.parametrize("rows_kept", [0, 40, 400])
def test_reason_buffer_size_changes_nothing(
    world: dict, rows_kept: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A buffer too small for the flagged rows (a floor raised, rows compacted, a second
    feature pass for the rest) gives the reasons of an ample one."""
    import riskflow.replay

    monkeypatch.setattr(riskflow.replay, "_COMPACT_ROWS", 3)  # compaction in many steps
    ample = _run(world, chunk_size=1024).runs[0]
    width = FeatureEngine().n_features
    small = _run(world, chunk_size=1024, reason_buffer_bytes=rows_kept * width * 4)
    assert small.runs[0].reasons == ample.reasons
    assert small.runs[0].reason_counts == ample.reason_counts
    flagged = int((ample.decision > 0).sum())
    assert flagged > 40, "the test needs more flagged rows than the small buffers hold"
    # Rows the buffer could not keep were recomputed, and only those.
    assert 0 < small.timings_s["second_pass_rows"] <= flagged


def test_duplicate_transaction_ids_are_refused(world: dict) -> None:
    """Labels cannot be joined to ambiguous ids; the error (raised in the label thread) names one."""
    from riskflow.table import Dataset

    ds = world["ds"]
    tx = ds.transactions.copy()
    tx.loc[tx.index[5], "tx_id"] = tx["tx_id"].iloc[4]
    with pytest.raises(ValueError, match="unique"):
        replay(Dataset(tx, ds.labels), FeatureEngine, [("m", world["model"])], [])


def test_score_threads_must_be_positive(world: dict) -> None:
    with pytest.raises(ValueError, match="score_threads"):
        _run(world, overlap=True, score_threads=0)


def test_outputs_and_report(world: dict, tmp_path: Path) -> None:
    result = _run(world)
    paths = write_outputs(result, tmp_path, summary={"transactions": len(world["ds"].transactions)})
    dec = pd.read_parquet(paths["decisions"])
    assert len(dec) == len(world["ds"].transactions)
    assert set(dec["decision"]) <= {"approve", "review", "decline"}
    flagged = dec[dec["decision"] != "approve"]
    assert 0 < len(flagged) < len(dec)
    # reason codes name the features pushing the score up; a flagged row has them
    # unless nothing pushed it up (then the list is honestly empty)
    assert (flagged["reasons"].str.len() > 0).mean() > 0.5
    assert (dec.loc[dec["decision"] == "approve", "reasons"] == "").all()
    doc = json.loads(paths["metrics"].read_text())
    m = doc["runs"]["m / static"]
    for key in (
        "roc_auc",
        "average_precision",
        "recall_at_fpr",
        "precision_top_k_per_day",
        "cost",
        "decline_rate",
        "review_rate",
        "daily",
    ):
        assert key in m
    assert set(m["recall_at_fpr"]) == {"0.001", "0.003", "0.01"}
    assert m["cost"]["total"] == pytest.approx(
        sum(v for k, v in m["cost"].items() if k.endswith(("loss", "_cost")))
    )
    html = paths["report"].read_text()
    assert "Precision-recall" in html and "m / static" in html and "<script" not in html


def test_metrics_match_a_hand_checked_example() -> None:
    day = 86_400_000
    tx = pd.DataFrame(
        {
            "event_time": [0, 1000, 2000, day + 5, day + 6],
            "amount": [100.0, 50.0, 10.0, 200.0, 20.0],
        }
    )
    truth = np.array([1, 0, 0, 1, 0], dtype=np.int8)
    run = ReplayRun(
        "r",
        "m",
        "p",
        "v",
        "pv",
        score=np.array([0.9, 0.6, 0.1, 0.2, 0.05]),
        decision=np.array([2, 1, 0, 0, 2], dtype=np.int8),
        reasons=[""] * 5,
        reason_counts=__import__("collections").Counter(),
        thresholds=pd.DataFrame(),
    )
    cm = CostModel(
        chargeback_fee=20,
        margin_rate=0.02,
        friction=10,
        review_cost=3,
        review_capacity_per_hour=float("inf"),
    )
    evaluate_run(run, tx, truth, cm)
    m = run.metrics
    # approved fraud: tx 3 (200 + 20 fee); declined good: tx 4 (0.02*20 + 10); one review: 3
    assert m["cost"]["fraud_loss"] == pytest.approx(220.0)
    assert m["cost"]["false_decline_cost"] == pytest.approx(10.4)
    assert m["cost"]["review_cost"] == pytest.approx(3.0)
    assert m["cost"]["total"] == pytest.approx(233.4)
    assert m["decline_rate"] == pytest.approx(0.4) and m["review_rate"] == pytest.approx(0.2)
    # ranking: frauds at 0.9 and 0.2; legit 0.6, 0.1, 0.05 -> 5 of 6 pairs ordered right
    # (only 0.2 < 0.6 is wrong)
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert m["daily"]["cost"] == pytest.approx([3.0, 230.4])


def test_mapped_foreign_file_replays_end_to_end(world: dict, tmp_path: Path) -> None:
    """A Sparkov-style CSV (raw card numbers, unix seconds) runs through `riskflow replay`."""
    from riskflow.cli import main

    tx = world["ds"].transactions.head(3000)
    fraud = set(world["ds"].labels.loc[world["ds"].labels["label"] == 1, "tx_id"])
    cards = {c: f"4{i:015d}" for i, c in enumerate(tx["card_token"].unique())}
    foreign = pd.DataFrame(
        {
            "trans_num": tx["tx_id"],
            "unix_time": tx["event_time"] // 1000,
            "cc_num": tx["card_token"].map(cards),
            "merchant": tx["merchant_id"],
            "amt": tx["amount"],
            "merch_lat": tx["lat"],
            "merch_long": tx["lon"],
            "is_fraud": tx["tx_id"].isin(fraud).astype(int),
        }
    ).fillna({"merch_lat": 40.0, "merch_long": -74.0})
    foreign.to_csv(tmp_path / "foreign.csv", index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "replay",
            "--data",
            str(tmp_path / "foreign.csv"),
            "--mapping",
            "sparkov",
            "--model",
            str(world["root"] / "model"),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    dec = pd.read_parquet(out / "decisions.parquet")
    assert len(dec) == 3000 and dec["score"].between(0, 1).all()
    assert not any(p in result.output for p in list(cards.values())[:50])  # raw PANs never printed


def test_a_policy_without_its_artifact_is_refused_before_the_history_loads(
    world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Argument mistakes surface in seconds, not after a million-row load."""
    import riskflow.table
    from riskflow.cli import main

    def no_load(*_a: object, **_k: object) -> None:
        raise AssertionError("the history was loaded before the arguments were checked")

    monkeypatch.setattr(riskflow.table, "load_dataset", no_load)
    monkeypatch.delenv("RISKFLOW_POLICY__PATH", raising=False)
    result = CliRunner().invoke(
        main,
        [
            "replay",
            "--data",
            str(world["root"] / "data"),
            "--model",
            str(world["root"] / "model"),
            "--policy",
            "controller",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "needs a trained policy artifact" in result.output
