"""The one typed configuration object.

Loaded once at start from ``riskflow.toml`` (or the file named by
``--config`` / ``RISKFLOW_CONFIG``) with environment overrides, then frozen.
An override names a setting by its path with ``__`` between levels::

    RISKFLOW_KAFKA__BOOTSTRAP_SERVERS=broker1:9092,broker2:9092
    RISKFLOW_KAFKA__SECURITY__PROTOCOL=SASL_SSL
    RISKFLOW_TOPICS__DECISIONS__PARTITIONS=12
    RISKFLOW_STREAM__MAX_BATCH_SIZE=1024

A bad setting fails at start with a :class:`~riskflow.errors.ConfigError`
saying which setting, the value seen, and what is allowed.

>>> cfg = load_config(env={"RISKFLOW_KAFKA__BOOTSTRAP_SERVERS": "k1:9093,k2:9093"})
>>> cfg.kafka.bootstrap_servers
('k1:9093', 'k2:9093')
>>> cfg.topics.policy.cleanup_policy
'compact'
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from riskflow.cpus import usable_cpus
from riskflow.errors import ConfigError

__all__ = [
    "Config",
    "KafkaConfig",
    "KafkaSecurity",
    "TopicConfig",
    "TopicsConfig",
    "FeatureConfig",
    "ModelConfig",
    "PolicyConfig",
    "RulesConfig",
    "StreamConfig",
    "SecurityConfig",
    "load_config",
    "ENV_PREFIX",
    "DEFAULT_CONFIG_FILE",
]

ENV_PREFIX = "RISKFLOW_"
DEFAULT_CONFIG_FILE = "riskflow.toml"
_DAY_MS = 86_400_000


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSecurity(_Section):
    """How clients authenticate to the cluster (PLAINTEXT, SSL, SASL_SSL, ...)."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        if self.protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                raise ValueError(
                    f"protocol {self.protocol} needs sasl_mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
                )
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError(f"protocol {self.protocol} needs sasl_username and sasl_password")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} {str(path)!r} is not a readable file")
        return self

    def kafka_python_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (KafkaProducer, KafkaAdminClient, ...)."""
        kw: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl_mechanism:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.protocol in ("SSL", "SASL_SSL"):
            kw["ssl_check_hostname"] = self.ssl_check_hostname
            if self.ssl_cafile:
                kw["ssl_cafile"] = str(self.ssl_cafile)
            if self.ssl_certfile:
                kw["ssl_certfile"] = str(self.ssl_certfile)
            if self.ssl_keyfile:
                kw["ssl_keyfile"] = str(self.ssl_keyfile)
            if self.ssl_password:
                kw["ssl_password"] = self.ssl_password.get_secret_value()
        return kw

    def ssl_context(self) -> Any:
        """An ``ssl.SSLContext`` for aiokafka / faust, or None for non-TLS protocols."""
        if self.protocol not in ("SSL", "SASL_SSL"):
            return None
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        ctx.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            ctx.load_cert_chain(
                str(self.ssl_certfile),
                str(self.ssl_keyfile) if self.ssl_keyfile else None,
                self.ssl_password.get_secret_value() if self.ssl_password else None,
            )
        return ctx


class KafkaConfig(_Section):
    """Where the cluster is and how to talk to it."""

    bootstrap_servers: tuple[str, ...] = ("localhost:9092",)
    client_id: str = "riskflow"
    security: KafkaSecurity = KafkaSecurity()

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("bootstrap_servers")
    @classmethod
    def _hostports(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("needs at least one host:port")
        for hp in v:
            host, _, port = hp.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{hp!r} is not host:port (e.g. localhost:9092)")
        return v

    @property
    def bootstrap(self) -> str:
        """Comma-separated bootstrap list, as clients take it."""
        return ",".join(self.bootstrap_servers)


class TopicConfig(_Section):
    """One topic: name and the settings `riskflow topics create` applies."""

    name: str
    partitions: int = Field(6, ge=1, le=10_000)
    replication_factor: int = Field(1, ge=1, le=32)
    retention_ms: int | None = Field(7 * _DAY_MS, ge=-1)
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"

    @field_validator("name")
    @classmethod
    def _legal(cls, v: str) -> str:
        if not v or len(v) > 249 or not all(c.isalnum() or c in "._-" for c in v):
            raise ValueError(f"{v!r} is not a legal Kafka topic name (letters, digits, . _ -)")
        return v

    def topic_configs(self) -> dict[str, str]:
        """Broker-side topic configs for CreateTopics."""
        out: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None and self.cleanup_policy != "compact":
            out["retention.ms"] = str(self.retention_ms)
        return out


class TopicsConfig(_Section):
    """The topics riskflow reads and writes."""

    transactions: TopicConfig = TopicConfig(name="riskflow.transactions")
    labels: TopicConfig = TopicConfig(name="riskflow.labels", retention_ms=90 * _DAY_MS)
    decisions: TopicConfig = TopicConfig(name="riskflow.decisions")
    dead_letter: TopicConfig = TopicConfig(
        name="riskflow.dead-letter", partitions=1, retention_ms=30 * _DAY_MS
    )
    # Policy and rule updates: only the latest value per key matters.
    policy: TopicConfig = TopicConfig(
        name="riskflow.policy", partitions=1, cleanup_policy="compact"
    )
    # Analyst rules and allow/deny lists: one key per rule set and list entry,
    # so compaction keeps exactly the current rules; one partition, one order.
    rules: TopicConfig = TopicConfig(name="riskflow.rules", partitions=1, cleanup_policy="compact")

    def all(self) -> dict[str, TopicConfig]:
        """Role -> topic, in a stable order."""
        return {role: getattr(self, role) for role in type(self).model_fields}


class FeatureConfig(_Section):
    """Feature engine settings."""

    #: Entities idle for longer are evicted; longer than the largest window (30 d).
    entity_ttl_days: float = Field(45.0, gt=0)
    #: Initial slots per entity table; tables grow by doubling.
    initial_capacity: int = Field(1 << 16, ge=16)
    #: Label delay applied when a labels file has no label-time column.
    default_label_delay_days: float = Field(14.0, ge=0)


class ModelConfig(_Section):
    """Where the trained ensemble lives."""

    path: Path = Path("artifacts/model")
    #: Threads a worker's batch is scored on: the ensemble's rows and the
    #: reason codes are split between them (same bits as one thread); also
    #: torch / BLAS. ``"auto"`` (the default): the CPUs this process may use
    #: (affinity and cgroup quota, :func:`riskflow.cpus.usable_cpus`), right
    #: for one worker per machine or pod. Set 1 when several workers share
    #: the cores (one worker per core).
    num_threads: int = Field("auto", ge=1, le=256, validate_default=True)

    @field_validator("num_threads", mode="before")
    @classmethod
    def _auto_threads(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v.strip().lower() == "auto":
                return min(usable_cpus(), 256)
            if not v.strip().isdigit():
                raise ValueError("expected 'auto' or a number of threads >= 1")
        return v


class PolicyConfig(_Section):
    """Decision thresholds and where a trained policy lives."""

    path: Path | None = None
    # Scores are calibrated fraud probabilities and fraud is rare (~0.5%):
    # review from a 5% chance (10x the base rate), decline when fraud is the
    # likelier outcome. `riskflow policy train` replaces these with thresholds
    # optimised for cost on validation data.
    t_review: float = Field(0.05, ge=0, le=1)
    t_decline: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> PolicyConfig:
        if self.t_review > self.t_decline:
            raise ValueError(
                f"t_review ({self.t_review}) must not exceed t_decline ({self.t_decline})"
            )
        return self


class RulesConfig(_Section):
    """Analyst rules and lists (see README "Rules and lists")."""

    #: Rule set TOML a worker starts with (the rules topic's rule set replaces it)
    #: and `riskflow replay` uses when --rules is not given. None: no rules.
    path: Path | None = None


class StreamConfig(_Section):
    """The stream processor (riskflow worker)."""

    app_id: str = "riskflow-worker"
    max_batch_size: int = Field(512, ge=1, le=100_000)
    #: Faust engine: how long ``stream.take`` waits to fill a batch. The bulk
    #: engine takes what arrived while the last batch was decided (``getmany``
    #: returns at the first record), so there this setting has no effect.
    max_wait_ms: int = Field(5, ge=0, le=60_000)
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "at_least_once"
    #: Bulk engine, at-least-once: the longest a decided batch's input offsets
    #: wait to be committed once its output is acknowledged. Commits run beside
    #: the next batches, never before them; 0 commits after every batch. After
    #: a crash at most this much more input is decided again (same keys).
    commit_interval_ms: int = Field(100, ge=0, le=60_000)
    #: What a valid transaction gets when scoring fails at runtime.
    fallback_decision: Literal["approve", "review", "decline"] = "review"
    #: Where invalid input goes: the dead-letter topic (never dropped).
    error_policy: Literal["dead_letter"] = "dead_letter"
    state_dir: Path = Path("state")
    #: How a checkpoint captures the feature state. "fork" (Linux): a child
    #: process writes the snapshot from the memory the fork froze, so the
    #: event loop pauses only for the fork (~2-16 ms here) instead of copying
    #: every table (O(state): 75-250 ms per GB here); the price is copy-on-write
    #: faults on the pages written while the child runs, and up to the state's
    #: size again in memory in the worst case. "copy": the tables are copied
    #: on the event loop (into buffers a thread made ready) and written in a
    #: thread. "fork" falls back to "copy" where fork is not available.
    snapshot_capture: Literal["fork", "copy"] = "fork"
    metrics_port: int = Field(8000, ge=0, le=65535)
    #: Labels held (and checkpointed) while their transaction is not known yet
    #: (another worker's partition not followed yet, same fetch, gap replay);
    #: beyond it the oldest are dropped and counted in riskflow_labels_unmatched.
    #: 100k: a few seconds of labels at any plausible label rate, ~10 MB.
    waiting_labels: int = Field(100_000, ge=0, le=10_000_000)


class SecurityConfig(_Section):
    """Secrets handling."""

    #: HMAC key for tokenising raw card numbers met in mapped files. The
    #: default is for demos only; set RISKFLOW_SECURITY__TOKENISATION_KEY.
    tokenisation_key: SecretStr = SecretStr("riskflow-demo-tokenisation-key")


class Config(_Section):
    """Everything riskflow can be told, validated and frozen."""

    kafka: KafkaConfig = KafkaConfig()
    topics: TopicsConfig = TopicsConfig()
    features: FeatureConfig = FeatureConfig()
    model: ModelConfig = ModelConfig()
    policy: PolicyConfig = PolicyConfig()
    rules: RulesConfig = RulesConfig()
    stream: StreamConfig = StreamConfig()
    security: SecurityConfig = SecurityConfig()


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        if len(path) < 2 or path[0] not in Config.model_fields:
            continue  # RISKFLOW_* variables that are not settings (e.g. RISKFLOW_TEST_BOOTSTRAP)
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration.

    Parameters
    ----------
    path
        A TOML file. Default: ``$RISKFLOW_CONFIG``, else ``./riskflow.toml`` if
        it exists, else built-in defaults (a local broker on localhost:9092).
    env
        Environment to read ``RISKFLOW_*`` overrides from (default ``os.environ``).
    """
    env = os.environ if env is None else env
    source = "built-in defaults"
    data: dict[str, Any] = {}
    if path is None:
        path = env.get(ENV_PREFIX + "CONFIG") or (
            DEFAULT_CONFIG_FILE if Path(DEFAULT_CONFIG_FILE).is_file() else None
        )
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file {str(p)!r} does not exist. Create it or drop --config.")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Config file {str(p)!r} is not valid TOML: {exc}.") from exc
        source = str(p)
    # Layer file and environment over the full defaults, so overriding one
    # field of a section (RISKFLOW_TOPICS__POLICY__NAME) keeps that section's
    # other defaults (the policy topic stays compacted with 1 partition).
    data = _merge(_merge(Config().model_dump(), data), _env_overrides(env))
    try:
        return Config.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None


def _explain(exc: pydantic.ValidationError, source: str) -> str:
    lines = [f"Invalid riskflow configuration (from {source} and RISKFLOW_* variables):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        env_name = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "is not a known setting (check the spelling; see README 'Configuration')"
        got = err.get("input")
        got_s = "" if isinstance(got, dict) or err["type"] == "missing" else f" Got {got!r}."
        lines.append(f"  - {loc}: {msg}.{got_s} Set it in the file or with {env_name}.")
    return "\n".join(lines)
