"""``riskflow policy``: train the adaptive-threshold agent and compare it with the baselines."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from riskflow.cli import load_ctx_config

_SCENARIOS = ("stationary", "fraud_spike", "new_scenario", "volume_shift")
_MILD = ("fraud_spike_mild", "new_scenario_mild", "volume_shift_mild")


def _cost_model(capacity: float, items: tuple[str, ...]) -> Any:
    from riskflow.policies import CostModel, PolicyConfigError

    fields: dict[str, Any] = {"review_capacity_per_hour": capacity if capacity > 0 else math.inf}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in CostModel.__dataclass_fields__:
            raise click.BadParameter(
                f"{item!r} is not NAME=VALUE with NAME one of {', '.join(CostModel.__dataclass_fields__)}.",
                param_hint="--cost",
            )
        key, value = key.strip(), value.strip()
        try:
            fields[key] = value if key == "overflow_rule" else float(value)
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: {key} must be a number.", param_hint="--cost"
            ) from None
    try:
        return CostModel(**fields)
    except PolicyConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--cost") from None


def _experiment(
    ctx: click.Context,
    customers: int,
    days: int,
    capacity: float,
    seed: int,
    model: str | None,
    synthetic: bool,
    cost: tuple[str, ...],
    **extra: Any,
) -> Any:
    from riskflow.policies.rl.experiment import ExperimentConfig

    cfg = load_ctx_config(ctx)
    model_path = None
    if not synthetic:
        candidate = Path(model) if model else Path(cfg.model.path)
        if (candidate / "manifest.json").is_file():
            model_path = str(candidate)
        elif model:
            raise click.BadParameter(
                f"{model!r} is not a model directory (no manifest.json); "
                "train one with `riskflow train` or pass --synthetic.",
                param_hint="--model",
            )
    cm = _cost_model(capacity, cost)
    return ExperimentConfig(
        customers=customers, days=days, cost_model=cm, model_path=model_path, seed=seed, **extra
    )


def _common(f: Any) -> Any:
    for opt in reversed(
        [
            click.option(
                "--customers",
                default=12_000,
                show_default=True,
                type=click.IntRange(100),
                help="Simulated customers per stream (about one payment per customer per day).",
            ),
            click.option(
                "--days",
                default=28,
                show_default=True,
                type=click.IntRange(4),
                help="Days per simulated stream.",
            ),
            click.option(
                "--capacity",
                default=25.0,
                show_default=True,
                type=float,
                help="Review capacity per hour (0: unlimited).",
            ),
            click.option(
                "--cost",
                multiple=True,
                metavar="NAME=VALUE",
                help="Cost model setting, repeatable: chargeback_fee, margin_rate, friction, "
                "review_cost, overflow_rule (penalty|approve|decline), overflow_penalty.",
            ),
            click.option("--seed", default=0, show_default=True, type=int),
            click.option(
                "--model",
                type=click.Path(file_okay=False),
                help="Trained ensemble to score with (default: config model.path if it exists).",
            ),
            click.option(
                "--synthetic",
                is_flag=True,
                help="Score with the calibrated synthetic scorer even if a model exists.",
            ),
        ]
    ):
        f = opt(f)
    return f


@click.group()
def policy() -> None:
    """Adaptive approve / review / decline thresholds (RL agent with guardrails)."""


@policy.command()
@_common
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Artifact directory (default: config policy.path, else artifacts/policy).",
)
@click.option("--algos", default="ppo,sac", show_default=True, help="Algorithms to compare.")
@click.option("--ppo-steps", default=300_000, show_default=True, type=click.IntRange(256))
@click.option("--sac-steps", default=20_000, show_default=True, type=click.IntRange(256))
@click.option(
    "--train-streams",
    default=40,
    show_default=True,
    type=click.IntRange(1),
    help="Simulated training streams, each with a random drift (domain randomisation).",
)
@click.option(
    "--base",
    type=click.Choice(["controller", "static"]),
    default="controller",
    show_default=True,
    help="What the agent's action offsets: the review-capacity controller (a residual agent) "
    "or the static thresholds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the training facts as JSON.")
@click.pass_context
def train(
    ctx: click.Context,
    out: str | None,
    algos: str,
    ppo_steps: int,
    sac_steps: int,
    train_streams: int,
    base: str,
    as_json: bool,
    **common: Any,
) -> None:
    """Simulate streams, train PPO and SAC offline, keep the best; save a versioned artifact."""
    from riskflow.policies.rl.experiment import train as run_train

    names = tuple(a.strip().lower() for a in algos.split(",") if a.strip())
    bad = [a for a in names if a not in ("ppo", "sac")]
    if bad or not names:
        raise click.BadParameter(
            f"{algos!r}: choose from ppo, sac (comma-separated).", param_hint="--algos"
        )
    exp = _experiment(
        ctx,
        algos=names,
        timesteps={"ppo": ppo_steps, "sac": sac_steps},
        n_train_streams=train_streams,
        base=base,
        **common,
    )
    cfg = load_ctx_config(ctx)
    target = (
        Path(out)
        if out
        else (Path(cfg.policy.path) if cfg.policy.path else Path("artifacts/policy"))
    )
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    path, meta = run_train(exp, target, log=log)
    if as_json:
        click.echo(json.dumps({"path": str(path), **meta}, indent=2))


@policy.command("eval")
@_common
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True),
    help="Trained artifact (default: config policy.path, else artifacts/policy).",
)
@click.option(
    "--plots",
    type=click.Path(file_okay=False),
    default="artifacts/policy_eval",
    show_default=True,
    help="Folder for the PNG plots.",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(_SCENARIOS + _MILD),
    help="Scenarios to run (default: the first four; the *_mild ones are the "
    "simulator's default drift sizes).",
)
@click.option(
    "--eval-seeds",
    default=3,
    show_default=True,
    type=click.IntRange(1, 40),
    help="Streams (seeds) per scenario; costs are summed over them. The first "
    "five are the same for any count.",
)
@click.option("--no-oracles", is_flag=True, help="Skip the hindsight bounds (faster).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.pass_context
def evaluate(
    ctx: click.Context,
    policy_path: str | None,
    plots: str,
    scenarios: tuple[str, ...],
    eval_seeds: int,
    no_oracles: bool,
    as_json: bool,
    **common: Any,
) -> None:
    """Static, controller and RL side by side on simulated streams with and without drift."""
    from riskflow.policies.rl.experiment import evaluate as run_eval

    exp = _experiment(ctx, eval_seeds=eval_seeds, **common)
    cfg = load_ctx_config(ctx)
    path = (
        Path(policy_path)
        if policy_path
        else (Path(cfg.policy.path) if cfg.policy.path else Path("artifacts/policy"))
    )
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    doc = run_eval(exp, path, plots, scenarios or _SCENARIOS, log=log, oracles=not no_oracles)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        for name, runs in doc["scenarios"].items():
            click.echo(
                f"{name}: "
                + ", ".join(
                    f"{k} {v['total_cost']:,.0f} ({v['cost_vs_static']:.3f}x, {v['guardrail_violations']} violations)"
                    for k, v in runs.items()
                    if k in ("static", "controller", "rl", "rl_no_fallback")
                )
            )
