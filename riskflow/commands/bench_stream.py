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
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Duration of each latency run. The default spans two of the worker's 30 s "
    "checkpoints: a 10 s run holds one or none by chance.",
)
@click.option(
    "--sustain-seconds",
    default=12.0,
    show_default=True,
    type=click.FloatRange(min=3),
    help="Duration of each sustained-rate trial.",
)
@click.option(
    "--data",
    type=click.Path(exists=True),
    default=None,
    help="Offer this dataset's transactions (e.g. a simulator folder; realistic flag rate) "
    "instead of synthetic ones.",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Trained model directory (default: model.path).",
)
@click.option(
    "--guarantee",
    type=click.Choice(["at_least_once", "exactly_once"]),
    default=None,
    help="Processing guarantee of the worker and the null pipeline "
    "(default: stream.processing_guarantee).",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Worker micro-batch bound (default: stream.max_batch_size).",
)
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(min=0.1),
    default=None,
    help="The worker's seconds between state snapshots (default: the worker's own default).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="The worker's model.num_threads: threads a batch's scoring is split between "
    "(default: model.num_threads).",
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
    sustain_seconds: float,
    data: str | None,
    model_path: str | None,
    guarantee: str | None,
    max_batch_size: int | None,
    checkpoint_interval: float | None,
    threads: int | None,
    partitions: int,
    scorer: str | None,
    engine: str,
    as_json: bool,
) -> None:
    """Max sustained tx/s and P50/P99 end-to-end latency at fixed offered rates.

    Next to a null pipeline (consume -> produce, no work) on the same broker in
    the same run; see riskflow.streams.bench for how each figure is measured.
    """
    from riskflow.streams.bench import bench_stream

    config = load_ctx_config(ctx)
    stream_over = {
        k: v
        for k, v in (("processing_guarantee", guarantee), ("max_batch_size", max_batch_size))
        if v is not None
    }
    config = config.model_copy(
        update={
            "stream": config.stream.model_copy(update=stream_over),
            "model": config.model.model_copy(
                update={
                    "path": model_path or config.model.path,
                    "num_threads": threads or config.model.num_threads,
                }
            ),
        }
    )
    result = bench_stream(
        config,
        n=n,
        rates=rates,
        seconds=seconds,
        sustain_seconds=sustain_seconds,
        data=data,
        checkpoint_interval_s=checkpoint_interval,
        partitions=partitions,
        scorer=scorer,
        engine=engine,
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"null pipeline        {result['null_pipeline_tx_per_s']:>10,} tx/s")
    click.echo(f"drain (backlog)      {result['drain_tx_per_s']:>10,} tx/s")
    sustained = result["max_sustained_tx_per_s"]
    click.echo(
        f"max sustained        {sustained or 0:>10,} tx/s  ({result['scorer']}, "
        f"{result['guarantee']})"
    )
    for rate, lat in result["latency_ms"].items():
        click.echo(f"at {int(rate):>6,} tx/s offered  p50 {lat['p50']} ms  p99 {lat['p99']} ms")
