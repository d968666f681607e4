"""``riskflow replay``: the offline backtest (see :mod:`riskflow.replay`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from riskflow.cli import load_ctx_config


def _progress(enabled: bool):  # noqa: ANN202 - (callback, closer)
    if not enabled:
        return None, lambda: None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    bar.start()
    task = bar.add_task("replay", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


@click.command()
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True),
    help="History: simulator folder, file or folder.",
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(exists=True),
    help="Labels file/folder if not inside DATA.",
)
@click.option("--mapping", help="Column mapping TOML (or a built-in name: sparkov, handbook).")
@click.option(
    "--model",
    "model_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Model directory (repeat to compare champion and challengers). Default: config model.path.",
)
@click.option(
    "--policy",
    "policy_specs",
    multiple=True,
    help="static | controller | rl | a policy artifact (repeatable). Default: static.",
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option(
    "--interval",
    default="1h",
    show_default=True,
    help="How often online policies act (event time).",
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Rule set TOML to backtest beside the model (default: config rules.path).",
)
@click.option(
    "--lists",
    "lists_path",
    type=click.Path(exists=True, dir_okay=False),
    help="List entries as JSON (what `riskflow lists show --json` prints).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics summary as JSON.")
@click.pass_context
def replay(
    ctx: click.Context,
    data: str,
    labels_path: str | None,
    mapping: str | None,
    model_dirs: tuple[str, ...],
    policy_specs: tuple[str, ...],
    out_dir: str,
    interval: str,
    rules_path: str | None,
    lists_path: str | None,
    as_json: bool,
) -> None:
    """Replay history through the live features, models and policies; write decisions, metrics and a report.

    \b
    Writes OUT/decisions.parquet, OUT/metrics.json and OUT/report.html.
    Example: riskflow replay --data data/sim --model artifacts/model --policy static --policy rl --out out/bt

    With --rules (and --lists) each run also gets a per-rule table (hits,
    precision, recall contribution, cost impact, overlap with the model) in
    metrics.json and report.html, and a `rules` column in decisions.parquet.
    """
    from riskflow.errors import RiskflowError
    from riskflow.mapping import parse_duration_ms

    cfg = load_ctx_config(ctx)
    try:
        from riskflow.features import FeatureEngine
        from riskflow.models import load_model
        from riskflow.replay import replay as run_replay
        from riskflow.replay import write_outputs
        from riskflow.table import load_dataset

        # Everything the arguments name first, so that a mistake is reported
        # before the history loads (tens of seconds for a million rows).
        interval_ms = parse_duration_ms(interval)
        policies, cost_model, images = _policies(cfg, policy_specs or ("static",), interval_ms)
        probe = FeatureEngine(cfg.features)
        dirs = list(model_dirs) or [str(cfg.model.path)]
        models: list[tuple[str, Any]] = []
        for d in dirs:
            m = load_model(d, expected_catalogue_hash=probe.catalogue_hash)
            models.append((_unique(Path(d).name or "model", [n for n, _ in models]), m))
        rules = _rules(rules_path or cfg.rules.path, lists_path, probe.feature_names)
        t0 = time.perf_counter()
        ds = load_dataset(
            data,
            mapping,
            labels_path=labels_path,
            tokenisation_key=cfg.security.tokenisation_key.get_secret_value().encode(),
            default_label_delay_days=cfg.features.default_label_delay_days,
        )
        load_s = time.perf_counter() - t0
        update, close = _progress(not as_json)
        try:
            result = run_replay(
                ds,
                lambda: FeatureEngine(cfg.features),
                models,
                policies,
                cost_model=cost_model,
                interval_ms=interval_ms,
                progress=update,
                rules=rules,
            )
        finally:
            close()
        ts = ds.transactions["event_time"]
        summary = {
            "data": str(data),
            "transactions": f"{len(ds.transactions):,}",
            "labels": f"{len(ds.labels):,} ({int((ds.labels['label'] == 1).sum()):,} fraud)",
            "period": f"{_iso(ts.min())} .. {_iso(ts.max())}" if len(ts) else "-",
            "models": ", ".join(f"{n} ({m.version})" for n, m in models),
            "policies": ", ".join(p for p, _ in policies),
            "throughput": f"{result.tx_per_s:,.0f} tx/s (replay core: features, models, policies, reason codes)",
            "load_s": f"{load_s:.1f}",
        }
        paths = write_outputs(result, Path(out_dir), summary=summary, images=images)
    except RiskflowError as exc:
        raise click.ClickException(str(exc)) from None
    doc: dict[str, dict[str, Any]] = {
        name: {
            k: r.metrics.get(k)
            for k in (
                "roc_auc",
                "average_precision",
                "recall_at_fpr",
                "decline_rate",
                "review_rate",
            )
        }
        | {"total_cost": r.metrics["cost"]["total"]}
        | ({"rules": r.metrics["rules"]} if "rules" in r.metrics else {})
        for name, r in ((r.name, r) for r in result.runs)
    }
    if as_json:
        click.echo(
            json.dumps(
                {
                    "tx_per_s": result.tx_per_s,
                    "runs": doc,
                    "outputs": {k: str(v) for k, v in paths.items()},
                },
                indent=2,
            )
        )
        return
    for name, m in doc.items():
        click.echo(
            f"{name}: AP {m['average_precision'] or 0:.4f}  ROC AUC {m['roc_auc'] or 0:.4f}  "
            f"cost {m['total_cost']:,.0f}  decline {100 * m['decline_rate']:.2f}%  "
            f"review {100 * m['review_rate']:.2f}%"
        )
        for x in m.get("rules", {}).get("rules", []):
            prec = "-" if x["precision"] is None else f"{100 * x['precision']:.1f}%"
            overlap = "-" if x["overlap_model"] is None else f"{100 * x['overlap_model']:.0f}%"
            click.echo(
                f"  rule {x['id']} ({x['mode']} {x['action']}): hits {x['hits']:,}  "
                f"precision {prec}  recall +{100 * x['recall_contribution']:.2f}%  "
                f"cost impact {x['cost_impact']:+,.0f}  overlap with model {overlap}"
            )
    click.echo(
        f"{len(ds.transactions):,} transactions at {result.tx_per_s:,.0f} tx/s; report: {paths['report']}"
    )


def _rules(rules_path: Any, lists_path: str | None, feature_names: Any) -> Any:
    """The RulesView to backtest, or None without rules and lists."""
    if rules_path is None and lists_path is None:
        return None
    from riskflow.policies.rules import ListEntry, ListStore, RuleSet, RulesView
    from riskflow.policies.rules.ruleset import CompiledRuleSet

    compiled = (
        RuleSet.load(rules_path).compile(list(feature_names))
        if rules_path is not None
        else CompiledRuleSet("none", (), ())
    )
    store = ListStore()
    if lists_path is not None:
        for d in json.loads(Path(lists_path).read_text()):
            store.put(ListEntry.from_dict(d))
    return RulesView(compiled, store.snapshot(), store.version)


def _iso(ms: Any) -> str:
    import pandas as pd

    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d")


def _unique(name: str, taken: list[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


def _policies(
    cfg: Any, specs: tuple[str, ...], interval_ms: int
) -> tuple[list[tuple[str, Any]], Any, list]:
    """Policy factories for the specs, the cost model they share, and plots to embed."""
    from riskflow.policies import CostModel, ThresholdPolicy, load_policy

    artifact = None
    if cfg.policy.path is not None and Path(cfg.policy.path).exists():
        artifact = load_policy(cfg.policy.path)
    cost_model = artifact.cost_model if artifact is not None else CostModel()
    out: list[tuple[str, Any]] = []
    for spec in specs:
        if spec == "static":
            static = (
                artifact.static
                if artifact is not None
                else ThresholdPolicy(
                    cfg.policy.t_review, cfg.policy.t_decline, version="config", source="static"
                )
            )
            out.append(("static", lambda _m, _s, p=static: p))
        elif spec in ("controller", "rl"):
            if artifact is None:
                raise click.UsageError(
                    f"--policy {spec} needs a trained policy artifact: run `riskflow policy train` and set "
                    "[policy] path (RISKFLOW_POLICY__PATH), or pass the artifact as --policy PATH."
                )
            if spec == "controller":
                out.append(
                    ("controller", lambda _m, _s, a=artifact: a.make_controller(interval_ms))
                )
            else:
                out.append(("rl", lambda _m, _s, a=artifact: a.make_agent()))
        elif Path(spec).exists():
            art = load_policy(spec)
            name = f"{art.kind}:{Path(spec).name}"
            if art.kind == "rl":
                out.append((name, lambda _m, _s, a=art: a.make_agent()))
            elif art.kind == "controller":
                out.append((name, lambda _m, _s, a=art: a.make_controller(interval_ms)))
            else:
                out.append((name, lambda _m, _s, a=art: a.static))
        else:
            raise click.BadParameter(
                f"{spec!r} is not static, controller, rl or an existing policy artifact.",
                param_hint="--policy",
            )
    images: list[tuple[str, bytes]] = []
    if artifact is not None:
        for png in sorted(Path(cfg.policy.path).glob("*.png")):
            images.append((f"policy evaluation: {png.stem}", png.read_bytes()))
    return out, cost_model, images
