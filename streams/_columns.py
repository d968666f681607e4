"""Decode and validate a whole micro-batch at once, straight into a ``TxBatch``.

:func:`riskflow.schema.parse_transaction` checks one record at a time and
returns a normalised dict that :func:`~riskflow.streams._batch.tx_batch` then
takes apart again; together they cost more per record than the feature
kernel. :func:`fast_tx_batch` does the same checks column by column and
builds the batch's arrays directly, in two front ends:

- records of exactly the canonical fields (the usual case) are decoded by
  msgspec into a typed struct: JSON syntax, types (no bool for a number, no
  float for an int), id lengths and enum names are checked in C during the
  decode, and the batch's columns come out of one C-level transposition;
- records with extra fields, which that decoder refuses (it would skip their
  content without checking it the way orjson does), are decoded by orjson
  and each column's types are checked with C-speed builtins
  (``set(map(type, column))``, ``min`` / ``max`` of a column).

Both then check the string formats on the few distinct values and the
numeric ranges. It is only a fast path: it accepts a batch when every record
is plainly valid and in canonical form (ids as non-empty strings, times as
epoch-ms ints, lower-case enums, ...) and returns ``None`` otherwise, and the
caller then runs the exact per-record validator, which names each bad
record's error. Range limits come from :mod:`riskflow.schema` itself: the
records holding each numeric column's extreme values go through
:func:`~riskflow.schema.validate_transaction`, so the limits live in one
place. ``tests/unit/streams/test_streams_columns.py`` checks that the fast
path never accepts what the per-record path rejects and that both build
identical batches, through either front end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
import orjson

from riskflow.batch import TxBatch
from riskflow.errors import ValidationError
from riskflow.schema import (
    CHANNELS,
    ENTRY_MODES,
    MAX_MESSAGE_BYTES,
    SUPPORTED_SCHEMA_VERSIONS,
    TRANSACTION_COLUMNS,
    looks_like_pan,
    validate_transaction,
)
from riskflow.streams._batch import tx_batch_from_columns

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
#: Characters of a card token that could be a raw card number (looks_like_pan).
_PAN_CHARS = "0123456789 -"
_CHANNELS = frozenset(CHANNELS) | {None}
_ENTRY_MODES = frozenset(ENTRY_MODES) | {None}
_ID_FIELDS = ("tx_id", "card_token", "merchant_id")
_OPT_ID_FIELDS = ("customer_id", "terminal_id", "device_id")

# An id as the schema accepts it unchanged: a string of 1..128 characters
# ("" and ints are normalised by the exact path, so they leave the fast path).
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_ID_LEN)]
_Channel = Literal["pos", "ecom", "atm", "moto", "p2p"]
_EntryMode = Literal["chip", "contactless", "magstripe", "manual", "cnp", "token"]


class _Wire(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One canonical transaction as msgspec decodes it (field order: the schema's)."""

    schema_version: int
    tx_id: _Id
    event_time: int
    card_token: _Id
    customer_id: _Id | None = None
    merchant_id: _Id
    terminal_id: _Id | None = None
    mcc: int | None = None
    amount: float
    currency: _Id | None = None
    country: _Id | None = None
    channel: _Channel | None = None
    entry_mode: _EntryMode | None = None
    device_id: _Id | None = None
    ip: _Id | None = None
    lat: float | None = None
    lon: float | None = None
    card_bin: _Id | None = None


_FIELDS: tuple[str, ...] = _Wire.__struct_fields__
# The struct must list the schema's fields in its order (astuple's order).
assert _FIELDS == TRANSACTION_COLUMNS, "_Wire out of step with riskflow.schema"
assert set(CHANNELS) == set(_Channel.__args__)  # type: ignore[attr-defined]
assert set(ENTRY_MODES) == set(_EntryMode.__args__)  # type: ignore[attr-defined]
_decode_wire = msgspec.json.Decoder(_Wire).decode


def fast_tx_batch(values: Sequence[bytes | None]) -> TxBatch | None:
    """``values`` (raw wire messages) as one ``TxBatch``, or None if any needs the exact path.

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
    except TypeError:
        return None  # a null value: the exact path makes its dead letter
    cols = _struct_columns(values)
    if cols is None:
        cols = _dict_columns(values)
        if cols is None:
            return None
    try:
        return _checked_batch(cols, n)
    except (OverflowError, ValidationError):
        return None


def _struct_columns(values: Sequence[bytes | None]) -> dict[str, Sequence[Any]] | None:
    """Columns of records with exactly the schema's fields, types checked by msgspec."""
    try:
        objs = list(map(_decode_wire, values))  # type: ignore[arg-type]
    except (msgspec.DecodeError, TypeError, ValueError):  # ValueError: bad UTF-8 in a string
        return None
    return dict(zip(_FIELDS, zip(*map(msgspec.structs.astuple, objs), strict=True), strict=True))


def _dict_columns(values: Sequence[bytes | None]) -> dict[str, Sequence[Any]] | None:
    """Columns of any JSON objects (extra fields allowed), each column's types checked here."""
    try:
        objs = list(map(orjson.loads, values))  # type: ignore[arg-type]
    except (TypeError, orjson.JSONDecodeError):
        return None  # bad JSON: the exact path makes its dead letter
    if set(map(type, objs)) != {dict}:
        return None
    cols: dict[str, Sequence[Any]] = {name: [o.get(name) for o in objs] for name in _FIELDS}
    if set(map(type, cols["schema_version"])) != {int}:
        return None
    for name in _ID_FIELDS:
        if _strings(cols[name], True) is None:
            return None
    for name in (*_OPT_ID_FIELDS, "ip", "card_bin", "currency", "country"):
        if _strings(cols[name], False) is None:
            return None
    for name, allowed in (("channel", _CHANNELS), ("entry_mode", _ENTRY_MODES)):
        try:
            if not set(cols[name]) <= allowed:
                return None
        except TypeError:  # a list or object where a name belongs
            return None
    if set(map(type, cols["event_time"])) != {int}:
        return None
    if not set(map(type, cols["amount"])) <= _NUM:
        return None
    if not set(map(type, cols["mcc"])) <= _OPT_INT:
        return None
    for name in ("lat", "lon"):
        if not set(map(type, cols[name])) <= _OPT_NUM:
            return None
    return cols


def _strings(col: Sequence[Any], required: bool) -> Sequence[str] | None:
    """The column's strings if all are canonical ids (1..128 chars), else None."""
    types = set(map(type, col))
    if required:
        if types != _STR:
            return None
        strs = col
    else:
        if not types <= _OPT_STR:
            return None
        strs = _present(col)
    if strs and (min(map(len, strs)) == 0 or max(map(len, strs)) > _MAX_ID_LEN):
        return None  # "" means absent (normalised by the exact path); long ids are errors
    return strs


def _present(col: Sequence[Any]) -> Sequence[Any]:
    return [v for v in col if v is not None] if None in col else col


def _lengths(strs: Sequence[str], lo: int, hi: int) -> bool:
    return lo <= min(map(len, strs)) and max(map(len, strs)) <= hi


def _extremes(col: Sequence[Any]) -> list[int]:
    """Row numbers of the smallest and largest non-None values of ``col``."""
    if None in col:
        rows = [i for i, v in enumerate(col) if v is not None]
        vals = [col[i] for i in rows]
        if not vals:
            return []
        return [rows[vals.index(min(vals))], rows[vals.index(max(vals))]]
    return [col.index(min(col)), col.index(max(col))]


def _checked_batch(cols: dict[str, Sequence[Any]], n: int) -> TxBatch | None:
    """Formats and ranges of type-checked columns; the batch if all pass."""
    if not set(cols["schema_version"]) <= SUPPORTED_SCHEMA_VERSIONS:
        return None
    tokens = cols["card_token"]
    # Only a token of digits, spaces and dashes (or non-ASCII) can look like a PAN.
    if any(map(looks_like_pan, [t for t in tokens if not t.isascii() or not t.strip(_PAN_CHARS)])):
        return None  # never echoed: the exact path's error does not carry the value
    ips = _present(cols["ip"])
    # One joined string: all characters allowed iff nothing is left after strip.
    if ips and ("".join(ips).strip(_IP_CHARS) or max(map(len, ips)) > _MAX_IP_LEN):
        return None
    bins = _present(cols["card_bin"])
    if bins and not ("".join(bins).isdigit() and _lengths(bins, 6, 8)):
        return None
    lat, lon = cols["lat"], cols["lon"]
    if [v is None for v in lat] != [v is None for v in lon]:
        return None  # lat without lon (or the reverse): the exact path names it
    amount = cols["amount"]
    if not all(map(math.isfinite, amount)):
        return None
    for c in (lat, lon):
        if not all(map(math.isfinite, _present(c))):
            return None
    check = {0}
    for name in ("event_time", "amount", "mcc", "lat", "lon"):
        check.update(_extremes(cols[name]))
    for i in check:
        validate_transaction({name: col[i] for name, col in cols.items()})
    out = dict(cols)
    for name, length in (("currency", 3), ("country", 2)):
        strs = _present(cols[name])
        if not strs:
            continue
        joined = "".join(strs)
        if not (joined.isalpha() and _lengths(strs, length, length)):
            return None
        if joined != joined.upper():
            upper = {s: s.upper() for s in set(strs)}
            out[name] = [None if s is None else upper[s] for s in cols[name]]
    return tx_batch_from_columns(out, n)
