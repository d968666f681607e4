"""Replay with rules: the stream's rules stage offline, per-rule figures, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskflow.batch import LabelBatch, TxBatch
from riskflow.features import FeatureEngine
from riskflow.pipeline import ScoringPipeline
from riskflow.policies import CostModel, ThresholdPolicy, cost_breakdown
from riskflow.policies.rules import ListEntry, ListStore, LiveRules, RuleSet, RulesView
from riskflow.replay import replay, write_outputs
from riskflow.simulate import SimulationConfig, simulate
from riskflow.streams.reference import LinearModel
from riskflow.table import load_dataset

RULES = """
version = "replay-test"
[[rule]]
id = "burst"
when = 'card_count_1h >= 2 and amount > 50'
action = "review"
priority = 5
reason = "several payments within the hour"
[[rule]]
id = "big_ecom"
when = 'amount > 300 and channel == "ecom"'
action = "decline"
priority = 1
[[rule]]
id = "night_shadow"
when = "hour < 5 and amount > 20"
action = "decline"
mode = "shadow"
[[rule]]
id = "tag_high_score"
when = "score > 0.6"
action = "tag"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("rules-replay")
    simulate(SimulationConfig(customers=150, days=10, seed=5, fraud_rate=0.05), root / "data")
    ds = load_dataset(root / "data")
    names = FeatureEngine().feature_names
    model = LinearModel(len(names))
    store = ListStore()
    cards = ds.transactions["card_token"].drop_duplicates().tolist()
    store.put(ListEntry("deny", "card", cards[0]))
    store.put(ListEntry("allow", "card", cards[1]))
    rs = RuleSet.from_toml(RULES)
    view = RulesView(rs.compile(names), store.snapshot(), store.version)
    probe = replay(
        ds, FeatureEngine, [("lin", model)], [("s", lambda _m, _s: ThresholdPolicy(0.5, 0.9))]
    )
    q = np.quantile(probe.runs[0].score, [0.9, 0.98])
    policy = ThresholdPolicy(float(q[0]), float(q[1]), version="q")
    result = replay(
        ds, FeatureEngine, [("lin", model)], [("s", lambda _m, _s: policy)], rules=view,
        chunk_size=1000,
    )  # fmt: skip
    return {"ds": ds, "model": model, "policy": policy, "rules": (rs, store), "result": result}


def test_replay_rule_hits_and_decisions_equal_the_streaming_pipeline(world: dict) -> None:
    ds, (rs, store) = world["ds"], world["rules"]
    run = world["result"].runs[0]
    tx, labels = TxBatch.from_frame(ds.transactions), LabelBatch.join(ds.labels, ds.transactions)
    live = LiveRules(FeatureEngine().feature_names, rs, store)
    pipe = ScoringPipeline(FeatureEngine(), world["model"], world["policy"], rules=live)
    rng = np.random.default_rng(1)
    codes, decisions, start, cursor = [], [], 0, 0
    while start < len(tx):
        stop = min(start + int(rng.integers(1, 400)), len(tx))
        batch = tx.take(slice(start, stop))
        end = int(np.searchsorted(labels.label_time, batch.ts[-1], side="right"))
        lb = LabelBatch(*(a[cursor:end] for a in labels)) if end > cursor else None
        cursor = max(cursor, end)
        out = pipe.score_batch(batch, lb)
        decisions.append(out.decision)
        codes += [
            "; ".join(c["code"] for c in r if c.get("code", "").startswith(("rule:", "list:")))
            for r in out.reasons
        ]
        start = stop
    assert codes == run.rule_codes
    np.testing.assert_array_equal(np.concatenate(decisions), run.decision)
    seen = {c for row in codes for c in row.split("; ") if c}
    assert {"rule:burst", "rule:big_ecom", "rule:night_shadow:shadow", "list:deny:card",
            "list:allow:card"} <= seen  # fmt: skip


def test_rule_figures_match_a_direct_computation(world: dict) -> None:
    run, ds = world["result"].runs[0], world["ds"]
    rep = run.metrics["rules"]
    truth = world["result"].truth.astype(bool)
    amount = ds.transactions["amount"].to_numpy()
    ts = ds.transactions["event_time"].to_numpy()
    hits = run.rule_hits
    by_id = {r["id"]: r for r in rep["rules"]}
    assert rep["version"] == "replay-test+lists@2"
    j = hits.rule_ids.index("burst")
    h = hits.hits[:, j]
    r = by_id["burst"]
    assert r["hits"] == h.sum() > 0 and r["fraud_hits"] == (h & truth).sum()
    assert r["overlap_model"] == pytest.approx((h & (run.model_decision > 0)).sum() / h.sum())
    base, base_by = hits.decide(run.model_decision, only=[])
    alone = base.copy()
    alone[h & (base_by == -1)] = 1
    cm = CostModel()
    want = (
        cost_breakdown(alone, amount, truth, ts, model=cm)["total"]
        - cost_breakdown(base, amount, truth, ts, model=cm)["total"]
    )
    assert r["cost_impact"] == pytest.approx(want)
    assert by_id["night_shadow"]["decided"] == 0 and by_id["tag_high_score"]["cost_impact"] == 0
    assert by_id["big_ecom"]["decided"] + by_id["burst"]["decided"] == rep["decided_by_rules"]
    assert rep["cost_with_rules"] == pytest.approx(
        cost_breakdown(run.decision, amount, truth, ts, model=cm)["total"]
    )


def test_outputs_carry_the_rules_table(world: dict, tmp_path: Path) -> None:
    paths = write_outputs(world["result"], tmp_path)
    doc = json.loads(paths["metrics"].read_text())
    rows = doc["runs"]["lin / s"]["rules"]["rules"]
    assert [r["id"] for r in rows] == ["big_ecom", "burst", "night_shadow", "tag_high_score"]
    for key in ("hits", "precision", "recall_contribution", "cost_impact", "overlap_model"):
        assert key in rows[0]
    dec = pd.read_parquet(paths["decisions"])
    assert dec["rules"].str.contains("rule:burst").any()
    html = paths["report"].read_text()
    assert "<h2>Rules</h2>" in html and "night_shadow" in html and "cost impact" in html


def test_cli_rules_check_and_replay_with_rules(world: dict, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from riskflow.cli import main

    good = tmp_path / "rules.toml"
    good.write_text(RULES)
    res = CliRunner().invoke(main, ["rules", "check", str(good)])
    assert res.exit_code == 0 and "4 rules OK (version replay-test)" in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nid = "x"\nwhen = "card_count_10n > 1"\naction = "review"\n')
    res = CliRunner().invoke(main, ["rules", "check", str(bad)])
    assert res.exit_code != 0
    assert "rule 'x': unknown name 'card_count_10n'" in res.output
    assert "did you mean 'card_count_10m'" in res.output
