"""The end-to-end experiment behind ``riskflow policy train`` and ``riskflow policy eval``.

1. Scored streams from the simulator: a stationary validation stream, training
   streams with random drifts, selection streams, and one evaluation stream
   per scenario (``stationary``, ``fraud_spike``, ``new_scenario``,
   ``volume_shift``), all with different seeds.
2. Static thresholds optimised on validation; the reference facts the
   observation is scaled against; guardrails derived from the static policy.
3. PPO and SAC trained in :class:`ThresholdEnv`; the one with the lower cost
   on the selection streams is kept and saved as a numpy artifact.
4. Static, controller and RL (the artifact, reloaded, behind
   :class:`~riskflow.policies.OnlineAgent` guardrails) run side by side on
   every evaluation stream; plots of thresholds and cost over time as PNG.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from riskflow.policies.agent import OnlineAgent
from riskflow.policies.artifact import PolicyArtifact, load_policy, new_version, save_policy
from riskflow.policies.backtest import (
    HOUR_MS,
    RunResult,
    ScoredStream,
    build_scored_stream,
    model_scorer,
    run_policy,
    synthetic_scorer,
)
from riskflow.policies.cost import CostModel
from riskflow.policies.decide import ThresholdPolicy
from riskflow.policies.guardrails import Guardrails
from riskflow.policies.static import optimise_static
from riskflow.policies.window import Reference

__all__ = ["ExperimentConfig", "SCENARIOS", "simulate_stream", "prepare", "train", "evaluate", "plot_run"]

#: Evaluation scenario -> simulator drift options.
SCENARIOS: dict[str, dict[str, Any]] = {
    "stationary": {"drift": "none"},
    "fraud_spike": {"drift": "fraud_spike", "spike_factor": 3.0},
    "new_scenario": {"drift": "new_scenario"},
    "volume_shift": {"drift": "volume_shift", "volume_factor": 1.5},
}
Log = Callable[[str], None]


@dataclass(frozen=True)
class ExperimentConfig:
    """Sizes, seeds and costs of the experiment (the defaults take a few minutes on 2 cores)."""

    customers: int = 12_000
    days: int = 28
    interval_ms: int = HOUR_MS
    cost_model: CostModel = field(default_factory=lambda: CostModel(review_capacity_per_hour=25.0))
    model_path: str | None = None  # trained ensemble; None -> synthetic calibrated scores
    n_train_streams: int = 6
    algos: tuple[str, ...] = ("ppo", "sac")
    timesteps: dict[str, int] = field(default_factory=lambda: {"ppo": 40_000, "sac": 12_000})
    seed: int = 0

    @property
    def scorer_name(self) -> str:
        return "ensemble" if self.model_path else "synthetic"


def simulate_stream(cfg: ExperimentConfig, seed: int, name: str, **drift: Any) -> ScoredStream:
    """One simulator run, scored by the ensemble (``cfg.model_path``) or the synthetic scorer."""
    from riskflow.simulate import SimulationConfig, iter_chunks

    sim = SimulationConfig(customers=cfg.customers, days=cfg.days, seed=seed, **drift)
    chunks = list(iter_chunks(sim))
    tx = pd.concat([c[0] for c in chunks if len(c[0])], ignore_index=True)
    labels = pd.concat([c[1] for c in chunks], ignore_index=True)
    scorer = model_scorer(cfg.model_path) if cfg.model_path else synthetic_scorer(seed)
    return build_scored_stream(tx, labels, scorer, name)


def prepare(validation: ScoredStream, cfg: ExperimentConfig) -> tuple[ThresholdPolicy, Reference, Guardrails]:
    """Static thresholds, reference facts and guardrails from the validation stream."""
    static = optimise_static(validation.score, validation.amount, validation.is_fraud, validation.ts,
                             cost_model=cfg.cost_model)
    run = run_policy(validation, static, cfg.cost_model, interval_ms=cfg.interval_ms)
    ref = Reference.fit(validation.score, validation.is_fraud, validation.ts, static,
                        run.cost["total"] / max(len(run.thresholds), 1), cfg.interval_ms)
    # The decline-rate cap leaves room for drift (twice the validation rate,
    # at least 3%); threshold bounds keep the static thresholds well inside.
    guard = Guardrails(max_decline_rate=min(max(0.03, 2 * ref.decline_rate), 1.0),
                       t_review_min=min(0.001, static.t_review), t_decline_min=min(0.01, static.t_decline))
    return static, ref, guard


def _train_drifts(rng: np.random.Generator, i: int, days: int) -> dict[str, Any]:
    kind = ("none", "fraud_spike", "volume_shift", "new_scenario")[i % 4]
    d: dict[str, Any] = {"drift": kind}
    if kind == "fraud_spike":
        d["spike_factor"] = float(rng.uniform(2.0, 5.0))
        d["drift_days"] = int(rng.integers(max(days // 10, 1), max(days // 4, 2)))
        d["drift_start_day"] = int(rng.integers(days // 8, max(days * 3 // 4, days // 8 + 1)))
    elif kind == "volume_shift":
        d["volume_factor"] = float(rng.choice([rng.uniform(0.6, 0.9), rng.uniform(1.2, 2.0)]))
        d["drift_start_day"] = int(rng.integers(days // 8, max(days * 3 // 4, days // 8 + 1)))
    elif kind == "new_scenario":
        d["drift_start_day"] = int(rng.integers(days // 8, max(days * 3 // 4, days // 8 + 1)))
        d["drift_scenario"] = str(rng.choice(["account_takeover", "merchant_bustout", "card_testing"]))
    return d


def relative_cost(streams: list[ScoredStream], agent_factory: Callable[[], OnlineAgent],
                  static: ThresholdPolicy, cfg: ExperimentConfig) -> float:
    """Mean of agent cost / static cost over ``streams``."""
    out = []
    for s in streams:
        a = run_policy(s, agent_factory(), cfg.cost_model, interval_ms=cfg.interval_ms).cost["total"]
        b = run_policy(s, static, cfg.cost_model, interval_ms=cfg.interval_ms).cost["total"]
        out.append(a / b)
    return float(np.mean(out))


def train(cfg: ExperimentConfig, out: str | Path, log: Log = print) -> tuple[Path, dict[str, Any]]:
    """Simulate, train every algorithm, keep the best; save the artifact to ``out``."""
    from riskflow.policies.rl.env import ThresholdEnv
    from riskflow.policies.rl.train import train_agent

    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    validation = simulate_stream(cfg, 1 + cfg.seed, "validation")
    static, ref, guard = prepare(validation, cfg)
    log(f"static thresholds {static.t_review:.4f} / {static.t_decline:.4f} ({time.perf_counter() - t0:.0f}s)")
    train_streams = [simulate_stream(cfg, 100 + cfg.seed * 50 + i, f"train{i}", **_train_drifts(rng, i, cfg.days))
                     for i in range(cfg.n_train_streams)]
    select = [simulate_stream(cfg, 200 + cfg.seed * 50 + i, f"select{i}", **_train_drifts(rng, i + 1, cfg.days))
              for i in range(3)]
    log(f"{len(train_streams)} training and {len(select)} selection streams ({time.perf_counter() - t0:.0f}s)")
    results: dict[str, Any] = {}
    best: tuple[float, str, Any] | None = None
    for algo in cfg.algos:
        env = ThresholdEnv(train_streams, ref, cfg.cost_model, guard, interval_ms=cfg.interval_ms,
                           seed=cfg.seed)
        _, actor, facts = train_agent(env, algo, cfg.timesteps.get(algo, 20_000), cfg.seed)
        art = PolicyArtifact("rl", new_version("rl"), static, ref, cfg.cost_model, guard, actor)
        rel = relative_cost(select, art.make_agent, static, cfg)
        facts["selection_cost_vs_static"] = rel
        results[algo] = facts
        log(f"{algo}: cost {rel:.4f} x static on selection streams ({facts['train_seconds']:.0f}s training)")
        if best is None or rel < best[0]:
            best = (rel, algo, art)
    assert best is not None
    art = best[2]
    art.meta = {"algorithm": best[1], "algorithms": results, "scorer": cfg.scorer_name,
                "customers": cfg.customers, "days": cfg.days, "interval_ms": cfg.interval_ms,
                "seed": cfg.seed, "total_seconds": time.perf_counter() - t0}
    path = save_policy(out, art)
    log(f"kept {best[1]}; saved {art.version} to {path}")
    return path, art.meta


def evaluate(cfg: ExperimentConfig, policy_path: str | Path, plots_dir: str | Path | None = None,
             scenarios: tuple[str, ...] = tuple(SCENARIOS), log: Log = print) -> dict[str, Any]:
    """Static, controller and RL side by side on a fresh stream per scenario."""
    art = load_policy(policy_path)
    assert art.reference is not None
    static, guard = art.static, art.guardrails
    doc: dict[str, Any] = {
        "policy_version": art.version, "algorithm": (art.meta or {}).get("algorithm"),
        "scorer": cfg.scorer_name, "cost_model": cfg.cost_model.to_dict(),
        "static_thresholds": [static.t_review, static.t_decline], "guardrails": guard.to_dict(),
        "scenarios": {},
    }
    views: list[Any] = []
    images: list[tuple[str, bytes]] = []
    for i, name in enumerate(scenarios):
        stream = simulate_stream(cfg, 1000 + cfg.seed * 50 + i, name, **SCENARIOS[name])
        runs: dict[str, RunResult] = {
            "static": run_policy(stream, static, cfg.cost_model, interval_ms=cfg.interval_ms,
                                 audit=guard, name="static"),
        }
        ctrl = art.make_controller(cfg.interval_ms)
        runs["controller"] = run_policy(stream, ctrl, cfg.cost_model, interval_ms=cfg.interval_ms,
                                        audit=guard, name="controller")
        runs["rl"] = run_policy(stream, art.make_agent(), cfg.cost_model, interval_ms=cfg.interval_ms,
                                audit=guard, name="rl")
        base = runs["static"].cost["total"]
        doc["scenarios"][name] = {k: {**r.summary(), "cost_vs_static": r.cost["total"] / base}
                                  for k, r in runs.items()}
        doc["scenarios"][name]["n_transactions"] = len(stream)
        log(f"{name}: " + ", ".join(f"{k} {r.cost['total']:,.0f}" for k, r in runs.items()))
        if plots_dir is not None:
            p = Path(plots_dir)
            p.mkdir(parents=True, exist_ok=True)
            png = plot_run(name, runs)
            (p / f"policy_{name}.png").write_bytes(png)
            images.append((f"{name}: thresholds and cumulative cost", png))
            views += [_run_view(name, k, r, stream) for k, r in runs.items()]
    if plots_dir is not None:
        from riskflow.report import render_report

        html = render_report(views, title="riskflow policy evaluation",
                             summary={"policy_version": art.version, "scorer": cfg.scorer_name,
                                      "algorithm": doc["algorithm"]}, images=images)
        (Path(plots_dir) / "report.html").write_text(html)
    return doc


def _run_view(scenario: str, policy: str, r: RunResult, stream: ScoredStream) -> Any:
    """One row of the HTML report (riskflow.report.RunView) for a policy run."""
    from riskflow.report import RunView

    day0 = int(stream.ts[0] // 86_400_000 * 86_400_000) if len(stream) else 0
    day = (stream.ts - day0) // 86_400_000
    thr = r.thresholds
    cost_day = np.bincount((thr["t"].to_numpy(np.int64) - day0) // 86_400_000,
                           weights=thr["cost"].to_numpy(), minlength=int(day.max()) + 1)
    n = np.bincount(day)
    daily = pd.DataFrame({
        "day": day0 + 86_400_000 * np.arange(n.size), "n": n, "cost": cost_day[: n.size],
        "decline_rate": np.bincount(day, weights=r.decisions == 2) / np.maximum(n, 1),
        "review_rate": np.bincount(day, weights=r.decisions == 1) / np.maximum(n, 1),
    })
    s = r.summary()
    metrics = {"cost": r.cost | {"total": r.cost["total"]}, "decline_rate": s["decline_rate"],
               "review_rate": s["review_rate"]}
    return RunView(f"{scenario} / {policy}", scenario, policy, metrics, stream.score, stream.is_fraud,
                   daily, thr.rename(columns={"t": "ts"})[["ts", "t_review", "t_decline"]])


def plot_run(title: str, runs: dict[str, RunResult]) -> bytes:
    """PNG: thresholds over time (top) and cumulative cost (bottom) per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for name, r in runs.items():
        t = pd.to_datetime(r.thresholds["t"], unit="ms")
        (line,) = ax1.plot(t, r.thresholds["t_review"], lw=1, label=f"{name} t_review")
        ax2.plot(t, r.thresholds["t_decline"], lw=1, color=line.get_color(), label=f"{name} t_decline")
        ax3.plot(t, r.thresholds["cost"].cumsum(), lw=1.5, color=line.get_color(), label=name)
    ax1.set_yscale("log")
    ax2.set_yscale("log")
    ax1.set_ylabel("t_review")
    ax2.set_ylabel("t_decline")
    ax3.set_ylabel("cumulative cost")
    ax1.set_title(f"{title}: thresholds and cost over time")
    for ax in (ax1, ax2, ax3):
        ax.legend(loc="best", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
