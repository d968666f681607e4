"""A small synthetic fraud feature matrix, for tests, examples and benchmarks.

It stands in for the feature engine's output where a real catalogue is not
needed: skewed numeric columns (amount-like, count-like, ratios), a few NaNs,
and integer-coded categorical columns (an MCC-like code with many levels, a
channel-like code with few). The fraud signal mixes threshold effects (that
trees find easily) with smooth interactions (that a network finds easily), so
an ensemble has something to gain over either member.

>>> d = make_synthetic(n=1000, seed=1)
>>> d.X.shape, d.X.dtype.name, d.kinds[-2:]
((1000, 12), 'float32', ('categorical', 'categorical'))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticData", "make_synthetic"]

_DAY_MS = 86_400_000


@dataclass(frozen=True)
class SyntheticData:
    """A feature matrix with labels, times and catalogue-like metadata."""

    X: np.ndarray  # float32 (n, F)
    y: np.ndarray  # int8 (n,)
    ts: np.ndarray  # int64 epoch ms, sorted
    feature_names: tuple[str, ...]
    kinds: tuple[str, ...]  # "numeric" | "categorical" per column
    descriptions: tuple[str, ...]

    @property
    def categorical(self) -> tuple[int, ...]:
        """Indices of the categorical columns."""
        return tuple(i for i, k in enumerate(self.kinds) if k == "categorical")


def make_synthetic(
    n: int = 20_000,
    *,
    n_numeric: int = 10,
    fraud_rate: float = 0.02,
    days: float = 28.0,
    start_ms: int = 1_767_225_600_000,  # 2026-01-01
    seed: int = 0,
) -> SyntheticData:
    """Generate ``n`` rows: ``n_numeric`` numeric columns then two categorical ones."""
    if n_numeric < 6:
        raise ValueError(f"n_numeric must be >= 6. Got {n_numeric} instead.")
    rng = np.random.default_rng(seed)
    num = rng.standard_normal((n, n_numeric))
    amount = np.exp(3.5 + 1.2 * num[:, 0])  # log-normal amounts
    count = rng.poisson(np.exp(0.5 + 0.6 * num[:, 1]))  # skewed counts
    ratio = 1.0 / (1.0 + np.exp(-num[:, 2]))  # in (0, 1)
    mcc = rng.choice(60, size=n, p=_zipf(60, rng)) * 7 + 5000  # sparse integer codes
    channel = rng.choice(5, size=n, p=[0.5, 0.3, 0.1, 0.05, 0.05])
    mcc_effect = dict(zip(np.unique(mcc), rng.normal(0, 0.8, len(np.unique(mcc))), strict=True))
    logit = (
        1.1 * (num[:, 0] > 1.2)  # big amount (threshold)
        + 0.9 * np.tanh(num[:, 1] * num[:, 3])  # smooth interaction
        + 0.8 * num[:, 2] ** 2 * (num[:, 4] > 0)
        + 0.7 * np.sin(2.0 * num[:, 5])
        + np.vectorize(mcc_effect.get)(mcc)
        + np.array([0.0, 0.9, 0.4, 0.6, 1.2])[channel]
    )
    # Choose the intercept that gives the requested fraud rate.
    lo, hi = -20.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(logit + mid)))).mean() > fraud_rate:
            hi = mid
        else:
            lo = mid
    p = 1 / (1 + np.exp(-(logit + lo)))
    y = (rng.random(n) < p).astype(np.int8)
    X = np.column_stack(
        [amount, count, ratio, *[num[:, j] for j in range(3, n_numeric)], mcc, channel]
    ).astype(np.float32)
    X[rng.random(n) < 0.05, 3] = np.nan  # absent values, as the engine emits them
    ts = np.sort(start_ms + (rng.random(n) * days * _DAY_MS).astype(np.int64))
    names = (
        "amount",
        "tx_count_by_card_24h",
        "ratio_to_mean",
        *(f"signal_{j}" for j in range(3, n_numeric)),
        "mcc",
        "channel",
    )
    desc = (
        "Transaction amount",
        "Number of transactions on the card in the last 24 hours",
        "Amount relative to the card's usual amount",
        *(f"Synthetic signal {j}" for j in range(3, n_numeric)),
        "Merchant category code",
        "Payment channel",
    )
    kinds = ("numeric",) * n_numeric + ("categorical", "categorical")
    return SyntheticData(X, y, ts, names, kinds, desc)


def _zipf(k: int, rng: np.random.Generator) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** 1.1
    w = w[rng.permutation(k)]
    return w / w.sum()
