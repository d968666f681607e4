"""Fraud models: a calibrated LightGBM + torch MLP ensemble, versioned and explainable.

Read first: :class:`Ensemble` (fit / predict_proba / reason_codes), then
:func:`load_model` / :func:`save_model` (the artifact directory) and
:class:`Scorer` (hot reload in a running worker). Members live in private
modules (``_lgbm``, ``_mlp``), blend and calibration in ``_calibration``, the
compiled tree runtime in ``_trees``, artifact I/O in ``_artifact``.

Serving contract (the stream processor and replay call exactly this)::

    model = load_model(path, expected_catalogue_hash=engine.catalogue_hash)
    scores = model.predict_proba(X)        # calibrated P(fraud), float64 (n,)
    members = model.predict_members(X)     # {"lightgbm": logits, "mlp": logits}
    codes = model.reason_codes(X, rows, k=3)
    model.version                          # "20260128T101500Z-3f2a9c0e1b7d"
"""

from __future__ import annotations

from riskflow.models._artifact import (
    FORMAT_VERSION,
    feature_list_hash,
    library_versions,
    load_model,
    read_manifest,
    save_model,
)
from riskflow.models._calibration import Blender, Calibrator
from riskflow.models._ensemble import MEMBERS, Ensemble, TopReasons
from riskflow.models._scorer import ScoredBatch, Scorer, pin_threads
from riskflow.models._split import TimeSplit, Window, known_labels, parse_time_ms
from riskflow.models._synthetic import SyntheticData, make_synthetic

__all__ = [
    "Ensemble",
    "MEMBERS",
    "TopReasons",
    "Blender",
    "Calibrator",
    "load_model",
    "save_model",
    "read_manifest",
    "feature_list_hash",
    "library_versions",
    "FORMAT_VERSION",
    "Scorer",
    "ScoredBatch",
    "pin_threads",
    "TimeSplit",
    "Window",
    "known_labels",
    "parse_time_ms",
    "SyntheticData",
    "make_synthetic",
]
