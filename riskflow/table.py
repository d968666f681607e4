"""Tables of transactions and labels: read, map, validate, order.

The offline twin of :func:`riskflow.schema.validate_transaction`: the same
rules, applied to whole columns at once, so a 10-million-row file is checked in
seconds. Every offline entry point (produce, train, replay) reads data here.

Canonical frame: the columns of :data:`~riskflow.schema.TRANSACTION_COLUMNS`
in that order (absent optional fields as nulls), ``event_time`` int64 epoch ms,
ids as Python strings, sorted by ``event_time`` (stable, so file order breaks ties).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from riskflow.config import FeatureConfig
from riskflow.errors import SchemaError, ValidationError
from riskflow.mapping import ColumnMapping, FieldSource, to_epoch_ms_column
from riskflow.schema import (
    _MAX_AMOUNT,
    _MAX_ID_LEN,
    _MAX_TIME_MS,
    _MIN_TIME_MS,
    CHANNELS,
    ENTRY_MODES,
    SUPPORTED_SCHEMA_VERSIONS,
    TRANSACTION_FIELDS,
    looks_like_pan,
)

__all__ = [
    "Dataset",
    "canonicalize",
    "read_frame",
    "read_transactions",
    "read_labels",
    "load_dataset",
]

_ID_FIELDS = (
    "tx_id",
    "card_token",
    "customer_id",
    "merchant_id",
    "terminal_id",
    "device_id",
    "ip",
    "card_bin",
)
_REQUIRED = tuple(f.name for f in TRANSACTION_FIELDS if f.required)
Errors = Literal["raise", "report"]


@dataclass(frozen=True)
class Dataset:
    """A history: canonical transactions (time-ordered) and labels (label-time-ordered)."""

    transactions: pd.DataFrame
    labels: pd.DataFrame


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read a Parquet or CSV file, or a folder of them (concatenated in name order)."""
    p = Path(path)
    if p.is_dir():
        files = sorted([*p.glob("*.parquet"), *p.glob("*.csv"), *p.glob("*.csv.gz")])
        if not files:
            raise SchemaError(f"Folder {str(p)!r} holds no .parquet or .csv files.")
        return pd.concat([read_frame(f) for f in files], ignore_index=True)
    if not p.is_file():
        raise SchemaError(f"Data file {str(p)!r} does not exist.")
    name = p.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(p)
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(p, low_memory=False)
    raise SchemaError(f"{str(p)!r}: unknown file type; riskflow reads .parquet and .csv files.")


def _reject(
    mask: pd.Series | np.ndarray, field: str, reason: str, bad: list[pd.DataFrame], index: pd.Index
) -> None:
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        bad.append(pd.DataFrame({"row": index[mask], "field": field, "reason": reason}))


def canonicalize(df: pd.DataFrame, errors: Errors = "raise") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate and normalise a frame that already has canonical column names.

    Returns ``(transactions, rejects)``: valid rows as a canonical frame sorted
    by event time, and one row per problem (``row``, ``field``, ``reason``).
    With ``errors="raise"`` the first problem raises a
    :class:`~riskflow.errors.ValidationError` naming the row instead.
    """
    missing = [c for c in _REQUIRED if c not in df.columns and c != "schema_version"]
    if missing:
        raise SchemaError(
            f"Transactions lack required column(s) {missing}; columns are {sorted(map(str, df.columns))[:30]}. "
            "Map them with a column mapping (--mapping FILE, see README 'Your own data')."
        )
    idx = df.index
    n = len(df)
    out = pd.DataFrame(index=idx)
    bad: list[pd.DataFrame] = []

    version = df["schema_version"] if "schema_version" in df.columns else pd.Series(1, index=idx)
    _reject(
        ~version.isin(list(SUPPORTED_SCHEMA_VERSIONS)),
        "schema_version",
        "unsupported schema version",
        bad,
        idx,
    )
    out["schema_version"] = version.astype("int64", errors="ignore")

    for name in _ID_FIELDS:
        if name not in df.columns:
            out[name] = pd.Series([None] * n, index=idx, dtype=object)
            continue
        col = df[name]
        if pd.api.types.is_float_dtype(col):  # numeric ids read from CSV: 12.0 -> "12"
            col = col.map(
                lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v))
            )
        null = col.isna() | (col.astype(str) == "")
        s = col.astype(object).where(~null, None)
        s = s.map(lambda v: v if v is None or isinstance(v, str) else str(v))
        lengths = s.map(lambda v: len(v) if isinstance(v, str) else 0)  # pandas 3: None -> NaN
        _reject(lengths > _MAX_ID_LEN, name, f"longer than {_MAX_ID_LEN} characters", bad, idx)
        if name in _REQUIRED:
            _reject(null, name, "is required", bad, idx)
        out[name] = s
    dup = out["tx_id"].duplicated(keep="first") & out["tx_id"].notna()
    _reject(dup, "tx_id", "duplicate tx_id (first occurrence kept)", bad, idx)
    digits = (
        out["card_token"]
        .astype(str)
        .str.replace(r"[ -]", "", regex=True)
        .str.fullmatch(r"\d{13,19}")
    )
    if digits.any():
        pan = out["card_token"][digits].map(looks_like_pan)
        _reject(
            digits & pan.reindex(idx, fill_value=False),
            "card_token",
            "looks like a raw card number; map it with tokenize = true",
            bad,
            idx,
        )
    bins = out["card_bin"].dropna()
    _reject(
        ~bins.str.fullmatch(r"\d{6,8}").reindex(idx, fill_value=True),
        "card_bin",
        "must be 6 to 8 digits",
        bad,
        idx,
    )

    et = pd.to_numeric(df["event_time"], errors="coerce")
    _reject(
        et.isna() | (et < _MIN_TIME_MS) | (et > _MAX_TIME_MS),
        "event_time",
        "missing or outside 2000..2100 as epoch ms (map it with a time unit)",
        bad,
        idx,
    )
    out["event_time"] = et.fillna(0).astype("int64")

    amount = pd.to_numeric(df["amount"], errors="coerce").astype("float64")
    _reject(
        ~np.isfinite(amount) | (amount < 0) | (amount > _MAX_AMOUNT),
        "amount",
        f"missing or not a finite number in [0, {_MAX_AMOUNT:g}]",
        bad,
        idx,
    )
    out["amount"] = amount

    if "mcc" in df.columns:
        mcc = pd.to_numeric(df["mcc"], errors="coerce")
        _reject(
            df["mcc"].notna() & (mcc.isna() | (mcc < 0) | (mcc > 9999) | (mcc % 1 != 0)),
            "mcc",
            "must be an integer merchant category code 0..9999",
            bad,
            idx,
        )
        out["mcc"] = mcc.astype("Int32")
    else:
        out["mcc"] = pd.array([pd.NA] * n, dtype="Int32")
    for name, length in (("currency", 3), ("country", 2)):
        col = df[name] if name in df.columns else pd.Series([None] * n, index=idx, dtype=object)
        s = col.astype(object).where(col.notna() & (col.astype(str) != ""), None)
        up = s.map(lambda v: v.upper() if isinstance(v, str) else v)
        ok = up.isna() | up.map(
            lambda v, k=length: isinstance(v, str) and len(v) == k and v.isalpha()
        )
        _reject(~ok, name, f"must be a {length}-letter code", bad, idx)
        out[name] = up
    for name, table in (("channel", CHANNELS), ("entry_mode", ENTRY_MODES)):
        col = df[name] if name in df.columns else pd.Series([None] * n, index=idx, dtype=object)
        s = col.astype(object).where(col.notna() & (col.astype(str) != ""), None)
        low = s.map(lambda v: v.lower() if isinstance(v, str) else v)
        _reject(
            low.notna() & ~low.isin(list(table)),
            name,
            f"must be one of {', '.join(table)}",
            bad,
            idx,
        )
        out[name] = low
    for name, lim in (("lat", 90.0), ("lon", 180.0)):
        v = (
            pd.to_numeric(df[name], errors="coerce")
            if name in df.columns
            else pd.Series(np.nan, index=idx)
        )
        _reject(v.notna() & (v.abs() > lim), name, f"must be in [-{lim:g}, {lim:g}]", bad, idx)
        out[name] = v.astype("float64")
    _reject(
        out["lat"].isna() != out["lon"].isna(),
        "lat",
        "lat and lon must be given together",
        bad,
        idx,
    )

    rejects = (
        pd.concat(bad, ignore_index=True).sort_values("row", kind="stable").reset_index(drop=True)
        if bad
        else pd.DataFrame({"row": pd.Series([], dtype="int64"), "field": [], "reason": []})
    )
    if errors == "raise" and len(rejects):
        first = rejects.iloc[0]
        more = f" ({len(rejects) - 1} more problem(s))" if len(rejects) > 1 else ""
        raise ValidationError(str(first["field"]), f"row {first['row']}: {first['reason']}{more}")
    good = out.drop(index=rejects["row"].unique()) if len(rejects) else out
    good = good[[f.name for f in TRANSACTION_FIELDS]]
    good = good.sort_values("event_time", kind="stable").reset_index(drop=True)
    return good, rejects


def _key(mapping: ColumnMapping | None, key: bytes | None) -> bytes:
    if key is not None:
        return key
    from riskflow.config import SecurityConfig

    return SecurityConfig().tokenisation_key.get_secret_value().encode()


def read_transactions(
    path: str | Path,
    mapping: ColumnMapping | str | Path | None = None,
    *,
    tokenisation_key: bytes | None = None,
    errors: Errors = "raise",
) -> pd.DataFrame:
    """Read a transactions file or folder into a canonical, time-ordered frame.

    With ``errors="report"`` invalid rows are dropped (see :func:`canonicalize`
    to get them back); with ``"raise"`` the first one raises.
    """
    return load_dataset(
        path, mapping, tokenisation_key=tokenisation_key, errors=errors, with_labels=False
    ).transactions


def read_labels(
    path: str | Path,
    mapping: ColumnMapping | str | Path | None = None,
    transactions: pd.DataFrame | None = None,
    *,
    default_delay_ms: int | None = None,
) -> pd.DataFrame:
    """Read a labels file or folder into (tx_id, label, label_time), sorted by label time.

    Columns are mapped by the mapping's ``[labels]`` section. A separate labels
    file may carry confirmed-legitimate (0) labels as well as fraud (1). Without
    a label-time column, label time = the transaction's time + the mapping's
    ``delay`` (else ``default_delay_ms``, else the config default): that needs
    ``transactions``.
    """
    m = _as_mapping(mapping)
    raw = read_frame(path)
    tx_col = (
        m.labels["tx_id"].column if "tx_id" in m.labels and m.labels["tx_id"].column else "tx_id"
    )
    lab_col = (
        m.labels["label"].column if "label" in m.labels and m.labels["label"].column else "label"
    )
    for col, what in ((tx_col, "tx_id"), (lab_col, "label")):
        if col not in raw.columns:
            raise SchemaError(
                f"Labels {str(path)!r} lack a {col!r} column; map it under [labels] {what}."
            )
    tx_ids = raw[tx_col].astype(str)
    label = pd.to_numeric(raw[lab_col], errors="coerce")
    if label.isna().any() or not label.isin([0, 1]).all():
        raise SchemaError(f"Labels {str(path)!r}: column {lab_col!r} must hold only 0 and 1.")
    src = m.labels.get("label_time") or (
        FieldSource(column="label_time") if "label_time" in raw.columns else None
    )
    if src is not None and src.column is not None:
        if src.column not in raw.columns:
            raise SchemaError(f"Labels {str(path)!r} lack the label_time column {src.column!r}.")
        ltime = to_epoch_ms_column(raw[src.column], src.unit, src.origin)
    else:
        if transactions is None:
            raise SchemaError(
                f"Labels {str(path)!r} have no label_time column; label times then follow from the "
                "transactions' times plus a delay, so pass the transactions too."
            )
        et = tx_ids.map(
            pd.Series(transactions["event_time"].to_numpy(), index=transactions["tx_id"])
        )
        delay = m.label_delay_ms if m.label_delay_ms is not None else default_delay_ms
        if delay is None:
            delay = int(FeatureConfig().default_label_delay_days * 86_400_000)
        ltime = et + delay
        known = et.notna()
        tx_ids, label, ltime = tx_ids[known], label[known], ltime[known]
    labels = pd.DataFrame(
        {
            "tx_id": tx_ids.to_numpy(dtype=object),
            "label": label.astype("int8").to_numpy(),
            "label_time": ltime.astype("int64").to_numpy(),
        }
    )
    return labels.sort_values("label_time", kind="stable").reset_index(drop=True)


def _as_mapping(mapping: ColumnMapping | str | Path | None) -> ColumnMapping:
    if mapping is None:
        return ColumnMapping()
    if isinstance(mapping, ColumnMapping):
        return mapping
    return ColumnMapping.load(mapping)


def load_dataset(
    path: str | Path,
    mapping: ColumnMapping | str | Path | None = None,
    *,
    labels_path: str | Path | None = None,
    tokenisation_key: bytes | None = None,
    errors: Errors = "raise",
    with_labels: bool = True,
    default_label_delay_days: float | None = None,
) -> Dataset:
    """Read a history: transactions plus labels.

    ``path`` is a simulator output folder (``transactions/`` and ``labels/``
    inside), a folder of transaction files, or one file. Labels come from
    ``labels_path``, else the folder's ``labels/``, else the mapping's label
    column in the transactions file; with none of these, the labels are empty.
    """
    m = _as_mapping(mapping)
    p = Path(path)
    tx_path = p / "transactions" if (p / "transactions").is_dir() else p
    raw = read_frame(tx_path)
    mapped = m.apply(raw, _key(m, tokenisation_key))
    tx, _ = canonicalize(mapped, errors=errors)
    if not with_labels:
        return Dataset(tx, _empty_labels())
    if labels_path is None and (p / "labels").is_dir():
        labels_path = p / "labels"
    if labels_path is not None:
        labels = read_labels(
            labels_path, m, tx, default_delay_ms=_days_ms(default_label_delay_days)
        )
    elif m.has_label_column():
        delay = _days_ms(default_label_delay_days)
        labels = m.labels_from(raw, mapped["tx_id"].astype(str), mapped["event_time"], delay)
        labels = labels[labels["tx_id"].isin(tx["tx_id"])]
        labels = labels.sort_values("label_time", kind="stable").reset_index(drop=True)
    else:
        labels = _empty_labels()
    return Dataset(tx, labels)


def _days_ms(days: float | None) -> int:
    d = FeatureConfig().default_label_delay_days if days is None else days
    return int(d * 86_400_000)


def _empty_labels() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": pd.Series([], dtype=object),
            "label": pd.Series([], dtype="int8"),
            "label_time": pd.Series([], dtype="int64"),
        }
    )
