"""deploy/k8s: every manifest against the Kubernetes OpenAPI schemas, and the references between them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploy_support import DEPLOY

K8S = DEPLOY / "k8s"
BASE = K8S / "base"
#: The oldest Kubernetes minor still supported upstream at the time of writing; the schemas are strict.
K8S_VERSION = "1.31"
#: Custom resources kubernetes-validate has no schema for: checked by hand below.
CRDS = {"ScaledObject", "TriggerAuthentication"}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _base() -> list[dict]:
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return [d for f in kust["resources"] for d in _docs(BASE / f)]


def _by_kind(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs}


def _validate(doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


MANIFESTS = sorted(p for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schema(path):
    docs = _docs(path)
    assert docs, path
    for doc in docs:
        if doc["kind"] in CRDS:
            continue
        _validate(doc)


def test_strict_validation_can_fail():
    sts = _by_kind(_base())["StatefulSet"]
    bad = yaml.safe_load(yaml.safe_dump(sts))
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad)


def test_kustomization_lists_every_manifest_but_the_secret_examples():
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = set(kust["resources"])
    assert listed == {p.name for p in MANIFESTS} - {"secrets.example.yaml"}


def test_workers_are_a_statefulset_with_a_state_volume_and_stable_instance_ids():
    sts = _by_kind(_base())["StatefulSet"]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    (worker,) = pod["containers"]
    args = worker["args"]
    assert args[0] == "worker" and args[args.index("--instance-id") + 1] == "$(POD_NAME)"
    assert {
        "name": "POD_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    } in worker["env"]
    config = _by_kind(_base())["ConfigMap"]["data"]
    state_dir = config["RISKFLOW_STREAM__STATE_DIR"]
    claim = spec["volumeClaimTemplates"][0]["metadata"]["name"]
    assert {"name": claim, "mountPath": state_dir} in worker["volumeMounts"]
    assert spec["serviceName"] == _by_kind(_base())["Service"]["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] >= 30


def test_probes_use_the_workers_real_endpoints():
    sts = _by_kind(_base())["StatefulSet"]
    (worker,) = sts["spec"]["template"]["spec"]["containers"]
    port = int(_by_kind(_base())["ConfigMap"]["data"]["RISKFLOW_STREAM__METRICS_PORT"])
    assert {"name": "http", "containerPort": port} in worker["ports"]
    assert worker["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert worker["livenessProbe"]["httpGet"]["path"] == "/metrics"
    assert worker["startupProbe"]["httpGet"]["path"] == "/metrics"
    ann = sts["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/port"] == str(port) and ann["prometheus.io/path"] == "/metrics"


def test_resources_requested_and_memory_limited():
    sts = _by_kind(_base())["StatefulSet"]
    (worker,) = sts["spec"]["template"]["spec"]["containers"]
    res = worker["resources"]
    assert res["requests"]["cpu"] == "1"  # model.num_threads = 1: one core per worker
    assert _by_kind(_base())["ConfigMap"]["data"]["RISKFLOW_MODEL__NUM_THREADS"] == "1"
    assert "memory" in res["requests"] and "memory" in res["limits"]


def test_config_settings_are_riskflow_settings():
    from riskflow.config import load_config

    data = dict(_by_kind(_base())["ConfigMap"]["data"])
    # The CA file is checked for existence by the config; it is mounted from a Secret in the pod.
    data.pop("RISKFLOW_KAFKA__SECURITY__SSL_CAFILE")
    secret_keys = _secret_keys()["riskflow-kafka"]
    env = {**data, **{k: "x" for k in secret_keys}}
    config = load_config(env=env)  # a typo'd or invalid setting raises ConfigError
    assert config.kafka.security.protocol == "SASL_SSL"
    assert config.topics.policy.cleanup_policy == "compact"


def _secret_keys() -> dict[str, set[str]]:
    return {
        d["metadata"]["name"]: set(d["stringData"]) for d in _docs(BASE / "secrets.example.yaml")
    }


def test_every_secret_reference_is_in_the_secret_examples():
    secrets = _secret_keys()
    base = _base()
    sts = _by_kind(base)["StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    for ref in pod["containers"][0]["envFrom"]:
        if "secretRef" in ref:
            assert ref["secretRef"]["name"] in secrets
    ca_mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "kafka-ca")
    ca_secret = next(v for v in pod["volumes"] if v["name"] == "kafka-ca")["secret"]["secretName"]
    cafile = Path(_by_kind(base)["ConfigMap"]["data"]["RISKFLOW_KAFKA__SECURITY__SSL_CAFILE"])
    assert cafile.parent == Path(ca_mount["mountPath"]) and cafile.name in secrets[ca_secret]
    auth = next(d for d in _docs(BASE / "keda.yaml") if d["kind"] == "TriggerAuthentication")
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in secrets[ref["name"]], ref


def test_keda_scales_the_statefulset_on_the_workers_group_lag():
    base = _base()
    config = _by_kind(base)["ConfigMap"]["data"]
    docs = {d["kind"]: d for d in _docs(BASE / "keda.yaml")}
    so = docs["ScaledObject"]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    target = so["spec"]["scaleTargetRef"]
    sts = _by_kind(base)["StatefulSet"]
    assert (target["kind"], target["name"]) == ("StatefulSet", sts["metadata"]["name"])
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == config["RISKFLOW_STREAM__APP_ID"]
    assert meta["topic"] == config["RISKFLOW_TOPICS__TRANSACTIONS__NAME"]
    assert meta["bootstrapServers"] == config["RISKFLOW_KAFKA__BOOTSTRAP_SERVERS"]
    assert int(meta["lagThreshold"]) > 0
    assert meta["allowIdleConsumers"] == "false"
    # KEDA's names for the SASL mechanisms riskflow accepts.
    keda_sasl = {
        "PLAIN": "plaintext",
        "SCRAM-SHA-256": "scram_sha256",
        "SCRAM-SHA-512": "scram_sha512",
    }
    assert meta["sasl"] == keda_sasl[config["RISKFLOW_KAFKA__SECURITY__SASL_MECHANISM"]]
    assert meta["tls"] == "enable"
    assert trigger["authenticationRef"]["name"] == docs["TriggerAuthentication"]["metadata"]["name"]
    # More workers than partitions would idle (never ready, stalling rollouts).
    assert so["spec"]["maxReplicaCount"] <= int(config["RISKFLOW_TOPICS__TRANSACTIONS__PARTITIONS"])
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    # KEDA builds an autoscaling/v2 HPA from `advanced`: validate that part with the HPA schema.
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-riskflow-worker"},
        "spec": {
            "scaleTargetRef": target,
            "minReplicas": so["spec"]["minReplicaCount"],
            "maxReplicas": so["spec"]["maxReplicaCount"],
            "behavior": so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        },
    }
    _validate(hpa)


def test_selectors_match_the_pods():
    base = _base()
    labels = _by_kind(base)["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        doc = _by_kind(base)[kind]
        sel = doc["spec"]["selector"]
        sel = sel.get("matchLabels", sel)
        assert sel.items() <= labels.items(), (kind, sel)


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with kustomize) is not installed")
@pytest.mark.parametrize("overlay", ["base", "overlays/shadow"])
def test_kustomize_renders_valid_manifests(overlay):
    out = subprocess.run([KUBECTL, "kustomize", str(K8S / overlay)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    for doc in docs:
        if doc["kind"] not in CRDS:
            _validate(doc)
    kinds = [d["kind"] for d in docs]
    if overlay == "overlays/shadow":
        assert not CRDS & set(kinds), (
            "the shadow must not autoscale (nor scale the live StatefulSet)"
        )
        sts = _by_kind(docs)["StatefulSet"]
        cm = _by_kind(docs)["ConfigMap"]
        assert sts["metadata"]["name"] == "riskflow-worker-shadow"
        assert sts["spec"]["selector"]["matchLabels"]["riskflow.io/track"] == "shadow"
        assert cm["data"]["RISKFLOW_STREAM__APP_ID"] != "riskflow-worker"
        assert cm["data"]["RISKFLOW_TOPICS__DECISIONS__NAME"] != "riskflow.decisions"
        live = subprocess.run(
            [KUBECTL, "kustomize", str(BASE)], capture_output=True, text=True, check=True
        )
        live_docs = [d for d in yaml.safe_load_all(live.stdout) if d]
        live_image = _by_kind(live_docs)["StatefulSet"]["spec"]["template"]["spec"]["containers"][
            0
        ]["image"]
        assert sts["spec"]["template"]["spec"]["containers"][0]["image"] != live_image
    else:
        assert "ScaledObject" in kinds


def test_every_topic_is_replicated_on_the_cluster():
    # riskflow's default replication is 1 (a dev broker); a topic role added to
    # TopicsConfig must get a name and replication here too, or `riskflow topics
    # create` makes it unreplicated on the production cluster.
    from riskflow.config import TopicsConfig

    data = _by_kind(_base())["ConfigMap"]["data"]
    for role in TopicsConfig.model_fields:
        prefix = f"RISKFLOW_TOPICS__{role.upper()}__"
        assert int(data.get(prefix + "REPLICATION_FACTOR", "1")) >= 3, (
            f"deploy/k8s/base/configmap.yaml: set {prefix}REPLICATION_FACTOR (3) and {prefix}NAME "
            f"for the topic role {role!r}"
        )
        assert prefix + "NAME" in data, f"deploy/k8s/base/configmap.yaml: set {prefix}NAME"
