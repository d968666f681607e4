"""``riskflow bench replay``: replay throughput (features + ensemble + policy) and where it goes.

The data is simulated and a small but real ensemble is trained on a separate
simulated history; both are cached under ``.cache/bench-replay/`` (keyed by
their parameters, the feature catalogue and the riskflow version), so a rerun
times only the replay. Each repeat calls :func:`riskflow.replay.replay`, the
code ``riskflow replay`` runs, on a fresh feature engine, then writes
``decisions.parquet`` and ``metrics.json``; rendering ``report.html`` is timed
apart. Every figure is the median over the repeats.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from riskflow.cli import load_ctx_config
from riskflow.cpus import usable_cpus

__all__ = ["replay", "bench_replay"]

#: Days of replayed history: four weeks, so labels arrive inside the replay
#: (median chargeback delay 18 days) and reach the feature state.
REPLAY_DAYS = 28
#: The training history: the demo preset (six weeks, 1 % fraud), seconds to
#: simulate; separate from the replayed data, as a deployed model would be.
TRAIN_PRESET = "demo"
TRAIN_OVERRIDES: dict[str, Any] = {}
#: A model the size of the production default: up to 300 trees (the default
#: cap, without early stopping) of up to 31 leaves and depth 6, the default MLP.
BENCH_LGBM: dict[str, Any] = {"num_boost_round": 300, "early_stopping_rounds": 10_000}
BENCH_MLP: dict[str, Any] = {"max_epochs": 2, "patience": 1}
#: Stage seconds reported, in order. The replay core (``core``) runs features
#: to reason codes; the ensemble's stages are inside ``models``; the rest
#: happen after the core and are not in ``tx_per_s``.
STAGES: tuple[str, ...] = (
    "prepare",
    "features",
    "models",
    "lightgbm",
    "mlp",
    "blend_calibrate",
    "policies",
    "reasons",
    "core",
    "evaluate",
    "write_decisions",
    "write_metrics",
    "report",
)


def _cache_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _ensure_data(root: Path, customers: int, days: int, seed: int) -> tuple[Path, float | None]:
    from riskflow.simulate import SimulationConfig, simulate

    cfg = SimulationConfig(customers=customers, days=days, seed=seed)
    path = root / f"data-{_cache_key(sim=dataclasses.asdict(cfg))}"
    if (path / "manifest.json").is_file():
        return path, None
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    simulate(cfg, tmp, overwrite=True)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path, time.perf_counter() - t0


def _ensure_model(
    root: Path, catalogue_hash: str, seed: int, config: Any
) -> tuple[Path, float | None]:
    from riskflow import __version__
    from riskflow.models._lgbm import DEFAULT_LGBM_PARAMS
    from riskflow.models._mlp import DEFAULT_HIDDEN
    from riskflow.simulate import SimulationConfig, simulate
    from riskflow.train import train

    sim = SimulationConfig.preset(TRAIN_PRESET, seed=seed, **TRAIN_OVERRIDES)
    key = _cache_key(
        sim=dataclasses.asdict(sim),
        lgbm=BENCH_LGBM,
        mlp=BENCH_MLP,
        # The members' own defaults shape the model too: a changed default
        # must not reuse a model trained under the old one.
        lgbm_defaults=DEFAULT_LGBM_PARAMS,
        mlp_hidden=DEFAULT_HIDDEN,
        catalogue=catalogue_hash,
        version=__version__,
    )
    path = root / f"model-{key}"
    if (path / "manifest.json").is_file():
        return path, None
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        simulate(sim, tmp / "data", overwrite=True)
        train(
            tmp / "data",
            tmp / "model",
            config=config,
            seed=seed,
            num_threads=usable_cpus(),
            lgbm_params=BENCH_LGBM,
            mlp_params=BENCH_MLP,
        )
        shutil.rmtree(path, ignore_errors=True)
        (tmp / "model").rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path, time.perf_counter() - t0


def bench_replay(
    config: Any,
    *,
    n: int = 1_000_000,
    repeats: int = 3,
    seed: int = 0,
    cache_dir: str | Path = ".cache/bench-replay",
    overlap: bool | None = None,
    score_threads: int | None = None,
) -> dict[str, Any]:
    """Simulate ~``n`` transactions, train (or reuse) a model, time ``repeats`` replays.

    Returns the JSON document of ``riskflow bench replay``: ``tx_per_s`` over
    the replay core (features, ensemble, static policy and reason codes, wall
    clock) and ``seconds`` per stage, each the median over the repeats.
    """
    from riskflow.features import FeatureEngine
    from riskflow.models import load_model
    from riskflow.policies import CostModel, ThresholdPolicy
    from riskflow.replay import replay as run_replay
    from riskflow.replay import write_outputs
    from riskflow.table import load_dataset

    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    probe = FeatureEngine(config.features)
    data_path, sim_s = _ensure_data(root, max(1, round(n / REPLAY_DAYS)), REPLAY_DAYS, seed)
    model_path, train_s = _ensure_model(root, probe.catalogue_hash, seed, config)

    t0 = time.perf_counter()
    ds = load_dataset(data_path, default_label_delay_days=config.features.default_label_delay_days)
    load_s = time.perf_counter() - t0
    model = load_model(
        model_path,
        expected_catalogue_hash=probe.catalogue_hash,
        num_threads=config.model.num_threads,
    )
    static = ThresholdPolicy(
        config.policy.t_review, config.policy.t_decline, version="config", source="static"
    )
    n_tx = len(ds.transactions)
    samples: list[dict[str, float]] = []
    out_dir = Path(tempfile.mkdtemp(prefix="riskflow-bench-replay-"))
    try:
        for _ in range(repeats):
            result = run_replay(
                ds,
                lambda: FeatureEngine(config.features),
                [("model", model)],
                [("static", lambda _m, _s: static)],
                cost_model=CostModel(),
                overlap=overlap,
                score_threads=score_threads,
            )
            write_outputs(result, out_dir, summary={"transactions": f"{n_tx:,}"})
            samples.append({**result.timings_s, "core": result.timings_s["total"]})
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    seconds = {
        k: round(statistics.median(s.get(k, 0.0) for s in samples), 4)
        for k in STAGES
        if any(k in s for s in samples)
    }
    core = seconds["core"]
    decision = result.runs[0].decision
    return {
        "benchmark": "replay",
        "transactions": n_tx,
        "repeats": repeats,
        "tx_per_s": round(n_tx / core, 1) if core > 0 else 0.0,
        "core_s": core,
        "seconds": seconds,
        "core_samples_s": [round(s["core"], 4) for s in samples],
        "end_to_end_s": round(
            load_s
            + sum(
                seconds.get(k, 0.0)
                for k in ("core", "evaluate", "write_decisions", "write_metrics", "report")
            ),
            3,
        ),
        "flagged": int((decision > 0).sum()),
        "second_pass_rows": int(statistics.median(s.get("second_pass_rows", 0.0) for s in samples)),
        "overlap": overlap if overlap is not None else usable_cpus() > 1,
        "score_threads": score_threads or usable_cpus(),
        "load_s": round(load_s, 3),
        "simulate_s": None if sim_s is None else round(sim_s, 2),
        "train_s": None if train_s is None else round(train_s, 2),
        "model": {
            "version": model.version,
            "n_features": int(model.n_features_in_),
            "lightgbm_trees": int(model.members_["lightgbm"].booster_.num_trees()),
            "mlp_hidden": list(model.members_["mlp"].config()["hidden"]),
        },
        "cpu_count": os.cpu_count(),
    }


@click.command()
@click.option(
    "-n",
    "--transactions",
    "n",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(min=1000),
    help="About this many transactions are simulated over four weeks and replayed.",
)
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--overlap/--no-overlap",
    default=None,
    help="Score in threads while the engine computes the next chunk (default: if >1 CPU).",
)
@click.option(
    "--score-threads",
    default=None,
    type=click.IntRange(min=1),
    help="Chunks scored side by side with --overlap (default: one per CPU).",
)
@click.option(
    "--cache-dir",
    default=".cache/bench-replay",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the simulated data and the trained model are kept between runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def replay(
    ctx: click.Context,
    n: int,
    repeats: int,
    seed: int,
    overlap: bool | None,
    score_threads: int | None,
    cache_dir: str,
    as_json: bool,
) -> None:
    """Replay tx/s (features + ensemble + policy + reason codes) and seconds per stage.

    Medians over the repeats. Simulated data and the trained model are cached,
    so only the first run simulates and trains.
    """
    config = load_ctx_config(ctx)
    result = bench_replay(
        config,
        n=n,
        repeats=repeats,
        seed=seed,
        cache_dir=cache_dir,
        overlap=overlap,
        score_threads=score_threads,
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{result['transactions']:,} transactions: {result['tx_per_s']:,.0f} tx/s "
        f"(replay core {result['core_s']:.2f} s, median of {result['repeats']})"
    )
    for k, v in result["seconds"].items():
        click.echo(f"  {k:<16} {v:>9.3f} s")
