"""deploy/prometheus: alert rules are valid, documented in the runbook, and (with promtool) behave."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from deploy_support import DEPLOY, ROOT, load_deploy_module

queries = load_deploy_module("queries.py")
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
_DURATION = re.compile(r"^\d+[smhd]$")


def _rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"}
    out = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["rules"], group.get("name")
        out += group["rules"]
    return out


def test_rules_have_the_fields_prometheus_needs():
    names = []
    for rule in _rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        names.append(rule["alert"])
        assert re.fullmatch(r"Riskflow[A-Za-z0-9]+", rule["alert"])
        assert _DURATION.match(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"
    assert len(names) == len(set(names))


def test_every_expression_is_valid_promql_over_riskflow_series():
    for query in queries.alert_queries(ALERTS):
        needs = query.needs()
        assert needs, query
        for need in needs:
            assert need.metric.startswith("riskflow_") or need.metric in queries.SYNTHETIC_SERIES


def test_every_alert_is_explained_in_the_runbook():
    text = RUNBOOK.read_text()
    headings = set(re.findall(r"^#### (Riskflow\w+)\s*$", text, re.M))
    alerts = {r["alert"] for r in _rules()}
    assert alerts <= headings, (
        f"docs/runbook.md lacks a '#### <alert>' section for {sorted(alerts - headings)}"
    )
    assert headings <= alerts, (
        f"the runbook explains alerts that do not exist: {sorted(headings - alerts)}"
    )


def _promtool() -> str | None:
    found = shutil.which("promtool")
    cached = ROOT / ".cache" / "prometheus" / "usr" / "bin" / "promtool"
    return found or (str(cached) if cached.is_file() else None)


@pytest.fixture
def promtool() -> str:
    path = _promtool()
    if path is None:
        msg = "promtool not found: `make promtool` extracts it from Debian's prometheus package"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def test_promtool_checks_the_rules_and_the_scrape_config(promtool, tmp_path):
    run = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(ALERTS)]  # the container path, on this machine
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_alerts_fire_when_and_only_when_they_should(promtool):
    # deploy/prometheus/alerts_test.yml: synthetic series -> expected alerts, evaluated by Prometheus' engine.
    run = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
