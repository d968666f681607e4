"""deploy/grafana: the dashboard is what the SDK builder generates, and every query is valid PromQL."""

from __future__ import annotations

import json

import pytest
import yaml
from deploy_support import DEPLOY, load_deploy_module

builder = load_deploy_module("grafana/build_dashboard.py")
queries = load_deploy_module("queries.py")
BOARD = DEPLOY / "grafana" / "dashboards" / "riskflow.json"


def _board() -> dict:
    return json.loads(BOARD.read_text())


def test_committed_json_is_the_generated_one():
    # Hand edits would be lost at the next generation: regenerate instead.
    assert BOARD.read_text() == builder.render(), (
        "run .venv/bin/python deploy/grafana/build_dashboard.py"
    )


def test_dashboard_round_trips_through_the_sdk_model():
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    board = _board()
    again = json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))
    assert again["uid"] == board["uid"] and again["title"] == board["title"]
    assert [p["title"] for p in again["panels"]] == [p["title"] for p in board["panels"]]


def test_panels_have_unique_ids_and_fit_the_grid_without_overlap():
    panels = _board()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_every_panel_queries_prometheus_through_the_datasource_variable():
    board = _board()
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= names
    for p in board["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert 'job="$job"' in t["expr"] and 'instance=~"$instance"' in t["expr"], (
                p["title"],
                t["expr"],
            )


def test_every_query_parses_and_names_riskflow_series():
    found = queries.dashboard_queries(BOARD)
    assert len(found) >= 20
    metrics = {n.metric for q in found for n in q.needs()}
    assert metrics - queries.SYNTHETIC_SERIES, metrics
    assert all(m.startswith("riskflow_") for m in metrics - queries.SYNTHETIC_SERIES)


def test_query_parser_rejects_bad_promql():
    with pytest.raises(ValueError, match="not valid PromQL"):
        queries.needs("sum(rate(riskflow_batches_total[5m])")
    assert queries.needs("sum by (stage) (rate(riskflow_stage_ms_bucket[$__rate_interval]))") == [
        queries.Need("riskflow_stage_ms_bucket", ("stage",))
    ]


def test_grafana_provisioning_points_at_the_dashboard_and_datasource():
    prov = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "riskflow.yml").read_text()
    )
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    ds = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = ds["datasources"][0]["uid"]
    var = next(v for v in _board()["templating"]["list"] if v["name"] == "datasource")
    assert var["current"]["value"] == uid and var["query"] == "prometheus"
