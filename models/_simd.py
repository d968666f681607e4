"""Float64 vectors of :data:`LANES` lanes for numba kernels: load, store, ``acc + s * w``, fused.

Why: numba leaves LLVM's SLP vectoriser off, and its loop vectoriser only
vectorises an innermost loop, so a kernel that wants accumulators to stay in
registers across a reduction (``acc[o] += v * w[k, o]`` over ``k``, for a
fixed tile of ``o``) gets scalar code, or vector code that loads and stores
the accumulators from memory at every ``k``. These intrinsics emit LLVM
``<8 x double>`` values directly, so the accumulators are SSA values that
live in registers.

Each lane of :func:`vaxpy` does exactly what the scalar code does, one IEEE
multiply then one IEEE add, with no fast-math flags: LLVM may not fuse them
into an FMA or reorder them, so results are bit-identical to ``acc + s * w``
in float64. :func:`vfma` is LLVM's ``llvm.fma``: one correctly rounded
``acc + s * w`` (one instruction with FMA hardware; a correctly rounded
library emulation without, so the same bits everywhere). It equals
:func:`vaxpy` whenever ``s * w`` is exact in float64, e.g. when ``s`` and
``w`` are float32 values (24-bit significands, a 48-bit product): the MLP's
first layer, whose inputs and weights are float32 values, gets the same bits
with half the vector operations.

:func:`f64_bits` and :func:`f64_from_bits` reinterpret a float64's bits as
an int64 and back (for a log without a libm call, which keeps loops
vectorisable).

Under ``NUMBA_DISABLE_JIT=1`` the names are their interpreted twins (numpy
slices of :data:`LANES` and the same arithmetic), so kernels still run, and give the
same numbers, without compilation.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = ["LANES", "vload", "vstore", "vaxpy", "vfma", "f64_bits", "f64_from_bits"]

#: Doubles per vector: one 512-bit register with AVX-512 (the MLP's first
#: layer, 2026-11-29, interleaved medians: 6.8 us per row against 10.1 with 4
#: lanes). Without AVX-512, LLVM splits each vector into 256-bit (or SSE)
#: halves: slower, same numbers.
LANES = 8


def _vload_twin(arr: np.ndarray, i: int) -> np.ndarray:
    """Interpreted twin of :func:`vload`: ``arr[i : i + LANES]`` as a new vector."""
    return np.array(arr[i : i + LANES], dtype=np.float64)


def _vstore_twin(arr: np.ndarray, i: int, v: np.ndarray) -> None:
    """Interpreted twin of :func:`vstore`."""
    arr[i : i + LANES] = v


def _vaxpy_twin(acc: np.ndarray, s: float, w: np.ndarray) -> np.ndarray:
    """Interpreted twin of :func:`vaxpy`: lane by lane ``acc + s * w``."""
    return acc + s * w


def _vfma_twin(acc: np.ndarray, s: float, w: np.ndarray) -> np.ndarray:
    """Interpreted twin of :func:`vfma`, for exact products only (numpy has no fused multiply-add).

    ``acc + s * w`` rounds once, like the fused operation, when ``s * w`` is
    exact: the case of float32 values, the only one the kernels use it for.
    """
    if not (np.float32(s) == s and np.array_equal(w.astype(np.float32), w)):
        raise ValueError(
            "vfma's interpreted twin emulates a fused multiply-add only for float32-valued "
            f"factors, whose product is exact. Got s={s!r} instead."
        )
    return acc + s * w


def _make_intrinsics() -> tuple[Any, Any, Any, Any]:
    """``(vload, vstore, vaxpy, vfma)`` as numba intrinsics over an LLVM ``<LANES x double>``."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic, models, register_model

    vec_ir = ir.VectorType(ir.DoubleType(), LANES)

    class F64Vec(types.Type):
        def __init__(self) -> None:
            super().__init__(name=f"f64x{LANES}")

    f64vec = F64Vec()

    @register_model(F64Vec)
    class _F64VecModel(models.PrimitiveModel):
        def __init__(self, dmm: Any, fe_type: Any) -> None:
            super().__init__(dmm, fe_type, vec_ir)

    def pointer(context: Any, builder: Any, arrty: Any, arr: Any, i: Any) -> Any:
        ary = context.make_array(arrty)(context, builder, arr)
        return builder.bitcast(builder.gep(ary.data, [i]), vec_ir.as_pointer())

    def check(arr: Any) -> None:
        if not (isinstance(arr, types.Array) and arr.dtype == types.float64 and arr.layout == "C"):
            raise TypeError(f"expected a C-contiguous float64 array. Got {arr} instead.")

    def vload_typer(typingctx: Any, arr: Any, i: Any) -> Any:
        check(arr)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return builder.load(pointer(context, builder, sig.args[0], args[0], args[1]), align=8)

        return f64vec(arr, i), codegen

    def vstore_typer(typingctx: Any, arr: Any, i: Any, v: Any) -> Any:
        check(arr)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            builder.store(
                args[2], pointer(context, builder, sig.args[0], args[0], args[1]), align=8
            )
            return context.get_dummy_value()

        return types.none(arr, i, v), codegen

    def splat(context: Any, builder: Any, sig: Any, s_v: Any) -> Any:
        s_v = context.cast(builder, s_v, sig.args[1], types.float64)
        lane0 = builder.insert_element(ir.Constant(vec_ir, ir.Undefined), s_v, ir.IntType(32)(0))
        return builder.shuffle_vector(
            lane0,
            ir.Constant(vec_ir, ir.Undefined),
            ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES),
        )

    def vaxpy_typer(typingctx: Any, acc: Any, s: Any, w: Any) -> Any:
        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            acc_v, s_v, w_v = args
            # No fast-math flags: a multiply rounded, then an add rounded, as in scalar code.
            return builder.fadd(acc_v, builder.fmul(splat(context, builder, sig, s_v), w_v))

        return f64vec(acc, s, w), codegen

    def vfma_typer(typingctx: Any, acc: Any, s: Any, w: Any) -> Any:
        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            acc_v, s_v, w_v = args
            fnty = ir.FunctionType(vec_ir, [vec_ir] * 3)
            fma = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{LANES}f64")
            return builder.call(fma, [splat(context, builder, sig, s_v), w_v, acc_v])

        return f64vec(acc, s, w), codegen

    typers = (
        (vload_typer, "vload"),
        (vstore_typer, "vstore"),
        (vaxpy_typer, "vaxpy"),
        (vfma_typer, "vfma"),
    )
    for typer, name in typers:
        typer.__name__ = name
    return (
        intrinsic(vload_typer),
        intrinsic(vstore_typer),
        intrinsic(vaxpy_typer),
        intrinsic(vfma_typer),
    )


if getattr(numba.config, "DISABLE_JIT", False):
    vload, vstore, vaxpy, vfma = _vload_twin, _vstore_twin, _vaxpy_twin, _vfma_twin
else:
    #: ``vload(arr, i)``: ``arr[i : i + LANES]`` as a vector (1-D C float64 array).
    #: ``vstore(arr, i, v)``: write a vector there. ``vaxpy(acc, s, w)``: ``acc + s * w``.
    #: ``vfma(acc, s, w)``: ``acc + s * w`` rounded once.
    vload, vstore, vaxpy, vfma = _make_intrinsics()


def _bits_twin(x: float) -> int:
    """Interpreted twin of :func:`f64_bits`."""
    return int(np.array(x, dtype=np.float64).view(np.int64))


def _from_bits_twin(b: int) -> float:
    """Interpreted twin of :func:`f64_from_bits`."""
    return float(np.array(b, dtype=np.int64).view(np.float64))


def _make_bitcasts() -> tuple[Any, Any]:
    """``(f64_bits, f64_from_bits)``: a float64's IEEE bits as an int64 and back (LLVM bitcast)."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    def bits_typer(typingctx: Any, x: Any) -> Any:
        if x != types.float64:
            raise TypeError(f"expected a float64. Got {x} instead.")

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.IntType(64))

        return types.int64(x), codegen

    def from_bits_typer(typingctx: Any, b: Any) -> Any:
        if b != types.int64:
            raise TypeError(f"expected an int64. Got {b} instead.")

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(b), codegen

    bits_typer.__name__ = "f64_bits"
    from_bits_typer.__name__ = "f64_from_bits"
    return intrinsic(bits_typer), intrinsic(from_bits_typer)


if getattr(numba.config, "DISABLE_JIT", False):
    f64_bits, f64_from_bits = _bits_twin, _from_bits_twin
else:
    #: ``f64_bits(x)``: the IEEE bits of float64 ``x`` as an int64; ``f64_from_bits(b)``: back.
    #: No call, no memory: loops using them still vectorise.
    f64_bits, f64_from_bits = _make_bitcasts()
