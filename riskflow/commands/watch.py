"""``riskflow watch``: a compact live view of the decisions topic."""

from __future__ import annotations

import time

import click
import orjson

from riskflow.cli import load_ctx_config


def _render(snap, topic: str):  # noqa: ANN001, ANN202 - rich renderables
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(
        ("riskflow decisions ", "bold"),
        (f"({topic})  ", "dim"),
        (f"{snap.total:,} decided  ", ""),
        (f"{snap.rate_per_s:,.0f} tx/s  ", "cyan"),
        (
            "latency p50/p99 "
            + (
                f"{snap.latency_p50_ms:.1f}/{snap.latency_p99_ms:.1f} ms"
                if snap.latency_p50_ms is not None
                else "–"
            )
            + "  ",
            "",
        ),
        (f"fallbacks {snap.fallbacks}", "red" if snap.fallbacks else "dim"),
    )
    mix = Text(
        "  ".join(f"{k} {100 * v:.2f}%" for k, v in snap.mix.items()) or "waiting for decisions…"
    )
    versions = Text(
        f"model {', '.join(snap.model_versions) or '–'}   policy {', '.join(snap.policy_versions) or '–'}",
        style="dim",
    )
    table = Table(title="recent declines", expand=True, show_lines=False)
    table.add_column("tx_id", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("why")
    for d in snap.recent_declines:
        score = f"{d['score']:.3f}" if isinstance(d.get("score"), int | float) else "–"
        table.add_row(str(d.get("tx_id")), score, "; ".join(str(r) for r in d["reasons"][:3]))
    return Group(head, mix, versions, table)


@click.command()
@click.option("--seconds", type=float, default=0.0, help="Stop after this long (0 = until Ctrl-C).")
@click.option(
    "--from-beginning", is_flag=True, help="Read the topic from its start, not just new decisions."
)
@click.option(
    "--refresh", type=float, default=0.5, show_default=True, help="Seconds between redraws."
)
@click.pass_context
def watch(ctx: click.Context, seconds: float, from_beginning: bool, refresh: float) -> None:
    """Show decisions as they come: rate, latency, decision mix, recent declines with reasons."""
    from kafka import KafkaConsumer
    from rich.live import Live

    from riskflow.errors import BrokerError
    from riskflow.kafka import consumer_kwargs, wait_for_broker
    from riskflow.watch import DecisionStats

    cfg = load_ctx_config(ctx)
    try:
        wait_for_broker(cfg.kafka, timeout=10)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    topic = cfg.topics.decisions.name
    consumer = KafkaConsumer(
        topic,
        **consumer_kwargs(
            cfg.kafka,
            None,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
        ),
    )
    stats = DecisionStats()
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
    try:
        with Live(
            _render(stats.snapshot(), topic), refresh_per_second=max(1, int(1 / refresh))
        ) as live:
            while time.monotonic() < deadline:
                polled = consumer.poll(timeout_ms=int(refresh * 1000), max_records=5000)
                now_ms = time.time() * 1000
                recs = []
                for batch in polled.values():
                    for msg in batch:
                        try:
                            recs.append(orjson.loads(msg.value))
                        except orjson.JSONDecodeError:
                            continue
                stats.update(recs, now_ms=now_ms)
                live.update(_render(stats.snapshot(), topic))
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
