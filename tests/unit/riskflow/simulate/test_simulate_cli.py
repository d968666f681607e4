from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from riskflow.cli import main


def test_simulate_command_writes_and_summarises(tmp_path: Path) -> None:
    out = tmp_path / "d"
    r = CliRunner().invoke(
        main, ["simulate", "--out", str(out), "--customers", "300", "--days", "3", "--seed", "2"]
    )
    assert r.exit_code == 0, r.output
    assert "transactions" in r.output and "card_testing" in r.output and "label delay" in r.output
    assert (out / "manifest.json").is_file()
    r = CliRunner().invoke(
        main, ["simulate", "--out", str(out), "--customers", "300", "--days", "3"]
    )
    assert r.exit_code != 0 and "already holds a dataset" in r.output
    r = CliRunner().invoke(
        main,
        [
            "simulate",
            "--out",
            str(out),
            "--preset",
            "demo",
            "--days",
            "2",
            "--drift",
            "volume_shift",
            "--overwrite",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["transactions"] > 0
    assert json.loads((out / "manifest.json").read_text())["parameters"]["drift"] == "volume_shift"


def test_simulate_command_rejects_bad_values(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["simulate", "--out", str(tmp_path), "--start-date", "tomorrow"])
    assert r.exit_code != 0 and "YYYY-MM-DD" in r.output


def test_bench_simulate_prints_json(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["bench", "simulate", "--preset", "demo", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["tx_per_s"] > 0 and res["transactions"] > 10_000 and res["bytes_written"] > 0
    r = CliRunner().invoke(main, ["bench", "simulate", "--preset", "demo", "--no-write", "--json"])
    assert json.loads(r.output)["write"] is False


def test_mix_option_selects_scenarios(tmp_path: Path) -> None:
    args = ["simulate", "--out", str(tmp_path), "--customers", "800", "--days", "4", "--json"]
    r = CliRunner().invoke(main, [*args, "--fraud-rate", "0.05", "--mix", "card_testing=1"])
    assert r.exit_code == 0, r.output
    counts = json.loads(r.output)["scenario_counts"]
    assert counts["card_testing"] > 0 and sum(counts.values()) == counts["card_testing"]
    r = CliRunner().invoke(main, [*args, "--overwrite", "--mix", "card_testing=lots"])
    assert r.exit_code != 0 and "NAME=WEIGHT" in r.output
    r = CliRunner().invoke(main, [*args, "--overwrite", "--mix", "phishing=1"])
    assert r.exit_code != 0 and "keyed by scenario names" in r.output
