from __future__ import annotations

import orjson
import pytest

from riskflow.errors import RiskflowError, ValidationError
from riskflow.schema import (
    MAX_MESSAGE_BYTES,
    TRANSACTION_COLUMNS,
    encode,
    parse_label,
    parse_transaction,
    validate_transaction,
)

GOOD = {
    "schema_version": 1,
    "tx_id": "tx-1",
    "event_time": 1_767_268_800_000,
    "card_token": "tok_5f2b",
    "customer_id": "c-9",
    "merchant_id": "m-3",
    "terminal_id": "t-3-1",
    "mcc": 5411,
    "amount": 42.5,
    "currency": "eur",
    "country": "de",
    "channel": "POS",
    "entry_mode": "chip",
    "lat": 52.52,
    "lon": 13.40,
    "card_bin": "411111",
}


def test_good_record_normalised() -> None:
    rec = validate_transaction(GOOD)
    assert list(rec) == list(TRANSACTION_COLUMNS)
    assert rec["currency"] == "EUR" and rec["country"] == "DE" and rec["channel"] == "pos"
    assert rec["device_id"] is None and rec["ip"] is None


def test_roundtrip_through_wire() -> None:
    rec = validate_transaction(GOOD)
    assert parse_transaction(encode(rec)) == rec


def test_iso_time_accepted() -> None:
    rec = validate_transaction({**GOOD, "event_time": "2026-01-01T12:00:00+00:00"})
    assert rec["event_time"] == 1_767_268_800_000


@pytest.mark.parametrize(
    ("change", "field", "needle"),
    [
        ({"amount": -1}, "amount", "finite number"),
        ({"amount": "12"}, "amount", "must be a number"),
        ({"amount": None}, "amount", "required"),
        ({"tx_id": ""}, "tx_id", "required"),
        ({"event_time": 1_767_268_800}, "event_time", "seconds or microseconds"),
        ({"event_time": "yesterday"}, "event_time", "ISO 8601"),
        ({"event_time": "2026-01-01T12:00:00"}, "event_time", "time zone"),
        ({"channel": "telepathy"}, "channel", "pos, ecom"),
        ({"mcc": 12345}, "mcc", "0..9999"),
        ({"lat": 91.0}, "lat", "[-90, 90]"),
        ({"lon": None}, "lon", "together"),
        ({"schema_version": 99}, "schema_version", "not supported"),
        ({"currency": "EURO"}, "currency", "3-letter"),
        ({"ip": "1.2.3.4; DROP TABLE"}, "ip", "IPv4"),
        ({"card_bin": "41x"}, "card_bin", "6 to 8 digits"),
    ],
)
def test_bad_fields_are_named(change: dict, field: str, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_transaction({**GOOD, **change})
    assert info.value.field == field
    assert needle in str(info.value)
    assert isinstance(info.value, RiskflowError) and isinstance(info.value, ValueError)


def test_raw_pan_rejected_and_never_echoed() -> None:
    pan = "4111111111111111"
    with pytest.raises(ValidationError) as info:
        validate_transaction({**GOOD, "card_token": pan})
    assert info.value.field == "card_token"
    assert pan not in str(info.value) and pan not in repr(info.value.to_dict())


def test_bad_json_and_oversize() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_transaction(b"{not json")
    with pytest.raises(ValidationError, match="must be a JSON object"):
        parse_transaction(b"[1, 2]")
    big = orjson.dumps({**GOOD, "pad": "x" * MAX_MESSAGE_BYTES})
    with pytest.raises(ValidationError, match="exceeds"):
        parse_transaction(big)


def test_labels() -> None:
    lab = parse_label(b'{"tx_id": "tx-1", "label": 1, "label_time": "2026-02-01T00:00:00Z"}')
    assert lab == {"tx_id": "tx-1", "label": 1, "label_time": 1_769_904_000_000}
    with pytest.raises(ValidationError, match="1 \\(fraud\\) or 0"):
        parse_label(b'{"tx_id": "tx-1", "label": 2, "label_time": 1769904000000}')
