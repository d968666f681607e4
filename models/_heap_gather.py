"""AVX-512 gathers for the heap kernel: one tree level, or one leaf sum, for 16 rows at once.

Why: in :func:`riskflow.models._heap_trees._predict_heap` every row's step
through a level is a chain of scalar loads (node index, node code, feature
value, threshold), ~3 ns per row and level on real rows. One ``vpgatherdd`` /
``vgatherdps`` loads the code, threshold and feature value of 16 rows in one
instruction each, and the step's arithmetic runs on 16 lanes.

:func:`heap_level` does one level for rows ``16 g .. 16 g + 15`` of a block:
node indices ``kbuf[16 g:][:16]`` (int32, tree-local heap indices), each
lane's row at ``X.ravel()[x0 + rowoff[lane] + feature]``. It applies the
folded numerical rule (module docstring of ``_heap_trees``) to every lane,
``go_left = (x <= thr32) | (isnan(x) & nan_left)``, with ``thr32`` the
largest float32 not above the float64 threshold, which for a float32 ``x``
decides exactly as ``float64(x) <= threshold`` does. It returns the lanes
whose node was special (sign bit of the code) as a bit mask; the caller
redoes those lanes with the scalar rule. :func:`leaf_add` adds each lane's
bottom-slot value to its float64 accumulator (one IEEE add per lane, no
fast-math flags: each row sums its trees in tree order, as the scalar kernel
does).

The intrinsics are x86's own (``llvm.x86.avx512.mask.gather.*``), not
LLVM's generic ``llvm.masked.gather``, which LLVM may turn into scalar loads
on CPUs it believes have slow gathers (the VM reports this Sapphire Rapids
as "rocketlake"). :data:`AVAILABLE` is False without AVX-512 (or under
``NUMBA_DISABLE_JIT``): the scalar kernel serves, with the same bits.
"""

from __future__ import annotations

from typing import Any

import numba

__all__ = ["AVAILABLE", "LANES", "heap_level", "leaf_add"]

#: Rows per gather: one 512-bit register of int32 / float32.
LANES = 16


def _host_has_avx512() -> bool:
    try:
        from llvmlite import binding as ll

        feats = ll.get_host_cpu_features()
        return bool(feats.get("avx512f", False))
    except Exception:  # pragma: no cover - platform dependent
        return False


AVAILABLE = (not getattr(numba.config, "DISABLE_JIT", False)) and _host_has_avx512()


def _make() -> tuple[Any, Any]:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    i1, i8, i16, i32, i64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))
    f32, f64 = ir.FloatType(), ir.DoubleType()
    v16i32 = ir.VectorType(i32, 16)
    v8i32 = ir.VectorType(i32, 8)
    v16f32 = ir.VectorType(f32, 16)
    v8f64 = ir.VectorType(f64, 8)
    v16i1 = ir.VectorType(i1, 16)
    v8i1 = ir.VectorType(i1, 8)
    i8p = i8.as_pointer()

    def data(context: Any, builder: Any, arrty: Any, arr: Any, offset: Any) -> Any:
        """``&arr[offset]`` (1-D C array, int64 offset) as an i8*."""
        ary = context.make_array(arrty)(context, builder, arr)
        return builder.bitcast(builder.gep(ary.data, [offset]), i8p)

    def gather(
        builder: Any, name: str, vty: Any, ity: Any, mty: Any, base: Any, idx: Any, scale: int
    ) -> Any:
        fnty = ir.FunctionType(vty, [vty, i8p, ity, mty, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        ones = ir.Constant(mty, [1] * mty.count)
        return builder.call(fn, [ir.Constant(vty, None), base, idx, ones, i32(scale)])

    def splat32(builder: Any, v: Any) -> Any:
        lane0 = builder.insert_element(ir.Constant(v16i32, ir.Undefined), v, i32(0))
        return builder.shuffle_vector(
            lane0, ir.Constant(v16i32, ir.Undefined), ir.Constant(v16i32, [0] * 16)
        )

    @intrinsic
    def heap_level(
        typingctx: Any,
        X: Any,
        x0: Any,
        rowoff: Any,
        code: Any,
        thr: Any,
        hn: Any,
        kbuf: Any,
        g: Any,
    ) -> Any:
        sig = types.int64(X, x0, rowoff, code, thr, hn, kbuf, g)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            X_, x0_, ro_, code_, thr_, hn_, kb_, g_ = args
            tys = sig.args
            g0 = builder.mul(context.cast(builder, g_, tys[7], types.int64), i64(16))
            kp = builder.bitcast(data(context, builder, tys[6], kb_, g0), v16i32.as_pointer())
            kv = builder.load(kp, align=4)
            rp = builder.bitcast(data(context, builder, tys[2], ro_, g0), v16i32.as_pointer())
            rv = builder.load(rp, align=4)
            hn64 = context.cast(builder, hn_, tys[5], types.int64)
            cbase = data(context, builder, tys[3], code_, hn64)
            tbase = data(context, builder, tys[4], thr_, hn64)
            xbase = data(
                context, builder, tys[0], X_, context.cast(builder, x0_, tys[1], types.int64)
            )
            cv = gather(
                builder, "llvm.x86.avx512.mask.gather.dpi.512", v16i32, v16i32, v16i1, cbase, kv, 4
            )
            tv = gather(
                builder, "llvm.x86.avx512.mask.gather.dps.512", v16f32, v16i32, v16i1, tbase, kv, 4
            )
            feat = builder.and_(cv, ir.Constant(v16i32, [(1 << 30) - 1] * 16))
            xv = gather(
                builder,
                "llvm.x86.avx512.mask.gather.dps.512",
                v16f32,
                v16i32,
                v16i1,
                xbase,
                builder.add(rv, feat),
                4,
            )
            le = builder.fcmp_ordered("<=", xv, tv)
            uno = builder.fcmp_unordered("uno", xv, xv)
            nl = builder.icmp_signed(
                "!=",
                builder.and_(cv, ir.Constant(v16i32, [1 << 30] * 16)),
                ir.Constant(v16i32, [0] * 16),
            )
            go = builder.or_(le, builder.and_(uno, nl))
            go32 = builder.zext(go, v16i32)
            nk = builder.sub(builder.add(builder.add(kv, kv), ir.Constant(v16i32, [2] * 16)), go32)
            builder.store(nk, kp, align=4)
            special = builder.icmp_signed("<", cv, ir.Constant(v16i32, [0] * 16))
            return builder.zext(builder.bitcast(special, i16), i64)

        return sig, codegen

    @intrinsic
    def leaf_add(
        typingctx: Any, leaf: Any, hl: Any, bottom: Any, kbuf: Any, g: Any, acc: Any
    ) -> Any:
        sig = types.none(leaf, hl, bottom, kbuf, g, acc)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            leaf_, hl_, bot_, kb_, g_, acc_ = args
            tys = sig.args
            g0 = builder.mul(context.cast(builder, g_, tys[4], types.int64), i64(16))
            kp = builder.bitcast(data(context, builder, tys[3], kb_, g0), v16i32.as_pointer())
            kv = builder.load(kp, align=4)
            bot = builder.trunc(context.cast(builder, bot_, tys[2], types.int64), i32)
            idx = builder.sub(kv, splat32(builder, bot))
            lbase = data(
                context, builder, tys[0], leaf_, context.cast(builder, hl_, tys[1], types.int64)
            )
            ap = builder.bitcast(data(context, builder, tys[5], acc_, g0), v8f64.as_pointer())
            for half in range(2):
                ih = builder.shuffle_vector(
                    idx,
                    ir.Constant(v16i32, ir.Undefined),
                    ir.Constant(v8i32, list(range(8 * half, 8 * half + 8))),
                )
                lv = gather(
                    builder, "llvm.x86.avx512.mask.gather.dpd.512", v8f64, v8i32, v8i1, lbase, ih, 8
                )
                p = builder.gep(ap, [i64(half)])
                builder.store(builder.fadd(builder.load(p, align=8), lv), p, align=8)
            return context.get_dummy_value()

        return sig, codegen

    return heap_level, leaf_add


heap_level, leaf_add = _make() if AVAILABLE else (None, None)
