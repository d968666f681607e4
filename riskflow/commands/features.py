"""`riskflow features list` and `riskflow bench features`: thin wrappers over riskflow.features."""

from __future__ import annotations

import json

import click


@click.group()
def features() -> None:
    """The feature catalogue."""


@features.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of feature objects.")
def list_features(as_json: bool) -> None:
    """Every feature: name, entity, window, aggregation, kind and meaning (matrix order)."""
    from riskflow.features import catalogue

    specs = catalogue()
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in specs], indent=1))
        return
    for s in specs:
        click.echo(
            f"{s.name:44s} {s.entity:14s} {s.window or '-':5s} {s.aggregation:18s} {s.description}"
        )
    click.echo(f"{len(specs)} features", err=True)


@click.command("features")
@click.option(
    "-n", "--transactions", "n", default=1_000_000, show_default=True, type=click.IntRange(10_000)
)
@click.option("--batch", default=8_192, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--repeats",
    default=3,
    show_default=True,
    type=click.IntRange(1),
    help="Timed runs of each side; tx/s figures are their medians.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_features(n: int, batch: int, seed: int, repeats: int, as_json: bool) -> None:
    """Feature-engine tx/s (full set and subset) against pandas groupby/rolling (medians)."""
    from riskflow.features._bench import run_bench

    res = run_bench(n, seed=seed, batch=batch, repeats=repeats)
    if as_json:
        click.echo(json.dumps(res))
        return
    click.echo(
        f"{res['n_features']} features on {res['n_transactions']:,} tx ({res['source']}): "
        f"{res['tx_per_s']:,.0f} tx/s; state {res['state_bytes_per_entity']:.0f} B/entity\n"
        f"subset ({len(res['subset'])} features): riskflow {res['subset_tx_per_s']:,.0f} tx/s, "
        f"pandas {res['baseline_tx_per_s']:,.0f} tx/s, ratio {res['ratio']:.1f}x"
    )
