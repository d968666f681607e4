"""Column mapping: run riskflow on data it did not generate.

A small TOML file says which source column feeds which canonical field
(:mod:`riskflow.schema`), how times are encoded, which values to rename, and
where labels come from. Example, for a file with ``trans_num``, ``unix_time``,
``cc_num``, ``amt``, ``is_fraud``::

    [transactions]
    tx_id = "trans_num"
    event_time = { column = "unix_time", unit = "s" }
    card_token = { column = "cc_num", tokenize = true }   # raw PAN -> HMAC token (+ card_bin)
    merchant_id = "merchant"
    amount = "amt"
    lat = "merch_lat"
    lon = "merch_long"
    currency = { value = "USD" }                           # a constant
    channel = { value = "pos" }

    [transactions.values.channel]                          # rename source values
    online = "ecom"

    [labels]
    label = "is_fraud"            # a column of the transactions file (or of --labels FILE)
    label_time = "chargeback_at"  # optional; without it `delay` applies
    delay = "14d"

Field values: a column name, or a table with ``column`` plus options
``unit`` (times: ``auto`` (default; by magnitude), ``s``, ``ms``, ``us``, ``ns``,
or ``iso``), ``origin`` (times counted from a date, e.g. seconds since the start
of a data set), ``tokenize`` (card numbers), or ``value`` for a constant.
Unmapped canonical columns that exist under their own name are taken as they
are; optional fields missing altogether stay absent (their features are NaN).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskflow.errors import MappingError
from riskflow.schema import LABEL_COLUMNS, SCHEMA_VERSION, TRANSACTION_COLUMNS
from riskflow.security import card_bin, tokenise_column

__all__ = [
    "builtin_mappings",
    "ColumnMapping",
    "FieldSource",
    "parse_duration_ms",
    "to_epoch_ms_column",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_TIME_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
_FIELD_OPTIONS = {"column", "unit", "origin", "tokenize", "value"}


def builtin_mappings() -> list[str]:
    """Names of the mappings shipped with riskflow (``--mapping NAME``)."""
    folder = resources.files("riskflow") / "mappings"
    return sorted(f.name[: -len(".toml")] for f in folder.iterdir() if f.name.endswith(".toml"))


def parse_duration_ms(text: str | int | float) -> int:
    """``"14d"``, ``"36h"``, ``"90s"`` ... (or a number of seconds) in milliseconds.

    >>> parse_duration_ms("14d"), parse_duration_ms("1.5h"), parse_duration_ms(60)
    (1209600000, 5400000, 60000)
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        return int(text * 1000)
    m = _DURATION.match(str(text))
    if not m:
        raise MappingError(
            f"{text!r} is not a duration; write e.g. '14d', '36h', '90s' or '500ms'."
        )
    return int(float(m.group(1)) * _UNIT_MS[m.group(2)])


def to_epoch_ms_column(
    values: pd.Series, unit: str = "auto", origin: str | None = None
) -> pd.Series:
    """Convert a time column (numbers, text or datetimes) to int64 epoch milliseconds.

    ``auto`` reads numbers by magnitude (seconds ~1e9, ms ~1e12, us ~1e15,
    ns ~1e18, valid for dates after 2001) and text as ISO 8601 (naive text is UTC).

    >>> to_epoch_ms_column(pd.Series([1767225600, 1767225601])).tolist()
    [1767225600000, 1767225601000]
    >>> to_epoch_ms_column(pd.Series(["2026-01-01T00:00:00Z"])).tolist()
    [1767225600000]
    """
    if unit not in _TIME_UNITS:
        raise MappingError(f"time unit {unit!r} is not one of {', '.join(_TIME_UNITS)}.")
    if origin is not None:
        base = pd.Timestamp(origin, tz="UTC").value // 1_000_000
        secs = pd.to_numeric(values, errors="raise").astype("float64")
        factor = _UNIT_MS.get(unit if unit != "auto" else "s", 1000)
        return (base + np.round(secs * factor)).astype("int64")
    if pd.api.types.is_datetime64_any_dtype(values):
        dt = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        return (dt.astype("datetime64[ns, UTC]").astype("int64") // 1_000_000).astype("int64")
    if unit == "iso" or (unit == "auto" and not pd.api.types.is_numeric_dtype(values)):
        dt = pd.to_datetime(values, utc=True, errors="raise", format="ISO8601")
        return (dt.astype("datetime64[ns, UTC]").astype("int64") // 1_000_000).astype("int64")
    nums = pd.to_numeric(values, errors="raise").astype("float64")
    if unit == "auto":
        med = float(np.nanmedian(np.abs(nums.to_numpy()))) if len(nums) else 1e12
        unit = "s" if med < 1e11 else "ms" if med < 1e14 else "us" if med < 1e17 else "ns"
    scale = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}[unit]
    return np.floor(nums * scale).astype("int64")


@dataclass(frozen=True)
class FieldSource:
    """Where one canonical field comes from."""

    column: str | None = None
    value: Any = None
    unit: str = "auto"
    origin: str | None = None
    tokenize: bool = False


@dataclass(frozen=True)
class ColumnMapping:
    """A parsed column mapping (see module docs for the TOML format)."""

    transactions: Mapping[str, FieldSource] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    labels: Mapping[str, FieldSource] = field(default_factory=dict)
    label_delay_ms: int | None = None
    source: str = "<inline>"

    @classmethod
    def load(cls, path: str | Path) -> ColumnMapping:
        """Read and check a mapping file, or a built-in mapping by name (see :func:`builtin_mappings`)."""
        p = Path(path)
        if not p.is_file() and str(path) in builtin_mappings():
            p = Path(str(resources.files("riskflow") / "mappings" / f"{path}.toml"))
        if not p.is_file():
            raise MappingError(
                f"Mapping file {str(p)!r} does not exist; give a path or one of the built-in "
                f"mappings {sorted(builtin_mappings())}."
            )
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise MappingError(f"Mapping file {str(p)!r} is not valid TOML: {exc}.") from exc
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<inline>") -> ColumnMapping:
        unknown = set(data) - {"transactions", "labels"}
        if unknown:
            raise MappingError(
                f"{source}: unknown section(s) {sorted(unknown)}; use [transactions] and [labels]."
            )
        tx_section = dict(data.get("transactions", {}))
        values = tx_section.pop("values", {})
        tx = {
            k: _field(source, "transactions", k, v, TRANSACTION_COLUMNS)
            for k, v in tx_section.items()
        }
        for name, table in values.items():
            if name not in TRANSACTION_COLUMNS or not isinstance(table, Mapping):
                raise MappingError(
                    f"{source}: [transactions.values.{name}] must rename values of a canonical field."
                )
        lab_section = dict(data.get("labels", {}))
        delay = lab_section.pop("delay", None)
        labels = {k: _field(source, "labels", k, v, LABEL_COLUMNS) for k, v in lab_section.items()}
        return cls(
            transactions=tx,
            values={k: dict(v) for k, v in values.items()},
            labels=labels,
            label_delay_ms=None if delay is None else parse_duration_ms(delay),
            source=source,
        )

    # -- applying ---------------------------------------------------------
    def apply(self, raw: pd.DataFrame, tokenisation_key: bytes) -> pd.DataFrame:
        """Map a raw transactions frame onto canonical columns (not yet validated)."""
        out: dict[str, Any] = {}
        n = len(raw)
        for name in TRANSACTION_COLUMNS:
            src = self.transactions.get(name)
            if src is None:
                if name in raw.columns:
                    out[name] = raw[name]
                continue
            if src.column is None:
                out[name] = pd.Series([src.value] * n, index=raw.index, dtype=object)
                continue
            if src.column not in raw.columns:
                raise MappingError(
                    f"{self.source}: column {src.column!r} (for {name!r}) is not in the data; "
                    f"columns are {sorted(map(str, raw.columns))[:30]}."
                )
            col = raw[src.column]
            if name == "event_time":
                col = _time(self.source, name, col, src)
            elif src.tokenize:
                if name != "card_token":
                    raise MappingError(
                        f"{self.source}: tokenize applies to card_token only, not {name!r}."
                    )
                if "card_bin" not in self.transactions and "card_bin" not in raw.columns:
                    out["card_bin"] = card_bin(col)
                col = tokenise_column(col, tokenisation_key)
            out[name] = col
        for name, table in self.values.items():
            if name in out:
                out[name] = out[name].map(
                    lambda v, t=table: t.get(v, v) if isinstance(v, str) else v
                )
        df = pd.DataFrame(out, index=raw.index)
        if "schema_version" not in df.columns:
            df["schema_version"] = SCHEMA_VERSION
        return df

    def has_label_column(self) -> bool:
        """True if labels come from a column of the transactions file."""
        return "label" in self.labels

    def labels_from(
        self, raw: pd.DataFrame, tx_ids: pd.Series, event_time: pd.Series, default_delay_ms: int
    ) -> pd.DataFrame:
        """Canonical labels (tx_id, label, label_time) from a raw frame's label columns.

        ``raw`` is either the transactions file (then ``tx_ids``/``event_time``
        are its mapped columns) or a separate labels file with its own tx_id.
        Only confirmed fraud (label 1) rows are emitted for a label column of the
        transactions file: an unlabelled transaction is not a confirmed legitimate one.
        """
        lab_src = self.labels.get("label")
        col = lab_src.column if lab_src else "label"
        if col not in raw.columns:
            raise MappingError(f"{self.source}: label column {col!r} is not in the data.")
        label = pd.to_numeric(raw[col], errors="coerce")
        if label.isna().any() or not label.isin([0, 1]).all():
            raise MappingError(f"{self.source}: label column {col!r} must hold only 0 and 1.")
        tsrc = self.labels.get("label_time")
        if tsrc is not None and tsrc.column is not None:
            if tsrc.column not in raw.columns:
                raise MappingError(
                    f"{self.source}: label_time column {tsrc.column!r} is not in the data."
                )
            ltime = to_epoch_ms_column(raw[tsrc.column], tsrc.unit, tsrc.origin)
        else:
            delay = self.label_delay_ms if self.label_delay_ms is not None else default_delay_ms
            ltime = event_time.astype("int64") + delay
        out = pd.DataFrame(
            {
                "tx_id": tx_ids.to_numpy(),
                "label": label.astype("int8").to_numpy(),
                "label_time": ltime.to_numpy(),
            }
        )
        return out[out["label"] == 1].reset_index(drop=True)


def _field(
    source: str, section: str, name: str, spec: Any, allowed: tuple[str, ...]
) -> FieldSource:
    if name not in allowed:
        hint = ", ".join(allowed)
        raise MappingError(
            f"{source}: [{section}] {name!r} is not a canonical field; fields are {hint}."
        )
    if isinstance(spec, str):
        return FieldSource(column=spec)
    if isinstance(spec, Mapping):
        bad = set(spec) - _FIELD_OPTIONS
        if bad:
            raise MappingError(
                f"{source}: [{section}] {name}: unknown option(s) {sorted(bad)}; options are {sorted(_FIELD_OPTIONS)}."
            )
        if ("column" in spec) == ("value" in spec):
            raise MappingError(
                f"{source}: [{section}] {name}: give exactly one of 'column' or 'value'."
            )
        unit = spec.get("unit", "auto")
        if unit not in _TIME_UNITS:
            raise MappingError(
                f"{source}: [{section}] {name}: unit {unit!r} is not one of {', '.join(_TIME_UNITS)}."
            )
        return FieldSource(
            column=spec.get("column"),
            value=spec.get("value"),
            unit=unit,
            origin=spec.get("origin"),
            tokenize=bool(spec.get("tokenize", False)),
        )
    raise MappingError(
        f"{source}: [{section}] {name} must be a column name or a table, got {spec!r}."
    )


def _time(source: str, name: str, col: pd.Series, src: FieldSource) -> pd.Series:
    try:
        return to_epoch_ms_column(col, src.unit, src.origin)
    except (ValueError, TypeError) as exc:
        raise MappingError(
            f"{source}: column {src.column!r} for {name!r} could not be read as times ({exc}); "
            "set unit = 's' | 'ms' | 'us' | 'ns' | 'iso' (and origin = 'YYYY-MM-DD' for relative times)."
        ) from exc
