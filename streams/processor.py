"""The Kafka-free core of the worker: records in, decisions and dead letters out.

:class:`StreamProcessor` owns everything stateful the worker does (the
scoring pipeline's feature state, the tx lookup that turns labels into
:class:`~riskflow.batch.LabelBatch` rows, pending labels, and the input
position each of those reflects). The faust agents in :mod:`riskflow.streams.app`
only move bytes between Kafka and these methods, so every rule here is tested
without a broker.

>>> from riskflow.streams.reference import CountingScorer
>>> p = StreamProcessor(CountingScorer())
>>> good = b'{"schema_version":1,"tx_id":"t1","event_time":1767268800000,'
>>> good += b'"card_token":"tok1","merchant_id":"m1","amount":5.0}'
>>> out = p.process_transactions([InRecord("tx", 0, 0, 1, None, good),
...                               InRecord("tx", 0, 1, 1, None, b"{oops")])
>>> [d["tx_id"] for d in out.decisions], len(out.dead_letters), p.positions
(['t1'], 1, {'tx/0': 2})
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import orjson

from riskflow.batch import LabelBatch, TxBatch
from riskflow.errors import ValidationError
from riskflow.pipeline import DECISION_NAMES, DecisionBatch
from riskflow.schema import parse_label, parse_transaction
from riskflow.streams._batch import tx_batch
from riskflow.streams._columns import fast_tx_batch
from riskflow.streams._lookup import Lookup
from riskflow.streams._snapshot import uncopied

__all__ = [
    "InRecord",
    "Output",
    "Scoring",
    "StreamProcessor",
    "dead_letter",
    "SNAPSHOT_VERSION",
]

log = logging.getLogger(__name__)

#: Layout version of :meth:`StreamProcessor.snapshot`; bump on any change.
#: 3 added the labels waiting for their transaction (version 2 still loads).
SNAPSHOT_VERSION = 3
#: Older layouts :meth:`StreamProcessor.restore` still reads.
_READABLE_VERSIONS = (2, SNAPSHOT_VERSION)
#: Labelled-transaction fields kept per tx_id (all numeric: no raw ids kept).
_LOOKUP_FIELDS = ("ts", "amount", "card", "customer", "merchant", "terminal", "device", "ip")


class InRecord(NamedTuple):
    """One consumed Kafka record, as the processor sees it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


class Scoring(Protocol):
    """What the worker scores with: :class:`riskflow.pipeline.ScoringPipeline` or a twin.

    ``score_batch`` decides a batch and advances the feature state;
    ``advance`` only advances it (gap replay after a restart);
    ``snapshot`` / ``restore`` serialise that state; ``apply_policy``
    takes one raw value of the policy topic.
    """

    def score_batch(self, tx: TxBatch, labels: LabelBatch | None = None) -> DecisionBatch: ...

    def advance(self, tx: TxBatch, labels: LabelBatch | None = None) -> None: ...

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...

    def apply_policy(self, key: bytes | None, value: bytes | None) -> str | None: ...


@dataclass
class Output:
    """What one call produced: decision dicts and dead-letter messages (key, value)."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    fallback: int = 0
    skipped: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


def dead_letter(rec: InRecord, error: dict[str, Any]) -> tuple[bytes | None, bytes]:
    """The dead-letter message for ``rec``: the error, the original bytes, the source offset.

    >>> k, v = dead_letter(InRecord("tx", 2, 7, 1, b"k", b"{x"), {"field": "<record>"})
    >>> d = orjson.loads(v); d["source"], base64.b64decode(d["original_b64"])
    ({'topic': 'tx', 'partition': 2, 'offset': 7, 'timestamp_ms': 1}, b'{x')
    """
    raw = rec.value or b""
    body = {
        "error": error,
        "source": {
            "topic": rec.topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "timestamp_ms": rec.timestamp_ms,
        },
        "original_b64": base64.b64encode(raw).decode("ascii"),
        "original_size": len(raw),
    }
    return rec.key, orjson.dumps(body)


def decision_records(
    batch: DecisionBatch, kept: Sequence[InRecord], ts: np.ndarray
) -> list[dict[str, Any]]:
    """The decisions topic's messages: :meth:`DecisionBatch.to_records` plus the source.

    Each record adds ``event_time``, ``source`` (input partition and offset)
    and ``source_ts_ms``, the input record's Kafka timestamp, from which
    readers (riskflow watch, the benchmark) measure end-to-end latency; a
    score that is not finite is ``None``. Built in one pass from the batch's
    columns (``to_records`` then a second loop per record cost 6 us per
    transaction, as much as encoding them).

    >>> b = DecisionBatch(np.array(["t1"], dtype=object), np.array([np.nan]),
    ...                   np.array([2], dtype=np.int8), [[]], "m1", "p1")
    >>> d = decision_records(b, [InRecord("tx", 3, 9, 5, None, b"")], np.array([7]))[0]
    >>> d["decision"], d["score"], d["source"], d["event_time"], d["source_ts_ms"]
    ('decline', None, {'partition': 3, 'offset': 9}, 7, 5)
    """
    names = _DECISION_NAMES[batch.decision].tolist()
    scores = batch.score.tolist()
    finite = np.isfinite(batch.score)
    if not finite.all():
        scores = [s if ok else None for s, ok in zip(scores, finite.tolist(), strict=True)]
    mv, pv, fb, rv = batch.model_version, batch.policy_version, batch.fallback, batch.rules_version
    timings = {k: round(v, 4) for k, v in batch.timings_ms.items()}
    return [
        {
            "tx_id": tx_id,
            "decision": name,
            "score": score,
            "reasons": reasons,
            "model_version": mv,
            "policy_version": pv,
            "fallback": fb,
            "rules_version": rv,
            "timings_ms": timings,
            "event_time": t,
            "source": {"partition": rec.partition, "offset": rec.offset},
            "source_ts_ms": rec.timestamp_ms,
        }
        for tx_id, name, score, reasons, t, rec in zip(
            batch.tx_id.tolist(), names, scores, batch.reasons, ts.tolist(), kept, strict=True
        )
    ]


_DECISION_NAMES = np.asarray(DECISION_NAMES, dtype=object)


def _pos_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class StreamProcessor:
    """Validate, batch, score; keep state and the positions it reflects.

    Parameters
    ----------
    scoring
        The scoring pipeline (see :class:`Scoring`).
    fallback_decision
        Decision emitted (flagged ``fallback: true``) when scoring raises:
        ``"approve"`` is fail-open, ``"decline"`` fail-closed.
    lookup_size
        tx_ids remembered for joining labels (oldest forgotten first).
    waiting_labels
        Labels kept while their transaction is not known yet (oldest dropped
        first, counted in :attr:`labels_unmatched`). A label can arrive before
        its transaction: in another worker's partition that this replica
        follows only once it is committed, in the same fetch, or in a gap
        replay that reads labels first. It joins when the transaction arrives
        and takes effect from the next batch on, at its label time, as if it
        had arrived just after the transaction.
    """

    def __init__(
        self,
        scoring: Scoring | None,
        *,
        fallback_decision: str = "review",
        lookup_size: int = 200_000,
        waiting_labels: int = 100_000,
    ) -> None:
        if fallback_decision not in DECISION_NAMES:
            raise ValueError(
                f"The 'fallback_decision' parameter must be one of {DECISION_NAMES}. "
                f"Got {fallback_decision!r} instead."
            )
        self.scoring = scoring
        self.fallback_decision = fallback_decision
        self.lookup_size = lookup_size
        self.waiting_labels = waiting_labels
        #: "topic/partition" -> next offset reflected in the state.
        self.positions: dict[str, int] = {}
        self._lookup = Lookup(lookup_size, len(_LOOKUP_FIELDS) - 2)
        self._pending: list[tuple[str, int, int, tuple[float, ...]]] = []
        #: tx_id -> (arrival number, label_time, label) of labels whose
        #: transaction is not known yet; oldest tx_id first.
        self._waiting: OrderedDict[str, list[tuple[int, int, int]]] = OrderedDict()
        self._n_waiting = 0
        self._label_seq = 0
        #: Labels given up on: their transaction never came while they waited.
        self.labels_unmatched = 0

    # -- input filtering -------------------------------------------------------

    def is_new(self, rec: InRecord) -> bool:
        """False if ``rec`` is already reflected in the state (redelivered after a restart)."""
        pos = self.positions.get(_pos_key(rec.topic, rec.partition))
        return pos is None or rec.offset >= pos

    def unknown(self, first_seen: dict[tuple[str, int], int]) -> list[tuple[str, int]]:
        """Partitions of ``first_seen`` the state has no position for yet."""
        return [k for k in first_seen if _pos_key(*k) not in self.positions]

    def gaps(
        self,
        first_seen: dict[tuple[str, int], int],
        beginnings: dict[tuple[str, int], int] | None = None,
    ) -> dict[tuple[str, int], tuple[int, int]]:
        """Offset ranges ``[from, to)`` consumed before but missing from the state.

        ``first_seen`` maps (topic, partition) to the first offset the
        consumer delivered after a restart or assignment. A partition the
        state has never seen is missing everything from the start of its log
        (``beginnings``), e.g. one moved here from another worker.

        >>> p = StreamProcessor(None)
        >>> p.positions = {"tx/0": 10}
        >>> p.gaps({("tx", 0): 15, ("tx", 1): 7}, {("tx", 1): 0})
        {('tx', 0): (10, 15), ('tx', 1): (0, 7)}
        """
        out = {}
        beginnings = beginnings or {}
        for (topic, part), first in first_seen.items():
            pos = self.positions.get(_pos_key(topic, part))
            if pos is None:
                pos = beginnings.get((topic, part))
            if pos is not None and first > pos:
                out[(topic, part)] = (pos, first)
        return out

    # -- transactions ----------------------------------------------------------

    def _validate(
        self, records: Sequence[InRecord], out: Output
    ) -> tuple[TxBatch | None, list[InRecord]]:
        """The batch of valid new records and those records; dead letters into ``out``."""
        known: dict[tuple[str, int], int | None] = {}
        new: list[InRecord] = []
        for rec in records:
            k = (rec.topic, rec.partition)
            if k not in known:
                known[k] = self.positions.get(_pos_key(*k))
            pos = known[k]
            if pos is None or rec.offset >= pos:
                new.append(rec)
        out.skipped += len(records) - len(new)
        if not new:
            return None, []
        last = {(r.topic, r.partition): r.offset for r in new}
        tx = fast_tx_batch([r.value for r in new])
        if tx is not None:  # every record plainly valid (the usual case)
            for (topic, part), offset in last.items():
                self.positions[_pos_key(topic, part)] = offset + 1
            return tx, new
        good: list[dict[str, Any]] = []
        kept: list[InRecord] = []
        for rec in new:
            try:
                if rec.value is None:
                    raise ValidationError("<record>", "is empty (a tombstone or null value)")
                good.append(parse_transaction(rec.value))
                kept.append(rec)
            except ValidationError as exc:
                out.dead_letters.append(dead_letter(rec, exc.to_dict()))
            except Exception as exc:  # noqa: BLE001 - any decoding failure is a dead letter
                out.dead_letters.append(
                    dead_letter(
                        rec, {"field": "<record>", "reason": f"{type(exc).__name__}: {exc}"}
                    )
                )
            self.positions[_pos_key(rec.topic, rec.partition)] = rec.offset + 1
        return (tx_batch(good) if good else None), kept

    def _remember(self, tx: TxBatch) -> None:
        ids = tx.tx_id.tolist()
        keys = np.column_stack([getattr(tx, f) for f in _LOOKUP_FIELDS[2:]])
        self._lookup.add(ids, tx.ts, tx.amount, keys)
        if self._waiting:
            self._join_waiting(ids)

    def _join_waiting(self, ids: list[str]) -> None:
        """Move labels waiting for one of ``ids`` to the next batch's labels."""
        waiting = self._waiting
        joined: list[tuple[int, str, int, int, tuple[float, ...]]] = []
        for tx_id in waiting.keys() & ids:  # one C-level set intersection per batch
            row = self._lookup.get(tx_id)
            if row is None:  # remembered and already forgotten (batch > lookup_size)
                continue
            labs = waiting.pop(tx_id)
            self._n_waiting -= len(labs)
            joined.extend((seq, tx_id, lt, lab, row) for seq, lt, lab in labs)
        # In arrival order, as if each label had come just after its transaction.
        joined.sort(key=lambda j: j[0])
        self._pending.extend(j[1:] for j in joined)

    def _wait(self, tx_id: str, label_time: int, label: int) -> None:
        if self.waiting_labels <= 0:
            self.labels_unmatched += 1
            return
        self._waiting.setdefault(tx_id, []).append((self._label_seq, label_time, label))
        self._label_seq += 1
        self._n_waiting += 1
        while self._n_waiting > self.waiting_labels:
            _, labs = self._waiting.popitem(last=False)
            self._n_waiting -= len(labs)
            self.labels_unmatched += len(labs)

    def _scoring(self) -> Scoring:
        if self.scoring is None:
            raise RuntimeError(
                "This StreamProcessor was built without scoring (StreamProcessor(None) only "
                "tracks offsets); pass a Scoring to decide, snapshot or restore."
            )
        return self.scoring

    @property
    def labels_waiting(self) -> int:
        """Labels held until their transaction arrives."""
        return self._n_waiting

    def _take_labels(self) -> LabelBatch | None:
        if not self._pending:
            return None
        rows = self._pending
        self._pending = []
        vals = list(zip(*(r[3] for r in rows), strict=True))
        # Columns stay Python values until col() gives each its dtype: a plain
        # np.asarray of uint64 keys on both sides of 2**63 would make floats.
        arr = dict(zip(_LOOKUP_FIELDS, vals, strict=True))
        order = np.argsort(np.asarray([r[1] for r in rows], dtype=np.int64), kind="stable")

        def col(a: Any, dtype: Any) -> np.ndarray:
            return np.ascontiguousarray(np.asarray(a, dtype=dtype)[order])

        return LabelBatch(
            tx_id=col([r[0] for r in rows], object),
            label_time=col([r[1] for r in rows], np.int64),
            label=col([r[2] for r in rows], np.int8),
            tx_ts=col(arr["ts"], np.int64),
            amount=col(arr["amount"], np.float64),
            **{k: col(arr[k], np.uint64) for k in _LOOKUP_FIELDS[2:]},
        )

    def process_transactions(self, records: Sequence[InRecord], *, emit: bool = True) -> Output:
        """Decide every valid new record; invalid ones become dead letters.

        With ``emit=False`` (gap replay) the state advances and nothing is
        returned but the dead-letter count is still computed (not re-sent).
        """
        out = Output()
        t0 = time.perf_counter()
        tx, kept = self._validate(records, out)
        t1 = time.perf_counter()
        # Validation and building the batch's arrays are one pass now.
        out.timings_ms["validate"] = (t1 - t0) * 1e3
        if tx is None:
            return out
        labels = self._take_labels()
        self._remember(tx)
        if not emit:
            self._scoring().advance(tx, labels)
            return out
        try:
            batch = self._scoring().score_batch(tx, labels)
            if len(batch) != len(tx):
                raise RuntimeError(
                    f"scoring returned {len(batch)} decisions for {len(tx)} transactions"
                )
        except Exception as exc:  # noqa: BLE001 - the configured fallback policy
            log.exception("scoring failed for a batch of %d; emitting fallback decisions", len(tx))
            batch = self._fallback(tx, exc)
            out.fallback = len(tx)
        out.timings_ms.update(batch.timings_ms)
        out.decisions = decision_records(batch, kept, tx.ts)
        return out

    def _fallback(self, tx: TxBatch, exc: BaseException) -> DecisionBatch:
        n = len(tx)
        code = DECISION_NAMES.index(self.fallback_decision)
        reason = [{"code": "FALLBACK", "description": f"scoring failed: {type(exc).__name__}"}]
        return DecisionBatch(
            tx_id=tx.tx_id,
            score=np.full(n, np.nan),
            decision=np.full(n, code, dtype=np.int8),
            reasons=[list(reason) for _ in range(n)],
            model_version="fallback",
            policy_version="fallback",
            fallback=True,
        )

    # -- labels ----------------------------------------------------------------

    def process_labels(self, records: Iterable[InRecord]) -> Output:
        """Queue labels for the next transaction batch; invalid ones become dead letters."""
        out = Output()
        for rec in records:
            if not self.is_new(rec):
                out.skipped += 1
                continue
            try:
                if rec.value is None:
                    raise ValidationError("<record>", "is empty (a tombstone or null value)")
                lab = parse_label(rec.value)
            except ValidationError as exc:
                out.dead_letters.append(dead_letter(rec, exc.to_dict()))
            except Exception as exc:  # noqa: BLE001
                out.dead_letters.append(
                    dead_letter(
                        rec, {"field": "<record>", "reason": f"{type(exc).__name__}: {exc}"}
                    )
                )
            else:
                row = self._lookup.get(lab["tx_id"])
                if row is None:
                    # Not seen yet (or older than the lookup): wait for it.
                    self._wait(lab["tx_id"], lab["label_time"], lab["label"])
                else:
                    self._pending.append((lab["tx_id"], lab["label_time"], lab["label"], row))
            self.positions[_pos_key(rec.topic, rec.partition)] = rec.offset + 1
        return out

    # -- state -----------------------------------------------------------------

    def snapshot(self) -> bytes:
        """State and the input positions it reflects, as one blob (no pickle)."""
        return self.snapshot_later()()

    def growth_due_soon(self) -> bool:
        """Whether the scoring's state tables near a growth (cheap; on the event loop)."""
        due = getattr(self.scoring, "growth_due_soon", None)
        return bool(due()) if due is not None else False

    def prepare_growth(self) -> None:
        """Make the state's next growth's memory ready, in a thread (see the engine's)."""
        prepare = getattr(self.scoring, "prepare_growth", None)
        if prepare is not None:
            prepare()

    def prepare_snapshot(self) -> None:
        """Work :meth:`snapshot_later` can have done ahead, in a thread (the scoring's buffers)."""
        prepare = getattr(self.scoring, "prepare_snapshot", None)
        if prepare is not None:
            prepare()

    def snapshot_later(self, *, copy_tables: bool = True) -> SnapshotCapture:
        """Capture the state now (copies); serialise it, as :meth:`snapshot`'s bytes, when called.

        The worker writes the result to its snapshot file in a thread
        (``write(fh)``) so deciding goes on while hundreds of MB are written;
        the capture is consistent with :attr:`positions` at the time of this
        call. ``copy_tables=False`` leaves the feature tables and the transaction
        lookup uncopied (the result serialises them as they are when called):
        for a forked writer, whose memory the fork froze.
        """
        later = getattr(self.scoring, "snapshot_later", None)
        if later is not None:
            engine = later() if copy_tables else uncopied(later)
        else:
            data = self._scoring().snapshot()
            engine = lambda: data  # noqa: E731
        lookup = self._lookup.capture(copy=copy_tables)
        head = {
            "version": SNAPSHOT_VERSION,
            "positions": dict(self.positions),
            "pending": [[t, lt, lab, list(map(_num, row))] for t, lt, lab, row in self._pending],
            "labels_unmatched": self.labels_unmatched,
            # In arrival order (restore numbers them again).
            "waiting": [
                [t, lt, lab]
                for _, t, lt, lab in sorted(
                    (seq, t, lt, lab) for t, labs in self._waiting.items() for seq, lt, lab in labs
                )
            ],
        }

        def own_parts() -> list[bytes]:
            ids, ts, amount, keys = lookup()
            return [
                orjson.dumps({**head, "lookup_ids": ids}),
                ts.tobytes(),
                amount.tobytes(),
                keys.tobytes(),
            ]

        return SnapshotCapture(own_parts, engine)

    def restore(self, data: bytes) -> None:
        """Load a :meth:`snapshot` (from this or an identically configured worker)."""
        parts = []
        at = 0
        while at < len(data):
            size = int.from_bytes(data[at : at + 8], "little")
            parts.append(data[at + 8 : at + 8 + size])
            at += 8 + size
        try:
            head = orjson.loads(parts[0])
        except (IndexError, orjson.JSONDecodeError):
            head = {}
        if head.get("version") not in _READABLE_VERSIONS or len(parts) != 5:
            raise ValueError(
                f"Snapshot layout version {head.get('version')!r} is not {SNAPSHOT_VERSION}; "
                "delete the state directory to rebuild state from the topics."
            )
        self._scoring().restore(parts[4])
        ids = head["lookup_ids"]
        self.positions = {k: int(v) for k, v in head["positions"].items()}
        self._lookup = Lookup.from_columns(
            self.lookup_size,
            ids,
            np.frombuffer(parts[1], np.int64),
            np.frombuffer(parts[2], np.float64),
            np.frombuffer(parts[3], np.uint64).reshape(len(ids), len(_LOOKUP_FIELDS) - 2),
        )
        self._pending = [(t, int(lt), int(lab), _row(r)) for t, lt, lab, r in head["pending"]]
        self.labels_unmatched = int(head["labels_unmatched"])
        self._waiting = OrderedDict()
        self._n_waiting = self._label_seq = 0
        for t, lt, lab in head.get("waiting", []):  # absent in version 2
            self._waiting.setdefault(t, []).append((self._label_seq, int(lt), int(lab)))
            self._label_seq += 1
        self._n_waiting = self._label_seq


class SnapshotCapture:
    """A captured processor state: ``()`` gives the snapshot's bytes, ``write(fh)`` writes them.

    A snapshot is five length-prefixed parts (the processor's header and
    lookup columns, then the scoring's state). ``write`` streams the scoring's
    part to the file when its capture can (the feature engine's
    ``StateCapture.write``) instead of building it in memory first.
    """

    def __init__(self, own_parts: Callable[[], list[bytes]], engine: Callable[[], bytes]) -> None:
        self._own_parts = own_parts
        self._engine = engine

    def __call__(self) -> bytes:
        buf = io.BytesIO()
        self.write(buf)
        return buf.getvalue()

    def write(self, fh: Any) -> None:
        parts = self._own_parts()
        write = getattr(self._engine, "write", None)
        if write is None:
            parts.append(self._engine())
        for p in parts:
            fh.write(len(p).to_bytes(8, "little"))
            fh.write(p)
        if write is None:
            return
        at = fh.tell()
        fh.write(bytes(8))  # the length, once known
        write(fh)
        end = fh.tell()
        fh.seek(at)
        fh.write((end - at - 8).to_bytes(8, "little"))
        fh.seek(end)


def _num(x: Any) -> Any:
    # uint64 keys do not fit a JSON float; keep them as exact ints (numpy or Python).
    return int(x) if isinstance(x, int | np.integer) else float(x)


def _row(v: list[Any]) -> tuple[Any, ...]:
    return (int(v[0]), float(v[1]), *(int(k) for k in v[2:]))
