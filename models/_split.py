"""Time-based train / validation / test split with a label-delay gap.

Fraud labels arrive days or weeks after the payment (chargebacks), so a model
deployed at time T has only seen labels known before T. A split that respects
this looks like::

    |-- train --|-- gap --|-- valid --|-- gap --|-- test --|

Each window is half-open ``[start, end)`` in epoch milliseconds. A row's label
in a window is what the labels stream says **by that window's cutoff**
(``end + gap`` for train and validation): a fraud reported later counts as
legitimate there, as it would have in production. The test window is scored
against every label known in the data (the best available truth).

>>> s = TimeSplit.from_bounds("2026-01-01", "2026-01-08", "2026-01-15", "2026-01-22",
...                           "2026-01-29", "2026-02-05", gap="7d")
>>> s.train.days, s.gap_ms // 86_400_000, s.label_cutoff("train") == s.valid.start
(7.0, 7, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from riskflow.errors import ConfigError
from riskflow.mapping import parse_duration_ms

__all__ = ["Window", "TimeSplit", "parse_time_ms", "known_labels"]

_DAY_MS = 86_400_000
SplitName = Literal["train", "valid", "test"]


def parse_time_ms(value: str | int | pd.Timestamp) -> int:
    """A date or time (``2026-01-08``, ``2026-01-08T12:00``, epoch ms) as epoch ms UTC.

    Text without a time zone is read as UTC.

    >>> parse_time_ms("2026-01-01"), parse_time_ms(1767225600000)
    (1767225600000, 1767225600000)
    """
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{value!r} is not a date or time; write e.g. 2026-01-08 or 2026-01-08T12:00Z."
        ) from exc
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.tz_convert("UTC").value // 1_000_000)


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)`` in epoch ms."""

    start: int
    end: int

    @property
    def days(self) -> float:
        """Length in days."""
        return (self.end - self.start) / _DAY_MS

    def mask(self, ts: np.ndarray) -> np.ndarray:
        """Rows whose time lies in the window."""
        return (ts >= self.start) & (ts < self.end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "start_ms": self.start,
            "end_ms": self.end,
        }


@dataclass(frozen=True)
class TimeSplit:
    """Train, validation and test windows in time order, separated by ``gap_ms``.

    Construction checks the order: ``train.end + gap <= valid.start`` and
    ``valid.end + gap <= test.start``, so no window overlaps another and each
    window's labels (known by ``end + gap``) were available before the next
    window starts.
    """

    train: Window
    valid: Window
    test: Window
    gap_ms: int

    def __post_init__(self) -> None:
        if self.gap_ms < 0:
            raise ConfigError(f"The label-delay gap must be >= 0. Got {self.gap_ms} ms instead.")
        for name in ("train", "valid", "test"):
            w = getattr(self, name)
            if w.end <= w.start:
                raise ConfigError(
                    f"The {name} window must end after it starts. Got {_iso(w.start)} .. "
                    f"{_iso(w.end)} instead."
                )
        for a, b in (("train", "valid"), ("valid", "test")):
            wa, wb = getattr(self, a), getattr(self, b)
            if wa.end + self.gap_ms > wb.start:
                raise ConfigError(
                    f"The {b} window must start at least the label-delay gap "
                    f"({self.gap_ms / _DAY_MS:g} days) after the {a} window ends, so that no "
                    f"label from the future leaks into {a}. Got {a} ending {_iso(wa.end)} and "
                    f"{b} starting {_iso(wb.start)} instead; move the windows or shorten --gap."
                )

    @classmethod
    def from_bounds(
        cls,
        train_start: str | int,
        train_end: str | int,
        valid_start: str | int,
        valid_end: str | int,
        test_start: str | int,
        test_end: str | int,
        gap: str | int = "7d",
    ) -> TimeSplit:
        """Build from six dates/times and a gap (``"7d"``, ``"36h"``; an int is ms)."""
        gap_ms = gap if isinstance(gap, int) else parse_duration_ms(gap)
        t = [
            parse_time_ms(v)
            for v in (train_start, train_end, valid_start, valid_end, test_start, test_end)
        ]
        return cls(Window(t[0], t[1]), Window(t[2], t[3]), Window(t[4], t[5]), int(gap_ms))

    @classmethod
    def default(
        cls,
        data_start_ms: int,
        data_end_ms: int,
        *,
        gap_ms: int = 7 * _DAY_MS,
        valid_ms: int = 7 * _DAY_MS,
        test_ms: int = 7 * _DAY_MS,
        warmup_ms: int | None = None,
    ) -> TimeSplit:
        """Windows laid back from the end of the data.

        Test = the last ``test_ms``; then a gap; validation; a gap; training
        takes what is left after a feature warm-up (default: a quarter of the
        remainder, at most 7 days) during which features see history but no
        row is used, since their 30-day windows are still filling.
        ``data_end_ms`` is exclusive (last event time + 1).

        If the data is too short for week-long windows, all four lengths are
        scaled down together so that train gets at least a third of the span.
        """
        span = data_end_ms - data_start_ms
        need = gap_ms * 2 + valid_ms + test_ms
        if span <= 0:
            raise ConfigError("The data holds no time span to split; is it empty?")
        if need > span * 2 / 3:
            f = span * 2 / 3 / need
            gap_ms, valid_ms, test_ms = int(gap_ms * f), int(valid_ms * f), int(test_ms * f)
        test = Window(data_end_ms - test_ms, data_end_ms)
        valid = Window(test.start - gap_ms - valid_ms, test.start - gap_ms)
        train_end = valid.start - gap_ms
        left = train_end - data_start_ms
        warm = min(7 * _DAY_MS, left // 4) if warmup_ms is None else warmup_ms
        return cls(Window(data_start_ms + warm, train_end), valid, test, gap_ms)

    @classmethod
    def resolve(
        cls,
        data_start_ms: int,
        data_end_ms: int,
        *,
        train: tuple[str | int, str | int] | None = None,
        valid: tuple[str | int, str | int] | None = None,
        test: tuple[str | int, str | int] | None = None,
        gap: str | int = "7d",
    ) -> TimeSplit:
        """Windows from what the user gave, the rest filled in from the data.

        Missing windows are laid out around the given ones: test defaults to
        the last week of the data (or after validation), validation to the
        week ending one gap before test, training to everything from the
        warm-up to one gap before validation. ``data_end_ms`` is exclusive.
        """
        gap_ms = gap if isinstance(gap, int) else parse_duration_ms(gap)
        if train is None and valid is None and test is None:
            return cls.default(data_start_ms, data_end_ms, gap_ms=gap_ms)
        wt = Window(*map(parse_time_ms, train)) if train else None
        wv = Window(*map(parse_time_ms, valid)) if valid else None
        ws = Window(*map(parse_time_ms, test)) if test else None
        week = 7 * _DAY_MS
        if ws is None and wv is None and wt is not None:
            wv = Window(wt.end + gap_ms, wt.end + gap_ms + week)
        if ws is None:
            if wv is not None:
                start = wv.end + gap_ms
                end = min(data_end_ms, start + week) if data_end_ms > start else start + week
                ws = Window(start, end)
            else:
                ws = cls.default(data_start_ms, data_end_ms, gap_ms=gap_ms).test
        if wv is None:
            end = ws.start - gap_ms
            wv = Window(wt.end + gap_ms if wt is not None else end - week, end)
        if wt is None:
            end = wv.start - gap_ms
            left = end - data_start_ms
            wt = Window(data_start_ms + min(week, max(left, 0) // 4), end)
        return cls(wt, wv, ws, int(gap_ms))

    def label_cutoff(self, name: SplitName) -> int | None:
        """Labels known before this time count for window ``name``; None = all labels."""
        if name == "test":
            return None
        return getattr(self, name).end + self.gap_ms

    def masks(self, ts: np.ndarray) -> dict[str, np.ndarray]:
        """Boolean row masks of each window over event times ``ts``."""
        ts = np.asarray(ts, dtype=np.int64)
        return {name: getattr(self, name).mask(ts) for name in ("train", "valid", "test")}

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": self.train.to_dict(),
            "valid": self.valid.to_dict(),
            "test": self.test.to_dict(),
            "gap_days": self.gap_ms / _DAY_MS,
            "label_cutoff": {
                "train": _iso(self.train.end + self.gap_ms),
                "valid": _iso(self.valid.end + self.gap_ms),
                "test": "all labels in the data",
            },
        }


def known_labels(
    tx_ids: np.ndarray | pd.Series, labels: pd.DataFrame, cutoff_ms: int | None
) -> np.ndarray:
    """0/1 label per transaction, as the labels stream says by ``cutoff_ms``.

    A transaction is fraud (1) if the latest label for it with
    ``label_time < cutoff_ms`` is 1; unlabelled or later-labelled transactions
    are 0. ``cutoff_ms=None`` uses every label.

    >>> labels = pd.DataFrame({"tx_id": ["a", "b", "b"], "label": [1, 1, 0],
    ...                        "label_time": [10, 5, 20]})
    >>> known_labels(np.array(["a", "b", "c"], dtype=object), labels, 15).tolist()
    [1, 1, 0]
    >>> known_labels(np.array(["a", "b", "c"], dtype=object), labels, None).tolist()
    [1, 0, 0]
    """
    lab = labels
    if cutoff_ms is not None:
        lab = lab[lab["label_time"].to_numpy() < cutoff_ms]
    lab = lab.sort_values("label_time", kind="stable").drop_duplicates("tx_id", keep="last")
    latest = pd.Series(lab["label"].to_numpy(dtype=np.int8), index=lab["tx_id"].astype(object))
    ids = pd.Series(np.asarray(tx_ids, dtype=object))
    return ids.map(latest).fillna(0).to_numpy(dtype=np.int8)
