"""Blending member scores and calibrating the blend into a probability.

Both steps are fitted on the validation window (never on training rows, which
the members have memorised) and hold only a handful of numbers, stored as JSON.

Blend: each member's logit is standardised (validation mean and deviation),
then either weighted (``"weighted"``: convex weights searched on a grid; of
those within one bootstrap standard error of the best validation average
precision, the most even split) or stacked (``"stacking"``:
a regularised logistic regression on the standardised logits).

Calibration: Platt scaling (a logistic curve on the blend) or isotonic
regression (a monotone step curve, interpolated). Isotonic curves are flat on
stretches, which would tie many transactions; a 1e-6 share of a logistic curve
is mixed in so the probability stays strictly increasing in the blend and the
ensemble's ranking (hence ROC AUC, AP, top-k) is exactly the blend's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["Blender", "Calibrator", "blend_and_calibrate"]

#: Grid step of the blend weight: finer steps only fit validation noise.
_WEIGHT_STEP = 0.02
#: Share of a logistic curve mixed into an isotonic one to break its ties.
_TIE_BREAK = 1e-6
#: Platt slope used when validation gives a non-positive one (ranking kept, probability flat).
_FLAT_SLOPE = 1e-6
#: Below this many validation frauds an isotonic curve is mostly noise, so
#: calibration="auto" uses Platt scaling instead.
_MIN_POSITIVES_ISOTONIC = 100


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


#: Bootstrap resamples for the standard error of validation AP.
_BOOTSTRAP = 100


def _bootstrap_se(y: np.ndarray, s: np.ndarray, n: int = _BOOTSTRAP, seed: int = 0) -> float:
    """Bootstrap standard error of average precision (seeded, deterministic)."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if 0 < int(y[idx].sum()) < len(idx):
            vals.append(average_precision_score(y[idx], s[idx]))
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


class Blender:
    """Combine member logits (n, m) into one score.

    >>> b = Blender("weighted").fit(np.array([[0., 1.], [1., 0.], [2., 3.], [3., 2.]]),
    ...                             np.array([0, 0, 1, 1]))
    >>> b.transform(np.array([[2., 3.]])).shape
    (1,)
    """

    def __init__(self, method: str = "weighted") -> None:
        self.method = method

    def fit(self, Z: np.ndarray, y: np.ndarray) -> Blender:
        from sklearn.metrics import average_precision_score

        if self.method not in ("weighted", "stacking"):
            raise ValueError(
                "The 'blend' parameter of Ensemble must be 'weighted' or 'stacking'. "
                f"Got {self.method!r} instead."
            )
        Z = np.asarray(Z, dtype=np.float64)
        y = np.asarray(y)
        self.mean_ = Z.mean(axis=0)
        sd = Z.std(axis=0)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        S = (Z - self.mean_) / self.scale_
        m = Z.shape[1]
        both = 0 < int(y.sum()) < len(y)
        if m == 1:
            self.weights_, self.intercept_ = np.ones(1), 0.0
        elif self.method == "stacking" and both:
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1.0, max_iter=1000).fit(S, y)
            self.weights_, self.intercept_ = lr.coef_[0].astype(np.float64), float(lr.intercept_[0])
        elif m == 2 and both:
            grid = np.round(np.arange(0.0, 1.0 + 1e-9, _WEIGHT_STEP), 10)
            aps = np.array(
                [average_precision_score(y, w * S[:, 0] + (1 - w) * S[:, 1]) for w in grid]
            )
            # One-standard-error rule: validation windows hold few known frauds
            # (most chargebacks arrive after the cut-off), so AP differences
            # smaller than its bootstrap standard error are noise. Among the
            # weights within one SE of the best, take the one closest to an
            # even split (the blend that averages the members' errors out).
            top = int(np.argmax(aps))
            se = _bootstrap_se(y, grid[top] * S[:, 0] + (1 - grid[top]) * S[:, 1])
            near = np.flatnonzero(aps >= aps[top] - se - 1e-12)
            w = float(grid[near[np.argmin(np.abs(grid[near] - 0.5))]])
            self.weights_, self.intercept_ = np.array([w, 1.0 - w]), 0.0
            self.valid_ap_grid_ = aps
            self.valid_ap_se_ = se
        else:
            self.weights_, self.intercept_ = np.full(m, 1.0 / m), 0.0
        return self

    def transform(self, Z: np.ndarray) -> np.ndarray:
        """The blended score (a logit-like real number), float64 (n,)."""
        S = (np.asarray(Z, dtype=np.float64) - self.mean_) / self.scale_
        return S @ self.weights_ + self.intercept_

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "weights": self.weights_.tolist(),
            "intercept": float(self.intercept_),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Blender:
        b = cls(d["method"])
        b.mean_ = np.asarray(d["mean"], dtype=np.float64)
        b.scale_ = np.asarray(d["scale"], dtype=np.float64)
        b.weights_ = np.asarray(d["weights"], dtype=np.float64)
        b.intercept_ = float(d["intercept"])
        if not (b.mean_.shape == b.scale_.shape == b.weights_.shape):
            raise ValueError("blend parameters have inconsistent lengths")
        return b


class Calibrator:
    """Map a blended score to a calibrated probability.

    ``method``: ``"platt"``, ``"isotonic"`` or ``"auto"`` (isotonic with at
    least 100 validation frauds, else Platt).

    >>> c = Calibrator("platt").fit(np.array([-2., -1., 0., 1., 2., 3.]), np.array([0, 0, 1, 0, 1, 1]))
    >>> p = c.predict(np.array([-5., 5.]))
    >>> bool(0 < p[0] < 0.5 < p[1] < 1)
    True
    """

    def __init__(self, method: str = "auto") -> None:
        self.method = method

    def fit(self, s: np.ndarray, y: np.ndarray) -> Calibrator:
        if self.method not in ("auto", "platt", "isotonic"):
            raise ValueError(
                "The 'calibration' parameter of Ensemble must be 'auto', 'platt' or 'isotonic'. "
                f"Got {self.method!r} instead."
            )
        s = np.asarray(s, dtype=np.float64)
        y = np.asarray(y).astype(np.float64)
        method = self.method
        if method == "auto":
            method = "isotonic" if y.sum() >= _MIN_POSITIVES_ISOTONIC else "platt"
        self.method_ = method
        self.a_, self.b_ = self._platt(s, y)
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
            self.x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
            self.y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        else:
            self.x_ = self.y_ = np.zeros(0)
        return self

    @staticmethod
    def _platt(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        if not 0 < y.sum() < len(y):
            p = float(np.clip(y.mean() if len(y) else 0.5, 1e-6, 1 - 1e-6))
            return 0.0, float(np.log(p / (1 - p)))
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, max_iter=1000).fit(s.reshape(-1, 1), y.astype(int))
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        if a <= 0.0:
            # Validation shows no sign that a higher blend means more fraud (a
            # handful of known frauds can even tilt the fit negative). Never
            # invert the members' ranking on such evidence: the probability is
            # the base rate, kept strictly increasing in the blend.
            p = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
            a = _FLAT_SLOPE
            b = float(np.log(p / (1 - p))) - a * float(np.mean(s))
        return a, b

    def predict(self, s: np.ndarray) -> np.ndarray:
        """Calibrated probabilities in [0, 1], float64 (n,)."""
        s = np.asarray(s, dtype=np.float64)
        platt = _sigmoid(self.a_ * s + self.b_)
        if self.method_ == "platt":
            return platt
        iso = np.interp(s, self.x_, self.y_)
        # The logistic share is increasing only if Platt's slope is positive.
        tie = platt if self.a_ > 0 else _sigmoid(s)
        return (1.0 - _TIE_BREAK) * iso + _TIE_BREAK * tie

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "fitted_method": self.method_,
            "platt": {"a": self.a_, "b": self.b_},
            "isotonic": {"x": self.x_.tolist(), "y": self.y_.tolist()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        c = cls(d["method"])
        c.method_ = d["fitted_method"]
        if c.method_ not in ("platt", "isotonic"):
            raise ValueError(f"unknown calibration method {c.method_!r}")
        c.a_, c.b_ = float(d["platt"]["a"]), float(d["platt"]["b"])
        c.x_ = np.asarray(d["isotonic"]["x"], dtype=np.float64)
        c.y_ = np.asarray(d["isotonic"]["y"], dtype=np.float64)
        if c.method_ == "isotonic" and (c.x_.size == 0 or c.x_.shape != c.y_.shape):
            raise ValueError("isotonic calibration needs matching, non-empty x and y")
        return c


def blend_and_calibrate(Z: np.ndarray, blender: Blender, calibrator: Calibrator) -> np.ndarray:
    """``calibrator.predict(blender.transform(Z))`` in one compiled pass.

    The serving path: at small batches the numpy version spends most of its
    time in per-call overhead. Equal to the numpy version to rounding.
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    out = np.empty(Z.shape[0], dtype=np.float64)
    _blend_calibrate(
        Z,
        blender.mean_,
        blender.scale_,
        blender.weights_,
        blender.intercept_,
        calibrator.a_,
        calibrator.b_,
        calibrator.x_,
        calibrator.y_,
        calibrator.method_ == "isotonic",
        _TIE_BREAK,
        out,
    )
    return out


@njit(cache=True, nogil=True, inline="always")
def _sig(z):  # pragma: no cover - compiled
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    ez = np.exp(z)
    return ez / (1.0 + ez)


@njit(cache=True, nogil=True)
def _blend_calibrate(
    Z, mean, scale, weights, intercept, a, b, iso_x, iso_y, isotonic, tie_break, out
):  # pragma: no cover - compiled; parity-tested against Blender/Calibrator
    m = Z.shape[1]
    k = iso_x.size
    for i in range(Z.shape[0]):
        s = intercept
        for j in range(m):
            s += (Z[i, j] - mean[j]) / scale[j] * weights[j]
        platt = _sig(a * s + b)
        if not isotonic:
            out[i] = platt
            continue
        if s <= iso_x[0]:
            iso = iso_y[0]
        elif s >= iso_x[k - 1]:
            iso = iso_y[k - 1]
        else:
            lo, hi = 0, k - 1  # iso_x[lo] < s < iso_x[hi]
            while hi - lo > 1:
                mid = (lo + hi) >> 1
                if iso_x[mid] <= s:
                    lo = mid
                else:
                    hi = mid
            dx = iso_x[hi] - iso_x[lo]
            iso = (
                iso_y[hi]
                if dx == 0.0
                else iso_y[lo] + (s - iso_x[lo]) * (iso_y[hi] - iso_y[lo]) / dx
            )
        tie = platt if a > 0 else _sig(s)
        out[i] = (1.0 - tie_break) * iso + tie_break * tie
