"""Decode and validate a whole micro-batch at once, straight into a ``TxBatch``.

:func:`riskflow.schema.parse_transaction` checks one record at a time and
returns a normalised dict that :func:`~riskflow.streams._batch.tx_batch` then
takes apart again; together they cost more per record than the feature
kernel. :func:`fast_tx_batch` does the same checks column by column with
C-speed builtins (``set(map(type, column))``, ``min`` / ``max`` of a column,
``str`` methods on the few distinct values) and builds the batch's arrays
directly.

It is only a fast path: it accepts a batch when every record is plainly
valid and in canonical form (ids as non-empty strings, times as epoch-ms
ints, lower-case enums, ...) and returns ``None`` otherwise, and the caller
then runs the exact per-record validator, which names each bad record's
error. Range limits come from :mod:`riskflow.schema` itself: the records
holding each numeric column's extreme values go through
:func:`~riskflow.schema.validate_transaction`, so the limits live in one
place. ``tests/unit/streams/test_streams_columns.py`` checks that the fast
path never accepts what the per-record path rejects and that both build
identical batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from riskflow.batch import TxBatch
from riskflow.errors import ValidationError
from riskflow.schema import (
    CHANNELS,
    ENTRY_MODES,
    MAX_MESSAGE_BYTES,
    SUPPORTED_SCHEMA_VERSIONS,
    looks_like_pan,
    validate_transaction,
)
from riskflow.streams._batch import KeyCache, tx_batch_from_columns

__all__ = ["fast_tx_batch"]

_NONE = type(None)
_STR = frozenset({str})
_OPT_STR = frozenset({str, _NONE})
_NUM = frozenset({int, float})
_OPT_NUM = frozenset({int, float, _NONE})
_OPT_INT = frozenset({int, _NONE})
# Mirrors riskflow.schema (the parity test feeds values at and past each limit).
_MAX_ID_LEN = 128
_MAX_IP_LEN = 45
_IP_CHARS = "0123456789abcdefABCDEF.:"
_CHANNELS = frozenset(CHANNELS) | {None}
_ENTRY_MODES = frozenset(ENTRY_MODES) | {None}
_ID_FIELDS = ("tx_id", "card_token", "merchant_id")
_OPT_ID_FIELDS = ("customer_id", "terminal_id", "device_id")


def _strings(col: list[Any], required: bool) -> list[str] | None:
    """The column's strings if all are canonical ids (1..128 chars), else None."""
    types = set(map(type, col))
    if required:
        if types != _STR:
            return None
        strs = col
    else:
        if not types <= _OPT_STR:
            return None
        strs = [v for v in col if v is not None] if _NONE in types else col
    if strs and (min(map(len, strs)) == 0 or max(map(len, strs)) > _MAX_ID_LEN):
        return None  # "" means absent (normalised by the exact path); long ids are errors
    return strs


def _lengths(strs: list[str], lo: int, hi: int) -> bool:
    return lo <= min(map(len, strs)) and max(map(len, strs)) <= hi


def _extremes(values: list[Any], at: list[int]) -> list[int]:
    """Row numbers (from ``at``) of the smallest and largest of ``values``."""
    if not values:
        return []
    lo = min(range(len(values)), key=values.__getitem__)
    hi = max(range(len(values)), key=values.__getitem__)
    return [at[lo], at[hi]]


def fast_tx_batch(values: Sequence[bytes | None], keys: KeyCache | None = None) -> TxBatch | None:
    """``values`` (raw wire messages) as one ``TxBatch``, or None if any needs the exact path.

    ``keys`` remembers entity keys across batches (see :class:`KeyCache`).

    >>> raw = [b'{"schema_version":1,"tx_id":"t1","event_time":1767268800000,'
    ...        b'"card_token":"tok1","merchant_id":"m1","amount":5}']
    >>> fast_tx_batch(raw).amount.tolist(), fast_tx_batch(raw + [b"{oops"])
    ([5.0], None)
    """
    n = len(values)
    if n == 0:
        return None
    try:
        if max(map(len, values)) > MAX_MESSAGE_BYTES:  # type: ignore[arg-type]
            return None
        objs = list(map(orjson.loads, values))  # type: ignore[arg-type]
    except (TypeError, orjson.JSONDecodeError):
        return None  # a null value or bad JSON: the exact path makes its dead letter
    if set(map(type, objs)) != {dict}:
        return None

    def col(name: str) -> list[Any]:
        return [o.get(name) for o in objs]

    version = col("schema_version")
    if set(map(type, version)) != {int} or not set(version) <= SUPPORTED_SCHEMA_VERSIONS:
        return None
    cols: dict[str, list[Any]] = {}
    for name in _ID_FIELDS:
        if _strings(c := col(name), True) is None:
            return None
        cols[name] = c
    for name in _OPT_ID_FIELDS:
        if _strings(c := col(name), False) is None:
            return None
        cols[name] = c
    if any(map(looks_like_pan, cols["card_token"])):
        return None  # never echoed: the exact path's error does not carry the value
    ip = col("ip")
    ips = _strings(ip, False)
    # One joined string: all characters allowed iff nothing is left after strip.
    if ips is None or "".join(ips).strip(_IP_CHARS):
        return None
    if ips and max(map(len, ips)) > _MAX_IP_LEN:
        return None
    cols["ip"] = ip
    card_bin = col("card_bin")
    bins = _strings(card_bin, False)
    if bins is None or (bins and not ("".join(bins).isdigit() and _lengths(bins, 6, 8))):
        return None
    cols["card_bin"] = card_bin
    for name, length in (("currency", 3), ("country", 2)):
        c = col(name)
        strs = _strings(c, False)
        if strs is None:
            return None
        joined = "".join(strs)
        if strs and not (joined.isalpha() and _lengths(strs, length, length)):
            return None
        if joined != joined.upper():
            upper = {s: s.upper() for s in set(strs)}
            c = [None if s is None else upper[s] for s in c]
        cols[name] = c
    for name, allowed in (("channel", _CHANNELS), ("entry_mode", _ENTRY_MODES)):
        c = col(name)
        try:
            if not set(c) <= allowed:
                return None
        except TypeError:  # a list or object where a name belongs
            return None
        cols[name] = c
    try:
        return _numbers(objs, col, cols, n, keys)
    except (OverflowError, ValidationError):
        return None


def _numbers(
    objs: list[Any], col: Any, cols: dict[str, list[Any]], n: int, keys: KeyCache | None
) -> TxBatch | None:
    """Types here, ranges by the exact validator on the rows holding each extreme."""
    rows = list(range(n))
    check: list[int] = [0]
    event_time = col("event_time")
    if set(map(type, event_time)) != {int}:
        return None
    check += _extremes(event_time, rows)
    amount = col("amount")
    if not set(map(type, amount)) <= _NUM or not all(map(math.isfinite, amount)):
        return None
    check += _extremes(amount, rows)
    mcc = col("mcc")
    if not set(map(type, mcc)) <= _OPT_INT:
        return None
    present = [i for i, v in enumerate(mcc) if v is not None]
    check += _extremes([mcc[i] for i in present], present)
    lat, lon = col("lat"), col("lon")
    for c in (lat, lon):
        if not set(map(type, c)) <= _OPT_NUM:
            return None
    present = [i for i, v in enumerate(lat) if v is not None]
    if present != [i for i, v in enumerate(lon) if v is not None]:
        return None  # lat without lon (or the reverse): the exact path names it
    for c in (lat, lon):
        vals = [c[i] for i in present]
        if not all(map(math.isfinite, vals)):
            return None
        check += _extremes(vals, present)
    for i in set(check):
        validate_transaction(objs[i])
    cols.update(event_time=event_time, amount=amount, mcc=mcc, lat=lat, lon=lon)
    return tx_batch_from_columns(cols, n, keys)
