"""Detection metrics for fraud scores: pure functions of labels and scores.

Training (:mod:`riskflow.train`) and replay both report these, so a backtest
and a training run print comparable numbers. Scores only need to rank
transactions (higher = riskier) except for :func:`brier_score`, which wants
probabilities.

>>> y = [0, 0, 1, 1]
>>> s = [0.1, 0.4, 0.35, 0.8]
>>> roc_auc(y, s), average_precision(y, s)
(0.75, 0.8333333333333333)
>>> recall_at_fpr(y, s, 0.0)
0.5
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_FPRS",
    "DEFAULT_TOP_K",
    "roc_auc",
    "average_precision",
    "recall_at_fpr",
    "precision_top_k_per_day",
    "brier_score",
    "evaluate",
    "fpr_key",
]

#: False-positive rates a fraud team can afford: 0.1 % to 1 % of legitimate
#: customers bothered. Keys of ``recall_at_fpr`` in reports are ``fpr_key(f)``.
DEFAULT_FPRS: tuple[float, ...] = (0.001, 0.003, 0.01)
#: Alerts investigators can review per day; the customary value in the
#: reproducible fraud-detection literature (Le Borgne et al.).
DEFAULT_TOP_K = 100
_DAY_MS = 86_400_000


def _check(y: Any, s: Any) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y).astype(np.int64, copy=False).ravel()
    s_arr = np.asarray(s, dtype=np.float64).ravel()
    if y_arr.shape != s_arr.shape:
        raise ValueError(
            f"labels and scores must have the same length. Got {y_arr.size} labels and "
            f"{s_arr.size} scores instead."
        )
    if y_arr.size and not np.isin(y_arr, (0, 1)).all():
        raise ValueError("labels must be 0 or 1. Got other values instead.")
    if not np.isfinite(s_arr).all():
        raise ValueError(
            f"scores must be finite. Got {int((~np.isfinite(s_arr)).sum())} NaN or infinite "
            "score(s) instead."
        )
    return y_arr, s_arr


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.size) and 0 < int(y.sum()) < y.size


def roc_auc(y: Sequence[int] | np.ndarray, s: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present (ties count half)."""
    y_arr, s_arr = _check(y, s)
    if not _both_classes(y_arr):
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_arr, s_arr))


def average_precision(y: Sequence[int] | np.ndarray, s: Sequence[float] | np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise).

    NaN without any positive. Ties are grouped, as in scikit-learn.
    """
    y_arr, s_arr = _check(y, s)
    if not y_arr.size or not y_arr.sum():
        return float("nan")
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y_arr, s_arr))


def recall_at_fpr(
    y: Sequence[int] | np.ndarray, s: Sequence[float] | np.ndarray, fpr: float
) -> float:
    """Highest recall (true-positive rate) reachable with a false-positive rate <= ``fpr``.

    Thresholds are the distinct scores; a tie is either all alerted or not.

    >>> recall_at_fpr([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.9, 0.8, 0.95], 0.25)
    1.0
    >>> recall_at_fpr([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.9, 0.8, 0.95], 0.2)
    0.5
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be in [0, 1]. Got {fpr!r} instead.")
    y_arr, s_arr = _check(y, s)
    if not _both_classes(y_arr):
        return float("nan")
    order = np.argsort(-s_arr, kind="stable")
    ys, ss = y_arr[order], s_arr[order]
    # Cut points: after the last row of each run of equal scores.
    last = np.r_[ss[1:] != ss[:-1], True]
    tp = np.cumsum(ys)[last]
    fp = np.cumsum(1 - ys)[last]
    n_pos, n_neg = int(ys.sum()), int(ys.size - ys.sum())
    ok = fp / n_neg <= fpr + 1e-12
    return float(tp[ok].max() / n_pos) if ok.any() else 0.0


def precision_top_k_per_day(
    y: Sequence[int] | np.ndarray,
    s: Sequence[float] | np.ndarray,
    event_time_ms: Sequence[int] | np.ndarray,
    k: int = DEFAULT_TOP_K,
) -> float:
    """Mean over UTC days of the share of frauds among that day's ``k`` highest scores.

    A day with fewer than ``k`` transactions is scored on all of them. Ties at
    the cut are broken by input order.

    >>> precision_top_k_per_day([1, 0, 0, 1, 1, 0], [0.9, 0.8, 0.1, 0.7, 0.2, 0.6],
    ...                         [0, 1, 2, 86_400_000, 86_400_001, 86_400_002], k=2)
    0.5
    """
    if k < 1:
        raise ValueError(f"k must be an int >= 1. Got {k!r} instead.")
    y_arr, s_arr = _check(y, s)
    t = np.asarray(event_time_ms, dtype=np.int64).ravel()
    if t.shape != y_arr.shape:
        raise ValueError(
            f"event_time_ms must have one entry per score. Got {t.size} for {y_arr.size} scores."
        )
    if not y_arr.size:
        return float("nan")
    day = t // _DAY_MS
    # Sort by day, then score descending, then input order.
    order = np.lexsort((np.arange(t.size), -s_arr, day))
    d_sorted = day[order]
    starts = np.r_[0, np.flatnonzero(d_sorted[1:] != d_sorted[:-1]) + 1]
    ends = np.r_[starts[1:], d_sorted.size]
    ys = y_arr[order]
    precisions = [ys[a : min(b, a + k)].mean() for a, b in zip(starts, ends, strict=True)]
    return float(np.mean(precisions))


def brier_score(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """Mean squared error of probabilities ``p`` against labels (lower is better).

    >>> round(brier_score([0, 1], [0.2, 0.6]), 6)
    0.1
    """
    y_arr, p_arr = _check(y, p)
    if p_arr.size and (p_arr.min() < 0 or p_arr.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]. Got values outside instead.")
    return float(np.mean((p_arr - y_arr) ** 2)) if y_arr.size else float("nan")


def fpr_key(fpr: float) -> str:
    """The report key of a false-positive rate: ``0.001 -> "0.001"``."""
    return f"{fpr:g}"


def evaluate(
    y: Sequence[int] | np.ndarray,
    s: Sequence[float] | np.ndarray,
    event_time_ms: Sequence[int] | np.ndarray | None = None,
    *,
    fprs: Iterable[float] = DEFAULT_FPRS,
    k: int = DEFAULT_TOP_K,
    probabilities: bool = False,
) -> dict[str, Any]:
    """Every metric above as one JSON-ready dict.

    Keys: ``n``, ``n_positive``, ``roc_auc``, ``average_precision``,
    ``recall_at_fpr`` (``{"0.001": ..., ...}``), and with event times
    ``precision_top_k_per_day`` and ``top_k``; with ``probabilities=True``
    also ``brier``. Undefined values (one class only) are ``None``.
    """
    y_arr, s_arr = _check(y, s)

    def clean(v: float) -> float | None:
        return None if np.isnan(v) else float(v)

    out: dict[str, Any] = {
        "n": int(y_arr.size),
        "n_positive": int(y_arr.sum()),
        "roc_auc": clean(roc_auc(y_arr, s_arr)),
        "average_precision": clean(average_precision(y_arr, s_arr)),
        "recall_at_fpr": {fpr_key(f): clean(recall_at_fpr(y_arr, s_arr, f)) for f in fprs},
    }
    if event_time_ms is not None:
        out["precision_top_k_per_day"] = clean(
            precision_top_k_per_day(y_arr, s_arr, event_time_ms, k)
        )
        out["top_k"] = int(k)
    if probabilities:
        out["brier"] = clean(brier_score(y_arr, s_arr))
    return out
