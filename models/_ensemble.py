"""The fraud model: LightGBM + MLP members, blended on validation, calibrated.

Estimator-style: the constructor stores settings, :meth:`Ensemble.fit` learns
(attributes ending in ``_``), prediction methods take a float32 feature matrix
whose columns are the feature engine's ``feature_names`` in order.

>>> from riskflow.models import Ensemble, make_synthetic
>>> d = make_synthetic(n=4000, seed=0)
>>> model = Ensemble(mlp_params={"max_epochs": 2}).fit(
...     d.X[:3000], d.y[:3000], d.X[3000:], d.y[3000:],
...     feature_names=d.feature_names, kinds=d.kinds, descriptions=d.descriptions)
>>> p = model.predict_proba(d.X[3000:])
>>> p.dtype.name, bool((p >= 0).all() and (p <= 1).all()), sorted(model.predict_members(d.X[:2]))
('float64', True, ['lightgbm', 'mlp'])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from riskflow.models._calibration import Blender, Calibrator, blend_and_calibrate
from riskflow.models._lgbm import LightGBMMember
from riskflow.models._mlp import MLPMember
from riskflow.models._threads import split_rows

__all__ = ["Ensemble", "MEMBERS", "TopReasons"]

#: Member names, in the order their scores enter the blend.
MEMBERS: tuple[str, ...] = ("lightgbm", "mlp")
#: Rows per thread below which scoring stays in one thread: a row costs
#: ~40 us over both members, a hand-off to the pool tens of us.
MIN_ROWS_PER_THREAD = 32
Progress = Callable[[str, int, int, str], None]


class TopReasons(NamedTuple):
    """:meth:`Ensemble.top_reasons`: each (rows, k), largest contribution first."""

    feature: np.ndarray  # int64 index into feature_names_, -1: no further positive one
    contribution: np.ndarray  # float64 SHAP value (log-odds), 0 where feature is -1
    value: np.ndarray  # float64 feature value, NaN where absent or feature is -1


class Ensemble:
    """Calibrated blend of a LightGBM and a torch MLP fraud classifier.

    Parameters
    ----------
    members
        Which members to train, a subset of :data:`MEMBERS` (default both).
    blend
        ``"weighted"`` (convex weights: the most even split within one bootstrap standard
        error of the best validation AP) or ``"stacking"``.
    calibration
        ``"auto"``, ``"isotonic"`` or ``"platt"`` (see :class:`Calibrator`).
    lgbm_params, mlp_params
        Keyword arguments for :class:`LightGBMMember` / :class:`MLPMember`.
    seed, num_threads
        Fixed seed for every member; threads for training and inference.

    Attributes (after fit or load)
    ------------------------------
    members_ : dict name -> fitted member
    blender_, calibrator_ : the fitted blend and calibration
    feature_names_, kinds_, descriptions_ : the feature list the model expects
    version : str or None, set when saved or loaded
    """

    def __init__(
        self,
        *,
        members: Sequence[str] = MEMBERS,
        blend: str = "weighted",
        calibration: str = "auto",
        lgbm_params: dict[str, Any] | None = None,
        mlp_params: dict[str, Any] | None = None,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.members = tuple(members)
        self.blend = blend
        self.calibration = calibration
        self.lgbm_params = lgbm_params
        self.mlp_params = mlp_params
        self.seed = seed
        self.num_threads = num_threads
        self.version: str | None = None
        self.catalogue_hash: str | None = None

    # -- training ---------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        *,
        feature_names: Sequence[str],
        kinds: Sequence[str] | None = None,
        descriptions: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> Ensemble:
        """Fit the members on the training rows, blend and calibration on validation.

        ``kinds`` marks columns ``"categorical"`` (integer codes, -1 absent) or
        ``"numeric"``; ``descriptions`` name features for reason codes.
        """
        X = _matrix(X, "X")
        X_valid = _matrix(X_valid, "X_valid")
        y = _labels(y, len(X), "y")
        y_valid = _labels(y_valid, len(X_valid), "y_valid")
        F = X.shape[1]
        bad = [m for m in self.members if m not in MEMBERS]
        if bad or not self.members:
            raise ValueError(
                f"The 'members' parameter of Ensemble must be a non-empty subset of {MEMBERS}. "
                f"Got {self.members!r} instead."
            )
        if X_valid.shape[1] != F or len(feature_names) != F:
            raise ValueError(
                f"X, X_valid and feature_names must agree on the number of features. Got "
                f"{F}, {X_valid.shape[1]} and {len(feature_names)} instead."
            )
        if not 0 < int(y.sum()) < len(y):
            raise ValueError(
                f"The training window needs both frauds and legitimate transactions. Got "
                f"{int(y.sum())} frauds among {len(y)} rows instead; widen the training window "
                "or check that labels were read."
            )
        kinds = tuple(kinds) if kinds is not None else ("numeric",) * F
        if len(kinds) != F or not set(kinds) <= {"numeric", "categorical"}:
            raise ValueError(
                f"kinds must give 'numeric' or 'categorical' for each of the {F} features."
            )
        categorical = [i for i, k in enumerate(kinds) if k == "categorical"]
        self.feature_names_ = tuple(feature_names)
        self.kinds_ = kinds
        self.descriptions_ = (
            tuple(descriptions) if descriptions is not None else self.feature_names_
        )
        fitted: dict[str, Any] = {}
        for name in MEMBERS:
            if name not in self.members:
                continue
            if name == "lightgbm":
                fitted[name] = LightGBMMember(
                    **(self.lgbm_params or {}), seed=self.seed, num_threads=self.num_threads
                ).fit(
                    X,
                    y,
                    X_valid,
                    y_valid,
                    feature_names=self.feature_names_,
                    categorical=categorical,
                    progress=progress,
                )
            else:
                fitted[name] = MLPMember(
                    **(self.mlp_params or {}), seed=self.seed, num_threads=self.num_threads
                ).fit(X, y, X_valid, y_valid, categorical=categorical, progress=progress)
        self.members_ = fitted
        Z = self._member_matrix(X_valid)
        self.blender_ = Blender(self.blend).fit(Z, y_valid)
        self.calibrator_ = Calibrator(self.calibration).fit(self.blender_.transform(Z), y_valid)
        self.n_features_in_ = F
        self.version = None
        return self

    # -- inference --------------------------------------------------------
    def _member_matrix(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([m.decision_function(X) for m in self.members_.values()])

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = _matrix(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features but this model expects {self.n_features_in_} "
                f"({', '.join(self.feature_names_[:5])}, ...). Was it built by another "
                "feature catalogue?"
            )
        return X

    def predict_members(
        self, X: np.ndarray, *, timings: dict[str, float] | None = None
    ) -> dict[str, np.ndarray]:
        """Raw member scores (log-odds before blending and calibration), name -> (n,).

        With ``num_threads`` > 1 a batch of at least
        :data:`MIN_ROWS_PER_THREAD` rows per thread is cut into row slices
        scored side by side (every member kernel scores each row alone and
        releases the GIL, so the values are the same bits as one thread's).
        ``timings``, when given, accumulates each member's seconds under its
        name, summed over the threads.
        """
        X = self._check(X)
        names = list(self.members_)
        parts: list[dict[str, float]] = []

        def member_matrix(rows: np.ndarray) -> np.ndarray:
            out = np.empty((rows.shape[0], len(names)), np.float64)
            spent: dict[str, float] = {}
            for j, name in enumerate(names):
                t0 = time.perf_counter()
                out[:, j] = self.members_[name].decision_function(rows)
                spent[name] = time.perf_counter() - t0
            parts.append(spent)  # list.append is atomic under the GIL
            return out

        Z = split_rows(member_matrix, X, self.num_threads, MIN_ROWS_PER_THREAD)
        if timings is not None:
            for spent in parts:
                for name, sec in spent.items():
                    timings[name] = timings.get(name, 0.0) + sec
        return {name: np.ascontiguousarray(Z[:, j]) for j, name in enumerate(names)}

    def score(
        self, X: np.ndarray, *, timings: dict[str, float] | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Calibrated probabilities and raw member scores in one pass.

        ``timings``, when given, accumulates seconds per stage: each member
        under its name, then ``"blend_calibrate"`` (replay's stage breakdown).
        """
        members = self.predict_members(X, timings=timings)
        t0 = time.perf_counter()
        Z = np.column_stack(list(members.values()))
        p = blend_and_calibrate(Z, self.blender_, self.calibrator_)
        if timings is not None:
            timings["blend_calibrate"] = (
                timings.get("blend_calibrate", 0.0) + time.perf_counter() - t0
            )
        return p, members

    def predict_proba(
        self, X: np.ndarray, *, timings: dict[str, float] | None = None
    ) -> np.ndarray:
        """Calibrated fraud probability per row, float64 (n,) (``timings``: see :meth:`score`)."""
        return self.score(X, timings=timings)[0]

    def blend_scores(self, X: np.ndarray) -> np.ndarray:
        """The uncalibrated blend (the score calibration maps to a probability)."""
        return self.blender_.transform(self._member_matrix(self._check(X)))

    # -- explanations -----------------------------------------------------
    def _explainer(self) -> LightGBMMember:
        """The member whose TreeSHAP values explain scores (the LightGBM one)."""
        if "lightgbm" not in self.members_:
            raise ValueError("Reason codes need the LightGBM member; this model has none.")
        member: LightGBMMember = self.members_["lightgbm"]
        return member

    def contributions(self, X: np.ndarray, *, num_threads: int | None = None) -> np.ndarray:
        """Per-feature contributions to the LightGBM member's log-odds, (n, F + 1).

        TreeSHAP values (LightGBM ``pred_contrib``); the last column is the
        expected value. Positive = pushes towards fraud. ``num_threads``
        overrides the model's threads for this call (same values).
        """
        return self._explainer().contributions(self._check(X), num_threads=num_threads)

    def top_reasons(
        self,
        X: np.ndarray,
        rows: Sequence[int] | np.ndarray | None = None,
        k: int = 3,
        *,
        num_threads: int | None = None,
    ) -> TopReasons:
        """The top ``k`` features pushing each row of ``X[rows]`` up, as arrays.

        What :meth:`reason_codes` says in words, for callers that explain many
        rows at once (replay): per row, feature indices into
        ``feature_names_`` (-1 past the row's positive contributions), their
        SHAP values in the LightGBM member's log-odds, and the features'
        values (NaN: absent), each (rows, k), largest contribution first.
        """
        explainer = self._explainer()
        X = self._check(X)
        sub = X if rows is None else X[np.asarray(rows, dtype=np.int64)]
        feature, contribution = explainer.top_contributions(sub, k, num_threads=num_threads)
        value = np.take_along_axis(sub, np.maximum(feature, 0), axis=1).astype(np.float64)
        value[feature < 0] = np.nan
        return TopReasons(feature, contribution, value)

    def reason_codes(
        self,
        X: np.ndarray,
        rows: Sequence[int] | np.ndarray | None = None,
        k: int = 3,
        *,
        num_threads: int | None = None,
    ) -> list[list[dict[str, Any]]]:
        """The top ``k`` features pushing each row's score up, in analyst words.

        For each row of ``X[rows]`` (default all rows): up to ``k`` dicts
        ``{"feature", "description", "contribution", "value"}`` sorted by
        decreasing contribution, only positive contributions (a row whose risk
        nothing raises gets an empty list). ``contribution`` is the feature's
        SHAP value in the LightGBM member's log-odds. ``num_threads``: see
        :meth:`contributions` (replay gives a batch of rows every core).
        """
        top = self.top_reasons(X, rows, k, num_threads=num_threads)
        names, descriptions = self.feature_names_, self.descriptions_
        return [
            [
                {
                    "feature": names[j],
                    "description": descriptions[j],
                    "contribution": c,
                    "value": None if v != v else v,  # NaN: absent
                }
                for j, c, v in zip(js, cs, vs, strict=True)
                if j >= 0
            ]
            for js, cs, vs in zip(
                top.feature.tolist(), top.contribution.tolist(), top.value.tolist(), strict=True
            )
        ]

    def __repr__(self) -> str:
        state = f"version={self.version!r}" if hasattr(self, "members_") else "unfitted"
        return f"Ensemble(members={self.members!r}, {state})"


def _matrix(X: Any, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D feature matrix. Got shape {X.shape} instead.")
    return np.ascontiguousarray(X, dtype=np.float32)


def _labels(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(y).ravel()
    if y.shape[0] != n:
        raise ValueError(f"{name} must have one label per row ({n}). Got {y.shape[0]} instead.")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1.")
    return y.astype(np.int8)
