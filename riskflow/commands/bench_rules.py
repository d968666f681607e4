"""``riskflow bench rules``: what 100 active rules (and lists) add to scoring time.

The same transactions go through two scoring pipelines built alike (fresh
feature engine, same model and thresholds), one without rules and one with
:data:`N_RULES` active rules plus list entries, batch by batch in alternation
so both see the same machine load. Each repeat sums the per-batch times; the
reported ``overhead`` is ``median(with) / median(without) - 1`` over the
repeats; times are process CPU time, so other work on a shared machine does
not count. ``stage_fraction`` is the rules stage's own time (timings_ms["rules"])
over the pipeline's time without it, a less noisy view of the same cost.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from riskflow.cli import load_ctx_config

#: The issue's yardstick: 100 active rules must add < 20% per transaction.
N_RULES = 100
#: Entries put on the allow / deny / watch lists for the "with rules" pipeline.
N_LIST_ENTRIES = 1000


def make_rules(feature_names: list[str], n: int = N_RULES, seed: int = 3) -> str:
    """``n`` varied, realistic active rules as a rule-set TOML (deterministic)."""
    rng = np.random.default_rng(seed)
    names = set(feature_names)
    counts = [f for f in feature_names if "_count_" in f and f in names] or ["amount"]
    sums = [f for f in feature_names if "_amount_sum_" in f] or ["amount"]
    zs = [f for f in feature_names if "zscore" in f] or ["amount"]
    actions = ["decline", "review", "review", "tag", "approve"]
    templates = [
        'amount > {a} and {c} >= {k} and channel == "ecom"',
        "{s} > {b} or {c} >= {k2}",
        'country in ["NG", "RU", "KP"] and amount > {a}',
        "score > {p} and mcc in [7995, 5967, 4829, {m}]",
        "abs({z}) > {zz} and amount > {a2}",
        'device_id in watch or (ip in watch and channel != "pos" and amount > {a2})',
        "is_missing(device_id) and amount > {a} and {c} > {k}",
        'amount / max({s}, 1) > {r} and amount > {a} and not (entry_mode == "chip")',
    ]
    out = ['version = "bench-100"']
    for i in range(n):
        t = templates[i % len(templates)]
        expr = t.format(
            a=int(rng.integers(200, 3000)),
            a2=int(rng.integers(50, 500)),
            b=int(rng.integers(500, 5000)),
            c=counts[int(rng.integers(len(counts)))],
            k=int(rng.integers(2, 8)),
            k2=int(rng.integers(5, 20)),
            s=sums[int(rng.integers(len(sums)))],
            p=round(float(rng.uniform(0.3, 0.9)), 3),
            m=int(rng.integers(5000, 5900)),
            z=zs[int(rng.integers(len(zs)))],
            zz=round(float(rng.uniform(2, 5)), 2),
            r=round(float(rng.uniform(0.5, 3)), 2),
        )
        out.append(
            f'[[rule]]\nid = "r{i:03d}"\nwhen = \'{expr}\'\naction = "{actions[i % len(actions)]}"\n'
            f'priority = {int(rng.integers(1, 200))}\nreason = "bench rule {i}"'
        )
    return "\n\n".join(out) + "\n"


def _lists(seed: int = 5) -> Any:
    from riskflow.policies.rules import ListEntry, ListStore

    rng = np.random.default_rng(seed)
    store = ListStore()
    kinds = [("card", "tok_{:x}", 50_000), ("device", "d{}", 60_000), ("merchant", "m{}", 5_000)]
    for i in range(N_LIST_ENTRIES):
        kind, fmt, hi = kinds[i % len(kinds)]
        name = ("deny", "allow", "watch", "watch")[i % 4]
        store.put(ListEntry(name, kind, fmt.format(int(rng.integers(hi)))))
    return store


def _synthetic_ensemble(config: Any, batches: list[Any], seed: int = 0) -> Any:
    """A production-size ensemble (300 trees of 31 leaves + the MLP) on the bench's features.

    Labels are synthetic (a noisy function of amount and velocity): the model
    means nothing, but it costs what a trained one costs per transaction.
    """
    from riskflow.features import FeatureEngine, catalogue
    from riskflow.models._ensemble import Ensemble

    eng = FeatureEngine(config.features)
    X = np.concatenate([eng.process(b) for b in batches])
    rng = np.random.default_rng(seed)
    amount = np.concatenate([b.amount for b in batches])
    z = (
        np.log1p(amount)
        - 4.0
        + 0.5 * np.nan_to_num(X[:, eng.feature_names.index("card_count_1h")])
        + rng.normal(0, 1, len(amount))
    )
    y = (z > np.quantile(z, 0.97)).astype(np.int8)
    cut = int(len(y) * 0.8)
    specs = catalogue()
    return Ensemble(
        lgbm_params={"num_boost_round": 300, "early_stopping_rounds": 10_000},
        mlp_params={"max_epochs": 2},
        seed=seed,
        num_threads=config.model.num_threads,
    ).fit(
        X[:cut],
        y[:cut],
        X[cut:],
        y[cut:],
        feature_names=[f.name for f in specs],
        kinds=[f.kind for f in specs],
    )


def _model(
    config: Any, model_path: str | None, n_features: int, batches: list[Any], linear: bool
) -> tuple[Any, str]:
    from riskflow.streams.reference import LinearModel

    path = model_path
    if path is None and (Path(config.model.path) / "manifest.json").is_file():
        path = str(config.model.path)
    if linear:
        return LinearModel(n_features), "linear-reference (the cheapest possible model)"
    if path is None:
        return (
            _synthetic_ensemble(config, batches),
            "synthetic ensemble: 300 trees + MLP trained here (no trained model found)",
        )
    from riskflow.features import FeatureEngine
    from riskflow.models import load_model

    probe = FeatureEngine(config.features)
    m = load_model(
        path, expected_catalogue_hash=probe.catalogue_hash, num_threads=config.model.num_threads
    )
    return m, f"{path} ({m.version})"


def bench_rules(
    config: Any,
    *,
    n: int = 20_000,
    batch_size: int = 512,
    repeats: int = 5,
    model_path: str | None = None,
    linear: bool = False,
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and return its figures."""
    import orjson

    from riskflow.batch import TxBatch
    from riskflow.features import FeatureEngine
    from riskflow.pipeline import ScoringPipeline
    from riskflow.policies.rules import LiveRules, RuleSet
    from riskflow.schema import validate_transaction
    from riskflow.streams.bench import make_transactions
    from riskflow.streams.scoring import Thresholds

    recs = [validate_transaction(orjson.loads(v)) for _, v in make_transactions(n, seed=17)]
    batches = [
        TxBatch.from_records(recs[i : i + batch_size]) for i in range(0, len(recs), batch_size)
    ]
    names = FeatureEngine(config.features).feature_names
    model, model_desc = _model(config, model_path, len(names), batches, linear)
    ruleset = RuleSet.from_toml(make_rules(list(names)))
    policy = Thresholds(config.policy.t_review, config.policy.t_decline)

    def pipeline(with_rules: bool) -> ScoringPipeline:
        rules = LiveRules(names, ruleset, _lists()) if with_rules else None
        return ScoringPipeline(FeatureEngine(config.features), model, policy, rules=rules)

    # Warm-up: numba compilation and caches out of the measurement.
    for p in (pipeline(False), pipeline(True)):
        for warm in batches[:2]:
            p.score_batch(warm)
    base_s, with_s, stage_ms, hits = [], [], [], 0
    for r in range(repeats):
        plain, ruled = pipeline(False), pipeline(True)
        ta = tb = 0.0
        rules_ms = 0.0
        for i, batch in enumerate(batches):
            # Alternate which goes first so neither always gets the warmer cache.
            order = (
                ((plain, False), (ruled, True))
                if (i + r) % 2 == 0
                else ((ruled, True), (plain, False))
            )
            for pipe, has in order:
                t0 = time.process_time()
                out = pipe.score_batch(batch)
                dt = time.process_time() - t0
                if has:
                    tb += dt
                    rules_ms += out.timings_ms.get("rules", 0.0)
                    if r == 0:
                        hits += int(out.rule_hits.hits.sum())
                else:
                    ta += dt
        base_s.append(ta)
        with_s.append(tb)
        stage_ms.append(rules_ms)
    base, withr = statistics.median(base_s), statistics.median(with_s)
    return {
        "benchmark": "rules",
        "rules": len(ruleset.rules),
        "active_rules": sum(r.mode == "active" for r in ruleset.rules),
        "list_entries": N_LIST_ENTRIES,
        "model": model_desc,
        "transactions": len(recs),
        "batch_size": batch_size,
        "repeats": repeats,
        "us_per_tx_without_rules": round(base / len(recs) * 1e6, 3),
        "us_per_tx_with_rules": round(withr / len(recs) * 1e6, 3),
        "overhead": round(withr / base - 1.0, 4),
        "stage_fraction": round(statistics.median(stage_ms) / 1e3 / base, 4),
        "rule_hits_per_pass": hits,
    }


@click.command()
@click.option(
    "-n", "--transactions", "n", default=20_000, show_default=True, type=click.IntRange(min=1000)
)
@click.option("--batch-size", default=512, show_default=True, type=click.IntRange(min=1))
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False),
    help="Model directory (default: config model.path if it holds a model, else a "
    "production-size ensemble trained here on synthetic labels).",
)
@click.option(
    "--linear",
    is_flag=True,
    help="Score with a fixed linear model instead (the worst case for the overhead).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def rules(
    ctx: click.Context,
    n: int,
    batch_size: int,
    repeats: int,
    model_path: str | None,
    linear: bool,
    as_json: bool,
) -> None:
    """Per-transaction scoring time with and without 100 active rules (JSON key `overhead`)."""
    from riskflow.errors import RiskflowError

    config = load_ctx_config(ctx)
    try:
        result = bench_rules(
            config,
            n=n,
            batch_size=batch_size,
            repeats=repeats,
            model_path=model_path,
            linear=linear,
        )
    except RiskflowError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{result['rules']} active rules + {result['list_entries']} list entries, model "
        f"{result['model']}, {result['transactions']:,} tx in batches of {result['batch_size']}"
    )
    click.echo(
        f"without rules {result['us_per_tx_without_rules']:.1f} us/tx, with "
        f"{result['us_per_tx_with_rules']:.1f} us/tx: overhead {100 * result['overhead']:.1f}% "
        f"(rules stage alone {100 * result['stage_fraction']:.1f}%)"
    )
