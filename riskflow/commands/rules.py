"""``riskflow rules check|publish|show``: analyst rule sets on the rules topic."""

from __future__ import annotations

import getpass
import json
import time
from typing import Any

import click

from riskflow.cli import load_ctx_config


def _compile(path: str) -> tuple[Any, Any]:
    """Load and compile a rule set against the feature catalogue."""
    from riskflow.features import catalogue
    from riskflow.policies.rules import RuleSet

    rs = RuleSet.load(path)
    return rs, rs.compile([s.name for s in catalogue()])


@click.group()
def rules() -> None:
    """Analyst rules: check a rule file, publish it to running workers, show what is live."""


@rules.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def check(path: str, as_json: bool) -> None:
    """Parse and type-check PATH against the feature catalogue (no broker needed)."""
    from riskflow.errors import RiskflowError

    try:
        rs, compiled = _compile(path)
    except RiskflowError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(
            json.dumps({"version": rs.version, "rules": [r.to_dict() for r in compiled.rules]})
        )
        return
    for r in compiled.rules:
        click.echo(f"{r.priority:>5}  {r.mode:<6} {r.action:<8} {r.id}: {r.when}")
    click.echo(f"{len(rs.rules)} rules OK (version {rs.version})")


@rules.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_context
def publish(ctx: click.Context, path: str) -> None:
    """Check PATH, then publish it: running workers switch to it between two batches."""
    from riskflow.errors import RiskflowError
    from riskflow.policies.rules.codec import encode_ruleset
    from riskflow.rules_topic import publish as send

    cfg = load_ctx_config(ctx)
    try:
        rs, _ = _compile(path)
        offset = send(
            cfg,
            *encode_ruleset(
                rs, published_at=int(time.time() * 1000), published_by=getpass.getuser()
            ),
        )
    except RiskflowError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"rule set {rs.version} ({len(rs.rules)} rules) published at rules topic offset {offset}; "
        "each worker logs the input offsets it applies from"
    )


@rules.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """The rule set workers decide with now (the rules topic read to its end)."""
    from riskflow.errors import RiskflowError
    from riskflow.rules_topic import read_current

    cfg = load_ctx_config(ctx)
    try:
        live, _ = read_current(cfg)
    except RiskflowError as exc:
        raise click.ClickException(str(exc)) from None
    rs = live.ruleset  # type: ignore[attr-defined]
    if as_json:
        click.echo(json.dumps(None if rs is None else rs.to_dict()))
        return
    if rs is None:
        click.echo("no rule set published")
        return
    for r in sorted(rs.rules, key=lambda r: r.priority):
        click.echo(f"{r.priority:>5}  {r.mode:<6} {r.action:<8} {r.id}: {r.when}")
    click.echo(f"rule set {rs.version}: {len(rs.rules)} rules")
