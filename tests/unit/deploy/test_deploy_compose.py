"""deploy/compose: the compose file against the Compose Specification, and its wiring."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from deploy_support import DEPLOY, ROOT

COMPOSE = DEPLOY / "compose" / "docker-compose.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_validates_against_the_compose_spec():
    # check-jsonschema ships the compose-spec schema (vendor.compose-spec): no network.
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_compose_spec_validation_can_fail(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(
        "services:\n  worker:\n    image: x\n    restart: sometimes\n    depends_on: 3\n"
    )
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            "--builtin-schema",
            "vendor.compose-spec",
            str(bad),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stdout


def test_services_kafka_topics_worker_prometheus_grafana():
    services = _compose()["services"]
    assert {"kafka", "topics", "worker", "prometheus", "grafana"} <= set(services)
    kafka = services["kafka"]["environment"]
    assert (
        "controller" in kafka["KAFKA_PROCESS_ROLES"] and "broker" in kafka["KAFKA_PROCESS_ROLES"]
    )  # KRaft
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_topics_come_from_riskflow_topics_create():
    services = _compose()["services"]
    topics = services["topics"]
    assert topics["command"] == ["topics", "create"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert (
        services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    )
    # One source of truth: no topic setting typed into the compose file.
    assert not [k for k in topics["environment"] if k.startswith("RISKFLOW_TOPICS__")]


def test_policy_topic_is_compacted_by_riskflows_config():
    # The compose file leaves partitions, retention and compaction to riskflow's config.
    from riskflow.config import load_config

    env = {k: str(v) for k, v in _compose()["services"]["topics"]["environment"].items()}
    topics = load_config(env=env).topics
    assert topics.policy.topic_configs()["cleanup.policy"] == "compact"
    assert topics.transactions.partitions >= 2 and topics.dead_letter.partitions == 1
    assert all(t.replication_factor == 1 for t in topics.all().values())


def test_worker_wiring_model_state_and_port():
    worker = _compose()["services"]["worker"]
    assert worker["command"][0] == "worker"
    mounts = worker["volumes"]
    assert any(m.endswith(":/models/current:ro") for m in mounts)
    assert any(m.startswith("worker-state:") for m in mounts)
    assert "8000:8000" in worker["ports"]
    assert worker["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert (COMPOSE.parent / worker["build"]["context"]).resolve() == ROOT


def test_prometheus_and_grafana_mount_files_that_exist():
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        for mount in services[name]["volumes"]:
            src = mount.split(":")[0]
            if src.startswith("."):
                assert (COMPOSE.parent / src).exists(), f"{name} mounts missing {src}"
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["riskflow"]["static_configs"][0]["targets"] == ["worker:8000"]
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yml"]
    ds = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
