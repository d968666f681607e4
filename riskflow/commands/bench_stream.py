"""``riskflow bench stream``: worker throughput and latency next to a null pipeline."""

from __future__ import annotations

import json

import click

from riskflow.cli import load_ctx_config


@click.command()
@click.option(
    "-n",
    "--transactions",
    "n",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1000),
    help="Transactions drained to measure the max sustained throughput.",
)
@click.option(
    "--rate",
    "rates",
    multiple=True,
    type=click.IntRange(min=1),
    default=(2000,),
    show_default=True,
    help="Offered rate(s) in tx/s for the latency runs (repeatable).",
)
@click.option(
    "--seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Duration of each latency run.",
)
@click.option("--partitions", default=2, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--scorer",
    default=None,
    metavar="MODULE:FACTORY",
    help="Scoring factory for the worker (default: the trained pipeline from model.path).",
)
@click.option(
    "--engine",
    type=click.Choice(["faust", "bulk"]),
    default="bulk",
    show_default=True,
    help="Worker engine (see riskflow worker --engine).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def stream(
    ctx: click.Context,
    n: int,
    rates: tuple[int, ...],
    seconds: float,
    partitions: int,
    scorer: str | None,
    engine: str,
    as_json: bool,
) -> None:
    """Max sustained tx/s and P50/P99 end-to-end latency at fixed offered rates."""
    from riskflow.streams.bench import bench_stream

    config = load_ctx_config(ctx)
    result = bench_stream(
        config,
        n=n,
        rates=rates,
        seconds=seconds,
        partitions=partitions,
        scorer=scorer,
        engine=engine,
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"null pipeline        {result['null_pipeline_tx_per_s']:>10,} tx/s")
    click.echo(
        f"max sustained        {result['max_sustained_tx_per_s']:>10,} tx/s  ({result['scorer']})"
    )
    for rate, lat in result["latency_ms"].items():
        click.echo(f"at {int(rate):>6,} tx/s offered  p50 {lat['p50']} ms  p99 {lat['p99']} ms")
