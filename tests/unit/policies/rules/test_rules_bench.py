"""`riskflow bench rules`: the JSON it prints and the rules it measures."""

from __future__ import annotations

import json

from click.testing import CliRunner

from riskflow.cli import main
from riskflow.commands.bench_rules import N_RULES, make_rules
from riskflow.features import catalogue
from riskflow.policies.rules import RuleSet


def test_bench_rules_are_100_valid_active_rules() -> None:
    names = [s.name for s in catalogue()]
    rs = RuleSet.from_toml(make_rules(names))
    compiled = rs.compile(names)
    assert len(compiled.rules) == N_RULES == 100
    assert all(r.mode == "active" for r in rs.rules)
    assert len({r.when for r in rs.rules}) == 100


def test_bench_rules_json_reports_the_overhead() -> None:
    res = CliRunner().invoke(
        main, ["bench", "rules", "-n", "1000", "--repeats", "1", "--linear", "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["benchmark"] == "rules" and doc["active_rules"] == 100
    assert isinstance(doc["overhead"], float)
    assert doc["us_per_tx_with_rules"] > 0 and doc["us_per_tx_without_rules"] > 0
    assert doc["rule_hits_per_pass"] > 0
