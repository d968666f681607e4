"""JIT options for every feature kernel, in one place."""

from __future__ import annotations

from typing import Any

import numba

#: cache: compile once per machine (unit tests and CLI start fast afterwards).
#: fastmath stays off: the kernels test NaN (absent lat/lon, empty windows)
#: and ``nnan`` would let LLVM delete those tests; ``contract``/``afn`` alone
#: gain little here since the loop is memory-bound.
JIT_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "fastmath": False}


def njit(fn: Any) -> Any:
    """``numba.njit`` with the engine's options."""
    return numba.njit(**JIT_OPTIONS)(fn)


#: For kernels that never allocate: no reference counting. Passing a named
#: tuple of 16 arrays to a helper otherwise increfs/decrefs each array on every
#: call: measured 435 ns per entity lookup with it, 11 ns without it and inlined.
NO_ALLOC_OPTIONS: dict[str, Any] = {**JIT_OPTIONS, "_nrt": False}


def njit_noalloc(fn: Any) -> Any:
    """``njit`` for a kernel that allocates nothing (no NRT refcounting)."""
    return numba.njit(**NO_ALLOC_OPTIONS)(fn)


def njit_inline(fn: Any) -> Any:
    """For helpers taking named tuples of arrays: no refcounting, inlined at the IR level."""
    return numba.njit(inline="always", **NO_ALLOC_OPTIONS)(fn)


def _prefetch_noop(arr: Any, idx: Any) -> None:
    """Interpreted twin of :func:`prefetch` (``NUMBA_DISABLE_JIT=1``): a hint has no effect."""


def _make_prefetch() -> Any:
    """``prefetch(arr, flat_index)``: ask the CPU to start loading that element's cache line.

    ``llvm.prefetch`` (read, high locality): only a hint, it never faults and
    never changes a result. The kernel is bound by cache misses on state rows
    spread over tens of MB; asking for them a few transactions early overlaps
    those misses instead of paying them one after another.
    """
    if getattr(numba.config, "DISABLE_JIT", False):
        return _prefetch_noop

    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    def typer(typingctx: Any, arr: Any, idx: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.gep(ary.data, [args[1]])
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, keep in all cache levels, data
            return context.get_dummy_value()

        return types.void(arr, idx), codegen

    typer.__name__ = "prefetch"
    return intrinsic(typer)


#: ``prefetch(arr, flat_index)`` for kernels (see :func:`_make_prefetch`).
prefetch = _make_prefetch()


def _clz64_py(x: Any) -> int:
    """Interpreted twin of :func:`clz64` (``NUMBA_DISABLE_JIT=1``)."""
    return 64 - int(x).bit_length()


def _make_clz64() -> Any:
    """``clz64(x)``: leading zero bits of a uint64 (64 for 0), one instruction (``lzcnt``)."""
    if getattr(numba.config, "DISABLE_JIT", False):
        return _clz64_py
    from numba.cpython.unsafe.numbers import leading_zeros

    return leading_zeros


#: ``clz64(x)`` for kernels (see :func:`_make_clz64`).
clz64 = _make_clz64()
