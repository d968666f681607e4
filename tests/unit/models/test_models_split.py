"""Time split: windows never overlap, the label-delay gap is respected, labels are point-in-time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskflow.errors import ConfigError
from riskflow.models import TimeSplit, Window, known_labels, parse_time_ms

DAY = 86_400_000
T0 = parse_time_ms("2026-01-01")


def _check_split(s: TimeSplit) -> None:
    assert s.train.start < s.train.end <= s.valid.start - s.gap_ms
    assert s.valid.start < s.valid.end <= s.test.start - s.gap_ms
    ts = np.arange(s.train.start - DAY, s.test.end + DAY, 3_600_000, dtype=np.int64)
    m = s.masks(ts)
    # No row is in two windows.
    assert not (m["train"] & m["valid"]).any()
    assert not (m["valid"] & m["test"]).any()
    assert not (m["train"] & m["test"]).any()
    # Every train row's labels are known (cutoff) before validation starts, etc.
    assert ts[m["train"]].max() + s.gap_ms < s.label_cutoff("train") + 1
    assert s.label_cutoff("train") <= s.valid.start
    assert s.label_cutoff("valid") <= s.test.start
    assert s.label_cutoff("test") is None


def test_published_protocol_week_gap_week() -> None:
    s = TimeSplit.from_bounds(
        "2026-01-01", "2026-01-08", "2026-01-15", "2026-01-22", "2026-01-29", "2026-02-05", gap="7d"
    )
    _check_split(s)
    assert s.train.days == s.valid.days == s.test.days == 7.0
    assert s.gap_ms == 7 * DAY


@pytest.mark.parametrize("days", [10, 40, 90, 183])
def test_default_windows_fit_the_data(days: int) -> None:
    end = T0 + days * DAY
    s = TimeSplit.default(T0, end)
    _check_split(s)
    assert s.test.end == end and s.train.start >= T0
    assert s.train.days >= s.test.days  # training gets a real share
    if days * 2 / 3 >= 28:  # room for week-long windows
        assert s.test.days == s.valid.days == 7 and s.gap_ms == 7 * DAY


@pytest.mark.parametrize(
    "bounds, match",
    [
        (
            ("2026-01-01", "2026-01-10", "2026-01-15", "2026-01-22", "2026-01-29", "2026-02-05"),
            "valid window must start",
        ),
        (
            ("2026-01-01", "2026-01-08", "2026-01-15", "2026-01-25", "2026-01-29", "2026-02-05"),
            "test window must start",
        ),
        (
            ("2026-01-08", "2026-01-01", "2026-01-15", "2026-01-22", "2026-01-29", "2026-02-05"),
            "must end after",
        ),
    ],
)
def test_overlap_or_short_gap_is_refused(bounds: tuple[str, ...], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TimeSplit.from_bounds(*bounds, gap="7d")


def test_zero_gap_allows_adjacent_windows_but_not_overlap() -> None:
    s = TimeSplit(
        Window(0 + T0, T0 + DAY),
        Window(T0 + DAY, T0 + 2 * DAY),
        Window(T0 + 2 * DAY, T0 + 3 * DAY),
        0,
    )
    _check_split(s)
    with pytest.raises(ConfigError):
        TimeSplit(
            Window(T0, T0 + 2 * DAY),
            Window(T0 + DAY, T0 + 3 * DAY),
            Window(T0 + 4 * DAY, T0 + 5 * DAY),
            0,
        )


def test_bad_date_text() -> None:
    with pytest.raises(ConfigError, match="not a date"):
        parse_time_ms("next tuesday")


def test_known_labels_respect_the_cutoff() -> None:
    labels = pd.DataFrame(
        {
            "tx_id": ["a", "b", "c", "c"],
            "label": [1, 1, 1, 0],
            "label_time": [100, 200, 50, 150],  # c: fraud at 50, corrected to legit at 150
        }
    )
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    assert known_labels(ids, labels, 150).tolist() == [
        1,
        0,
        1,
        0,
    ]  # b not known yet; c's correction neither
    assert known_labels(ids, labels, 201).tolist() == [1, 1, 0, 0]
    assert known_labels(ids, labels, None).tolist() == [1, 1, 0, 0]
    assert known_labels(ids, labels.iloc[:0], None).tolist() == [0, 0, 0, 0]
