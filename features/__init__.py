"""Point-in-time streaming features: 300 fraud features in numba, one path for stream and replay.

Read first: :mod:`._catalogue` (what is computed, and why each window family
is decayed or exact), :mod:`._engine` (the API), :mod:`._kernels._compute`
(the kernel).

>>> from riskflow.features import FeatureEngine, catalogue
>>> eng = FeatureEngine()
>>> eng.n_features == len(catalogue()) >= 200
True
"""

from __future__ import annotations

from ._catalogue import FeatureSpec, catalogue, catalogue_hash
from ._engine import FeatureEngine, FeatureInputError, warm_up
from ._state import SnapshotError

__all__ = [
    "FeatureEngine",
    "FeatureSpec",
    "FeatureInputError",
    "SnapshotError",
    "catalogue",
    "catalogue_hash",
    "warm_up",
]
