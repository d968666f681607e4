"""``riskflow lists add|remove|show``: allow / deny / watch lists on the rules topic."""

from __future__ import annotations

import getpass
import json
import time

import click

from riskflow.cli import load_ctx_config

_KINDS = ("card", "customer", "merchant", "device", "ip", "bin", "country")


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def lists() -> None:
    """Allow, deny and watch lists (delivered to running workers through the rules topic).

    \b
    The decision order: allow list -> approve, deny list -> decline, then
    active rules by priority, then the model. `watch` (and lists a rule set
    declares) only matter to rules: `device_id in watch`.
    """


@lists.command()
@click.argument("name")
@click.argument("kind", type=click.Choice(_KINDS))
@click.argument("value")
@click.option("--expires", help="Expire after this long from now, e.g. 7d, 12h.")
@click.option("--reason", default="", help="Why (shown in audits and `lists show`).")
@click.option("--by", "added_by", default=None, help="Who (default: the OS user).")
@click.pass_context
def add(
    ctx: click.Context,
    name: str,
    kind: str,
    value: str,
    expires: str | None,
    reason: str,
    added_by: str | None,
) -> None:
    """Put VALUE of KIND on list NAME (allow, deny, watch, ...).

    A card is listed by its token; a card number given here is tokenised with
    security.tokenisation_key first and never stored or sent.

    Example: riskflow lists add deny device dev-9f2 --expires 30d --reason "ATO ring"
    """
    from riskflow.errors import RiskflowError
    from riskflow.mapping import parse_duration_ms
    from riskflow.policies.rules import ListEntry
    from riskflow.policies.rules.codec import encode_list_put
    from riskflow.rules_topic import publish
    from riskflow.schema import looks_like_pan
    from riskflow.security import tokenise_pan

    cfg = load_ctx_config(ctx)
    now = int(time.time() * 1000)
    try:
        tokenised = kind == "card" and looks_like_pan(value)
        if tokenised:
            value = tokenise_pan(value, cfg.security.tokenisation_key.get_secret_value().encode())
        entry = ListEntry(
            name,
            kind,
            value,
            expires_at=None if expires is None else now + parse_duration_ms(expires),
            reason=reason,
            added_at=now,
            added_by=added_by if added_by is not None else getpass.getuser(),
        )
        offset = publish(cfg, *encode_list_put(entry))
    except RiskflowError as exc:
        raise _fail(exc) from None
    shown = entry.value + (" (tokenised card number)" if tokenised else "")
    click.echo(f"{name}: added {kind} {shown} at rules topic offset {offset}")


@lists.command()
@click.argument("name")
@click.argument("kind", type=click.Choice(_KINDS))
@click.argument("value")
@click.pass_context
def remove(ctx: click.Context, name: str, kind: str, value: str) -> None:
    """Take VALUE of KIND off list NAME (a tombstone on the rules topic)."""
    from riskflow.errors import RiskflowError
    from riskflow.policies.rules.codec import encode_list_remove
    from riskflow.rules_topic import publish
    from riskflow.schema import looks_like_pan
    from riskflow.security import tokenise_pan

    cfg = load_ctx_config(ctx)
    try:
        if kind == "card" and looks_like_pan(value):
            value = tokenise_pan(value, cfg.security.tokenisation_key.get_secret_value().encode())
        offset = publish(cfg, *encode_list_remove(name, kind, value))
    except RiskflowError as exc:
        raise _fail(exc) from None
    click.echo(f"{name}: removed {kind} {value} at rules topic offset {offset}")


@lists.command()
@click.option("--list", "name", default=None, help="Only this list.")
@click.option("--kind", type=click.Choice(_KINDS), default=None, help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry (a JSON array).")
@click.pass_context
def show(ctx: click.Context, name: str | None, kind: str | None, as_json: bool) -> None:
    """The current entries, as workers see them (the rules topic read to its end)."""
    from riskflow.errors import RiskflowError
    from riskflow.rules_topic import read_current

    cfg = load_ctx_config(ctx)
    try:
        live, _ = read_current(cfg)
    except RiskflowError as exc:
        raise _fail(exc) from None
    entries = live.lists.entries(name, kind)  # type: ignore[attr-defined]
    now = int(time.time() * 1000)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    if not entries:
        click.echo("no entries")
        return
    for e in entries:
        exp = "never" if e.expires_at is None else _iso(e.expires_at)
        state = " (expired)" if e.expires_at is not None and e.expires_at <= now else ""
        click.echo(
            f"{e.list:<8} {e.kind:<9} {e.value:<40} expires {exp}{state}"
            + (f"  {e.reason}" if e.reason else "")
            + (f"  [{e.added_by}]" if e.added_by else "")
        )
    click.echo(f"{len(entries)} entries (lists version {live.lists.version})")  # type: ignore[attr-defined]


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
