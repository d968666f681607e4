"""State arrays of the engine: layout, allocation, growth and (de)serialisation.

State is plain numpy arrays grouped in named tuples, declared once here. A
snapshot is an ``.npz`` archive (``allow_pickle=False``) of those arrays plus a
JSON header stamped with :data:`~._kernels._layout.LAYOUT_VERSION` and the
catalogue hash, so an old or foreign layout is refused, never misread.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any, NamedTuple

import numpy as np

from riskflow.errors import RiskflowError

from ._kernels import _layout as L
from ._kernels._hash import _count_live, _move_rows, _rebuild_map

__all__ = ["EntityTable", "PairTable", "GlobalState", "LabelQueue", "SnapshotError"]

#: Snapshot format marker (the archive layout, apart from the state layout).
SNAPSHOT_FORMAT = "riskflow-features-snapshot"
#: A table is grown (or compacted) before its load passes this, and rebuilt
#: to at most half of it, so linear probing stays short.
MAX_LOAD = 0.7


class SnapshotError(RiskflowError, ValueError):
    """A feature-state snapshot is corrupt or has another layout."""


class EntityTable(NamedTuple):
    """One packed row of ROW_W 64-bit words per full entity (card, customer, ...).

    ``u`` and ``f`` are uint64 and float64 views of the same buffer (column
    offsets ``R_*`` in :mod:`._kernels._layout`); keys stay in their own array
    so probing scans 8 bytes per slot.
    """

    keys: np.ndarray  # uint64[C]; 0 = empty slot
    meta: np.ndarray  # int64[1]: occupied slots
    u: np.ndarray  # uint64[C, ROW_W]
    f: np.ndarray  # float64[C, ROW_W], view of u


class PairTable(NamedTuple):
    """One narrow row per entity pair (card x merchant, card x device, card x IP)."""

    keys: np.ndarray
    meta: np.ndarray
    u: np.ndarray  # uint64[C, PROW_W]
    f: np.ndarray  # float64 view


class GlobalState(NamedTuple):
    mcc: np.ndarray  # float64[N_MCC, MCC_W]
    clock: np.ndarray  # int64[2]: stream clock (max event time seen), transactions processed


class LabelQueue(NamedTuple):
    """Labels waiting for their label time, sorted by it (stable in arrival order)."""

    time: np.ndarray  # int64[m]
    label: np.ndarray  # int8[m]
    amount: np.ndarray  # float64[m]
    keys: np.ndarray  # uint64[NL, m]


_WIDTH = {"EntityTable": L.ROW_W, "PairTable": L.PROW_W}
#: Fields that are views of another field: rebuilt on load, never stored.
_VIEWS = ("f",)


def row_bytes(table: type) -> int:
    """State bytes per slot of a table type (key + row)."""
    return 8 + 8 * _WIDTH[table.__name__]


def _make(table: type, keys: np.ndarray, meta: np.ndarray, u: np.ndarray) -> Any:
    return table(keys=keys, meta=meta, u=u, f=u.view(np.float64))


def alloc(table: type, cap: int) -> Any:
    u = np.zeros((cap, _WIDTH[table.__name__]), np.uint64)
    return _make(table, np.zeros(cap, np.uint64), np.zeros(1, np.int64), u)


def alloc_global() -> GlobalState:
    return GlobalState(mcc=np.zeros((L.N_MCC, L.MCC_W)), clock=np.zeros(2, np.int64))


def empty_queue() -> LabelQueue:
    return LabelQueue(
        np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0), np.zeros((L.NL, 0), np.uint64)
    )


def max_load(table: Any) -> int:
    return int(table.keys.shape[0] * MAX_LOAD)


def grow(
    table: Any,
    now: int,
    ttl: int,
    headroom: int,
    spare: tuple[np.ndarray, np.ndarray] | None = None,
) -> Any:
    """Rebuild ``table`` without TTL-expired rows, doubling until it has room.

    Expired rows behave exactly as absent ones in the kernel, so dropping
    them changes no feature; only memory is reclaimed. ``spare``: zeroed
    ``(keys, rows)`` arrays made ready ahead (:func:`grown_buffers`), used
    when they have the capacity the rebuild needs.
    """
    last = table.f[:, 0]  # R_LAST and Q_LAST are both column 0
    live = int(_count_live(table.keys, last, float(now), float(ttl)))
    cap = _capacity_for(table.keys.shape[0], live + headroom)
    if spare is not None and spare[0].shape[0] == cap and spare[1].shape[1] == table.u.shape[1]:
        new_keys, u = spare
    else:
        new_keys, u = grown_buffers(table, cap, touch=False)
    old, new = _rebuild_map(table.keys, last, float(now), float(ttl), new_keys)
    _move_rows(table.u, u, old, new)
    return _make(type(table), new_keys, np.array([len(old)], np.int64), u)


def resized(table: Any, cap: int) -> Any:
    """``table`` rebuilt with ``cap`` slots (a power of two above its rows), every row kept.

    The new memory is written once in order first (:func:`grown_buffers`
    with ``touch``): rows moved into untouched memory fault it in page by
    page at random, which cost ~10x as much on this machine's VM.
    """
    new_keys, u = grown_buffers(table, cap, touch=True)
    old, new = _rebuild_map(table.keys, table.f[:, 0], 0.0, np.inf, new_keys)
    _move_rows(table.u, u, old, new)
    return _make(type(table), new_keys, np.array([len(old)], np.int64), u)


def _capacity_for(cap: int, rows: int) -> int:
    """``cap`` doubled until ``rows`` fill at most half of the growth limit."""
    while rows > cap * MAX_LOAD / 2:
        cap *= 2
    return cap


def grown_capacity(table: Any) -> int:
    """The capacity :func:`grow` gives ``table`` when no row has expired.

    A growth starts once the rows and the headroom pass :func:`max_load`, so
    the rebuild needs room for ``max_load + 1`` (4x the capacity).
    """
    return _capacity_for(table.keys.shape[0], max_load(table) + 1)


def grown_buffers(table: Any, cap: int, *, touch: bool) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed ``(keys, rows)`` arrays for ``table`` grown to ``cap`` slots.

    ``touch``: write every page now (in a thread, ahead of the growth) so the
    rebuild on the event loop does not fault fresh memory in: 1.5 s for a
    650 MB table on this machine's VM against ~0.1 s into touched memory.
    """
    new_keys = np.zeros(cap, np.uint64)
    u = np.zeros((cap, table.u.shape[1]), np.uint64)
    if touch:
        new_keys.fill(0)
        u.fill(0)
    return new_keys, u


#: Bytes per write of an array's data (see :func:`write`).
_SLICE = 1 << 18


def dump(parts: dict[str, Any], header: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    write(buf, parts, header)
    return buf.getvalue()


def write(fh: Any, parts: dict[str, Any], header: dict[str, Any]) -> None:
    """Write the snapshot to the binary file ``fh``: an uncompressed ``.npz``, as ``np.savez``.

    Each array's data goes out as slices of its own buffer: no copy of it is
    made, and every step that holds the interpreter lock is short (zlib's
    CRC and the file write release it). ``np.savez`` copies each array in
    16 MB pieces and a worker writing a snapshot in a thread then held the
    lock long enough to slow the decisions on its event loop ten-fold.
    Uncompressed: restore speed matters more than size.
    """
    arrays: dict[str, np.ndarray] = {}
    for prefix, tup in parts.items():
        for name, arr in zip(tup._fields, tup, strict=True):
            if name in _VIEWS:
                continue
            arrays[f"{prefix}.{name}"] = np.ascontiguousarray(arr)
    arrays["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8)
    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            # A fixed entry time: the same state gives the same bytes.
            entry = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(entry, "w", force_zip64=True) as out:
                np.lib.format.write_array_header_1_0(
                    out, np.lib.format.header_data_from_array_1_0(arr)
                )
                data = arr.reshape(-1).view(np.uint8).data
                for lo in range(0, len(data), _SLICE):
                    out.write(data[lo : lo + _SLICE])


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
    for prefix, cls in (
        ("ent", EntityTable),
        ("pair", PairTable),
        ("glob", GlobalState),
        ("queue", LabelQueue),
    ):
        try:
            fields = {f: arrays[f"{prefix}.{f}"] for f in cls._fields if f not in _VIEWS}
        except KeyError as exc:
            raise SnapshotError(
                f"Feature-state snapshot lacks array {exc.args[0]!r}; it is truncated or corrupt."
            ) from None
        if "f" in cls._fields:
            check_row(prefix, fields, _WIDTH[cls.__name__])
            tables[prefix] = _make(cls, **fields)
        else:
            tables[prefix] = cls(**fields)
    return tables, header


def check_row(prefix: str, fields: dict[str, np.ndarray], width: int) -> None:
    """Refuse a table whose arrays do not match the declared layout."""
    keys, u = fields["keys"], fields["u"]
    cap = keys.shape[0]
    if cap < 16 or cap & (cap - 1):
        raise SnapshotError(
            f"Snapshot table {prefix!r} has capacity {cap}, not a power of two >= 16."
        )
    if keys.dtype != np.uint64 or u.dtype != np.uint64 or u.shape != (cap, width):
        raise SnapshotError(
            f"Snapshot table {prefix!r} has rows {u.shape} {u.dtype}; the layout needs "
            f"{(cap, width)} uint64. The snapshot is corrupt."
        )
