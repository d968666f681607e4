"""Rules and lists against the real broker: a hot update applies from the logged input
offset, and the stream's rule hits equal replay's on the same transactions.

The worker (a subprocess, as in production) scores with the real feature
engine and a fixed linear model (:func:`riskflow.streams.reference.features_linear_scorer`);
the rule set and a deny-list entry are published with the `riskflow rules` /
`riskflow lists` commands while it runs.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

pytestmark = [pytest.mark.kafka]

RISKFLOW = str(Path(sys.executable).with_name("riskflow"))
RULES = """
version = "hot-1"
[[rule]]
id = "big_ecom"
when = 'amount > 60 and channel == "ecom"'
action = "decline"
priority = 1
reason = "large e-commerce payment"
[[rule]]
id = "mid_amount"
when = "amount > 40 and merchant_count_24h >= 0"
action = "review"
mode = "shadow"
[[rule]]
id = "tag_pos"
when = 'channel == "pos" and amount > 30'
action = "tag"
"""
_APPLIED = re.compile(
    r"rules version (\S+) \(rules topic offset (\d+)\) applies from input offsets (\{.*\})"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_topics(bootstrap: str, names: dict[str, str]) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    compact = {"cleanup.policy": "compact"}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(n, 1, 1, topic_configs=compact if role in ("policy", "rules") else {})
                for role, n in names.items()
            ]
        )
        admin.wait_for_topics(list(names.values()), timeout_ms=15_000)
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in items:
            p.send(topic, value, key=key)
        p.flush(30)
    finally:
        p.close()


def _cli(env: dict[str, str], *args: str) -> str:
    res = subprocess.run([RISKFLOW, *args], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.mark.timeout(180)
def test_hot_rule_update_applies_from_logged_offset_and_matches_replay(
    kafka_bootstrap: str,
    riskflow_env: dict[str, str],
    tmp_path: Path,
    new_group: Callable[[], str],
    consume: Callable[..., list[Any]],
) -> None:
    from riskflow.config import load_config
    from riskflow.features import FeatureEngine
    from riskflow.policies import ThresholdPolicy
    from riskflow.policies.rules import ListEntry, ListStore, RuleSet, RulesView
    from riskflow.replay import replay
    from riskflow.schema import validate_transaction
    from riskflow.streams.bench import make_transactions
    from riskflow.streams.reference import LinearModel
    from riskflow.table import Dataset

    env = {
        **os.environ,
        "RISKFLOW_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RISKFLOW_STREAM__STATE_DIR": str(tmp_path / "state"),
        "RISKFLOW_STREAM__APP_ID": new_group(),
        "RISKFLOW_STREAM__MAX_BATCH_SIZE": "64",
        "RISKFLOW_POLICY__T_REVIEW": "0.99",
        "RISKFLOW_POLICY__T_DECLINE": "0.999",
        **{f"RISKFLOW_TOPICS__{r.upper()}__NAME": n for r, n in riskflow_env.items()},
    }
    env.pop("RISKFLOW_CONFIG", None)
    names = riskflow_env
    _make_topics(kafka_bootstrap, names)  # one partition each: one total order
    items = make_transactions(600, seed=21)
    _produce(kafka_bootstrap, names["transactions"], items[:300])

    port = _free_port()
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(
            [RISKFLOW, "worker", "--scorer", "riskflow.streams.reference:features_linear_scorer",
             "--web-port", str(port), "--engine", "bulk"],
            env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.3)
            first = consume(names["decisions"], 300, timeout=60)
            assert len(first) == 300

            rules_file = tmp_path / "rules.toml"
            rules_file.write_text(RULES)
            out = _cli(env, "rules", "publish", str(rules_file))
            assert "rule set hot-1 (3 rules) published at rules topic offset 0" in out
            merchant = orjson.loads(items[400][1])["merchant_id"]
            out = _cli(env, "lists", "add", "deny", "merchant", merchant, "--reason", "test")
            assert "at rules topic offset 1" in out
            shown = orjson.loads(_cli(env, "lists", "show", "--json"))
            assert [(e["list"], e["kind"], e["value"]) for e in shown] == [
                ("deny", "merchant", merchant)
            ]
            deadline = time.monotonic() + 30
            while len(_APPLIED.findall(log_path.read_text())) < 2:
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
            _produce(kafka_bootstrap, names["transactions"], items[300:])
            decisions = [
                orjson.loads(r.value) for r in consume(names["decisions"], 600, timeout=60)
            ]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    applied = _APPLIED.findall(log_path.read_text())
    assert [(v, int(o)) for v, o, _ in applied] == [("hot-1+lists@0", 0), ("hot-1+lists@1", 1)]
    from_offset = orjson.loads(applied[-1][2])[f"{names['transactions']}/0"]
    assert from_offset == 300  # the worker had decided the first 300 when the update came
    assert len(decisions) == 600 and len({d["tx_id"] for d in decisions}) == 600

    def rule_codes(d: dict[str, Any]) -> str:
        return "; ".join(
            c["code"] for c in d["reasons"] if c.get("code", "").startswith(("rule:", "list:"))
        )

    by_offset = {d["source"]["offset"]: d for d in decisions}
    before = [by_offset[o] for o in range(from_offset)]
    after = [by_offset[o] for o in range(from_offset, 600)]
    assert all(d["rules_version"] is None and not rule_codes(d) for d in before)
    assert {d["rules_version"] for d in after} == {"hot-1+lists@1"}

    # Replay of the same 600 transactions with the same rules and list.
    config = load_config(env={k: v for k, v in env.items() if k.startswith("RISKFLOW_")})
    txs = pd.DataFrame([validate_transaction(orjson.loads(v)) for _, v in items])
    ds = Dataset(txs, pd.DataFrame({"tx_id": [], "label": [], "label_time": []}))
    feature_names = FeatureEngine(config.features).feature_names
    store = ListStore()
    store.put(ListEntry("deny", "merchant", merchant))
    view = RulesView(RuleSet.from_toml(RULES).compile(feature_names), store.snapshot(), 1)
    policy = ThresholdPolicy(config.policy.t_review, config.policy.t_decline)
    result = replay(
        ds,
        lambda: FeatureEngine(config.features),
        [("lin", LinearModel(len(feature_names)))],
        [("s", lambda _m, _s: policy)],
        rules=view,
    )
    run = result.runs[0]
    index = {t: i for i, t in enumerate(txs["tx_id"])}
    names_ = np.array(["approve", "review", "decline"])
    stream_codes = [rule_codes(d) for d in after]
    replay_codes = [run.rule_codes[index[d["tx_id"]]] for d in after]
    assert stream_codes == replay_codes
    assert [d["decision"] for d in after] == [
        names_[run.decision[index[d["tx_id"]]]] for d in after
    ]
    seen = {c for row in stream_codes for c in row.split("; ") if c}
    assert {"rule:big_ecom", "rule:mid_amount:shadow", "rule:tag_pos", "list:deny:merchant"} <= seen
    # The active rule overrode the model (whose thresholds approve everything here).
    assert any(d["decision"] == "decline" for d in after)
    assert all(d["decision"] == "approve" for d in before)
