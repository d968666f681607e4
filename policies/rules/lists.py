"""Allow, deny and watch lists: entries keyed by (list, kind, value), with optional expiry.

Values are the identifiers a transaction carries (``card_token``,
``customer_id``, ``merchant_id``, ``device_id``, ``ip``, ``card_bin``,
``country``). Card numbers are secrets: a list holds card *tokens* (see
:mod:`riskflow.security`), and an entry whose value looks like a raw card
number is refused without echoing it.

Membership is tested on the hashed keys of :class:`~riskflow.batch.TxBatch`
(:func:`riskflow.batch.hash_keys`), vectorised over a batch; an entry applies
to a transaction whose ``event_time`` is before the entry's ``expires_at``, so
stream and replay agree whatever the wall clock says.

>>> store = ListStore()
>>> store.put(ListEntry("deny", "country", "ng", reason="chargeback wave"))
>>> snap = store.snapshot()
>>> from riskflow.batch import hash_keys
>>> snap.member("deny", "country", hash_keys(["NG", "DE", None]), np.zeros(3, np.int64)).tolist()
[True, False, False]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from riskflow.batch import hash_keys
from riskflow.policies.rules.exceptions import ListError
from riskflow.schema import looks_like_pan

__all__ = [
    "ListEntry",
    "ListStore",
    "ListSnapshot",
    "LIST_KINDS",
    "KIND_FIELDS",
    "DECISION_LISTS",
    "BUILTIN_LISTS",
]

#: List kind -> the TxBatch attribute holding that entity's key.
LIST_KINDS: dict[str, str] = {
    "card": "card",
    "customer": "customer",
    "merchant": "merchant",
    "device": "device",
    "ip": "ip",
    "bin": "bin",
    "country": "country",
}
#: List kind -> the canonical transaction field it matches.
KIND_FIELDS: dict[str, str] = {
    "card": "card_token",
    "customer": "customer_id",
    "merchant": "merchant_id",
    "device": "device_id",
    "ip": "ip",
    "bin": "card_bin",
    "country": "country",
}
#: The lists the decision order consults before any rule (see apply.py).
DECISION_LISTS = ("allow", "deny")
#: Lists every rule set may name; `watch` is for rules only (it decides nothing by itself).
BUILTIN_LISTS = ("allow", "deny", "watch")
_LIST_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
#: An entry that never expires.
_NEVER = np.iinfo(np.int64).max


def normalise_value(kind: str, value: Any) -> str:
    """The value as the schema normalises that field (country upper-case, ...)."""
    if kind not in LIST_KINDS:
        raise ListError(f"Unknown list kind {kind!r}. Kinds are: {', '.join(LIST_KINDS)}.")
    if not isinstance(value, str) or not value.strip():
        raise ListError(f"A {kind} list value must be a non-empty string. Got {value!r} instead.")
    v = value.strip()
    if len(v) > 128:
        raise ListError(f"A {kind} list value is at most 128 characters. Got {len(v)} characters.")
    if kind == "card" and looks_like_pan(v):
        # Never echo it: it is a card number.
        raise ListError(
            "The card value looks like a raw card number; lists hold card tokens only. "
            "Pass the token, or let `riskflow lists add` tokenise it with the configured key."
        )
    if kind == "country":
        if not (len(v) == 2 and v.isalpha()):
            raise ListError(f"A country is a 2-letter ISO code, e.g. DE. Got {v!r} instead.")
        v = v.upper()
    if kind == "bin" and not (v.isdigit() and 6 <= len(v) <= 8):
        raise ListError(f"A card BIN is 6 to 8 digits. Got {v!r} instead.")
    return v


@dataclass(frozen=True)
class ListEntry:
    """One list entry.

    Parameters
    ----------
    list
        List name: ``allow``, ``deny``, ``watch`` or another lower-case name
        a rule set declares.
    kind
        One of :data:`LIST_KINDS`.
    value
        The identifier (a card token, never a card number).
    expires_at
        Epoch ms after which the entry no longer applies (None: never).
    reason, added_at, added_by
        Audit fields: why, when (epoch ms) and by whom.
    """

    list: str
    kind: str
    value: str
    expires_at: int | None = None
    reason: str = ""
    added_at: int | None = None
    added_by: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.list, str) or not _LIST_NAME.match(self.list):
            raise ListError(
                f"A list name is lower-case letters, digits and _ (e.g. deny). Got {self.list!r} instead."
            )
        object.__setattr__(self, "value", normalise_value(self.kind, self.value))
        if self.expires_at is not None and (
            isinstance(self.expires_at, bool) or not isinstance(self.expires_at, int)
        ):
            raise ListError(
                f"expires_at must be epoch milliseconds. Got {self.expires_at!r} instead."
            )

    @property
    def ident(self) -> tuple[str, str, str]:
        """(list, kind, value): what identifies the entry."""
        return (self.list, self.kind, self.value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ListEntry:
        try:
            return cls(**{k: d[k] for k in d if k in cls.__dataclass_fields__})
        except TypeError as exc:
            raise ListError(f"A list entry needs list, kind and value: {exc}.") from exc


@dataclass(frozen=True)
class ListSnapshot:
    """Immutable membership tables: (list, kind) -> (sorted keys, expiry per key)."""

    tables: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _packed: dict[tuple[tuple[str, str], ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def kinds(self, name: str) -> list[str]:
        """Kinds that list ``name`` has entries for."""
        return [k for (n, k) in self.tables if n == name]

    def member(self, name: str, kind: str, keys: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """True where ``keys`` (uint64, 0 = absent) is on list ``name`` and not expired at ``ts``."""
        table = self.tables.get((name, kind))
        keys = np.asarray(keys, dtype=np.uint64)
        if table is None:
            return np.zeros(keys.shape[0], dtype=bool)
        ks, exp = table
        idx = np.searchsorted(ks, keys)
        np.minimum(idx, ks.shape[0] - 1, out=idx)
        return (ks[idx] == keys) & (keys != 0) & (np.asarray(ts, dtype=np.int64) < exp[idx])

    def packed(
        self, refs: tuple[tuple[str, str], ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tables of ``refs`` ((list, kind) pairs) end to end, for the fused evaluator.

        Returns ``(keys, expiry, spans)``: table ``i`` is ``keys[spans[i, 0]:spans[i, 1]]``
        (empty for a (list, kind) without entries). Built once per snapshot.
        """
        out = self._packed.get(refs)
        if out is None:
            parts = [self.tables.get(r) for r in refs]
            ks = [p[0] for p in parts if p is not None]
            ex = [p[1] for p in parts if p is not None]
            spans = np.zeros((len(refs), 2), dtype=np.int64)
            at = 0
            for i, p in enumerate(parts):
                size = 0 if p is None else int(p[0].shape[0])
                spans[i] = (at, at + size)
                at += size
            out = (
                np.concatenate(ks) if ks else np.zeros(0, dtype=np.uint64),
                np.concatenate(ex) if ex else np.zeros(0, dtype=np.int64),
                spans,
            )
            self._packed[refs] = out
        return out

    def __len__(self) -> int:
        return sum(int(k.shape[0]) for k, _ in self.tables.values())


class ListStore:
    """The current entries, changed by :meth:`put` / :meth:`remove` (one topic record each).

    ``version`` counts applied changes unless the caller sets it (the worker
    sets it to the topic offset of the last change, the same on every worker).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], ListEntry] = {}
        self._snap: ListSnapshot | None = ListSnapshot()
        self.version = 0

    def put(self, entry: ListEntry) -> None:
        """Add or replace an entry."""
        self._entries[entry.ident] = entry
        self._snap = None
        self.version += 1

    def remove(self, name: str, kind: str, value: str) -> bool:
        """Drop an entry; False if it was not there."""
        found = self._entries.pop((name, kind, normalise_value(kind, value)), None) is not None
        self._snap = None
        self.version += 1
        return found

    def entries(self, name: str | None = None, kind: str | None = None) -> list[ListEntry]:
        """Entries, optionally of one list / kind, sorted."""
        return [
            e
            for k, e in sorted(self._entries.items())
            if (name is None or k[0] == name) and (kind is None or k[1] == kind)
        ]

    def __iter__(self) -> Iterator[ListEntry]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> ListSnapshot:
        """Membership tables of the current entries (rebuilt only after a change)."""
        if self._snap is None:
            groups: dict[tuple[str, str], list[ListEntry]] = {}
            for e in self._entries.values():
                groups.setdefault((e.list, e.kind), []).append(e)
            tables = {}
            for key, es in groups.items():
                ks = hash_keys([e.value for e in es])
                exp = np.array(
                    [_NEVER if e.expires_at is None else e.expires_at for e in es], dtype=np.int64
                )
                order = np.lexsort((-exp, ks))  # by key; the longest-lived first on a tie
                ks, exp = ks[order], exp[order]
                first = np.ones(ks.shape[0], dtype=bool)
                first[1:] = ks[1:] != ks[:-1]
                tables[key] = (np.ascontiguousarray(ks[first]), np.ascontiguousarray(exp[first]))
            self._snap = ListSnapshot(tables)
        return self._snap
