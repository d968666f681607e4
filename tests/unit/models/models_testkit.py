"""Shared small fitted models for the models tests (built once per session)."""

from __future__ import annotations

from functools import cache

from riskflow.models import Ensemble, SyntheticData, make_synthetic

#: Small enough to fit in about a second on one core.
FAST_LGBM = {"num_boost_round": 60, "early_stopping_rounds": 20}
FAST_MLP = {"max_epochs": 4, "patience": 2, "hidden": (32, 16)}


@cache
def data(n: int = 6000, seed: int = 0) -> SyntheticData:
    return make_synthetic(n=n, seed=seed, fraud_rate=0.04)


def split(d: SyntheticData) -> tuple[slice, slice, slice]:
    n = len(d.y)
    a, b = int(n * 0.6), int(n * 0.8)
    return slice(0, a), slice(a, b), slice(b, n)


def fit(seed: int = 0, **kw: object) -> Ensemble:
    d = data()
    tr, va, _ = split(d)
    params = {"lgbm_params": FAST_LGBM, "mlp_params": FAST_MLP, "seed": seed, **kw}
    return Ensemble(**params).fit(  # type: ignore[arg-type]
        d.X[tr],
        d.y[tr],
        d.X[va],
        d.y[va],
        feature_names=d.feature_names,
        kinds=d.kinds,
        descriptions=d.descriptions,
    )


@cache
def fitted(seed: int = 0) -> Ensemble:
    """A shared fitted model: do not mutate."""
    return fit(seed)
