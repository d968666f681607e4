"""The gradient-boosted-trees member: LightGBM with class imbalance handled.

Imbalance: training keeps every fraud and a seeded share of the legitimate
rows (``negative_rate``, default 0.2: the undersampling fraud teams use; five
times less data to boost over, and on the simulator's standard dataset it
raised the member's test average precision from 0.49 to 0.66 at the same
settings), and positives are up-weighted by ``scale_pos_weight`` (default the
square root of the remaining negative/positive ratio: full re-balancing
overfits the few frauds and wrecks precision at the top; the ensemble
calibrates the result anyway, so the shifted base rate does no harm).

Early stopping watches the validation log loss. Validation labels are the ones
known one gap after the window (most chargebacks are not in yet), so its
average precision rests on ~100 frauds and jumps from tree to tree: stopping
on it halted at ~80 trees; log loss is smooth and let the same data grow ~580
trees (test AP 0.66 -> 0.69, measured 2026-11-29), now capped at
:data:`DEFAULT_NUM_BOOST_ROUND` of depth <= 6 for serving cost.
The model is kept as LightGBM's text format (no pickle); serving uses the
compiled :class:`~riskflow.models._trees.Forest` when it mirrors the model,
for scores and for reason codes (TreeSHAP, :mod:`riskflow.models._treeshap`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from riskflow.errors import ArtifactError
from riskflow.models._threads import split_rows

__all__ = ["LightGBMMember", "DEFAULT_LGBM_PARAMS", "DEFAULT_NUM_BOOST_ROUND"]

#: Serving cost is set by the model's shape: prediction walks trees x depth
#: nodes, reason codes (path-dependent TreeSHAP) cost ~trees x leaves x depth^2.
#: Without a depth cap leaf-wise trees of 31 leaves grew 18 deep, and early
#: stopping on log loss let the standard dataset grow 582 of them: 11 ms of
#: TreeSHAP per flagged row. Depth 6 and at most 300 trees (the first 300 of
#: the same boosting run) measured on that dataset's test week, 2026-11-29:
#: ensemble AP 0.7019 against 0.7004, LightGBM alone 0.6945 against 0.6931,
#: half the leaves (9,108 against 18,042) and a third of the depth.
#: Learning rate 0.1 or 15 leaves cost 0.008-0.010 ensemble AP (README, Models).
DEFAULT_NUM_BOOST_ROUND = 300

#: Tuned for tens of thousands to millions of rows and ~50-300 features on a
#: small CPU box: moderate leaves, row/column subsampling against overfitting.
DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    # Shallow trees for cheap serving (see DEFAULT_NUM_BOOST_ROUND).
    "max_depth": 6,
    # Fraud labels are few and noisy (unreported and not-yet-reported frauds
    # count as legitimate), so leaves and categorical splits are regularised.
    "min_data_in_leaf": 100,
    "min_sum_hessian_in_leaf": 1e-3,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "max_bin": 255,
    "cat_smooth": 20.0,
    "cat_l2": 10.0,
    "min_data_per_group": 100,
    "max_cat_threshold": 32,
    "max_cat_to_onehot": 8,
    # Smooth on noisy, mostly-unlabelled validation windows (see module doc).
    "metric": "binary_logloss",
    "verbose": -1,
    # Reproducibility: same data + seed + threads -> same trees.
    "deterministic": True,
    "force_row_wise": True,
}

Progress = Callable[[str, int, int, str], None]


class LightGBMMember:
    """LightGBM binary classifier on a float32 feature matrix.

    Parameters
    ----------
    params
        Overrides of :data:`DEFAULT_LGBM_PARAMS`.
    num_boost_round, early_stopping_rounds
        Upper bound on trees, and patience on validation log loss.
    imbalance
        ``"sqrt"`` (default), ``"balanced"`` (neg/pos) or ``"none"``.
    negative_rate
        Share of legitimate training rows kept (every fraud is kept); ``None``
        or 1.0 keeps all. Seeded by ``seed``.
    seed, num_threads
        Fixed seed; threads for training and prediction.
    """

    name = "lightgbm"

    def __init__(
        self,
        *,
        params: dict[str, Any] | None = None,
        num_boost_round: int = DEFAULT_NUM_BOOST_ROUND,
        early_stopping_rounds: int = 50,
        imbalance: str = "sqrt",
        negative_rate: float | None = 0.2,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.params = params
        self.negative_rate = negative_rate
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.imbalance = imbalance
        self.seed = seed
        self.num_threads = num_threads

    # -- training ---------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        *,
        feature_names: Sequence[str],
        categorical: Sequence[int] = (),
        progress: Progress | None = None,
    ) -> LightGBMMember:
        import lightgbm as lgb

        if self.imbalance not in ("sqrt", "balanced", "none"):
            raise ValueError(
                "The 'imbalance' parameter of LightGBMMember must be 'sqrt', 'balanced' or "
                f"'none'. Got {self.imbalance!r} instead."
            )
        rate = 1.0 if self.negative_rate is None else float(self.negative_rate)
        if not 0.0 < rate <= 1.0:
            raise ValueError(
                "The 'negative_rate' parameter of LightGBMMember must be a float in (0, 1] or "
                f"None. Got {self.negative_rate!r} instead."
            )
        if rate < 1.0:
            y = np.asarray(y)
            keep = (y == 1) | (np.random.default_rng(self.seed).random(len(y)) < rate)
            X, y = X[keep], y[keep]
        pos = max(int(np.sum(y)), 1)
        neg = max(int(len(y) - np.sum(y)), 1)
        ratio = neg / pos
        spw = {"sqrt": ratio**0.5, "balanced": ratio, "none": 1.0}[self.imbalance]
        params = {
            **DEFAULT_LGBM_PARAMS,
            **(self.params or {}),
            "scale_pos_weight": spw,
            "seed": self.seed,
            "num_threads": self.num_threads,
        }
        names = [_safe_name(n) for n in feature_names]
        cats = list(categorical)
        train = lgb.Dataset(
            X,
            label=y,
            feature_name=names,
            categorical_feature=cats,
            free_raw_data=True,
            params={"verbose": -1},
        )
        valid = lgb.Dataset(
            X_valid,
            label=y_valid,
            reference=train,
            feature_name=names,
            categorical_feature=cats,
            params={"verbose": -1},
        )
        callbacks: list[Any] = [
            lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False)
        ]
        if progress is not None:
            total = self.num_boost_round

            def _report(env: Any) -> None:
                res = env.evaluation_result_list
                info = f"valid log loss {res[0][2]:.5f}" if res else ""
                progress("lightgbm", env.iteration + 1, total, info)

            callbacks.append(_report)
        booster = lgb.train(
            params,
            train,
            num_boost_round=self.num_boost_round,
            valid_sets=[valid],
            valid_names=["valid"],
            callbacks=callbacks,
        )
        best = booster.best_iteration or booster.current_iteration()
        self.best_iteration_ = int(best)
        self.scale_pos_weight_ = float(spw)
        self.n_features_in_ = int(X.shape[1])
        self._set_booster(booster.model_to_string(num_iteration=best))
        return self

    # -- state ------------------------------------------------------------
    def _set_booster(self, text: str) -> None:
        import lightgbm as lgb

        from riskflow.models._trees import Forest

        self.model_text_ = text
        self.booster_ = lgb.Booster(model_str=text)
        try:
            self.forest_: Forest | None = Forest.from_model_string(text)
        except ArtifactError:
            self.forest_ = None
        self.n_features_in_ = int(self.booster_.num_feature())

    @classmethod
    def from_model_string(cls, text: str, *, num_threads: int = 1) -> LightGBMMember:
        """Rebuild a fitted member from LightGBM's text model."""
        member = cls(num_threads=num_threads)
        try:
            member._set_booster(text)
        except Exception as exc:  # lightgbm raises LightGBMError / ValueError
            raise ArtifactError(
                f"The LightGBM model text could not be parsed ({exc}). The artifact is "
                "corrupted or was not written by riskflow; retrain with `riskflow train`."
            ) from exc
        return member

    # -- inference --------------------------------------------------------
    def decision_function(self, X: np.ndarray, *, runtime: str = "auto") -> np.ndarray:
        """Raw log-odds (sum of trees), float64 (n,).

        ``runtime``: ``"compiled"`` (numba forest), ``"lightgbm"`` (Booster.predict)
        or ``"auto"`` (compiled when available).
        """
        if runtime not in ("auto", "compiled", "lightgbm"):
            raise ValueError(
                f"runtime must be 'auto', 'compiled' or 'lightgbm'. Got {runtime!r} instead."
            )
        if runtime != "lightgbm" and self.forest_ is not None:
            return self.forest_.predict_raw(X)
        if runtime == "compiled":
            raise ArtifactError("This LightGBM model cannot use the compiled runtime.")
        return np.asarray(
            self.booster_.predict(
                np.ascontiguousarray(X, dtype=np.float32),
                raw_score=True,
                num_threads=self.num_threads,
            ),
            dtype=np.float64,
        )

    def contributions(
        self, X: np.ndarray, *, num_threads: int | None = None, runtime: str = "auto"
    ) -> np.ndarray:
        """SHAP contributions in log-odds, (n, F + 1); the last column is the bias.

        Rows sum to :meth:`decision_function`. ``runtime``: ``"compiled"``
        (TreeSHAP in the numba forest, equal to LightGBM's to ~1e-15),
        ``"lightgbm"`` (``pred_contrib``) or ``"auto"`` (compiled when the
        model text carries node counts). ``num_threads`` overrides the
        member's threads for this call (rows are split between threads, each
        row's values are the same).
        """
        if runtime not in ("auto", "compiled", "lightgbm"):
            raise ValueError(
                f"runtime must be 'auto', 'compiled' or 'lightgbm'. Got {runtime!r} instead."
            )
        X = np.ascontiguousarray(X, dtype=np.float32)
        threads = num_threads or self.num_threads
        forest = self.forest_
        if runtime != "lightgbm" and forest is not None and forest.explains:
            return split_rows(forest.contributions, X, threads, _MIN_ROWS_PER_THREAD)
        if runtime == "compiled":
            raise ArtifactError("This LightGBM model cannot be explained by the compiled runtime.")
        return np.asarray(
            self.booster_.predict(X, pred_contrib=True, num_threads=threads),
            dtype=np.float64,
        )

    def top_contributions(
        self, X: np.ndarray, k: int, *, num_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's ``k`` largest positive contributions: ``(feature, value)``, each (n, k).

        The same values as :meth:`contributions` followed by
        :func:`~riskflow.models._topk.top_positive` (feature -1 past a row's
        positive ones), but explained :data:`_TOP_BLOCK` rows at a time, so
        the full (n, F + 1) matrix never exists: for 74,566 rows it was 187 MB
        of fresh memory to fill, gather and sort.
        """
        from riskflow.models._topk import top_positive

        X = np.ascontiguousarray(X, dtype=np.float32)
        n_features = X.shape[1]

        def top(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            feature = np.empty((rows.shape[0], k), np.int64)
            value = np.empty((rows.shape[0], k), np.float64)
            for lo in range(0, rows.shape[0], _TOP_BLOCK):
                block = rows[lo : lo + _TOP_BLOCK]
                hi = lo + block.shape[0]
                contrib = self.contributions(block, num_threads=1)
                feature[lo:hi], value[lo:hi] = top_positive(contrib, n_features, k)
            return feature, value

        if X.shape[0] == 0:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float64)
        return split_rows(top, X, num_threads or self.num_threads, _MIN_ROWS_PER_THREAD)

    def feature_importance(self) -> np.ndarray:
        """Total split gain per feature."""
        return np.asarray(self.booster_.feature_importance("gain"), dtype=np.float64)


#: Rows below which a second thread costs more than it saves (~1 ms of TreeSHAP per row).
_MIN_ROWS_PER_THREAD = 8

#: Rows explained per TreeSHAP call in :meth:`LightGBMMember.top_contributions`:
#: their (rows, F + 1) contributions (1024 x 313 doubles, 2.5 MB) stay in L2.
_TOP_BLOCK = 1024


def _safe_name(name: str) -> str:
    # LightGBM rejects some JSON-special characters in feature names.
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name)
