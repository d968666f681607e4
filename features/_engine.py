"""FeatureEngine: the public, validating wrapper around the feature kernel."""

from __future__ import annotations

import copy
import io
from typing import Any

import numpy as np

from riskflow.batch import ENTITY_FIELDS, LabelBatch, TxBatch
from riskflow.config import FeatureConfig
from riskflow.errors import SchemaError

from . import _state as S
from ._catalogue import FeatureSpec, catalogue_hash, compile_layout, select
from ._kernels import _layout as L
from ._kernels._compute import _compute_batch
from ._kernels._hash import (
    DISTINCT_REGISTERS,
    _batch_keys,
    _hll_estimate,
    _hll_keys,
)

__all__ = ["FeatureEngine", "FeatureInputError"]


class FeatureInputError(SchemaError):
    """A batch handed to the feature engine is malformed."""


_TX_DTYPES: dict[str, Any] = {
    "ts": np.int64,
    "amount": np.float64,
    "mcc": np.int32,
    "channel": np.int8,
    "entry_mode": np.int8,
    "lat": np.float64,
    "lon": np.float64,
    **{k: np.uint64 for k in ENTITY_FIELDS},
}
_CODE_RANGE = {"channel": L.N_CHANNELS, "entry_mode": L.N_ENTRY}
#: Each pair's two entities, as indices into ``L.ENTITIES``.
_PAIR_LEFT = np.array([L.ENTITIES.index(x) for _, x, _ in L.PAIRS], np.int64)
_PAIR_RIGHT = np.array([L.ENTITIES.index(y) for _, _, y in L.PAIRS], np.int64)
#: Each entity's counterparty and second key: an entity index, or ``NE`` for the country.
_CP_IDX, _AUX_IDX = (
    np.array(
        [(L.ENTITIES + ("country",)).index(L.COUNTERPARTY[e][j]) for e in L.ENTITIES], np.int64
    )
    for j in (0, 1)
)
#: Memory :meth:`FeatureEngine.reserve` may give one table (1 GiB: 1.7 M entity slots).
RESERVE_MAX_BYTES = 1 << 30


def _arr(batch: Any, name: str, dtype: Any, n: int, what: str) -> np.ndarray:
    a = np.asarray(getattr(batch, name))
    if a.shape != (n,):
        raise FeatureInputError(
            f"{what}.{name} has shape {a.shape}; every array of the batch must have shape ({n},)."
        )
    if a.dtype != dtype:
        try:
            b = (
                a.astype(dtype, casting="same_kind")
                if a.dtype.kind == np.dtype(dtype).kind
                else None
            )
        except TypeError:
            b = None
        if b is None:
            raise FeatureInputError(
                f"{what}.{name} has dtype {a.dtype}, expected {np.dtype(dtype)}. "
                f"Build batches with {what}.from_frame / from_records."
            )
        a = b
    a = np.ascontiguousarray(a)
    # Read-only input (a view of Arrow/Parquet buffers) would make numba
    # compile the kernel a second time for that type; a copy is 8 bytes a row.
    return a if a.flags.writeable else a.copy()


#: The engine's state tables, as attributes (captured and snapshotted together).
_TABLES = ("_ent", "_pair", "_glob", "_queue")


class FeatureEngine:
    """Point-in-time streaming features, one code path for stream and replay.

    For each transaction, in the order given (event time), the engine writes
    the feature vector computed from per-entity state as it stood *before*
    that transaction, then folds the transaction into the state. Labels are
    queued and released into the state at their label time.

    Parameters
    ----------
    config
        :class:`riskflow.config.FeatureConfig` (entity TTL, initial table size).
    features
        Compute only these catalogue names, in this order (benchmarks,
        experiments). Default: the full catalogue, which is what models use.

    Examples
    --------
    >>> import pandas as pd
    >>> from riskflow.batch import TxBatch
    >>> df = pd.DataFrame({"tx_id": ["a", "b"], "event_time": [0, 60_000],
    ...     "card_token": ["c", "c"], "merchant_id": ["m", "m"], "amount": [10.0, 30.0]})
    >>> eng = FeatureEngine()
    >>> X = eng.process(TxBatch.from_frame(df))
    >>> col = eng.feature_names.index("card_count_1m")
    >>> X[:, col].tolist()
    [0.0, 1.0]
    """

    def __init__(
        self, config: FeatureConfig | None = None, *, features: list[str] | None = None
    ) -> None:
        self.config = config if config is not None else FeatureConfig()
        self._ttl = int(self.config.entity_ttl_days * L.DAY)
        cap = 16
        while cap < self.config.initial_capacity:
            cap *= 2
        self._ent = S.alloc(S.EntityTable, cap)
        self._pair = S.alloc(S.PairTable, cap)
        self._glob = S.alloc_global()
        self._queue = S.empty_queue()
        self.position: dict[str, Any] | None = None
        self.specs: list[FeatureSpec] = select(features)
        self._features = None if features is None else list(features)
        self._win, self._colE, self._colP, self._colT, self._prior, self._active = compile_layout(
            self.specs
        )
        self.feature_names: list[str] = [s.name for s in self.specs]
        self._keys_kept = bool((self._active[: L.NE] & L.ACT_KEYS).any())

    # ------------------------------------------------------------------ info
    @property
    def catalogue_hash(self) -> str:
        """sha256 over the catalogue (names, specs, layout version)."""
        return catalogue_hash(self.specs)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_entities(self) -> int:
        """Occupied entity and pair slots (including not yet reclaimed expired ones)."""
        return int(self._ent.meta[0] + self._pair.meta[0])

    def state_nbytes(self) -> int:
        """Bytes held by all state arrays (allocated capacity, not just live rows)."""
        parts = (
            self._ent.keys,
            self._ent.u,
            self._pair.keys,
            self._pair.u,
            *self._glob,
            *self._queue,
        )
        return int(sum(a.nbytes for a in parts))

    @staticmethod
    def row_bytes() -> dict[str, int]:
        """State bytes per slot: full entity row, pair row."""
        return {"entity": S.row_bytes(S.EntityTable), "pair": S.row_bytes(S.PairTable)}

    # --------------------------------------------------------------- process
    def process(
        self, tx: TxBatch, labels: LabelBatch | None = None, *, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Feature matrix (float32, ``(len(tx), n_features)``) for ``tx``; advances the state.

        Labels are queued; a label becomes visible to a transaction iff its
        ``label_time <= tx.ts`` (labels already due apply before the next
        transaction). ``out``: a C-contiguous float32 array of that shape to
        write into and return, for a caller that reuses its buffers (every
        element is written).
        """
        if not isinstance(tx, TxBatch):
            raise FeatureInputError(f"process() takes a TxBatch, got {type(tx).__name__}.")
        n = len(tx)
        if out is not None and not (
            isinstance(out, np.ndarray)
            and out.dtype == np.float32
            and out.shape == (n, self.n_features)
            and out.flags.c_contiguous
            and out.flags.writeable
        ):
            raise ValueError(
                f"out must be a writeable C-contiguous float32 array of shape "
                f"({n}, {self.n_features}). Got {getattr(out, 'dtype', type(out))} "
                f"{getattr(out, 'shape', '')} instead."
            )
        a = {k: _arr(tx, k, dt, n, "TxBatch") for k, dt in _TX_DTYPES.items()}
        if n and not np.isfinite(a["amount"]).all():
            bad = int(np.flatnonzero(~np.isfinite(a["amount"]))[0])
            raise FeatureInputError(
                f"TxBatch.amount must be finite; row {bad} is {a['amount'][bad]!r}. "
                "Validate transactions (riskflow.schema) before scoring."
            )
        for k, hi in _CODE_RANGE.items():
            if n and (a[k].max() >= hi or a[k].min() < -1):
                raise FeatureInputError(
                    f"TxBatch.{k} codes must be in [-1, {hi - 1}]; got {int(a[k].min())}..{int(a[k].max())}."
                )
        a["mcc"] = np.where((a["mcc"] >= 0) & (a["mcc"] < L.N_MCC), a["mcc"], -1).astype(np.int32)
        if labels is not None and len(labels):
            self._enqueue(labels)
        # The kernel NaN-fills each row before writing its features.
        X = np.empty((n, self.n_features), np.float32) if out is None else out
        if n == 0:
            return X
        ekeys, cpk, auxk, sk, hk = self._keys(a, n)
        q = self._queue
        i, lp = 0, 0
        while True:
            i, lp = _compute_batch(
                self._ent,
                self._pair,
                self._glob,
                self._win,
                self._colE,
                self._colP,
                self._colT,
                self._active,
                self._prior,
                self._ttl,
                S.max_load(self._ent),
                S.max_load(self._pair),
                a["ts"],
                a["amount"],
                a["mcc"],
                a["channel"],
                a["entry_mode"],
                a["lat"],
                a["lon"],
                a["country"],
                ekeys,
                cpk,
                auxk,
                sk,
                hk,
                q.time,
                q.label,
                q.amount,
                q.keys,
                i,
                lp,
                X,
            )
            if i >= n:
                break
            now = int(self._glob.clock[0])
            spare = self.__dict__.setdefault("_grow_spare", {})
            if self._ent.meta[0] + L.NE + L.NL > S.max_load(self._ent):
                self._ent = S.grow(self._ent, now, self._ttl, L.NE + L.NL, spare.pop("ent", None))
            if self._pair.meta[0] + L.NP > S.max_load(self._pair):
                self._pair = S.grow(self._pair, now, self._ttl, L.NP, spare.pop("pair", None))
        if lp:
            self._queue = S.LabelQueue(
                q.time[lp:], q.label[lp:], q.amount[lp:], np.ascontiguousarray(q.keys[:, lp:])
            )
        return X

    def _keys(self, a: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, ...]:
        """``(ekeys, cpk, auxk, sk, hk)`` of a batch, ``(n, columns)`` each, in one pass.

        Entity keys, each entity's counterparty and second keys, table keys
        and their home hashes (:func:`._kernels._hash._batch_keys`). Without a
        feature that reads counterparty keys, ``cpk`` / ``auxk`` are ``ekeys``
        (the kernel never reads them then).
        """
        ekeys = np.empty((n, L.NE), np.uint64)
        if self._keys_kept:
            cpk = np.empty((n, L.NE), np.uint64)
            auxk = np.empty((n, L.NE), np.uint64)
        else:
            cpk = auxk = np.empty((0, L.NE), np.uint64)
        sk = np.empty((n, L.NE + L.NP), np.uint64)
        hk = np.empty((n, L.NE + L.NP), np.uint64)
        _batch_keys(
            *(a[e] for e in L.ENTITIES),
            a["country"],
            self._active,
            _PAIR_LEFT,
            _PAIR_RIGHT,
            _CP_IDX,
            _AUX_IDX,
            ekeys,
            cpk,
            auxk,
            sk,
            hk,
        )
        if not self._keys_kept:
            cpk = auxk = ekeys
        return ekeys, cpk, auxk, sk, hk

    def reserve(self, tx: TxBatch, *, max_bytes: int = RESERVE_MAX_BYTES) -> None:
        """Size the state tables now for the entities and pairs of ``tx``, ahead of processing it.

        For a caller that knows what is coming: replay has the whole history.
        Growing mid-run rebuilds a table into memory twice its size or more
        (the replay bench's entity table went from 262,144 to 1,048,576 slots
        for 197,000 entities: 1-1.8 s, 2026-11-30, most of it faulting in
        fresh memory); a table sized once, its memory written in order, costs
        a fraction of that and ends smaller. Speed only: a table's capacity
        changes no feature.

        The counts are HyperLogLog estimates (~1 %) plus 10 %; an
        underestimate only means a growth later, as without this call.
        Tables never shrink here, and none is sized past ``max_bytes``.
        """
        if not isinstance(tx, TxBatch):
            raise FeatureInputError(f"reserve() takes a TxBatch, got {type(tx).__name__}.")
        n = len(tx)
        if n == 0:
            return
        reg_ent = np.zeros(DISTINCT_REGISTERS, np.uint8)
        reg_pair = np.zeros(DISTINCT_REGISTERS, np.uint8)
        cols = tuple(_arr(tx, e, np.uint64, n, "TxBatch") for e in L.ENTITIES)
        _hll_keys(cols, self._active, _PAIR_LEFT, _PAIR_RIGHT, reg_ent, reg_pair)
        for name, reg, headroom in (("ent", reg_ent, L.NE + L.NL), ("pair", reg_pair, L.NP)):
            table = getattr(self, f"_{name}")
            need = int(_hll_estimate(reg) * 1.1) + int(table.meta[0]) + headroom
            cap = table.keys.shape[0]
            limit = max_bytes // S.row_bytes(type(table))
            while need > cap * S.MAX_LOAD and cap * 2 <= limit:
                cap *= 2
            if cap > table.keys.shape[0]:
                setattr(self, f"_{name}", S.resized(table, cap))
        self.__dict__.pop("_grow_spare", None)  # sized for the old capacities

    def _enqueue(self, labels: LabelBatch) -> None:
        if not isinstance(labels, LabelBatch):
            raise FeatureInputError(f"labels must be a LabelBatch, got {type(labels).__name__}.")
        m = len(labels)
        t = _arr(labels, "label_time", np.int64, m, "LabelBatch")
        lab = _arr(labels, "label", np.int8, m, "LabelBatch")
        amt = np.asarray(labels.amount, np.float64).reshape(m)
        keys = np.stack([_arr(labels, e, np.uint64, m, "LabelBatch") for e in L.LABEL_ENTITIES])
        q = self._queue
        time = np.concatenate([q.time, t])
        order = np.argsort(time, kind="stable")
        self._queue = S.LabelQueue(
            np.ascontiguousarray(time[order]),
            np.ascontiguousarray(np.concatenate([q.label, lab])[order]),
            np.ascontiguousarray(np.concatenate([q.amount, amt])[order]),
            np.ascontiguousarray(np.concatenate([q.keys, keys], axis=1)[:, order]),
        )

    # ------------------------------------------------------------ snapshots
    def _header(self) -> dict[str, Any]:
        return {
            "format": S.SNAPSHOT_FORMAT,
            "layout_version": L.LAYOUT_VERSION,
            "catalogue_hash": self.catalogue_hash,
        }

    def snapshot(self, position: dict[str, Any] | None = None) -> bytes:
        """The whole state (arrays, queued labels) and ``position`` as bytes (npz, no pickle).

        ``position`` is what the caller needs to resume (e.g. Kafka offsets);
        it must be JSON-serialisable and comes back as :attr:`position`.
        """
        buf = io.BytesIO()
        self.write_snapshot(buf, position)
        return buf.getvalue()

    def write_snapshot(self, fh: Any, position: dict[str, Any] | None = None) -> None:
        """Write :meth:`snapshot`'s bytes to the binary file ``fh`` (no in-memory copy)."""
        header = {**self._header(), "position": position, "ttl_ms": self._ttl}
        self.position = position
        S.write(
            fh,
            {"ent": self._ent, "pair": self._pair, "glob": self._glob, "queue": self._queue},
            header,
        )

    def _growing_soon(self) -> list[tuple[str, Any]]:
        """``(name, table)`` of each table past :data:`GROW_AHEAD` of its limit without
        buffers made ready."""
        spare = self.__dict__.get("_grow_spare", {})
        return [
            (name, t)
            for name, t in (("ent", self._ent), ("pair", self._pair))
            if name not in spare and t.meta[0] > GROW_AHEAD * S.max_load(t)
        ]

    def growth_due_soon(self) -> bool:
        """Whether a table is past :data:`GROW_AHEAD` of its limit without buffers made ready."""
        return bool(self._growing_soon())

    def prepare_growth(self) -> None:
        """Allocate and touch the arrays the next growth of a nearly full table rebuilds into.

        Meant for a thread while the engine goes on processing (it reads only
        the tables' shapes): a table doubling on the worker's event loop
        otherwise faults its new memory in there (0.5-1.5 s for hundreds of MB
        on this machine's VM). A growth that needs another capacity (many rows
        expired) allocates its own as before.
        """
        spare = self.__dict__.setdefault("_grow_spare", {})
        for name, t in self._growing_soon():
            bufs = S.grown_buffers(t, S.grown_capacity(t), touch=True)
            # Kept only if the table did not grow meanwhile (they would not fit).
            if getattr(self, f"_{name}") is t:
                spare[name] = bufs

    def prepare_capture(self) -> None:
        """Allocate and touch the buffers the next :meth:`snapshot_later` copies into.

        Meant for a thread, before a worker's capture: copying into memory
        never touched costs its page faults (~300 ms for 240 MB against ~50 ms
        into touched memory), on the worker's event loop. Buffers whose table
        has not changed shape since the last capture are kept.
        """
        spare: dict[tuple[str, int], np.ndarray] = self.__dict__.setdefault("_spare", {})
        for name in _TABLES:
            for i, a in enumerate(getattr(self, name)):
                if isinstance(a, np.ndarray):
                    # Touched: the pages are faulted in here (numpy releases the GIL).
                    _spare_buffer(a, spare, (name, i), touch=True)

    def snapshot_later(
        self, position: dict[str, Any] | None = None, *, copy_tables: bool = True
    ) -> StateCapture:
        """Capture the state now; return a function that serialises that capture.

        :meth:`snapshot` of a few hundred MB of tables takes most of a second;
        copying them into the buffers of the previous capture (no page faults)
        takes much less, so a stream worker captures on its loop and calls the
        result in a thread while it goes on deciding. The buffers are reused:
        call the result before the next ``snapshot_later``. The result's
        ``write(fh)`` writes the same bytes to a file instead.

        ``copy_tables=False`` captures nothing: the result serialises the tables as
        they are when called. For a forked writer, whose memory the fork
        froze; anywhere else, the engine must not advance before the call.
        """
        if not copy_tables:
            return StateCapture(self, position)
        spare: dict[tuple[str, int], np.ndarray] = self.__dict__.setdefault("_spare", {})
        clone = copy.copy(self)
        for name in _TABLES:
            table = getattr(self, name)
            setattr(
                clone,
                name,
                type(table)(*(_copy_into(a, spare, name, i) for i, a in enumerate(table))),
            )
        return StateCapture(clone, position)

    @classmethod
    def restore(
        cls, blob: bytes, config: FeatureConfig | None = None, *, features: list[str] | None = None
    ) -> FeatureEngine:
        """An engine continuing exactly where :meth:`snapshot` left off."""
        eng = cls(config, features=features)
        tables, header = S.load(blob, eng._header())
        eng._ent, eng._pair, eng._glob, eng._queue = (
            tables["ent"],
            tables["pair"],
            tables["glob"],
            tables["queue"],
        )
        eng.position = header.get("position")
        return eng


class StateCapture:
    """A captured state (:meth:`FeatureEngine.snapshot_later`): call for bytes, or ``write(fh)``."""

    def __init__(self, engine: FeatureEngine, position: dict[str, Any] | None) -> None:
        self._engine = engine
        self._position = position

    def __call__(self) -> bytes:
        return self._engine.snapshot(self._position)

    def write(self, fh: Any) -> None:
        self._engine.write_snapshot(fh, self._position)


#: A table this full (of its growth limit) gets its grown arrays made ready
#: (:meth:`FeatureEngine.prepare_growth`).
GROW_AHEAD = 0.8


def _copy_into(a: Any, spare: dict[tuple[str, int], np.ndarray], name: str, i: int) -> Any:
    """``a`` copied into the last capture's buffer of the same shape (else a new one)."""
    if not isinstance(a, np.ndarray):
        return copy.copy(a)
    buf = _spare_buffer(a, spare, (name, i), touch=False)  # the copy faults its pages in
    np.copyto(buf, a)
    return buf


def _spare_buffer(
    a: np.ndarray, spare: dict[tuple[str, int], np.ndarray], key: tuple[str, int], *, touch: bool
) -> np.ndarray:
    """``spare[key]`` if it still fits ``a`` (shape and dtype), else a new buffer kept there."""
    buf = spare.get(key)
    if buf is None or buf.shape != a.shape or buf.dtype != a.dtype:
        buf = spare[key] = np.empty_like(a)
        if touch:
            buf.fill(0)
    return buf


def warm_up(config: FeatureConfig | None = None) -> None:
    """Compile (or load from numba's cache) every kernel the engine runs, on throwaway state.

    On a fresh install, or in a container whose ``NUMBA_CACHE_DIR`` is not
    kept, the feature kernel compiles inside the first batch and the
    table-growth kernels inside the first batch that fills a table: seconds
    each, in the middle of a stream. A worker calls this before it decides
    anything. Tables start at 16 slots here, so the 64 distinct-entity
    transactions grow both tables, and labels go through the label queue.
    """
    cfg = (config if config is not None else FeatureConfig()).model_copy(
        update={"initial_capacity": 16}
    )
    n = 64
    ids = np.arange(n, dtype=np.uint64) + np.uint64(1)
    tx = TxBatch(
        tx_id=np.array([f"warm-{i}" for i in range(n)], dtype=object),
        ts=np.arange(n, dtype=np.int64) * 60_000 + 1_700_000_000_000,
        amount=np.linspace(1.0, 500.0, n),
        mcc=np.full(n, 5411, np.int32),
        channel=np.zeros(n, np.int8),
        entry_mode=np.zeros(n, np.int8),
        lat=np.full(n, 48.0),
        lon=np.full(n, 2.0),
        **{attr: ids + np.uint64(1_000 * k) for k, attr in enumerate(ENTITY_FIELDS)},
    )
    engine = FeatureEngine(cfg)
    half = slice(0, n // 2)
    engine.process(tx.take(half))
    labels = LabelBatch(
        tx_id=tx.tx_id[half],
        label_time=tx.ts[half] + 1,
        label=np.ones(n // 2, np.int8),
        tx_ts=tx.ts[half],
        amount=tx.amount[half],
        **{
            a: getattr(tx, a)[half]
            for a in ("card", "customer", "merchant", "terminal", "device", "ip")
        },
    )
    engine.process(tx.take(slice(n // 2, n)), labels)
