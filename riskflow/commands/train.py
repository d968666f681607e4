"""``riskflow train``: fit, evaluate and save the fraud model."""

from __future__ import annotations

import json
from typing import Any

import click

from riskflow.cli import load_ctx_config

_FILE = click.Path(exists=True, dir_okay=True)


def _window(value: str | None, name: str) -> tuple[str, str] | None:
    if value is None:
        return None
    start, sep, end = value.partition("..")
    if not sep or not start.strip() or not end.strip():
        raise click.BadParameter(
            f"{value!r} is not FROM..TO; write e.g. 2026-01-01..2026-01-08 (end exclusive).",
            param_hint=f"--{name}",
        )
    return start.strip(), end.strip()


@click.command()
@click.option(
    "--data", required=True, type=_FILE, help="History: simulator folder, file or folder."
)
@click.option("--labels", type=_FILE, help="Labels file/folder if not inside DATA.")
@click.option(
    "--mapping", type=click.Path(exists=True, dir_okay=False), help="Column mapping TOML."
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--train", "train_w", metavar="FROM..TO", help="Training window (dates, UTC).")
@click.option("--valid", "valid_w", metavar="FROM..TO", help="Validation window.")
@click.option("--test", "test_w", metavar="FROM..TO", help="Test window.")
@click.option(
    "--gap", default="7d", show_default=True, help="Label delay between windows (7d, 36h, ...)."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option(
    "--threads", type=click.IntRange(min=1), help="Training threads (default: all cores)."
)
@click.option(
    "--blend", type=click.Choice(["weighted", "stacking"]), default="weighted", show_default=True
)
@click.option(
    "--calibration",
    type=click.Choice(["auto", "isotonic", "platt"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--top-k",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Alerts per day for precision@k.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the metrics JSON.")
@click.pass_context
def train(
    ctx: click.Context,
    data: str,
    labels: str | None,
    mapping: str | None,
    out: str,
    train_w: str | None,
    valid_w: str | None,
    test_w: str | None,
    gap: str,
    seed: int,
    threads: int | None,
    blend: str,
    calibration: str,
    top_k: int,
    as_json: bool,
) -> None:
    """Train the LightGBM + MLP ensemble on a history and evaluate it on a later window.

    Windows are half-open date ranges; unset ones follow from the data
    (test = last week, then a gap, validation week, gap, training before).
    E.g. one training week, a one-week label delay, then a test week:

      riskflow train --data sim/ --out model/ --train 2026-02-01..2026-02-08
      --valid 2026-02-15..2026-02-22 --test 2026-03-01..2026-03-08 --gap 7d

    Writes OUT/ (the versioned model), OUT/metrics.json and OUT/test_scores.parquet.
    """
    from riskflow.errors import RiskflowError
    from riskflow.train import train as run

    config = load_ctx_config(ctx)
    windows = {
        "train": _window(train_w, "train"),
        "valid": _window(valid_w, "valid"),
        "test": _window(test_w, "test"),
    }
    try:
        if as_json:
            result = run(
                data,
                out,
                mapping=mapping,
                labels_path=labels,
                windows=windows,
                gap=gap,
                config=config,
                seed=seed,
                num_threads=threads,
                blend=blend,
                calibration=calibration,
                top_k=top_k,
            )
        else:
            with _ProgressView() as view:
                result = run(
                    data,
                    out,
                    mapping=mapping,
                    labels_path=labels,
                    windows=windows,
                    gap=gap,
                    config=config,
                    seed=seed,
                    num_threads=threads,
                    blend=blend,
                    calibration=calibration,
                    top_k=top_k,
                    progress=view,
                )
    except (RiskflowError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(json.loads((result.out / "metrics.json").read_text())))
        return
    _print_summary(result)


class _ProgressView:
    """Rich progress bars, one per training stage."""

    _LABELS = {
        "read": "reading data",
        "features": "computing features",
        "lightgbm": "LightGBM",
        "mlp": "MLP",
        "evaluate": "evaluating",
    }

    def __enter__(self) -> _ProgressView:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self._progress.__enter__()
        self._tasks: dict[str, Any] = {}
        return self

    def __call__(self, stage: str, done: int, total: int, info: str) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(
                self._LABELS.get(stage, stage), total=total, info=info
            )
        self._progress.update(self._tasks[stage], completed=done, total=total, info=info)

    def __exit__(self, *exc: Any) -> None:
        for task in self._tasks.values():  # early stopping ends bars before their total
            t = self._progress.tasks[task]
            self._progress.update(task, total=t.completed or 1, completed=t.completed or 1)
        self._progress.__exit__(*exc)


def _print_summary(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    m = result.metrics
    table = Table(title=f"Test window {m['split']['test']['start']} .. {m['split']['test']['end']}")
    fprs = list(m["ensemble"]["recall_at_fpr"])
    for col in (
        "model",
        "ROC AUC",
        "avg precision",
        *(f"recall@FPR {f}" for f in fprs),
        "prec@top-k/day",
    ):
        table.add_column(col, justify="right" if col != "model" else "left")

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    for name in ("ensemble", *(k for k in m if k in ("lightgbm", "mlp"))):
        r = m[name]
        table.add_row(
            name,
            fmt(r["roc_auc"]),
            fmt(r["average_precision"]),
            *(fmt(r["recall_at_fpr"][f]) for f in fprs),
            fmt(r.get("precision_top_k_per_day")),
        )
    console = Console()
    console.print(table)
    rows, frauds = m["rows"], m["frauds_known"]
    console.print(
        "rows (frauds known): "
        + ", ".join(f"{k} {rows[k]:,} ({frauds[k]:,})" for k in ("train", "valid", "test"))
    )
    console.print(f"model {result.version} -> {result.out}  ({result.timings_s['total']:.0f} s)")
