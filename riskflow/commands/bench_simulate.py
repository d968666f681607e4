"""``riskflow bench simulate``: simulator throughput (transactions/s, Parquet included)."""

from __future__ import annotations

import json

import click


@click.command()
@click.option(
    "--preset",
    type=click.Choice(["demo", "standard", "bench"]),
    default="bench",
    show_default=True,
    help="Dataset size: bench is ~10M transactions.",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Keep the output here (default: a temporary folder, deleted).",
)
@click.option("--no-write", is_flag=True, help="Generate in memory only (iter_chunks), no Parquet.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def simulate(preset: str, seed: int, out: str | None, no_write: bool, as_json: bool) -> None:
    """Simulate a preset end to end and report tx_per_s (wall clock, one run)."""
    from riskflow.simulate._bench import bench_simulate

    result = bench_simulate(preset, seed=seed, out_dir=out, write=not no_write)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{result['transactions']:,} transactions in {result['elapsed_s']:.1f} s: "
        f"{result['tx_per_s']:,.0f} tx/s ({'with' if result['write'] else 'without'} Parquet writing; "
        f"{result['bytes_written'] / 1e6:,.0f} MB)"
    )
