"""warm_up compiles every kernel the engine runs, growth included, before a worker decides."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json
from riskflow.features import warm_up
from riskflow.features._kernels._compute import _compute_batch
from riskflow.features._kernels._hash import (
    _batch_keys, _count_live, _move_rows, _rebuild_map
)
kernels = (_compute_batch, _batch_keys, _count_live, _rebuild_map, _move_rows)
before = [len(k.signatures) for k in kernels]
warm_up()
print(json.dumps([before, [len(k.signatures) for k in kernels]]))
"""


def test_warm_up_compiles_the_feature_and_growth_kernels_in_a_fresh_process() -> None:
    # A fresh interpreter: a dispatcher lists a signature only once it has been
    # compiled or loaded from numba's cache in this process.
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=600
    )
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == [0, 0, 0, 0, 0]
    assert all(n >= 1 for n in after), after  # the growth kernels too: both tables grew


def test_read_only_input_uses_the_warmed_kernel_and_gives_the_same_features() -> None:
    """Parquet-backed batches are read-only views; the engine copies them rather than
    have numba compile a second kernel for that type (which warm_up would not cover)."""
    import numpy as np

    from riskflow.batch import TxBatch
    from riskflow.features import FeatureEngine, warm_up
    from riskflow.features._kernels._compute import _compute_batch

    warm_up()
    rng = np.random.default_rng(3)
    n = 300
    keys = {a: rng.integers(1, 40, n).astype(np.uint64) for a in TxBatch._fields[8:]}
    tx = TxBatch(
        tx_id=np.array([f"t{i}" for i in range(n)], dtype=object),
        ts=np.sort(rng.integers(0, 10**9, n)).astype(np.int64),
        amount=rng.uniform(1, 900, n),
        mcc=np.full(n, 5411, np.int32),
        channel=np.zeros(n, np.int8),
        entry_mode=np.zeros(n, np.int8),
        lat=rng.uniform(40, 50, n),
        lon=rng.uniform(0, 10, n),
        **keys,
    )
    frozen = []
    for a in tx:
        b = a.copy()
        b.flags.writeable = False
        frozen.append(b)
    compiled = len(_compute_batch.signatures)
    X_frozen = FeatureEngine().process(TxBatch(*frozen))
    assert len(_compute_batch.signatures) == compiled
    np.testing.assert_array_equal(X_frozen, FeatureEngine().process(tx))
