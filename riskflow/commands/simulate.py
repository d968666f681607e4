"""``riskflow simulate``: write a realistic simulated transaction history."""

from __future__ import annotations

import json
from typing import Any

import click

from riskflow.simulate.config import DRIFTS, PRESETS, SCENARIOS


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    help="demo (seconds), standard (~1.5M tx, the model's dataset), bench (~10M tx).",
)
@click.option("--customers", type=click.IntRange(min=1), help="Number of customers.")
@click.option("--days", type=click.IntRange(min=1), help="Days of activity.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--fraud-rate",
    type=click.FloatRange(0.0, 0.5),
    help="Share of fraudulent transactions [default: 0.005].",
)
@click.option(
    "--unreported",
    "unreported_share",
    type=click.FloatRange(0.0, 1.0),
    help="Share of fraud never reported [default: 0.2].",
)
@click.option(
    "--mix",
    metavar="NAME=W,...",
    help="Scenario shares of fraud, e.g. card_testing=2,skimming=1 (others 0). "
    f"Names: {', '.join(SCENARIOS)}.",
)
@click.option("--drift", type=click.Choice(DRIFTS), default="none", show_default=True)
@click.option(
    "--drift-start-day",
    type=click.IntRange(min=0),
    help="Day the drift starts (default: the middle).",
)
@click.option("--start-date", metavar="YYYY-MM-DD", help="First day (UTC) [default: 2026-01-05].")
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print only the summary as JSON.")
def simulate(
    out: str,
    preset: str | None,
    customers: int | None,
    days: int | None,
    seed: int,
    fraud_rate: float | None,
    unreported_share: float | None,
    mix: str | None,
    drift: str,
    drift_start_day: int | None,
    start_date: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Simulate card payments with fraud scenarios, delayed labels and drift.

    Writes OUT/transactions/part-*.parquet (canonical schema plus the ground
    truth columns is_fraud and fraud_scenario), OUT/labels/part-*.parquet
    (tx_id, label, label_time), entity tables and OUT/manifest.json. The same
    options and seed always give the same data.
    """
    from riskflow.errors import RiskflowError
    from riskflow.simulate import SimulationConfig
    from riskflow.simulate import simulate as run

    overrides: dict[str, Any] = {
        "customers": customers,
        "days": days,
        "seed": seed,
        "fraud_rate": fraud_rate,
        "unreported_share": unreported_share,
        "scenario_mix": _parse_mix(mix),
        "drift": drift,
        "drift_start_day": drift_start_day,
        "start_date": start_date,
    }
    try:
        if preset is not None:
            config = SimulationConfig.preset(preset, **overrides)
        else:
            config = SimulationConfig(**{k: v for k, v in overrides.items() if v is not None})
        if as_json:
            summary = run(config, out, overwrite=overwrite)
        else:
            with _Bar() as bar:
                summary = run(config, out, progress=bar, overwrite=overwrite)
    except (RiskflowError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
        return
    _print_summary(summary.to_dict())


def _parse_mix(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise click.BadParameter(
                f"{part!r} is not NAME=WEIGHT; write e.g. card_testing=2,skimming=1.",
                param_hint="--mix",
            ) from None
    return mix


class _Bar:
    """A rich progress bar over simulated days (on stderr, only on a terminal)."""

    def __enter__(self) -> _Bar:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(stderr=True)
        self._bar: Any = None
        if console.is_terminal:
            self._bar = Progress(
                TextColumn("simulating days"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rows]:>12,} tx"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._task = self._bar.add_task("simulate", total=None, rows=0)
            self._bar.start()
        return self

    def __call__(self, done: int, total: int, rows: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, rows=rows)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()


def _print_summary(s: dict[str, Any]) -> None:
    click.echo(
        f"wrote {s['transactions']:,} transactions and {s['labels']:,} labels to {s['out_dir']} "
        f"in {s['elapsed_s']:.1f} s ({s['tx_per_s']:,.0f} tx/s)"
    )
    click.echo(
        f"fraud: {s['fraud_transactions']:,} transactions ({100 * s['fraud_rate']:.3f}%), "
        f"{s['reported_fraud_labels']:,} reported; {s['legit_dispute_labels']:,} disputes found legitimate"
    )
    width = max(len(k) for k in s["scenario_counts"])
    for name, count in s["scenario_counts"].items():
        click.echo(f"  {name:<{width}}  {count:>9,}  {100 * s['scenario_rates'][name]:.3f}%")
    q = s["label_delay_days"]
    if q:
        click.echo("label delay (days): " + "  ".join(f"{k} {v:.1f}" for k, v in q.items()))
    click.echo(f"compromised terminals: {s['compromised_terminals']}")
