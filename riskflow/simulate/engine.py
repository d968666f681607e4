"""Drive the simulation day by day: legitimate activity, scenarios, labels, drift, output.

Memory is bounded by one day of transactions plus the few fraud rows and
labels still in the future (a chargeback arrives weeks later).
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskflow.errors import RiskflowError
from riskflow.schema import SCHEMA_VERSION
from riskflow.simulate import _scenarios as sc
from riskflow.simulate._legit import WEEKDAY, legit_day
from riskflow.simulate._rows import ATM, DAY_MS, POS, Rows
from riskflow.simulate._strings import hex_strings, splitmix64, take
from riskflow.simulate._world import (
    BINS,
    CHANNEL_NAMES,
    COUNTRIES,
    ENTRY_NAMES,
    MCC_CODES,
    SCENARIO_NAMES,
    World,
    build_world,
    entity_tables,
)
from riskflow.simulate.config import SCENARIOS, SimulationConfig

__all__ = ["simulate", "iter_chunks", "SimulationSummary", "SimulationOutputError", "Progress"]

#: progress(days_done, days_total, transactions_so_far)
Progress = Callable[[int, int, int], None]

_TX_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int8()),
        ("tx_id", pa.string()),
        ("event_time", pa.int64()),
        ("card_token", pa.string()),
        ("customer_id", pa.string()),
        ("merchant_id", pa.string()),
        ("terminal_id", pa.string()),
        ("mcc", pa.int32()),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("country", pa.string()),
        ("channel", pa.string()),
        ("entry_mode", pa.string()),
        ("device_id", pa.string()),
        ("ip", pa.string()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("card_bin", pa.string()),
        ("is_fraud", pa.int8()),
        ("fraud_scenario", pa.string()),
    ]
)
_LABEL_SCHEMA = pa.schema(
    [("tx_id", pa.string()), ("label", pa.int8()), ("label_time", pa.int64())]
)
# tx_id is unique per row: dictionary encoding would only cost time.
_DICT_COLUMNS = [f.name for f in _TX_SCHEMA if f.type == pa.string() and f.name != "tx_id"]

_S_COUNTRY = pa.array([c[0] for c in COUNTRIES])
_S_CURRENCY = pa.array([c[1] for c in COUNTRIES])
_FX = np.array([c[2] for c in COUNTRIES])
_S_CHANNEL = pa.array(CHANNEL_NAMES)
_S_ENTRY = pa.array(ENTRY_NAMES)
_S_BIN = pa.array(BINS)
_S_SCEN = pa.array(SCENARIO_NAMES)


class SimulationOutputError(RiskflowError, FileExistsError):
    """The output folder already holds a different dataset."""


@dataclass
class SimulationSummary:
    """What a run produced (also what ``riskflow simulate`` prints)."""

    transactions: int = 0
    labels: int = 0
    fraud_transactions: int = 0
    scenario_counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SCENARIOS})
    reported_fraud_labels: int = 0
    legit_dispute_labels: int = 0
    label_delay_days: dict[str, float] = field(default_factory=dict)
    compromised_terminals: int = 0
    elapsed_s: float = 0.0
    out_dir: str | None = None

    @property
    def fraud_rate(self) -> float:
        return self.fraud_transactions / self.transactions if self.transactions else 0.0

    @property
    def scenario_rates(self) -> dict[str, float]:
        n = max(self.transactions, 1)
        return {s: c / n for s, c in self.scenario_counts.items()}

    @property
    def tx_per_s(self) -> float:
        return self.transactions / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "transactions": self.transactions,
            "labels": self.labels,
            "fraud_transactions": self.fraud_transactions,
            "fraud_rate": self.fraud_rate,
            "scenario_counts": dict(self.scenario_counts),
            "scenario_rates": self.scenario_rates,
            "reported_fraud_labels": self.reported_fraud_labels,
            "legit_dispute_labels": self.legit_dispute_labels,
            "label_delay_days": dict(self.label_delay_days),
            "compromised_terminals": self.compromised_terminals,
            "elapsed_s": round(self.elapsed_s, 3),
            "tx_per_s": round(self.tx_per_s, 1),
            "out_dir": self.out_dir,
        }


class _Labels:
    """Labels not yet known: (uid, label, label_time, event_time)."""

    def __init__(self) -> None:
        self.uid: np.ndarray = np.zeros(0, np.int64)
        self.label: np.ndarray = np.zeros(0, np.int8)
        self.ltime: np.ndarray
        self.etime: np.ndarray
        self.ltime = np.zeros(0, np.int64)
        self.etime = np.zeros(0, np.int64)

    def add(self, uid: np.ndarray, label: np.ndarray, ltime: np.ndarray, etime: np.ndarray) -> None:
        self.uid = np.concatenate([self.uid, uid])
        self.label = np.concatenate([self.label, label.astype(np.int8)])
        self.ltime = np.concatenate([self.ltime, ltime])
        self.etime = np.concatenate([self.etime, etime])

    def pop_before(self, t: int, tx_before: int) -> tuple[np.ndarray, ...]:
        """Labels known before ``t`` for transactions before ``tx_before``, by label time."""
        due = self.ltime < t
        keep = ~due
        due &= self.etime < tx_before
        out = tuple(a[due] for a in (self.uid, self.label, self.ltime, self.etime))
        self.uid, self.label, self.ltime, self.etime = (
            a[keep] for a in (self.uid, self.label, self.ltime, self.etime)
        )
        order = np.lexsort((out[0], out[2]))
        return tuple(a[order] for a in out)


def _delays(rng: np.random.Generator, cfg: SimulationConfig, n: int) -> np.ndarray:
    med = max(cfg.label_delay_median_days, 1e-6)
    d = rng.lognormal(np.log(med), cfg.label_delay_sigma, n)
    return (np.maximum(d, cfg.label_delay_min_days) * DAY_MS).astype(np.int64)


class _Run:
    """State of one simulation; :meth:`days` yields (tx table, label table) per day."""

    def __init__(self, cfg: SimulationConfig) -> None:
        self.cfg = cfg
        self.world: World = build_world(cfg)
        self.ids = sc.Ids()
        self.pending = Rows.empty()
        self.labels = _Labels()
        self.summary = SimulationSummary()
        self.delays: list[np.ndarray] = []
        self.compromised: dict[int, int] = {}
        self.weekday0 = datetime.strptime(cfg.start_date, "%Y-%m-%d").replace(tzinfo=UTC).weekday()
        self.id_mix = splitmix64(np.array([cfg.seed], dtype=np.uint64))[0]
        mix = cfg.scenario_mix
        total = sum(mix.values()) or 1.0
        self.mix = {s: mix.get(s, 0.0) / total for s in SCENARIOS}

    # -- per-day parameters (rhythm and drift) --------------------------------------
    def volume(self, day: int) -> tuple[float, float]:
        cfg = self.cfg
        v = float(WEEKDAY[(self.weekday0 + day) % 7])
        if cfg.drift == "volume_shift" and day >= cfg.drift_start:
            return v * cfg.volume_factor, 1.3
        return v, 1.0

    def fraud_rate(self, day: int) -> float:
        cfg = self.cfg
        r = cfg.fraud_rate
        if (
            cfg.drift == "fraud_spike"
            and cfg.drift_start <= day < cfg.drift_start + cfg.drift_length
        ):
            r = min(r * cfg.spike_factor, 0.5)
        return r

    def weights(self, day: int) -> dict[str, float]:
        cfg = self.cfg
        if cfg.drift == "new_scenario" and day < cfg.drift_start:
            return {s: (0.0 if s == cfg.drift_scenario else w) for s, w in self.mix.items()}
        return self.mix

    # -- one day ---------------------------------------------------------------------
    def day(self, d: int) -> tuple[Rows, tuple[np.ndarray, ...]]:
        cfg, world = self.cfg, self.world
        rng = np.random.default_rng([cfg.seed, 1, d])
        start = cfg.start_ms + d * DAY_MS
        end = start + DAY_MS
        vol, ecom_boost = self.volume(d)
        world.set_day(d)
        legit = legit_day(rng, world, d, start, vol, ecom_boost)

        expected = float(world.cust_rate.sum()) * vol
        fr = self.fraud_rate(d)
        target = expected * fr / (1.0 - fr)
        w = self.weights(d)

        def n_of(s: str) -> int:
            return int(rng.poisson(target * w[s] / sc.MEAN_FRAUD_TX[s]))

        n_bust = n_of("merchant_bustout")
        new = [
            sc.stolen_card(rng, world, self.ids, n_of("stolen_card"), d, start),
            sc.card_testing(rng, world, self.ids, n_of("card_testing"), d, start),
            sc.account_takeover(rng, world, self.ids, n_of("account_takeover"), d, start),
            sc.high_amount(rng, world, self.ids, n_of("high_amount"), d, start),
            sc.merchant_bustout(rng, world, self.ids, n_bust, d, start),
        ]
        skim, cterm, ctime = sc.skimming(rng, world, self.ids, n_of("skimming"), d, start, legit)
        new.append(skim)
        for t, ts in zip(cterm.tolist(), ctime.tolist(), strict=True):
            self.compromised.setdefault(t, ts)
        fresh = Rows.concat(new)
        self._label_new(rng, fresh)

        # legitimate disputes: found legitimate (label 0)
        dis = np.flatnonzero(rng.random(len(legit)) < cfg.legit_dispute_rate)
        if len(dis):
            self.labels.add(
                legit.uid[dis],
                np.zeros(len(dis), np.int8),
                legit.time[dis] + _delays(rng, cfg, len(dis)),
                legit.time[dis],
            )

        pend = Rows.concat([self.pending, fresh])
        due = pend.time < end
        self.pending = pend.take(np.flatnonzero(~due))
        rows = Rows.concat([legit, pend.take(np.flatnonzero(due))])
        order = np.lexsort((rows.uid, rows.time))
        rows = rows.take(order)
        labels = self.labels.pop_before(end, cfg.start_ms + cfg.days * DAY_MS)
        return rows, labels

    def _label_new(self, rng: np.random.Generator, rows: Rows) -> None:
        cfg = self.cfg
        f = np.flatnonzero(rows.scen > 0)
        if len(f) == 0:
            return
        inc, inv = np.unique(rows.incident[f], return_inverse=True)
        last = np.full(len(inc), np.iinfo(np.int64).min)
        np.maximum.at(last, inv, rows.time[f])
        reported = rng.random(len(inc)) >= cfg.unreported_share
        ltime = last + _delays(rng, cfg, len(inc))
        r = reported[inv]
        self.labels.add(
            rows.uid[f][r], np.ones(int(r.sum()), np.int8), ltime[inv][r], rows.time[f][r]
        )

    def days(self, progress: Progress | None = None) -> Iterator[tuple[pa.Table, pa.Table]]:
        cfg = self.cfg
        s = self.summary
        for d in range(cfg.days):
            rows, lab = self.day(d)
            s.transactions += len(rows)
            counts = np.bincount(rows.scen, minlength=len(SCENARIO_NAMES))
            for i, name in enumerate(SCENARIOS, start=1):
                s.scenario_counts[name] += int(counts[i])
            s.fraud_transactions += int(counts[1:].sum())
            yield self.tx_table(rows), self._label_table(lab)
            if progress is not None:
                progress(d + 1, cfg.days, s.transactions)
        end = cfg.start_ms + cfg.days * DAY_MS
        rest = self.labels.pop_before(np.iinfo(np.int64).max, end)
        yield self.tx_table(Rows.empty()), self._label_table(rest)
        s.compromised_terminals = len(self.compromised)
        if self.delays:
            dd = np.concatenate(self.delays) / DAY_MS
            if len(dd):
                qs = np.quantile(dd, [0.1, 0.5, 0.9, 0.99])
                s.label_delay_days = {
                    "min": round(float(dd.min()), 2),
                    "p10": round(float(qs[0]), 2),
                    "p50": round(float(qs[1]), 2),
                    "p90": round(float(qs[2]), 2),
                    "p99": round(float(qs[3]), 2),
                    "max": round(float(dd.max()), 2),
                }

    # -- conversion to Arrow -----------------------------------------------------------
    def tx_ids(self, uid: np.ndarray) -> pa.Array:
        return hex_strings("tx_", splitmix64(uid.astype(np.uint64) ^ self.id_mix), 16)

    def tx_table(self, rows: Rows) -> pa.Table:
        w = self.world
        n = len(rows)
        merch = w.term_merchant[rows.term]
        country = w.merch_country[merch].astype(np.int64)
        present = (rows.channel == POS) | (rows.channel == ATM)
        lat = pa.array(w.term_lat[rows.term], mask=~present, type=pa.float64())
        lon = pa.array(w.term_lon[rows.term], mask=~present, type=pa.float64())
        amount = np.maximum(np.round(rows.amount * _FX[country], 2), 0.01)
        cols = [
            pa.array(np.full(n, SCHEMA_VERSION, dtype=np.int8)),
            self.tx_ids(rows.uid),
            pa.array(rows.time),
            take(w.s_card, rows.card),
            take(w.s_customer, w.card_customer[rows.card]),
            take(w.s_merchant, merch),
            take(w.s_terminal, rows.term),
            pa.array(MCC_CODES[w.merch_mcc[merch]]),
            pa.array(amount),
            take(_S_CURRENCY, country),
            take(_S_COUNTRY, country),
            take(_S_CHANNEL, rows.channel),
            take(_S_ENTRY, rows.entry),
            take(w.s_device, rows.device),
            take(w.s_ip, rows.ip),
            lat,
            lon,
            take(_S_BIN, w.card_bin[rows.card]),
            pa.array((rows.scen > 0).astype(np.int8)),
            take(_S_SCEN, rows.scen),
        ]
        return pa.Table.from_arrays(cols, schema=_TX_SCHEMA)

    def _label_table(self, lab: tuple[np.ndarray, ...]) -> pa.Table:
        uid, label, ltime, etime = lab
        s = self.summary
        s.labels += len(uid)
        pos = label == 1
        s.reported_fraud_labels += int(pos.sum())
        s.legit_dispute_labels += int((~pos).sum())
        self.delays.append(ltime[pos] - etime[pos])
        return pa.Table.from_arrays(
            [self.tx_ids(uid), pa.array(label.astype(np.int8)), pa.array(ltime)],
            schema=_LABEL_SCHEMA,
        )

    def entity_tables(self) -> dict[str, pd.DataFrame]:
        t = entity_tables(self.world)
        opened = t["merchants"]["opened_day"].to_numpy().copy()
        collusive = np.zeros(len(opened), dtype=bool)
        for term, day in self.ids.bust_log:  # in time order: the first bust-out sets the day
            m = self.world.term_merchant[term]
            collusive[m] = True
            if opened[m] < 0:
                opened[m] = day
        t["merchants"]["collusive"] = collusive
        t["merchants"]["opened_day"] = opened
        comp = np.full(len(t["terminals"]), np.nan)
        for term, ts in self.compromised.items():
            comp[term] = ts
        t["terminals"]["compromised_at"] = pd.array(
            np.where(np.isnan(comp), 0, comp).astype(np.int64), dtype="Int64"
        )
        t["terminals"].loc[np.isnan(comp), "compromised_at"] = pd.NA
        return t


def iter_chunks(config: SimulationConfig) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Simulate without writing: ``(transactions, labels)`` per day, in time order.

    The labels of a chunk are those that became known during that chunk's day
    (sorted by ``label_time``); a last chunk with no transactions carries the
    labels that arrive after the stream ends. Concatenating every chunk gives
    exactly what :func:`simulate` writes.

    >>> from riskflow.simulate import SimulationConfig
    >>> chunks = list(iter_chunks(SimulationConfig(customers=300, days=2, seed=1)))
    >>> len(chunks), len(chunks[-1][0])
    (3, 0)
    >>> bool(chunks[0][0]["event_time"].is_monotonic_increasing)
    True
    """
    run = _Run(config)
    for tx, lab in run.days():
        yield tx.to_pandas(), lab.to_pandas()


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise SimulationOutputError(
            f"Output path {str(out)!r} exists and is not a folder; choose another --out."
        )
    existing = [p for p in ("transactions", "labels", "manifest.json") if (out / p).exists()]
    if existing and not overwrite:
        raise SimulationOutputError(
            f"Output folder {str(out)!r} already holds a dataset ({', '.join(existing)}); "
            "choose an empty folder or pass overwrite=True (--overwrite)."
        )
    for sub in ("transactions", "labels"):
        for p in (out / sub).glob("part-*.parquet") if (out / sub).is_dir() else []:
            p.unlink()


def simulate(
    config: SimulationConfig,
    out_dir: str | Path,
    progress: Progress | None = None,
    *,
    overwrite: bool = False,
) -> SimulationSummary:
    """Simulate and write a dataset to ``out_dir``.

    Layout: ``transactions/part-NNNNN.parquet`` (one per day, globally sorted
    by ``event_time``), ``labels/part-NNNNN.parquet`` (sorted by
    ``label_time``), ``customers.parquet``, ``cards.parquet``,
    ``merchants.parquet``, ``terminals.parquet`` and ``manifest.json``.

    Transactions carry the canonical columns plus two ground-truth columns the
    engine never reads: ``is_fraud`` (int8) and ``fraud_scenario`` ("" when
    legitimate). Card-present rows (pos, atm) carry the terminal's ``lat`` /
    ``lon``; online rows (ecom, moto, p2p) have null ``lat``/``lon`` (no IP
    geolocation is invented). ``device_id`` and ``ip`` are set for ecom and
    p2p and null otherwise. Amounts are in the merchant country's currency.
    Labels: ``label=1`` for reported fraud (the whole incident reported at
    once, a lognormal delay after its last transaction); ``label=0`` for a
    few disputes found legitimate. Unreported fraud has no label.

    Parameters
    ----------
    config
        What to simulate (same config -> identical files).
    out_dir
        Output folder, created if missing; must not already hold a dataset
        unless ``overwrite``.
    progress
        Called after each simulated day as ``progress(days_done, days_total, rows)``.

    Returns
    -------
    SimulationSummary
        Counts, fraud rate per scenario, label delay quantiles, timing.
    """
    t0 = _time.perf_counter()
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    (out / "transactions").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    run = _Run(config)
    n_tx_parts = n_label_parts = 0
    for tx, lab in run.days(progress):
        if len(tx):
            pq.write_table(
                tx,
                out / "transactions" / f"part-{n_tx_parts:05d}.parquet",
                use_dictionary=_DICT_COLUMNS,
                compression="snappy",
            )
            n_tx_parts += 1
        if len(lab):
            pq.write_table(
                lab, out / "labels" / f"part-{n_label_parts:05d}.parquet", compression="snappy"
            )
            n_label_parts += 1
    if n_label_parts == 0:  # keep the layout: an empty labels file, not a missing folder
        pq.write_table(_LABEL_SCHEMA.empty_table(), out / "labels" / "part-00000.parquet")
        n_label_parts = 1
    tables = run.entity_tables()
    for name, df in tables.items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    s = run.summary
    s.elapsed_s = _time.perf_counter() - t0
    s.out_dir = str(out)
    manifest = {
        "generator": "riskflow.simulate",
        "schema_version": SCHEMA_VERSION,
        "seed": config.seed,
        "parameters": config.to_dict(),
        "start_time": config.start_ms,
        "end_time": config.start_ms + config.days * DAY_MS,
        "counts": {
            "transactions": s.transactions,
            "labels": s.labels,
            "fraud_transactions": s.fraud_transactions,
            "reported_fraud_labels": s.reported_fraud_labels,
            "legit_dispute_labels": s.legit_dispute_labels,
            "transaction_parts": n_tx_parts,
            "label_parts": n_label_parts,
            **{name: len(df) for name, df in tables.items()},
        },
        "fraud_rate": s.fraud_rate,
        "scenario_counts": dict(s.scenario_counts),
        "scenario_rates": s.scenario_rates,
        "label_delay_days": s.label_delay_days,
        "compromised_terminals": s.compromised_terminals,
        "notes": {
            "lat_lon": "card-present (pos, atm) rows carry the terminal location; online rows (ecom, moto, p2p) have null lat/lon.",
            "ground_truth": "is_fraud and fraud_scenario are ground truth, not canonical fields; the engine must not read them.",
            "amount": "major units of the merchant country's currency",
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return s
