"""Create and inspect riskflow's Kafka topics.

The topics are declared in :class:`~riskflow.config.TopicsConfig` (one
:class:`~riskflow.config.TopicConfig` per role: name, partitions, replication,
cleanup policy, retention). :func:`create_topics` makes the missing ones and is
safe to run again; :func:`describe_topics` reports what the cluster has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from riskflow.config import Config
from riskflow.errors import BrokerError, ConfigError
from riskflow.kafka import admin_kwargs, wait_for_broker

__all__ = [
    "TopicStatus",
    "TopicInfo",
    "create_topics",
    "describe_topics",
    "ensure_topics",
    "resolve_roles",
]

#: Seconds to wait for the broker before an admin call gives up.
_CONNECT_TIMEOUT_S = 5.0
#: The broker-side configs `topics list` shows.
_SHOWN_CONFIGS = ("cleanup.policy", "retention.ms")


@dataclass(frozen=True)
class TopicStatus:
    """Outcome of creating one topic.

    ``status`` is ``"created"`` or ``"exists"``; ``problems`` lists settings
    of an existing topic that differ from the configuration (Kafka cannot
    shrink partitions or change them silently, so this is reported, not fixed).
    """

    role: str
    name: str
    status: str
    partitions: int
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": list(self.problems)}


@dataclass(frozen=True)
class TopicInfo:
    """One topic as the cluster has it (``exists=False`` for a configured topic not created yet)."""

    name: str
    role: str | None
    exists: bool
    partitions: int | None = None
    replication_factor: int | None = None
    cleanup_policy: str | None = None
    retention_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_roles(config: Config, roles: Iterable[str] | None) -> list[str]:
    """The roles to act on (all when ``roles`` is empty), validated against the config."""
    known = list(config.topics.all())
    if not roles:
        return known
    out = []
    for role in roles:
        if role not in known:
            raise ConfigError(f"Unknown topic role {role!r}. Roles are: {', '.join(known)}.")
        if role not in out:
            out.append(role)
    return out


def _admin(config: Config) -> Any:
    from kafka import KafkaAdminClient

    wait_for_broker(config.kafka, timeout=_CONNECT_TIMEOUT_S)
    return KafkaAdminClient(**admin_kwargs(config.kafka))


def _configs(admin: Any, names: Sequence[str]) -> dict[str, dict[str, str]]:
    from kafka.admin import ConfigResource

    if not names:
        return {}
    res = admin.describe_configs(
        [ConfigResource("TOPIC", n, list(_SHOWN_CONFIGS)) for n in names], config_filter="all"
    )
    topics = res.get("topic", {})
    return {n: {k: v.get("value") for k, v in topics.get(n, {}).items()} for n in names}


def _partitions(admin: Any, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """name -> (partitions, replication factor) for topics that exist."""
    if not names:
        return {}
    out = {}
    for t in admin.describe_topics(list(names)):
        if t.get("error_code", 0) == 0 and t.get("partitions"):
            parts = t["partitions"]
            out[t["name"]] = (len(parts), max(len(p.get("replica_nodes") or ()) for p in parts))
    return out


def create_topics(
    config: Config,
    roles: Iterable[str] | None = None,
    *,
    if_not_exists: bool = True,
    timeout_ms: int = 30_000,
) -> list[TopicStatus]:
    """Create the configured topics that do not exist yet.

    Parameters
    ----------
    config
        The riskflow configuration (``config.kafka`` says where, ``config.topics`` what).
    roles
        Topic roles to create (``transactions``, ``labels``, ...); all when empty.
    if_not_exists
        When True (the default) an existing topic is reported as ``"exists"``;
        when False it is an error.

    Raises
    ------
    BrokerError
        No broker, or the broker refused a topic (and, with
        ``if_not_exists=False``, a topic already existed).
    """
    from kafka.errors import KafkaError, TopicAlreadyExistsError
    from kafka.errors import for_code as error_for_code

    chosen = resolve_roles(config, roles)
    wanted = {role: config.topics.all()[role] for role in chosen}
    admin = _admin(config)
    try:
        request = {
            t.name: {
                "num_partitions": t.partitions,
                "replication_factor": t.replication_factor,
                "configs": t.topic_configs(),
            }
            for t in wanted.values()
        }
        try:
            response = admin.create_topics(request, timeout_ms=timeout_ms, raise_errors=False)
        except KafkaError as exc:
            raise BrokerError(
                f"Creating topics {sorted(request)} at {config.kafka.bootstrap} failed: {exc}"
            ) from exc
        errors = {t["name"]: (t["error_code"], t.get("error_message")) for t in response["topics"]}
        existing = [n for n, (code, _) in errors.items() if code == TopicAlreadyExistsError.errno]
        failed = {
            n: f"{error_for_code(code).__name__}: {msg or ''}".rstrip(": ")
            for n, (code, msg) in errors.items()
            if code not in (0, TopicAlreadyExistsError.errno)
        }
        if failed:
            raise BrokerError(
                "The broker refused to create topic(s): "
                + "; ".join(f"{n} ({why})" for n, why in failed.items())
                + ". Check the topic settings (RISKFLOW_TOPICS__<ROLE>__*) and the broker's limits."
            )
        if existing and not if_not_exists:
            raise BrokerError(
                f"Topic(s) {existing} already exist at {config.kafka.bootstrap}; "
                "drop --fail-if-exists to accept them, or delete them first."
            )
        created = [n for n, (code, _) in errors.items() if code == 0]
        if created:
            admin.wait_for_topics(created, timeout_ms=timeout_ms)
        have = _partitions(admin, existing)
        confs = _configs(admin, existing)
    finally:
        admin.close()

    out = []
    for role, t in wanted.items():
        if t.name not in existing:
            out.append(TopicStatus(role, t.name, "created", t.partitions))
            continue
        parts, _ = have.get(t.name, (0, 0))
        problems = []
        if parts != t.partitions:
            problems.append(f"has {parts} partitions, config says {t.partitions}")
        policy = confs.get(t.name, {}).get("cleanup.policy")
        if policy is not None and policy != t.cleanup_policy:
            problems.append(f"cleanup.policy is {policy}, config says {t.cleanup_policy}")
        out.append(TopicStatus(role, t.name, "exists", parts, tuple(problems)))
    return out


def describe_topics(config: Config, *, all_topics: bool = False) -> list[TopicInfo]:
    """What the cluster has for riskflow's topics (or, with ``all_topics``, every topic).

    Configured topics that do not exist are listed with ``exists=False``; the
    cluster's internal topics (``__consumer_offsets``, ...) are left out.
    Never creates a topic, even on a broker with ``auto.create.topics.enable``.
    """
    roles = {t.name: role for role, t in config.topics.all().items()}
    admin = _admin(config)
    try:
        present = set(admin.list_topics())
        names = [n for n in roles if n in present]
        if all_topics:
            names += sorted(n for n in present if n not in roles and not n.startswith("__"))
        parts = _partitions(admin, names)
        confs = _configs(admin, names)
    finally:
        admin.close()
    out = []
    for name in [*roles, *(n for n in names if n not in roles)]:
        if name not in present:
            out.append(TopicInfo(name, roles.get(name), False))
            continue
        p, rf = parts.get(name, (None, None))
        c = confs.get(name, {})
        retention = c.get("retention.ms")
        out.append(
            TopicInfo(
                name,
                roles.get(name),
                True,
                p,
                rf,
                c.get("cleanup.policy"),
                int(retention) if retention not in (None, "") else None,
            )
        )
    return out


def ensure_topics(config: Config, roles: Iterable[str]) -> list[str]:
    """Create the topics of ``roles`` that are missing; return the names created.

    Only asks to create what is missing, so it also works on a cluster where
    riskflow may write to existing topics but not create new ones.
    """
    chosen = resolve_roles(config, roles)
    names = {config.topics.all()[r].name: r for r in chosen}
    admin = _admin(config)
    try:
        present = set(admin.list_topics())
    finally:
        admin.close()
    missing = [r for n, r in names.items() if n not in present]
    if not missing:
        return []
    return [s.name for s in create_topics(config, missing) if s.status == "created"]
