"""The ``riskflow`` command line.

Subcommands live in :mod:`riskflow.commands`, one module each, and are
imported only when invoked, so ``riskflow --help`` stays fast (no torch or
numba import). To add a command, write ``riskflow/commands/<name>.py`` with a
click command or group and register it in :data:`COMMANDS` (or
:data:`BENCHMARKS` for ``riskflow bench <name>``).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from riskflow import __version__

__all__ = ["main", "COMMANDS", "BENCHMARKS"]

#: name -> ("module:attribute", one-line help shown by --help without importing it)
COMMANDS: dict[str, tuple[str, str]] = {
    "topics": ("riskflow.commands.topics:topics", "Create and list riskflow's Kafka topics."),
    "produce": (
        "riskflow.commands.produce:produce",
        "Publish a transactions file to the transactions topic.",
    ),
    "watch": (
        "riskflow.commands.watch:watch",
        "Live view of decisions: rate, latency, mix, declines.",
    ),
    "replay": (
        "riskflow.commands.replay:replay",
        "Backtest: replay history through features, models, policies.",
    ),
    "train": (
        "riskflow.commands.train:train",
        "Train, evaluate and save the fraud model ensemble.",
    ),
    "features": (
        "riskflow.commands.features:features",
        "List the feature catalogue (--json for machines).",
    ),
    "simulate": (
        "riskflow.commands.simulate:simulate",
        "Simulate card payments with fraud scenarios, delayed labels and drift.",
    ),
    "worker": (
        "riskflow.commands.worker:worker",
        "Stream processor: consume transactions, emit decisions.",
    ),
    "policy": (
        "riskflow.commands.policy:policy",
        "Train and evaluate the adaptive-threshold RL agent.",
    ),
    "rules": (
        "riskflow.commands.rules:rules",
        "Analyst rules: check a rule file, publish it to workers, show it.",
    ),
    "lists": ("riskflow.commands.lists:lists", "Allow / deny / watch lists: add, remove, show."),
}

#: name -> ("module:attribute", help) for `riskflow bench NAME`; each prints JSON with --json.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "models": (
        "riskflow.commands.bench_models:models",
        "Inference tx/s of each model member and the ensemble.",
    ),
    "stream": (
        "riskflow.commands.bench_stream:stream",
        "Worker tx/s and end-to-end latency next to a null pipeline.",
    ),
    "features": (
        "riskflow.commands.features:bench_features",
        "Feature-engine tx/s vs a pandas baseline.",
    ),
    "simulate": (
        "riskflow.commands.bench_simulate:simulate",
        "Simulator tx/s, Parquet writing included.",
    ),
    "rules": (
        "riskflow.commands.bench_rules:rules",
        "Scoring time added by 100 active rules (key `overhead`).",
    ),
    "replay": (
        "riskflow.commands.bench_replay:replay",
        "Replay tx/s (features + ensemble + policy) and seconds per stage.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            target, _ = self._lazy[cmd_name]
            module, _, attr = target.partition(":")
            cmd = getattr(importlib.import_module(module), attr)
            if not isinstance(cmd, click.Command):
                raise TypeError(f"{target} is not a click command")
            return cmd
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text from the registry, so listing commands imports nothing heavy.
        rows = []
        for name in self.list_commands(ctx):
            if name in self._lazy:
                rows.append((name, self._lazy[name][1]))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=80)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="riskflow")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="RISKFLOW_CONFIG",
    help="riskflow.toml to load (default: ./riskflow.toml if present, else built-in defaults).",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """riskflow: real-time card-transaction risk scoring on Kafka.

    Transactions in, approve / review / decline decisions with reason codes
    out; the same code replays history as a backtest.
    """
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


@main.group(cls=LazyGroup, lazy=BENCHMARKS)
def bench() -> None:
    """Benchmarks (JSON with --json; ratios against a baseline measured in the same run)."""


def load_ctx_config(ctx: click.Context) -> Any:
    """The validated config for a command, as a click error if it is invalid."""
    from riskflow.config import load_config
    from riskflow.errors import ConfigError

    root = ctx.find_root()
    path = (root.obj or {}).get("config_path")
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
