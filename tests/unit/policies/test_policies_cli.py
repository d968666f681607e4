from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from riskflow.cli import main


@pytest.mark.slow
def test_policy_train_then_eval_json(tmp_path):
    runner = CliRunner()
    common = ["--customers", "300", "--days", "6", "--synthetic", "--capacity", "3"]
    r = runner.invoke(
        main,
        [
            "policy",
            "train",
            *common,
            "--out",
            str(tmp_path / "p"),
            "--algos",
            "ppo",
            "--ppo-steps",
            "256",
            "--train-streams",
            "1",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main,
        [
            "policy",
            "eval",
            *common,
            "--policy",
            str(tmp_path / "p"),
            "--plots",
            str(tmp_path / "plots"),
            "--scenario",
            "stationary",
            "--scenario",
            "volume_shift",
            "--eval-seeds",
            "2",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout[r.stdout.index("{") :])
    assert set(doc["scenarios"]) == {"stationary", "volume_shift"}
    for runs in doc["scenarios"].values():
        for name in ("static", "controller", "rl"):
            assert runs[name]["total_cost"] > 0
            assert runs[name]["guardrail_violations"] >= 0
            assert len(runs[name]["total_cost_per_stream"]) == 2
            lo, hi = runs[name]["cost_vs_static_ci90"]
            assert (
                lo <= runs[name]["cost_vs_static"] * 1.02
                and hi >= runs[name]["cost_vs_static"] * 0.98
            )
        assert runs["static"]["cost_vs_static_ci90"] == pytest.approx([1.0, 1.0])
        assert (
            runs["oracle"]["hindsight_regime"]["total_cost"]
            <= runs["oracle"]["hindsight_static"]["total_cost"] * 1.05
        )
    assert (tmp_path / "plots" / "policy_volume_shift.png").read_bytes()[:4] == b"\x89PNG"


def test_policy_cost_option_is_validated():
    r = CliRunner().invoke(main, ["policy", "eval", "--cost", "nonsense=1", "--policy", "."])
    assert r.exit_code != 0 and "--cost" in r.output
