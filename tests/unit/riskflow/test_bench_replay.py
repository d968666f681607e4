"""`riskflow bench replay`: a small run through the CLI prints the documented JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from riskflow.cli import main
from riskflow.commands import bench_replay


@pytest.fixture
def small_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training history and model small enough for a unit test (the bench's own are larger)."""
    monkeypatch.setattr(
        bench_replay,
        "TRAIN_OVERRIDES",
        {"customers": 300, "days": 42, "fraud_rate": 0.03, "label_delay_median_days": 2.0},
    )
    monkeypatch.setattr(bench_replay, "BENCH_LGBM", {"num_boost_round": 20})
    monkeypatch.setattr(bench_replay, "BENCH_MLP", {"max_epochs": 1, "hidden": (16,)})


@pytest.mark.usefixtures("small_training")
def test_bench_replay_prints_json_and_reuses_its_cache(tmp_path: Path) -> None:
    args = [
        "bench",
        "replay",
        "-n",
        "3000",
        "--repeats",
        "2",
        "--cache-dir",
        str(tmp_path),
        "--json",
    ]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    doc = json.loads(first.output)
    assert doc["benchmark"] == "replay" and doc["repeats"] == 2
    assert doc["transactions"] > 1000 and doc["tx_per_s"] > 0
    for stage in (
        "features",
        "models",
        "lightgbm",
        "mlp",
        "blend_calibrate",
        "policies",
        "reasons",
        "core",
        "evaluate",
        "write_decisions",
        "write_metrics",
        "report",
    ):
        assert doc["seconds"][stage] >= 0, stage
    assert len(doc["core_samples_s"]) == 2
    assert doc["simulate_s"] is not None and doc["train_s"] is not None

    again = CliRunner().invoke(main, [*args[:5], "1", *args[6:], "--no-overlap"])
    assert again.exit_code == 0, again.output
    doc2 = json.loads(again.output)
    # data and model came from the cache; the same replay decides the same
    assert doc2["simulate_s"] is None and doc2["train_s"] is None
    assert doc2["model"]["version"] == doc["model"]["version"]
    assert doc2["flagged"] == doc["flagged"] and doc2["overlap"] is False


@pytest.mark.usefixtures("small_training")
def test_bench_models_scores_real_feature_rows(tmp_path: Path) -> None:
    """`bench models --data` scores the engine's rows of a history (here the replay bench's)."""
    built = CliRunner().invoke(
        main, ["bench", "replay", "-n", "3000", "--repeats", "1", "--cache-dir", str(tmp_path)]
    )
    assert built.exit_code == 0, built.output
    (data,) = tmp_path.glob("data-*")
    (model,) = (p for p in tmp_path.glob("model-*") if p.is_dir())
    args = ["bench", "models", "--model", str(model), "--seconds", "0.01", "--json"]
    res = CliRunner().invoke(main, [*args, "--data", str(data)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["rows"] == f"features of {data}"
    assert doc["results"]["ensemble"]["64"] > 0 and doc["results"]["lightgbm"]["1024"] > 0
    assert json.loads(CliRunner().invoke(main, args).output)["rows"] == "random"
    no_model = CliRunner().invoke(
        main,
        ["bench", "models", "--data", str(data)],
        env={"RISKFLOW_MODEL__PATH": str(tmp_path / "no-model")},
    )
    assert no_model.exit_code != 0 and "--model" in no_model.output
