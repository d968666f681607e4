"""Inference throughput of the model members and the ensemble (``riskflow bench models``).

Measures transactions per second at streaming batch sizes, single model
instance, threads pinned as a worker pins them. Each tree runtime is measured
against LightGBM's own ``Booster.predict`` in the same run, and the MLP's
numpy serving path against torch, so the ratios hold whatever the machine;
reason codes (TreeSHAP of one row) likewise, compiled against ``pred_contrib``;
the MLP's blocked serving kernel also against its per-row reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["bench_models", "benchmark_model"]

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 64, 1024)


def _rate(fn: Callable[[np.ndarray], Any], X: np.ndarray, batch: int, seconds: float) -> float:
    """Rows per second of ``fn`` over consecutive batches of ``X`` for ``seconds``."""
    n = X.shape[0]
    starts = np.arange(0, max(n - batch, 0) + 1, batch)
    fn(X[:batch])  # warm-up (JIT, caches)
    done = calls = 0
    t0 = time.perf_counter()
    while True:
        s = starts[calls % starts.size]
        fn(X[s : s + batch])
        calls += 1
        done += batch
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and calls >= 3:
            return done / elapsed


def benchmark_model(
    model: Any,
    X: np.ndarray,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    seconds: float = 0.5,
    num_threads: int = 1,
) -> dict[str, Any]:
    """Throughput (tx/s) of every serving path of a fitted :class:`Ensemble`."""
    from riskflow.models._scorer import pin_threads

    pin_threads(num_threads)
    paths: dict[str, Callable[[np.ndarray], Any]] = {"ensemble": model.predict_proba}
    lgbm = model.members_.get("lightgbm")
    if lgbm is not None:
        lgbm.num_threads = num_threads
        paths["lightgbm"] = lgbm.decision_function
        paths["lightgbm_native"] = lambda x: lgbm.decision_function(x, runtime="lightgbm")
    mlp = model.members_.get("mlp")
    if mlp is not None:
        paths["mlp"] = mlp.decision_function
        # The per-row reference kernel the blocked serving kernel replaced (same bits).
        paths["mlp_rowwise"] = lambda x: mlp.decision_function(x, runtime="rowwise")
        paths["mlp_torch"] = lambda x: mlp.decision_function(x, runtime="torch")
    results: dict[str, dict[str, float]] = {name: {} for name in paths}
    for bs in batch_sizes:
        for name, fn in paths.items():
            results[name][str(bs)] = round(_rate(fn, X, bs, seconds), 1)
    out: dict[str, Any] = {
        "unit": "transactions/s",
        "batch_sizes": list(batch_sizes),
        "num_threads": num_threads,
        "results": results,
    }
    ratios: dict[str, dict[str, float]] = {}
    if lgbm is not None:
        ratios["lightgbm_compiled_vs_native"] = {
            k: round(results["lightgbm"][k] / results["lightgbm_native"][k], 2)
            for k in results["lightgbm"]
        }
    if lgbm is not None and lgbm.forest_ is not None and lgbm.forest_.explains:
        # Reason codes (TreeSHAP) for one flagged row, as the stream asks for
        # them: the compiled kernel against LightGBM's pred_contrib.
        explain: dict[str, float] = {}
        for runtime in ("compiled", "lightgbm"):

            def contrib(x: np.ndarray, r: str = runtime) -> np.ndarray:
                return lgbm.contributions(x, runtime=r)

            explain[runtime] = round(_rate(contrib, X, 1, seconds), 1)
        out["explain_rows_per_s"] = explain
        tables = lgbm.forest_.shap_tables
        if tables is not None:
            # Fast TreeSHAP v2 tables: the memory they add and the trees they cover.
            out["explain_tables"] = {
                "bytes": tables.nbytes,
                "trees": int(tables.tree_table.sum()),
                "of_trees": int(tables.tree_table.size),
            }
        ratios["treeshap_compiled_vs_native"] = {
            "1": round(explain["compiled"] / explain["lightgbm"], 2)
        }
    if mlp is not None:
        ratios["mlp_numpy_vs_torch"] = {
            k: round(results["mlp"][k] / results["mlp_torch"][k], 2) for k in results["mlp"]
        }
        ratios["mlp_blocked_vs_rowwise"] = {
            k: round(results["mlp"][k] / results["mlp_rowwise"][k], 2) for k in results["mlp"]
        }
    out["ratios"] = ratios
    return out


def bench_models(
    model_path: str | Path | None = None,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    seconds: float = 0.5,
    num_threads: int = 1,
    n_features: int = 64,
    seed: int = 0,
    rows: np.ndarray | None = None,
    rows_source: str | None = None,
) -> dict[str, Any]:
    """Benchmark a saved model, or (without one) a model trained here on synthetic data.

    The synthetic stand-in has ``n_features`` columns (two categorical) and
    LightGBM is made to grow 300 trees of up to 31 leaves and the default depth
    (6), the production default's shape, so the figures are representative when
    no model is at hand. A saved model scores ``rows`` (real feature rows, see
    :func:`feature_rows`) when given, else random ones: trees cost more on real
    rows, whose paths the CPU guesses less well.
    """
    from riskflow.models._artifact import load_model
    from riskflow.models._ensemble import Ensemble
    from riskflow.models._synthetic import make_synthetic

    if model_path is not None:
        model = load_model(model_path, num_threads=num_threads)
        if rows is not None:
            if rows.ndim != 2 or rows.shape[1] != model.n_features_in_:
                raise ValueError(
                    f"The feature rows have shape {rows.shape}; the model takes "
                    f"{model.n_features_in_} features."
                )
            X = np.ascontiguousarray(rows, dtype=np.float32)
        else:
            rng = np.random.default_rng(seed)
            # No data at hand: random rows (small integer codes in categorical
            # columns) still walk every tree and layer, which is what costs time.
            X = rng.standard_normal((8192, model.n_features_in_)).astype(np.float32)
            for j, kind in enumerate(model.kinds_):
                if kind == "categorical":
                    X[:, j] = rng.integers(0, 8, X.shape[0])
        source = {
            "model": str(model_path),
            "version": model.version,
            "rows": rows_source or "random",
        }
    else:
        d = make_synthetic(n=24_000, n_numeric=max(n_features - 2, 6), seed=seed)
        t0 = time.perf_counter()
        model = Ensemble(
            lgbm_params={"num_boost_round": 300, "early_stopping_rounds": 10_000},
            mlp_params={"max_epochs": 2},
            seed=seed,
            num_threads=num_threads,
        ).fit(
            d.X[:16_000],
            d.y[:16_000],
            d.X[16_000:],
            d.y[16_000:],
            feature_names=d.feature_names,
            kinds=d.kinds,
        )
        X = d.X
        source = {"model": "synthetic", "train_seconds": round(time.perf_counter() - t0, 2)}
    lgbm = model.members_.get("lightgbm")
    source["n_features"] = int(model.n_features_in_)
    if lgbm is not None:
        source["lightgbm_trees"] = int(lgbm.booster_.num_trees())
    mlp = model.members_.get("mlp")
    if mlp is not None:
        source["mlp_hidden"] = list(mlp.config()["hidden"])
    return {
        "benchmark": "models",
        **source,
        **benchmark_model(
            model, X, batch_sizes=batch_sizes, seconds=seconds, num_threads=num_threads
        ),
    }


def feature_rows(
    data: str | Path, model_path: str | Path, config: Any, *, history: int = 200_000, n: int = 8192
) -> np.ndarray:
    """The feature rows of the last ``n`` of ``data``'s first ``history`` transactions.

    Computed by the feature engine from the start of the history (labels
    released at their label time), so the rows carry the state a live
    stream would have built by then. A shorter history gives its last ``n``
    rows (or all of them). Refuses a model trained on another feature
    catalogue.
    """
    from riskflow.features import FeatureEngine
    from riskflow.models._artifact import load_model
    from riskflow.table import load_dataset
    from riskflow.train import compute_features

    engine = FeatureEngine(config.features)
    load_model(model_path, expected_catalogue_hash=engine.catalogue_hash)  # checks the catalogue
    ds = load_dataset(data, default_label_delay_days=config.features.default_label_delay_days)
    tx = ds.transactions.iloc[:history]
    if len(tx) == 0:
        raise ValueError(f"{data} holds no transactions.")
    X = compute_features(engine, tx, ds.labels)
    return np.ascontiguousarray(X[-n:])
