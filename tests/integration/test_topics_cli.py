"""`riskflow topics create` / `list` against the real broker."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from riskflow.cli import main
from riskflow.config import load_config

pytestmark = pytest.mark.kafka


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_create_is_idempotent_and_list_shows_the_settings(riskflow_env, kafka_bootstrap):
    code, out = _run("topics", "list", "--json")
    assert code == 0, out
    before = {t["name"]: t for t in json.loads(out)}
    assert set(before) == set(riskflow_env.values())
    assert not any(t["exists"] for t in before.values())

    code, out = _run("topics", "create", "--json")
    assert code == 0, out
    first = {s["role"]: s for s in json.loads(out)}
    assert {r: s["status"] for r, s in first.items()} == {r: "created" for r in riskflow_env}

    code, out = _run("topics", "create")  # again: reported, not an error
    assert code == 0, out
    assert out.count("exists") == len(riskflow_env)
    assert "WARNING" not in out

    code, out = _run("topics", "create", "--fail-if-exists", "--role", "labels")
    assert code == 1
    assert riskflow_env["labels"] in out and "already exist" in out

    config = load_config()
    code, out = _run("topics", "list", "--json")
    assert code == 0, out
    listed = {t["role"]: t for t in json.loads(out)}
    for role, topic in config.topics.all().items():
        got = listed[role]
        assert got["name"] == topic.name == riskflow_env[role]
        assert got["exists"] is True
        assert got["partitions"] == topic.partitions
        assert got["replication_factor"] == 1
        assert got["cleanup_policy"] == topic.cleanup_policy
        if topic.cleanup_policy != "compact":
            assert got["retention_ms"] == topic.retention_ms

    code, out = _run("topics", "list")  # the human table
    assert code == 0, out
    assert "compact" in out and "90d" in out  # policy topic; labels retention


def test_create_one_role_and_report_a_partition_mismatch(riskflow_env, monkeypatch, new_topic):
    monkeypatch.setenv("RISKFLOW_TOPICS__DECISIONS__PARTITIONS", "2")
    code, out = _run("topics", "create", "--role", "decisions")
    assert code == 0, out
    assert out.startswith("created") and riskflow_env["decisions"] in out

    code, out = _run("topics", "list", "--json")
    listed = {t["role"]: t for t in json.loads(out)}
    assert listed["decisions"]["partitions"] == 2
    assert not listed["transactions"]["exists"]  # other roles untouched

    monkeypatch.setenv("RISKFLOW_TOPICS__DECISIONS__PARTITIONS", "4")
    code, out = _run("topics", "create", "--role", "decisions")
    assert code == 0, out
    assert "WARNING: has 2 partitions, config says 4" in out


def test_list_all_includes_foreign_topics(riskflow_env, new_topic):
    other = new_topic(partitions=3, retention_ms=3_600_000)
    code, out = _run("topics", "list", "--all", "--json")
    assert code == 0, out
    listed = {t["name"]: t for t in json.loads(out)}
    assert listed[other]["role"] is None
    assert listed[other]["partitions"] == 3
    assert listed[other]["retention_ms"] == 3_600_000
    assert not any(name.startswith("__") for name in listed)  # internal topics hidden


def test_list_without_broker_says_how_to_start_one(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RISKFLOW_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    code, out = _run("topics", "list")
    assert code == 1
    assert "No Kafka broker" in out and "make broker-start" in out
