"""Large zeroed arrays in their own anonymous mappings, without numpy's huge-page request.

numpy asks the kernel for transparent huge pages on every large array
(``madvise(MADV_HUGEPAGE)``). Where ``/sys/kernel/mm/transparent_hugepage/defrag``
is ``madvise`` (the Linux default), a page fault in such memory may first
compact memory to make a huge page, synchronously. In a process that has
loaded a million-row history (fragmented memory) that made first writes
slow: in the replay bench (2026-11-30), a 268 MB buffer cost 0.53-0.60 s of
system time through ``np.empty`` against 0.10 s through :func:`zeros`.
A plain mapping still gets huge pages where the kernel has them free
(``enabled=always``), and khugepaged may collapse it into them later.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

__all__ = ["zeros"]


def zeros(shape: int | tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """A C-contiguous zero-filled array in its own anonymous mapping (virtual until written).

    Freed with the array (the mapping is the array's base). Where ``mmap``
    has no anonymous mappings (Windows), ``np.zeros``.

    >>> a = zeros((2, 3), np.float32)
    >>> a.tolist(), a.flags.writeable, a.flags.c_contiguous
    ([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], True, True)
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if nbytes == 0 or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.zeros(shape, dtype)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buf, dtype).reshape(shape)
