"""``riskflow produce``: publish a transactions (and/or labels) file to Kafka."""

from __future__ import annotations

import json
from typing import Any

import click

from riskflow.cli import load_ctx_config

_FILE = click.Path(exists=True, dir_okay=True)


@click.command()
@click.option(
    "--data", type=_FILE, help="Transactions: a Parquet/CSV file or folder (or simulator output)."
)
@click.option("--labels", type=_FILE, help="Labels (tx_id, label, label_time): a file or folder.")
@click.option(
    "--with-labels",
    is_flag=True,
    help="Also send the labels that come with --data (a simulator folder's labels/, "
    "or the mapping's label column).",
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False),
    help="Column mapping TOML for your own data.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=1000.0,
    show_default=True,
    help="Target messages per second (over both streams); 0 = as fast as possible.",
)
@click.option("--limit", type=click.IntRange(min=0), help="Stop after this many messages.")
@click.option("--topic", help="Send to this topic instead of the configured one.")
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary.")
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Show a progress bar."
)
@click.pass_context
def produce(
    ctx: click.Context,
    data: str | None,
    labels: str | None,
    with_labels: bool,
    mapping: str | None,
    rate: float,
    limit: int | None,
    topic: str | None,
    as_json: bool,
    progress: bool,
) -> None:
    """Publish transactions to the transactions topic, keyed by card token, in event-time order.

    With --labels (or --with-labels), label records go to the labels topic
    keyed by tx_id; with both, the two streams are interleaved by time (event
    time / label time), so labels arrive when they would have become known.
    Missing configured topics are created first. Card numbers are never printed.
    """
    from riskflow.errors import RiskflowError
    from riskflow.produce import produce as run

    if data is None and labels is None:
        raise click.UsageError("Give --data FILE and/or --labels FILE.")
    config = load_ctx_config(ctx)
    bar: Any = None
    task: Any = None
    state: dict[str, int] = {"total": 0}

    def on_total(n: int) -> None:
        nonlocal bar, task
        state["total"] = n
        console = _stderr_console() if progress and not as_json else None
        if console is not None and console.is_terminal:  # no bar in logs and pipes
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            bar = Progress(
                TextColumn("producing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>9.0f} msg/s"),
                TimeRemainingColumn(),
                transient=True,
                console=console,
            )
            task = bar.add_task("produce", total=n, rate=0.0)
            bar.start()

    def on_progress(sent: int) -> None:
        if bar is not None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, completed=sent, rate=sent / elapsed if elapsed > 0 else 0.0)

    try:
        summary = run(
            config,
            data=data,
            labels=labels,
            with_labels=with_labels,
            mapping=mapping,
            rate=rate,
            limit=limit,
            topic=topic,
            on_progress=on_progress,
            on_total=on_total,
        )
    except RiskflowError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
    else:
        topics = ", ".join(f"{n} to {t}" for t, n in summary.by_topic.items())
        click.echo(
            f"sent {summary.sent} messages ({topics}) in {summary.seconds:.2f} s: "
            f"{summary.rate:,.0f} msg/s (target {'max' if rate == 0 else f'{rate:,.0f}'})"
        )
    if summary.failed:
        raise click.ClickException(
            f"{summary.failed} of {summary.sent} messages were not delivered; first error: "
            f"{summary.first_error}"
        )


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
