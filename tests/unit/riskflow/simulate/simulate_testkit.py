"""Shared small datasets for the simulator tests (built once per session)."""

from __future__ import annotations

import functools

import pandas as pd

from riskflow.simulate import SimulationConfig, iter_chunks

#: A small world with a high fraud rate, so every scenario shows up many times.
RICH = SimulationConfig(customers=2_500, days=28, seed=11, fraud_rate=0.03)


@functools.cache
def frames(config: SimulationConfig = RICH) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All transactions and labels of ``config`` (cached; do not mutate)."""
    txs, labels = zip(*iter_chunks(config), strict=True)
    return pd.concat(txs, ignore_index=True), pd.concat(labels, ignore_index=True)
