"""The batch validator agrees with the per-record one: never more lenient, same arrays."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest

from riskflow.batch import TxBatch
from riskflow.errors import ValidationError
from riskflow.schema import parse_transaction
from riskflow.streams._batch import tx_batch
from riskflow.streams._columns import _struct_columns, fast_tx_batch
from riskflow.streams.bench import make_transactions

T0 = 1_767_268_800_000


def full(i: int, extra: bool = True) -> dict[str, Any]:
    rec = {
        "schema_version": 1,
        "tx_id": f"t{i}",
        "event_time": T0 + i,
        "card_token": f"tok_{i % 7:x}",
        "customer_id": None if i % 4 == 0 else f"cu{i % 9}",
        "merchant_id": f"m{i % 3}",
        "terminal_id": f"t{i % 3}-1" if i % 2 else None,
        "mcc": None if i % 5 == 0 else 5000 + i,
        "amount": 10 + i if i % 2 else 10.5 + i,
        "currency": ["EUR", "usd", None][i % 3],
        "country": ["DE", "fr", None][i % 3],
        "channel": [None, "pos", "ecom", "atm"][i % 4],
        "entry_mode": [None, "chip", "cnp"][i % 3],
        "device_id": f"d{i % 5}" if i % 3 else None,
        "ip": [f"10.0.0.{i % 7}", "fe80::1", None][i % 3],
        "lat": 48.1 + i / 100 if i % 6 == 0 else None,
        "lon": 11.5 if i % 6 == 0 else None,
        "card_bin": "412345" if i % 2 else None,
        "unknown_extra": {"ignored": True},
    }
    if not extra:
        del rec["unknown_extra"]
    return rec


def exact(values: list[bytes | None]) -> TxBatch | None:
    """The per-record path: every record must parse, else None."""
    try:
        return tx_batch([parse_transaction(v) for v in values])  # type: ignore[arg-type]
    except (ValidationError, TypeError, OverflowError):
        return None


def assert_same(a: TxBatch, b: TxBatch) -> None:
    for name, x, y in zip(TxBatch._fields, a, b, strict=True):
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("extra", [False, True], ids=["canonical", "extra-fields"])
def test_valid_batches_take_the_fast_path_and_build_the_same_arrays(extra: bool) -> None:
    values = [orjson.dumps(full(i, extra)) for i in range(300)]
    # The front end meant for these records answers (it must not fall back silently).
    assert (_struct_columns(values) is None) == extra
    fast = fast_tx_batch(values)
    assert fast is not None, "the fast path refused a plainly valid batch"
    assert_same(fast, exact(values))  # type: ignore[arg-type]
    bench = [v for _, v in make_transactions(500)]
    assert_same(fast_tx_batch(bench), exact(bench))  # type: ignore[arg-type]


PAN = "4111111111111111"
MUTATIONS: list[tuple[str, Any]] = [
    *[("schema_version", v) for v in (2, True, 1.0, "1", None)],
    *[("tx_id", v) for v in ("", None, 5, "x" * 128, "x" * 129, ["a"])],
    *[
        ("card_token", v)
        for v in (PAN, "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111112")
    ],
    ("card_token", "٤١١١١١١١١١١١١١١١"),  # non-ASCII digits
    *[("card_token", v) for v in ("", 7, None)],
    *[("merchant_id", v) for v in ("", None, 12)],
    *[("customer_id", v) for v in ("", 5, "c" * 129)],
    ("event_time", "2026-01-01T00:00:00Z"),
    *[("event_time", v) for v in (946_684_800_000, 946_684_799_999, 4_102_444_800_000)],
    *[("event_time", v) for v in (4_102_444_800_001, True, 1.7e12, None, -1)],
    *[("amount", v) for v in (0, 0.0, -0.01, 1e9, 1e9 + 1, 10**30, True, "5", None)],
    *[("mcc", v) for v in (0, 9999, 10000, -1, "5411", True, 5411.0)],
    *[("lat", v) for v in (90, 90.5, -90, "1", True)],
    *[("lon", v) for v in (180, 180.5, -181)],
    *[("card_bin", v) for v in ("123456", "12345678", "12345", "123456789", "12a456", "", 123456)],
    *[("ip", v) for v in ("::1", "g.1.1.1", "a" * 45, "a" * 46, "", 5, "1.2.3.4 ")],
    *[("currency", v) for v in ("eur", "EU", "E1R", "", 5, "ÄÖÜ", "ßab")],
    *[("country", v) for v in ("de", "DEU", "d")],
    *[("channel", v) for v in ("POS", "web", "", 3, ["pos"], {"a": 1})],
    *[("entry_mode", v) for v in ("Chip", "bogus", "token")],
]


@pytest.mark.parametrize("extra", [False, True], ids=["canonical", "extra-fields"])
@pytest.mark.parametrize(("field", "value"), MUTATIONS, ids=lambda x: repr(x)[:20])
def test_fast_path_is_never_more_lenient_and_agrees_when_it_answers(
    field: str, value: Any, extra: bool
) -> None:
    # Canonical records take the msgspec front end, records with extra fields the orjson one.
    rows = [full(i, extra) for i in range(24)]
    for at in (0, 11, 23):  # first, middle and last row
        bad = [dict(r) for r in rows]
        bad[at][field] = value
        if field == "lat":
            bad[at]["lon"] = 0.0
        if field == "lon":
            bad[at]["lat"] = 0.0
        # json, not orjson: orjson refuses to write integers past 64 bits.
        values: list[bytes | None] = [json.dumps(r, ensure_ascii=False).encode() for r in bad]
        fast, slow = fast_tx_batch(values), exact(values)
        if slow is None:
            assert fast is None, f"fast path accepted {field}={value!r} the exact path rejects"
        elif fast is not None:
            assert_same(fast, slow)


@pytest.mark.parametrize(
    "odd",
    [None, b"{oops", b"[1]", b'"s"', b"5", b"null", b"x" * 70_000, orjson.dumps({"lat": 1})],
)
def test_undecodable_or_non_object_records_leave_the_batch_to_the_exact_path(
    odd: bytes | None,
) -> None:
    values = [orjson.dumps(full(i)) for i in range(5)] + [odd]
    assert fast_tx_batch(values) is None


def test_lat_without_lon_is_left_to_the_exact_path() -> None:
    rows = [full(i) for i in range(6)]
    rows[1].update(lat=1.0, lon=None)
    assert fast_tx_batch([orjson.dumps(r) for r in rows]) is None


def _wire(i: int) -> bytes:
    return orjson.dumps(full(i, extra=False))


# Raw messages where msgspec and orjson could disagree: the fast path must
# then answer None (or agree with the exact path), never accept what it rejects.
RAW_EDGES: list[bytes] = [
    _wire(1).replace(b'"tx_id":"t1"', b'"tx_id":"t\xff1"'),  # invalid UTF-8 in a field
    _wire(1).replace(b'"tx_id":"t1"', b'"tx_id":"t\\ud8001"'),  # lone surrogate escape
    _wire(1).replace(b'"tx_id":"t1"', b'"tx_id":"\\u00e9t1"'),  # valid escape
    _wire(1)[:-1] + b',"amount":"5"}',  # duplicate key, the last one invalid
    _wire(1)[:-1] + b',"amount":7.25}',  # duplicate key, both valid: the last wins
    _wire(1).replace(b'"schema_version":1,', b'"schema_version":1,"schema_version":true,'),
    _wire(1)[:-1] + b',"x":"\xff"}',  # bad UTF-8 in an unknown field
    _wire(1)[:-1] + b',"x":1e400}',  # an unknown field orjson cannot read
    _wire(1)[:-1] + b',"\xff":1}',  # bad UTF-8 in a key
    _wire(1).replace(b'"amount":11,', b'"amount":1e400,'),
    _wire(1).replace(b'"amount":11,', b'"amount":1e-400,'),
    _wire(1).replace(b'"amount":11,', b'"amount":100000000000000000000000000000,'),
    _wire(1).replace(b'"amount":11,', b'"amount":11.500000000000000000000001,'),
    _wire(1).replace(b'"amount":11,', b'"amount":-0.0,'),
    _wire(1).replace(b'"amount":11,', b'"amount":1E2,'),
    _wire(1).replace(b'"event_time":' + str(T0 + 1).encode(), b'"event_time":1767268800001.0'),
    _wire(1).replace(b'"event_time":' + str(T0 + 1).encode(), b'"event_time":' + b"9" * 30),
    _wire(0).replace(b'"mcc":null', b'"mcc":99999999999999999999'),
    b" \n" + _wire(1) + b" \t",  # whitespace around the object
    b"\xef\xbb\xbf" + _wire(1),  # a byte order mark
    _wire(1) + b"{}",  # trailing data
]


@pytest.mark.parametrize("raw", RAW_EDGES, ids=lambda r: repr(r)[-30:])
def test_raw_edge_cases_never_pass_the_fast_path_alone(raw: bytes) -> None:
    assert raw not in (_wire(0), _wire(1)), "the edge case was not built"
    for at in (0, 7):
        values: list[bytes | None] = [_wire(i) for i in range(8)]
        values[at] = raw
        fast, slow = fast_tx_batch(values), exact(values)
        if slow is None:
            assert fast is None, f"fast path accepted {raw!r} the exact path rejects"
        elif fast is not None:
            assert_same(fast, slow)


def test_decimal_amounts_parse_to_the_same_float_in_both_decoders() -> None:
    rng = np.random.default_rng(11)
    texts = [repr(float(x)) for x in rng.uniform(0, 1e9, 300)]
    texts += [
        f"{rng.integers(0, 10**9)}.{rng.integers(0, 10**12):012d}{d}"
        for d in range(10)
        for _ in range(20)
    ]
    texts += [
        "0.1",
        "0.30000000000000004",
        "999999999.9999999",
        "1e-320",
        "5e-324",
        "123456789012e-3",
    ]
    base = _wire(2)
    values = [base.replace(b'"amount":12.5,', b'"amount":' + t.encode() + b",") for t in texts]
    assert all(b'"amount":' + t.encode() in v for t, v in zip(texts, values, strict=True))
    assert _struct_columns(values) is not None
    fast, slow = fast_tx_batch(values), exact(values)
    assert fast is not None and slow is not None
    assert_same(fast, slow)
