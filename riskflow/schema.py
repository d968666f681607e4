"""The canonical transaction and label schema.

One transaction is a flat JSON object on the wire (orjson) and one row of a
table offline. Field specifications are data (:data:`TRANSACTION_FIELDS`), so
validation, documentation and the column mapping all read the same list.

Times are integers: milliseconds since the Unix epoch, UTC. On the wire an ISO
8601 string is accepted too and normalised to milliseconds.

Card numbers are secrets: the schema carries a ``card_token`` (see
:mod:`riskflow.security`); a value that looks like a raw card number is
rejected, and never echoed in an error.

>>> rec = validate_transaction({"schema_version": 1, "tx_id": "t1",
...     "event_time": "2026-01-01T12:00:00Z", "card_token": "tok_ab12",
...     "merchant_id": "m7", "amount": 12.5, "channel": "ECOM"})
>>> rec["event_time"], rec["channel"], rec["lat"]
(1767268800000, 'ecom', None)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

import orjson

from riskflow.errors import ValidationError

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "MAX_MESSAGE_BYTES",
    "Channel",
    "EntryMode",
    "FieldSpec",
    "TRANSACTION_FIELDS",
    "LABEL_FIELDS",
    "TRANSACTION_COLUMNS",
    "LABEL_COLUMNS",
    "validate_transaction",
    "validate_label",
    "parse_transaction",
    "parse_label",
    "encode",
    "looks_like_pan",
    "to_epoch_ms",
]

#: Version of the record layout below; bump when a field changes meaning.
SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
#: A card transaction is a few hundred bytes; 64 KiB leaves room for rich
#: optional fields while stopping garbage from reaching the feature engine.
MAX_MESSAGE_BYTES = 65_536
#: 2000-01-01 .. 2100-01-01 in ms: anything outside is a unit mistake (s vs ms).
_MIN_TIME_MS = 946_684_800_000
_MAX_TIME_MS = 4_102_444_800_000
#: Larger than any single card payment; catches cents-vs-units and overflow bugs.
_MAX_AMOUNT = 1e9


class Channel(IntEnum):
    """Where the payment happened. The integer is the code the kernels see."""

    POS = 0
    ECOM = 1
    ATM = 2
    MOTO = 3  # mail / telephone order
    P2P = 4  # person-to-person transfer


class EntryMode(IntEnum):
    """How the card credential was captured."""

    CHIP = 0
    CONTACTLESS = 1
    MAGSTRIPE = 2
    MANUAL = 3  # key-entered PAN
    CNP = 4  # card not present: typed on a website
    TOKEN = 5  # wallet / network token


CHANNELS = {c.name.lower(): c for c in Channel}
ENTRY_MODES = {m.name.lower(): m for m in EntryMode}


@dataclass(frozen=True)
class FieldSpec:
    """One field of the canonical schema."""

    name: str
    kind: str  # "str", "int", "float", "time", "enum"
    required: bool
    description: str


TRANSACTION_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("schema_version", "int", True, "Record layout version (currently 1)."),
    FieldSpec("tx_id", "str", True, "Unique transaction id; the decision is keyed by it."),
    FieldSpec(
        "event_time", "time", True, "When the payment was authorised (epoch ms UTC, or ISO 8601)."
    ),
    FieldSpec("card_token", "str", True, "Tokenised card number (never the raw PAN)."),
    FieldSpec("customer_id", "str", False, "Customer / account holding the card."),
    FieldSpec("merchant_id", "str", True, "Merchant (acceptor) id."),
    FieldSpec("terminal_id", "str", False, "Terminal / POS device id at the merchant."),
    FieldSpec("mcc", "int", False, "ISO 18245 merchant category code, 0..9999."),
    FieldSpec("amount", "float", True, "Amount in major units of `currency`, >= 0."),
    FieldSpec("currency", "str", False, "ISO 4217 alphabetic code, e.g. EUR."),
    FieldSpec("country", "str", False, "ISO 3166-1 alpha-2 country of the merchant, e.g. DE."),
    FieldSpec("channel", "enum", False, "pos, ecom, atm, moto or p2p."),
    FieldSpec("entry_mode", "enum", False, "chip, contactless, magstripe, manual, cnp or token."),
    FieldSpec("device_id", "str", False, "Device fingerprint of the payer (ecom / app)."),
    FieldSpec("ip", "str", False, "Payer IP address (IPv4 or IPv6 text)."),
    FieldSpec("lat", "float", False, "Latitude of the transaction, -90..90."),
    FieldSpec("lon", "float", False, "Longitude of the transaction, -180..180."),
    FieldSpec("card_bin", "str", False, "Issuer BIN (first 6-8 digits of the card number)."),
)

LABEL_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("tx_id", "str", True, "The transaction the label is about."),
    FieldSpec("label", "int", True, "1 = confirmed fraud, 0 = confirmed legitimate."),
    FieldSpec(
        "label_time", "time", True, "When the label became known (epoch ms UTC, or ISO 8601)."
    ),
)

TRANSACTION_COLUMNS: tuple[str, ...] = tuple(f.name for f in TRANSACTION_FIELDS)
LABEL_COLUMNS: tuple[str, ...] = tuple(f.name for f in LABEL_FIELDS)
_MAX_ID_LEN = 128


def looks_like_pan(value: str) -> bool:
    """True if ``value`` is 13-19 digits passing the Luhn check (a raw card number).

    >>> looks_like_pan("4111111111111111"), looks_like_pan("tok_4111")
    (True, False)
    """
    digits = value.replace(" ", "").replace("-", "")
    if not (13 <= len(digits) <= 19 and digits.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def to_epoch_ms(value: Any, field: str = "event_time") -> int:
    """Normalise a time (epoch ms int, or ISO 8601 text) to epoch milliseconds."""
    if isinstance(value, bool):
        raise ValidationError(field, "must be epoch milliseconds or an ISO 8601 string", value)
    if isinstance(value, int):
        ms = value
    elif isinstance(value, float) and math.isfinite(value):
        ms = int(value)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                field, "is not an ISO 8601 time (e.g. 2026-01-01T12:00:00Z)", value
            ) from None
        if dt.tzinfo is None:
            raise ValidationError(field, "has no time zone; add Z or +00:00", value)
        ms = int(dt.timestamp() * 1000)
    else:
        raise ValidationError(field, "must be epoch milliseconds or an ISO 8601 string", value)
    if not _MIN_TIME_MS <= ms <= _MAX_TIME_MS:
        raise ValidationError(
            field,
            "is outside 2000..2100 as epoch milliseconds; seconds or microseconds given?",
            value,
        )
    return ms


def _id(rec: Mapping[str, Any], name: str, required: bool) -> str | None:
    v = rec.get(name)
    if v is None or v == "":
        if required:
            raise ValidationError(name, "is required")
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str):
        raise ValidationError(name, "must be a string", v)
    if len(v) > _MAX_ID_LEN:
        raise ValidationError(name, f"is longer than {_MAX_ID_LEN} characters", v)
    return v


def _number(rec: Mapping[str, Any], name: str, lo: float, hi: float) -> float | None:
    v = rec.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValidationError(name, "must be a number", v)
    f = float(v)
    if not (math.isfinite(f) and lo <= f <= hi):
        raise ValidationError(name, f"must be a finite number in [{lo:g}, {hi:g}]", v)
    return f


def _enum(rec: Mapping[str, Any], name: str, table: Mapping[str, IntEnum]) -> str | None:
    v = rec.get(name)
    if v is None or v == "":
        return None
    if not isinstance(v, str) or v.lower() not in table:
        raise ValidationError(name, f"must be one of {', '.join(table)}", v)
    return v.lower()


def _code(rec: Mapping[str, Any], name: str, length: int) -> str | None:
    v = rec.get(name)
    if v is None or v == "":
        return None
    if not (isinstance(v, str) and len(v) == length and v.isalpha()):
        raise ValidationError(name, f"must be a {length}-letter code", v)
    return v.upper()


def validate_transaction(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Check one transaction record and return it normalised.

    Returns a new dict with every canonical field present (``None`` where an
    optional field is absent), ``event_time`` in epoch ms, enums lower-case,
    codes upper-case. Unknown extra fields are dropped.

    Raises
    ------
    ValidationError
        Naming the first bad field and why.
    """
    if not isinstance(rec, Mapping):
        raise ValidationError("<record>", "must be a JSON object", type(rec).__name__)
    version = rec.get("schema_version", None)
    if version is None:
        raise ValidationError("schema_version", f"is required (current: {SCHEMA_VERSION})")
    if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
        raise ValidationError(
            "schema_version",
            f"is not supported; this riskflow reads versions {sorted(SUPPORTED_SCHEMA_VERSIONS)}",
            version,
        )
    card = _id(rec, "card_token", True)
    assert card is not None
    if looks_like_pan(card):
        # Never echo the value: it is a card number.
        raise ValidationError(
            "card_token",
            "looks like a raw card number; tokenise it first (riskflow.security.tokenise_pan "
            "or `tokenize = true` in the column mapping)",
        )
    if "event_time" not in rec or rec["event_time"] is None:
        raise ValidationError("event_time", "is required")
    amount = _number(rec, "amount", 0.0, _MAX_AMOUNT)
    if amount is None:
        raise ValidationError("amount", "is required")
    mcc = rec.get("mcc")
    if mcc is not None:
        if isinstance(mcc, str) and mcc.isdigit():
            mcc = int(mcc)
        if isinstance(mcc, bool) or not isinstance(mcc, int) or not 0 <= mcc <= 9999:
            raise ValidationError("mcc", "must be an integer merchant category code 0..9999", mcc)
    lat = _number(rec, "lat", -90.0, 90.0)
    lon = _number(rec, "lon", -180.0, 180.0)
    if (lat is None) != (lon is None):
        raise ValidationError("lat" if lat is None else "lon", "lat and lon must be given together")
    card_bin = _id(rec, "card_bin", False)
    if card_bin is not None and not (card_bin.isdigit() and 6 <= len(card_bin) <= 8):
        raise ValidationError("card_bin", "must be 6 to 8 digits", card_bin)
    ip = _id(rec, "ip", False)
    if ip is not None and (len(ip) > 45 or not all(c in _IP_CHARS for c in ip)):
        raise ValidationError("ip", "must be an IPv4 or IPv6 address", ip)
    return {
        "schema_version": version,
        "tx_id": _id(rec, "tx_id", True),
        "event_time": to_epoch_ms(rec["event_time"], "event_time"),
        "card_token": card,
        "customer_id": _id(rec, "customer_id", False),
        "merchant_id": _id(rec, "merchant_id", True),
        "terminal_id": _id(rec, "terminal_id", False),
        "mcc": mcc,
        "amount": amount,
        "currency": _code(rec, "currency", 3),
        "country": _code(rec, "country", 2),
        "channel": _enum(rec, "channel", CHANNELS),
        "entry_mode": _enum(rec, "entry_mode", ENTRY_MODES),
        "device_id": _id(rec, "device_id", False),
        "ip": ip,
        "lat": lat,
        "lon": lon,
        "card_bin": card_bin,
    }


_IP_CHARS = frozenset("0123456789abcdefABCDEF.:")


def validate_label(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Check one label record (tx_id, label, label_time) and return it normalised."""
    if not isinstance(rec, Mapping):
        raise ValidationError("<record>", "must be a JSON object", type(rec).__name__)
    label = rec.get("label")
    if isinstance(label, bool):
        label = int(label)
    if label not in (0, 1):
        raise ValidationError("label", "must be 1 (fraud) or 0 (legitimate)", label)
    if rec.get("label_time") is None:
        raise ValidationError("label_time", "is required")
    return {
        "tx_id": _id(rec, "tx_id", True),
        "label": int(label),
        "label_time": to_epoch_ms(rec["label_time"], "label_time"),
    }


def _parse(
    raw: bytes | str, validate: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ValidationError(
            "<record>", f"message of {len(raw)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit"
        )
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("<record>", f"is not valid JSON ({exc})") from None
    return validate(obj)


def parse_transaction(raw: bytes | str) -> dict[str, Any]:
    """Decode a wire message (JSON bytes) into a validated transaction dict."""
    return _parse(raw, validate_transaction)


def parse_label(raw: bytes | str) -> dict[str, Any]:
    """Decode a wire message (JSON bytes) into a validated label dict."""
    return _parse(raw, validate_label)


def encode(record: Mapping[str, Any]) -> bytes:
    """Encode a record for the wire, dropping absent optional fields."""
    return orjson.dumps(
        {k: v for k, v in record.items() if v is not None},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
