"""`riskflow worker`: consume transactions, emit risk decisions (see riskflow.streams)."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

from riskflow.cli import load_ctx_config


def _load_factory(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not attr:
        raise click.BadParameter(f"{spec!r} is not module:function", param_hint="--scorer")
    return getattr(importlib.import_module(module), attr)


@click.command()
@click.option(
    "--instance-id",
    default="0",
    show_default=True,
    help="Unique per worker of a group: names its state snapshot and transactional id.",
)
@click.option(
    "--web-port",
    type=int,
    default=None,
    help="Port of /metrics and /health (default: stream.metrics_port).",
)
@click.option(
    "--scorer",
    default=None,
    metavar="MODULE:FACTORY",
    help="factory(config) -> Scoring; default: the trained pipeline from model.path. "
    "riskflow.streams.reference:counting_scorer is a deterministic toy.",
)
@click.option(
    "--checkpoint-interval",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds between state snapshots (bounds the replay after a crash; each snapshot "
    "pauses deciding briefly and costs about a second of CPU).",
)
@click.option(
    "--engine",
    type=click.Choice(["faust", "bulk"]),
    default="faust",
    show_default=True,
    help="faust agents, or aiokafka bulk batches (same processor; faster).",
)
@click.option("--loglevel", default="warning", show_default=True)
@click.pass_context
def worker(
    ctx: click.Context,
    instance_id: str,
    web_port: int | None,
    scorer: str | None,
    checkpoint_interval: float,
    engine: str,
    loglevel: str,
) -> None:
    """Consume the transactions topic and produce one decision per transaction."""
    from riskflow.streams.app import build_app

    config = load_ctx_config(ctx)
    logging.basicConfig(level=loglevel.upper())
    scoring = _load_factory(scorer)(config) if scorer else None
    build_app(
        config,
        scoring,
        instance_id=instance_id,
        web_port=web_port,
        checkpoint_interval_s=checkpoint_interval,
        engine=engine,
    ).run(loglevel=loglevel)
