"""Rows of a batch split between threads, for kernels that release the GIL.

Every serving kernel scores each row alone (a row's value does not depend on
the rows around it), so a batch can be cut into contiguous slices scored side
by side and put back together with the same bits as one call. The caller's
thread scores the first slice itself; the others go to one pool per process,
kept between calls: a stream worker scores a batch every few milliseconds,
and starting threads for each would cost more than a small batch's scoring.

>>> import numpy as np
>>> X = np.arange(12.0).reshape(6, 2)
>>> split_rows(lambda x: x.sum(axis=1), X, threads=2, min_rows=2)
array([ 1.,  5.,  9., 13., 17., 21.])
>>> split_rows(lambda x: (x[:, 0], x[:, 1] > 6), X, threads=2, min_rows=2)
(array([ 0.,  2.,  4.,  6.,  8., 10.]), array([False, False, False,  True,  True,  True]))
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["split_rows"]

_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The process's scoring pool of ``workers`` threads (one per size, never shut down:
    a caller may still be submitting to one while another size is first asked for)."""
    with _LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(
                workers, thread_name_prefix="riskflow-score"
            )
        return pool


def split_rows(fn: Callable[[np.ndarray], Any], X: np.ndarray, threads: int, min_rows: int) -> Any:
    """``fn(X)`` computed over contiguous row slices in up to ``threads`` threads.

    ``fn`` returns an array whose first axis is the rows, or a tuple of such
    arrays; the slices' results are concatenated (element by element for a
    tuple). No slice gets fewer than ``min_rows`` rows (below that a thread
    hand-off costs more than it saves), so small batches run in the caller's
    thread alone.
    """
    parts = min(int(threads), max(X.shape[0] // max(int(min_rows), 1), 1))
    if parts <= 1:
        return fn(X)
    bounds = np.linspace(0, X.shape[0], parts + 1).astype(np.int64)
    slices = [X[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    pool = _pool(parts - 1)
    futures = [pool.submit(fn, s) for s in slices[1:]]
    try:
        first = fn(slices[0])
    finally:
        rest = [f.result() for f in futures]  # waits for every slice, even on error
    if isinstance(first, tuple):
        return tuple(np.concatenate(parts) for parts in zip(first, *rest, strict=True))
    return np.concatenate([first, *rest])
