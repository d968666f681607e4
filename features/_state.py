"""State arrays of the engine: layout, allocation, growth and (de)serialisation.

State is plain numpy arrays grouped in named tuples, declared once here. A
snapshot is an ``.npz`` archive (``allow_pickle=False``) of those arrays plus a
JSON header stamped with :data:`~._kernels._layout.LAYOUT_VERSION` and the
catalogue hash, so an old or foreign layout is refused, never misread.
"""

from __future__ import annotations

import io
import json
from typing import Any, NamedTuple

import numpy as np

from riskflow.errors import RiskflowError

from ._kernels import _layout as L
from ._kernels._hash import _count_live, _rebuild_map

__all__ = ["EntityTable", "PairTable", "GlobalState", "LabelQueue", "SnapshotError"]

#: Snapshot format marker (the archive layout, apart from the state layout).
SNAPSHOT_FORMAT = "riskflow-features-snapshot"
#: A table is grown (or compacted) before its load passes this, and rebuilt
#: to at most half of it, so linear probing stays short.
MAX_LOAD = 0.7


class SnapshotError(RiskflowError, ValueError):
    """A feature-state snapshot is corrupt or has another layout."""


class EntityTable(NamedTuple):
    """One wide row per full entity (card, customer, ...), keyed by (kind, key)."""

    keys: np.ndarray  # uint64[C]; 0 = empty slot
    meta: np.ndarray  # int64[1]: occupied slots
    last: np.ndarray  # int64[C]: last event (tx or label) time, for the TTL
    first: np.ndarray  # int64[C]: first seen
    agg_t: np.ndarray  # int64[C]: time the decayed aggregates refer to
    agg: np.ndarray  # float64[C, 3 * NW]: decayed count, sum, sum of squares per window
    ring_ts: np.ndarray  # int64[C, K]
    ring_amt: np.ndarray  # float64[C, K]
    ring_cp: np.ndarray  # uint64[C, K]: counterparty key
    ring_aux: np.ndarray  # uint64[C, K]: second tracked key
    ring_n: np.ndarray  # int64[C]: events since first seen
    hll: np.ndarray  # uint8[C, HLL_M]
    geo: np.ndarray  # float64[C, GEO_W]
    mix: np.ndarray  # float64[C, MIX_W]
    lab: np.ndarray  # float64[C, LAB_W]
    mcc: np.ndarray  # int32[C]: last MCC seen (merchants: for MCC label risk)


class PairTable(NamedTuple):
    """One narrow row per entity pair (card x merchant, card x device, card x IP)."""

    keys: np.ndarray
    meta: np.ndarray
    last: np.ndarray
    first: np.ndarray
    agg: np.ndarray  # float64[C, PAIR_W]


class GlobalState(NamedTuple):
    mcc: np.ndarray  # float64[N_MCC, MCC_W]
    clock: np.ndarray  # int64[2]: stream clock (max event time seen), transactions processed


class LabelQueue(NamedTuple):
    """Labels waiting for their label time, sorted by it (stable in arrival order)."""

    time: np.ndarray  # int64[m]
    label: np.ndarray  # int8[m]
    amount: np.ndarray  # float64[m]
    keys: np.ndarray  # uint64[NL, m]


_ENTITY_SHAPES: dict[str, tuple[tuple[int, ...], Any]] = {
    "keys": ((), np.uint64),
    "last": ((), np.int64),
    "first": ((), np.int64),
    "agg_t": ((), np.int64),
    "agg": ((3 * L.NW,), np.float64),
    "ring_ts": ((L.K,), np.int64),
    "ring_amt": ((L.K,), np.float64),
    "ring_cp": ((L.K,), np.uint64),
    "ring_aux": ((L.K,), np.uint64),
    "ring_n": ((), np.int64),
    "hll": ((L.HLL_M,), np.uint8),
    "geo": ((L.GEO_W,), np.float64),
    "mix": ((L.MIX_W,), np.float64),
    "lab": ((L.LAB_W,), np.float64),
    "mcc": ((), np.int32),
}
_PAIR_SHAPES: dict[str, tuple[tuple[int, ...], Any]] = {
    "keys": ((), np.uint64),
    "last": ((), np.int64),
    "first": ((), np.int64),
    "agg": ((L.PAIR_W,), np.float64),
}


def row_bytes(table: type) -> int:
    """State bytes per slot of a table type."""
    shapes = _ENTITY_SHAPES if table is EntityTable else _PAIR_SHAPES
    return sum(int(np.prod(sh, dtype=np.int64)) * np.dtype(dt).itemsize for sh, dt in shapes.values())


def alloc(table: type, cap: int) -> Any:
    shapes = _ENTITY_SHAPES if table is EntityTable else _PAIR_SHAPES
    arrays = {name: np.zeros((cap, *sh), dt) for name, (sh, dt) in shapes.items()}
    return table(meta=np.zeros(1, np.int64), **arrays)


def alloc_global() -> GlobalState:
    return GlobalState(mcc=np.zeros((L.N_MCC, L.MCC_W)), clock=np.zeros(2, np.int64))


def empty_queue() -> LabelQueue:
    return LabelQueue(
        np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0), np.zeros((L.NL, 0), np.uint64)
    )


def max_load(table: Any) -> int:
    return int(table.keys.shape[0] * MAX_LOAD)


def grow(table: Any, now: int, ttl: int, headroom: int) -> Any:
    """Rebuild ``table`` without TTL-expired rows, doubling until it has room.

    Expired rows behave exactly as absent ones in the kernel, so dropping
    them changes no feature; only memory is reclaimed.
    """
    live = int(_count_live(table.keys, table.last, now, ttl))
    cap = table.keys.shape[0]
    while live + headroom > cap * MAX_LOAD / 2:
        cap *= 2
    old, new, new_keys = _rebuild_map(table.keys, table.last, now, ttl, cap)
    out = {"keys": new_keys, "meta": np.array([len(old)], np.int64)}
    for name in table._fields:
        if name in out:
            continue
        a = getattr(table, name)
        b = np.zeros((cap, *a.shape[1:]), a.dtype)
        b[new] = a[old]
        out[name] = b
    return type(table)(**out)


def dump(parts: dict[str, Any], header: dict[str, Any]) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    for prefix, tup in parts.items():
        for name, arr in zip(tup._fields, tup, strict=True):
            arrays[f"{prefix}.{name}"] = np.ascontiguousarray(arr)
    arrays["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # uncompressed: restore speed matters more than size
    return buf.getvalue()


def load(blob: bytes, expected: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Arrays and header of a snapshot; refuses another format, layout or catalogue."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
    except Exception as exc:
        raise SnapshotError(
            f"Not a feature-state snapshot ({type(exc).__name__}: {exc}). "
            "Pass bytes returned by FeatureEngine.snapshot()."
        ) from exc
    for key, want in expected.items():
        got = header.get(key)
        if got != want:
            raise SnapshotError(
                f"Feature-state snapshot has {key}={got!r}, this engine needs {want!r}: it was "
                "written by another version of the feature engine. Rebuild the state by "
                "replaying history (riskflow replay) instead of restoring this snapshot."
            )
    tables: dict[str, Any] = {}
    for prefix, cls in (("ent", EntityTable), ("pair", PairTable), ("glob", GlobalState),
                        ("queue", LabelQueue)):
        try:
            tables[prefix] = cls(**{f: arrays[f"{prefix}.{f}"] for f in cls._fields})
        except KeyError as exc:
            raise SnapshotError(f"Feature-state snapshot lacks array {exc.args[0]!r}; it is truncated or corrupt.") from None
    return tables, header


def check_shapes(tables: dict[str, Any]) -> None:
    """Refuse arrays whose dtype or row shape does not match the declared layout."""
    for prefix, shapes in (("ent", _ENTITY_SHAPES), ("pair", _PAIR_SHAPES)):
        tab = tables[prefix]
        cap = tab.keys.shape[0]
        if cap < 16 or cap & (cap - 1):
            raise SnapshotError(f"Snapshot table {prefix!r} has capacity {cap}, not a power of two >= 16.")
        for name, (sh, dt) in shapes.items():
            arr = getattr(tab, name)
            if arr.shape != (cap, *sh) or arr.dtype != np.dtype(dt):
                raise SnapshotError(
                    f"Snapshot array {prefix}.{name} has shape {arr.shape} and dtype {arr.dtype}; "
                    f"the layout needs {(cap, *sh)} {np.dtype(dt)}. The snapshot is corrupt."
                )
