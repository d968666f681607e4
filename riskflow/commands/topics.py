"""``riskflow topics create|list``: riskflow's Kafka topics."""

from __future__ import annotations

import json

import click

from riskflow.cli import load_ctx_config
from riskflow.config import TopicsConfig

_ROLES = tuple(TopicsConfig.model_fields)


def _human_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 0:
        return "forever"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@click.group()
def topics() -> None:
    """Create and list riskflow's Kafka topics (names and settings from the config)."""


@topics.command("create")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(_ROLES),
    help="Only this topic role (repeatable). Default: every topic.",
)
@click.option(
    "--if-not-exists/--fail-if-exists",
    default=True,
    show_default=True,
    help="Accept topics that already exist (reported, exit 0), or treat them as an error.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def create(ctx: click.Context, roles: tuple[str, ...], if_not_exists: bool, as_json: bool) -> None:
    """Create the configured topics that do not exist yet (safe to re-run)."""
    from riskflow.errors import RiskflowError
    from riskflow.topics import create_topics

    config = load_ctx_config(ctx)
    try:
        result = create_topics(config, roles, if_not_exists=if_not_exists)
    except RiskflowError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in result]))
        return
    for s in result:
        plural = "" if s.partitions == 1 else "s"
        line = f"{s.status:8} {s.name}  ({s.role}, {s.partitions} partition{plural})"
        if s.problems:
            line += "  WARNING: " + "; ".join(s.problems)
        click.echo(line)


@topics.command("list")
@click.option(
    "--all", "all_topics", is_flag=True, help="Every topic of the cluster, not only riskflow's."
)
@click.option("--json", "as_json", is_flag=True, help="Print the topics as JSON.")
@click.pass_context
def list_(ctx: click.Context, all_topics: bool, as_json: bool) -> None:
    """Show riskflow's topics: partitions, cleanup policy, retention."""
    from riskflow.errors import RiskflowError
    from riskflow.topics import describe_topics

    config = load_ctx_config(ctx)
    try:
        infos = describe_topics(config, all_topics=all_topics)
    except RiskflowError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos]))
        return
    rows = [("TOPIC", "ROLE", "PARTITIONS", "REPLICAS", "CLEANUP", "RETENTION")]
    for i in infos:
        if not i.exists:
            rows.append((i.name, i.role or "-", "missing", "-", "-", "-"))
            continue
        rows.append(
            (
                i.name,
                i.role or "-",
                str(i.partitions),
                str(i.replication_factor),
                i.cleanup_policy or "-",
                # A compacted-only topic keeps the latest value per key forever.
                "-" if i.cleanup_policy == "compact" else _human_ms(i.retention_ms),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if any(not i.exists for i in infos):
        click.echo("Missing topics: create them with `riskflow topics create`.", err=True)
