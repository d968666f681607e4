"""Transaction simulator: realistic card payment streams with fraud, delayed labels and drift.

Read :mod:`riskflow.simulate.config` first (what can be set), then
:mod:`riskflow.simulate.engine` (the day loop and the output layout). The
world (entities) is in ``_world``, legitimate behaviour in ``_legit`` and the
fraud scenarios in ``_scenarios``.

>>> from riskflow.simulate import SimulationConfig, iter_chunks
>>> tx, labels = next(iter_chunks(SimulationConfig(customers=200, days=1, seed=3)))
>>> list(tx.columns[:3]), str(tx["card_token"].iloc[0])[:4]
(['schema_version', 'tx_id', 'event_time'], 'tok_')
"""

from __future__ import annotations

from riskflow.simulate.config import (
    DEFAULT_SCENARIO_MIX,
    DRIFTS,
    PRESETS,
    SCENARIOS,
    SimulationConfig,
)
from riskflow.simulate.engine import (
    Progress,
    SimulationOutputError,
    SimulationSummary,
    iter_chunks,
    simulate,
)

__all__ = [
    "SimulationConfig",
    "SimulationSummary",
    "SimulationOutputError",
    "Progress",
    "simulate",
    "iter_chunks",
    "SCENARIOS",
    "DRIFTS",
    "PRESETS",
    "DEFAULT_SCENARIO_MIX",
]
