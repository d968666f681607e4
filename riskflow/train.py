"""Training pipeline: data -> features -> time split -> ensemble -> metrics -> artifact.

What ``riskflow train`` runs, step by step:

1. Read the history (:func:`riskflow.table.load_dataset`): canonical
   transactions in event-time order and the labels stream (tx_id, label,
   label_time). Ground-truth columns a simulator may write (``is_fraud``,
   ``fraud_scenario``) are not canonical fields and never reach the model.
2. Compute features with the feature engine in replay mode: every transaction
   in time order, labels released to the engine at their label time, so each
   row sees exactly what the live system would have seen (point in time).
3. Split by time (:class:`riskflow.models.TimeSplit`): train / gap /
   validation / gap / test. Labels: a training (validation) row is fraud iff
   a fraud label for it is known before ``train.end + gap``
   (``valid.end + gap``); later chargebacks count as legitimate, as they
   would have when the model was built. Test rows are judged with every label
   in the data.
4. Fit the ensemble (members on train; blend and calibration on validation).
5. Score the test window: metrics for the ensemble and each member
   (:func:`riskflow.metrics.evaluate`), per-transaction scores.
6. Write the model directory, ``metrics.json`` and ``test_scores.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from riskflow import metrics as _metrics
from riskflow.batch import LabelBatch, TxBatch
from riskflow.cpus import usable_cpus

__all__ = ["TrainResult", "train", "compute_features", "data_fingerprint", "feature_metadata"]

Progress = Callable[[str, int, int, str], None]


@dataclass
class TrainResult:
    """What a training run produced."""

    model: Any  # riskflow.models.Ensemble
    version: str
    out: Path
    split: Any  # riskflow.models.TimeSplit
    metrics: dict[str, Any]
    rows: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)


def data_fingerprint(transactions: pd.DataFrame, labels: pd.DataFrame) -> str:
    """SHA-256 (16 hex chars) of the ids, times and amounts of the data and labels."""
    h = hashlib.sha256()
    for frame, cols in (
        (transactions, ["tx_id", "event_time", "amount"]),
        (labels, ["tx_id", "label", "label_time"]),
    ):
        present = [c for c in cols if c in frame.columns]
        h.update(f"{len(frame)}:{','.join(present)};".encode())
        if len(frame):
            h.update(pd.util.hash_pandas_object(frame[present], index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def feature_metadata(engine: Any) -> tuple[list[str], list[str], list[str]]:
    """Names, kinds and descriptions of the engine's features, in column order."""
    names = [str(n) for n in engine.feature_names]
    specs: dict[str, Any] = {}
    try:
        from riskflow.features import catalogue

        specs = {s.name: s for s in catalogue()}
    except ImportError:  # an engine without a catalogue: numeric, named by themselves
        pass
    specs.update({s.name: s for s in getattr(engine, "specs", ()) or ()})
    kinds = [getattr(specs.get(n), "kind", "numeric") or "numeric" for n in names]
    desc = [getattr(specs.get(n), "description", "") or n for n in names]
    return names, kinds, desc


def compute_features(
    engine: Any, transactions: pd.DataFrame, labels: pd.DataFrame, progress: Progress | None = None
) -> np.ndarray:
    """Feature matrix (float32, one row per transaction) from a replay of the history.

    The engine sees every transaction in event-time order and the labels in
    label-time order; it releases each label into its state only once the
    stream has passed its label time (point-in-time correctness).
    """
    if progress:
        progress("features", 0, 1, f"{len(transactions):,} transactions")
    tx = TxBatch.from_frame(transactions)
    lb = LabelBatch.join(labels, transactions) if len(labels) else None
    if callable(getattr(engine, "reserve", None)):
        engine.reserve(tx)  # the whole history is known: size the tables once (speed only)
    X = np.asarray(engine.process(tx, lb), dtype=np.float32)
    if X.shape[0] != len(transactions):
        raise RuntimeError(
            f"The feature engine returned {X.shape[0]} rows for {len(transactions)} transactions."
        )
    if progress:
        progress("features", 1, 1, f"{X.shape[1]} features")
    return X


def _window_rows(split: Any, ts: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.flatnonzero(v) for k, v in split.masks(ts).items()}


def train(
    data: str | Path,
    out: str | Path,
    *,
    mapping: Any = None,
    labels_path: str | Path | None = None,
    windows: dict[str, tuple[str, str] | None] | None = None,
    gap: str | int = "7d",
    split: Any = None,
    config: Any = None,
    engine: Any = None,
    seed: int = 0,
    num_threads: int | None = None,
    blend: str = "weighted",
    calibration: str = "auto",
    lgbm_params: dict[str, Any] | None = None,
    mlp_params: dict[str, Any] | None = None,
    top_k: int = _metrics.DEFAULT_TOP_K,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, evaluate and save a model; see the module docs for the steps.

    Parameters
    ----------
    data, mapping, labels_path
        The history (a simulator folder, a file or a folder) and how to read it.
    out
        Model directory to write.
    windows, gap, split
        ``windows={"train": (from, to), "valid": ..., "test": ...}`` (dates or
        times, half-open; any may be None to derive it) and the label-delay
        ``gap``; or a ready :class:`~riskflow.models.TimeSplit` as ``split``.
    config
        A :class:`riskflow.config.Config` (default: :func:`load_config`).
    engine
        A feature engine (default: ``FeatureEngine(config.features)``).
    num_threads
        Training threads (default: all cores). Serving threads come from
        ``config.model.num_threads`` at load time.
    """
    from riskflow.models import Ensemble, TimeSplit, known_labels, save_model
    from riskflow.table import load_dataset

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if config is None:
        from riskflow.config import load_config

        config = load_config()
    if progress:
        progress("read", 0, 1, str(data))
    ds = load_dataset(
        data,
        mapping,
        labels_path=labels_path,
        tokenisation_key=config.security.tokenisation_key.get_secret_value().encode(),
        default_label_delay_days=config.features.default_label_delay_days,
    )
    tx, labels = ds.transactions, ds.labels
    if not len(tx):
        raise ValueError(f"No transactions in {str(data)!r}.")
    ts_all = tx["event_time"].to_numpy(dtype=np.int64)
    if split is None:
        w = windows or {}
        split = TimeSplit.resolve(
            int(ts_all[0]),
            int(ts_all[-1]) + 1,
            train=w.get("train"),
            valid=w.get("valid"),
            test=w.get("test"),
            gap=gap,
        )
    # Rows after the test window are not needed (features look backwards only).
    tx = tx[ts_all < split.test.end].reset_index(drop=True)
    labels = labels[labels["tx_id"].isin(tx["tx_id"])].reset_index(drop=True)
    if progress:
        progress("read", 1, 1, f"{len(tx):,} transactions, {len(labels):,} labels")
    timings["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    if engine is None:
        from riskflow.features import FeatureEngine

        engine = FeatureEngine(config.features)
    names, kinds, descriptions = feature_metadata(engine)
    X = compute_features(engine, tx, labels, progress)
    timings["features"] = time.perf_counter() - t

    ts = tx["event_time"].to_numpy(dtype=np.int64)
    ids = tx["tx_id"].to_numpy(dtype=object)
    rows = _window_rows(split, ts)
    for name, r in rows.items():
        if r.size == 0:
            raise ValueError(
                f"The {name} window {split.to_dict()[name]['start']} .. "
                f"{split.to_dict()[name]['end']} holds no transactions; the data spans "
                f"{pd.Timestamp(int(ts[0]), unit='ms', tz='UTC')} .. "
                f"{pd.Timestamp(int(ts[-1]), unit='ms', tz='UTC')}. Adjust --train/--valid/--test."
            )
    y = {name: known_labels(ids[r], labels, split.label_cutoff(name)) for name, r in rows.items()}

    t = time.perf_counter()
    threads = num_threads or usable_cpus()
    model = Ensemble(
        blend=blend,
        calibration=calibration,
        lgbm_params=lgbm_params,
        mlp_params=mlp_params,
        seed=seed,
        num_threads=threads,
    ).fit(
        X[rows["train"]],
        y["train"],
        X[rows["valid"]],
        y["valid"],
        feature_names=names,
        kinds=kinds,
        descriptions=descriptions,
        progress=progress,
    )
    timings["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    if progress:
        progress("evaluate", 0, 1, f"{rows['test'].size:,} test transactions")
    X_test = X[rows["test"]]
    y_test = y["test"]
    ts_test = ts[rows["test"]]
    proba, members = model.score(X_test)
    report: dict[str, Any] = {
        "ensemble": _metrics.evaluate(y_test, proba, ts_test, k=top_k, probabilities=True)
    }
    for name, raw in members.items():
        report[name] = _metrics.evaluate(y_test, raw, ts_test, k=top_k)
    report["split"] = split.to_dict()
    report["rows"] = {name: int(r.size) for name, r in rows.items()}
    report["frauds_known"] = {name: int(v.sum()) for name, v in y.items()}
    report["blend"] = model.blender_.to_dict()
    report["calibration"] = model.calibrator_.method_
    timings["evaluate"] = time.perf_counter() - t
    if progress:
        progress("evaluate", 1, 1, "")

    out = Path(out)
    catalogue_hash = getattr(engine, "catalogue_hash", None)
    version = save_model(
        model,
        out,
        catalogue_hash=catalogue_hash,
        metadata={
            "training": {
                "data": str(data),
                "data_fingerprint": data_fingerprint(ds.transactions, ds.labels),
                "split": split.to_dict(),
                "rows": report["rows"],
                "frauds_known": report["frauds_known"],
                "label_rule": (
                    "train/valid: fraud iff a fraud label is known before window end + gap; "
                    "test: every label in the data"
                ),
                "seed": seed,
                "threads": threads,
                "timings_s": {k: round(v, 3) for k, v in timings.items()},
            },
            "metrics": {k: report[k] for k in ("ensemble", *members)},
        },
    )
    report["model_version"] = version
    (out / "metrics.json").write_text(json.dumps(_clean(report), indent=2, sort_keys=True) + "\n")
    scores = pd.DataFrame(
        {
            "tx_id": pd.Series(ids[rows["test"]], dtype=object),
            "event_time": ts_test,
            "label": y_test.astype(np.int8),
            "score": proba,
            # Member columns: each member's own (uncalibrated) probability.
            **{name: expit(raw) for name, raw in members.items()},
        }
    )
    scores.to_parquet(out / "test_scores.parquet", index=False)
    timings["total"] = time.perf_counter() - t0
    return TrainResult(
        model=model,
        version=version,
        out=out,
        split=split,
        metrics=report,
        rows=report["rows"],
        timings_s=timings,
    )


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
