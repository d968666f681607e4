"""``riskflow bench models``: inference throughput of each member and the ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import click

from riskflow.cli import load_ctx_config


@click.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False),
    help="Model directory (default: config model.path if it holds a model, else a synthetic one).",
)
@click.option(
    "--seconds",
    default=0.5,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Measuring time per (path, batch size).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="Threads per worker (default: config model.num_threads).",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True),
    help="Score real feature rows instead of random ones: the feature engine's rows for the "
    "last 8,192 of this history's first 200,000 transactions (e.g. data/standard). "
    "Needs --model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def models(
    ctx: click.Context,
    model_path: str | None,
    seconds: float,
    threads: int | None,
    data_path: str | None,
    as_json: bool,
) -> None:
    """Transactions/s at batch sizes 1, 64, 1024 for LightGBM, the MLP and the ensemble.

    Also measures LightGBM's own predict against the compiled tree runtime the
    scorer uses, and torch against the MLP's numpy serving path.
    """
    from riskflow.errors import RiskflowError
    from riskflow.models._bench import bench_models, feature_rows

    config = load_ctx_config(ctx)
    if model_path is None and (Path(config.model.path) / "manifest.json").is_file():
        model_path = str(config.model.path)
    if data_path is not None and model_path is None:
        raise click.UsageError("--data needs a trained model: pass --model DIR.")
    try:
        rows = None if data_path is None else feature_rows(data_path, model_path, config)
        result = bench_models(
            model_path,
            seconds=seconds,
            num_threads=threads or config.model.num_threads,
            rows=rows,
            rows_source=None if data_path is None else f"features of {data_path}",
        )
    except (RiskflowError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"model: {result['model']}  features: {result['n_features']}  threads: {result['num_threads']}"
    )
    sizes = [str(b) for b in result["batch_sizes"]]
    click.echo(f"{'path':<18}" + "".join(f"{'batch ' + s:>16}" for s in sizes))
    for name, row in result["results"].items():
        click.echo(f"{name:<18}" + "".join(f"{row[s]:>16,.0f}" for s in sizes))
    for name, row in result["ratios"].items():
        click.echo(f"{name}: " + ", ".join(f"batch {s}: x{v}" for s, v in row.items()))
    for runtime, rate in result.get("explain_rows_per_s", {}).items():
        click.echo(f"reason codes, {runtime} TreeSHAP: {rate:,.0f} rows/s")
    if "explain_tables" in result:
        t = result["explain_tables"]
        click.echo(
            f"TreeSHAP tables: {t['bytes'] / 1e6:.1f} MB, {t['trees']} of {t['of_trees']} trees"
        )
