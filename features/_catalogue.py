"""The feature catalogue: declarative specs (entity x window x aggregation) and their layout.

Specs are data. :func:`catalogue` lists them in matrix-column order; the
engine compiles them into column maps that tell the kernel where each output
goes (an output no spec asks for is never written). Names are built from the
parameters (``card_amount_mean_1h``), never typed by hand.

Window families and why (see also ``riskflow features list``):

* **decayed** (``window`` like ``"1h"``, ``"30d"``): exponentially decayed
  count / sum / sum of squares with time constant = the window. O(1) per event
  and 3 floats per window whatever the traffic, which is what makes 1M tx/s
  with hundreds of features possible; a steady stream of r events per hour
  reads ``r * window`` exactly like a sliding window would. Used for velocity,
  amount profiles, channel mix, pair and label-risk aggregates.
* **exact** (``"1m"``, ``"10m"``, ``"1h"`` with aggregation suffix ``_exact``,
  ``"24h"`` min/max): computed from a ring of the entity's last 8 events, so
  exact but capped at 8. Card-testing bursts and short spikes are where the
  decay's smearing would hide the signal, and where 8 events already say
  everything.
* **lifetime** (window ``None``): since the entity was first seen (or last
  evicted after the TTL): ages, lifetime counts, HyperLogLog distinct counts.

>>> specs = catalogue()
>>> len(specs) >= 200
True
>>> s = next(s for s in specs if s.name == "card_amount_mean_24h")
>>> (s.entity, s.window, s.aggregation, s.kind)
('card', '24h', 'mean', 'numeric')
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from ._kernels import _layout as L

__all__ = ["FeatureSpec", "catalogue", "catalogue_hash", "select", "parse_window", "MCC_PRIOR_RISK"]

_UNITS = {"m": L.MINUTE, "h": L.HOUR, "d": L.DAY}


def parse_window(text: str) -> int:
    """Window text (``"10m"``, ``"1h"``, ``"30d"``) in milliseconds.

    >>> parse_window("1h"), parse_window("7d")
    (3600000, 604800000)
    """
    try:
        return int(text[:-1]) * _UNITS[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise ValueError(f"Window {text!r} is not <int><m|h|d>, e.g. '10m', '1h', '30d'.") from None


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column: what it is, for the model, the docs and reason codes."""

    name: str
    entity: str  # card, customer, merchant, ..., card_merchant, transaction, mcc
    window: str | None  # "1h", "30d", ... or None (lifetime / point value)
    aggregation: str
    description: str
    kind: str = "numeric"  # "numeric" | "categorical"
    family: str = ""
    window_type: str = "none"  # "decayed" | "exact" | "lifetime" | "none"
    # Where the kernel produces it: ("E", entity index, output) / ("P", pair, output) / ("T", output).
    source: tuple[str, int, int] = field(default=("T", 0, 0), repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("source")
        return d


#: Decayed windows per full entity (at most NW each).
WINDOWS: dict[str, tuple[str, ...]] = {
    "card": ("1h", "24h", "7d", "30d"),
    "customer": ("1h", "24h", "7d", "30d"),
    "merchant": ("1h", "24h", "7d", "30d"),
    "terminal": ("1h", "24h", "7d"),
    "device": ("1h", "24h", "7d"),
    "ip": ("1h", "24h", "7d"),
    "bin": ("1h", "24h"),
}

# High-risk merchant categories as fraud teams (and card scheme monitoring
# programmes) list them. 2 = high (cash-like, gambling, digital goods,
# money transfer), 1 = elevated (electronics, jewellery, travel, ...).
MCC_PRIOR_RISK: dict[int, int] = {
    **{
        m: 2 for m in (4829, 6051, 6211, 6538, 6540, 7995, 7801, 7802, 5967, 5816, 5993, 4816, 6012)
    },
    **{
        m: 1
        for m in (
            5732,
            5944,
            5945,
            4722,
            4511,
            3000,
            7011,
            5311,
            5691,
            5999,
            5964,
            5966,
            6011,
            5094,
            5122,
        )
    },
}

_WHO = {
    "card": "this card",
    "customer": "this customer",
    "merchant": "this merchant",
    "terminal": "this terminal",
    "device": "this device",
    "ip": "this IP address",
    "bin": "this card BIN (issuer range)",
}
_CP_WORD = {
    "merchant": "merchants",
    "card": "cards",
    "device": "devices",
    "ip": "IP addresses",
    "country": "countries",
    "bin": "BINs",
}


def _window_specs(e: int, ent: str) -> list[FeatureSpec]:
    out = []
    who = _WHO[ent]
    for w, win in enumerate(WINDOWS[ent]):
        b = w * L.W_OUT
        rows = (
            (
                L.W_COUNT,
                "count",
                "count",
                f"Transactions of {who} in the last {win} (exponentially decayed).",
            ),
            (
                L.W_SUM,
                "amount_sum",
                "sum",
                f"Amount spent by {who} in the last {win} (decayed sum).",
            ),
            (
                L.W_MEAN,
                "amount_mean",
                "mean",
                f"Average amount of {who} over the last {win} (decayed).",
            ),
            (
                L.W_STD,
                "amount_std",
                "std",
                f"Spread (standard deviation) of {who}'s amounts over the last {win}.",
            ),
            (
                L.W_Z,
                "amount_zscore",
                "zscore",
                f"How unusual this amount is for {who}: z-score against its last {win}.",
            ),
            (
                L.W_RATIO,
                "amount_ratio_mean",
                "ratio",
                f"This amount divided by {who}'s average amount over the last {win}.",
            ),
        )
        for o, stem, agg, desc in rows:
            out.append(
                FeatureSpec(
                    f"{ent}_{stem}_{win}",
                    ent,
                    win,
                    agg,
                    desc,
                    family="velocity",
                    window_type="decayed",
                    source=("E", e, b + o),
                )
            )
    return out


def _entity_specs(e: int, ent: str) -> list[FeatureSpec]:
    who = _WHO[ent]
    cp, aux = L.COUNTERPARTY[ent]
    cps = _CP_WORD[cp]
    # (output, name stem, window, aggregation, window_type, family, description, entities that get it)
    rows = (
        (
            L.O_SECS_SINCE_LAST,
            "secs_since_last",
            None,
            "time_since_last",
            "none",
            "recency",
            f"Seconds since {who}'s previous transaction.",
            "*",
        ),
        (
            L.O_AGE_DAYS,
            "age_days",
            None,
            "age",
            "lifetime",
            "recency",
            f"Days since {who} was first seen (new entities are riskier).",
            "card customer merchant terminal device ip",
        ),
        (
            L.O_N_LIFETIME,
            "n_lifetime",
            None,
            "count",
            "lifetime",
            "recency",
            f"Transactions of {who} since first seen.",
            "card customer merchant terminal device ip",
        ),
        (
            L.O_CNT_1M,
            "count_1m",
            "1m",
            "count_exact",
            "exact",
            "burst",
            f"Transactions of {who} in the last minute (exact, capped at {L.K}): card-testing bursts.",
            "*",
        ),
        (
            L.O_CNT_10M,
            "count_10m",
            "10m",
            "count_exact",
            "exact",
            "burst",
            f"Transactions of {who} in the last 10 minutes (exact, capped at {L.K}).",
            "*",
        ),
        (
            L.O_CNT_1H,
            "count_1h_exact",
            "1h",
            "count_exact",
            "exact",
            "burst",
            f"Transactions of {who} in the last hour (exact, capped at {L.K}).",
            "*",
        ),
        (
            L.O_SUM_10M,
            "amount_sum_10m",
            "10m",
            "sum_exact",
            "exact",
            "burst",
            f"Amount spent by {who} in the last 10 minutes (exact over its last {L.K} events).",
            "card customer device",
        ),
        (
            L.O_MAX_24H,
            "amount_max_24h",
            "24h",
            "max",
            "exact",
            "amount",
            f"Largest amount of {who} in the last 24h (over its last {L.K} events).",
            "card customer",
        ),
        (
            L.O_MIN_24H,
            "amount_min_24h",
            "24h",
            "min",
            "exact",
            "amount",
            f"Smallest amount of {who} in the last 24h (tiny test charges show here).",
            "card customer",
        ),
        (
            L.O_DISTINCT_CP_24H,
            f"distinct_{cp}_24h",
            "24h",
            "distinct",
            "exact",
            "network",
            f"Distinct {cps} used with {who} in the last 24h (over its last {L.K} events).",
            "card customer terminal device ip bin",
        ),
        (
            L.O_CP_NEW,
            f"{cp}_new",
            None,
            "novelty",
            "exact",
            "network",
            f"1 if this {cp} is not among {who}'s last {L.K} transactions.",
            "card customer",
        ),
        (
            L.O_AUX_NEW,
            f"{aux}_new",
            None,
            "novelty",
            "exact",
            "network",
            f"1 if this {aux} is not among {who}'s last {L.K} transactions.",
            "card customer device ip",
        ),
        (
            L.O_HLL_CP,
            f"distinct_{cp}_lifetime",
            None,
            "distinct_approx",
            "lifetime",
            "network",
            f"Approximate number of distinct {cps} seen with {who} (HyperLogLog, ~18% error).",
            "card customer merchant terminal device ip",
        ),
        (
            L.O_AMT_TO_LAST,
            "amount_to_last_ratio",
            None,
            "ratio",
            "none",
            "amount",
            f"This amount divided by {who}'s previous amount (card-testing: tiny then large).",
            "card customer",
        ),
        (
            L.O_MEAN_GAP,
            "mean_gap_secs",
            None,
            "mean_interarrival",
            "exact",
            "burst",
            f"Average seconds between {who}'s last {L.K} transactions.",
            "card device ip",
        ),
        (
            L.O_F7,
            "fraud_count_7d",
            "7d",
            "fraud_count",
            "decayed",
            "label_risk",
            f"Confirmed frauds involving {who}, labels known by now, last 7 days (decayed).",
            "card customer merchant terminal device ip",
        ),
        (
            L.O_F30,
            "fraud_count_30d",
            "30d",
            "fraud_count",
            "decayed",
            "label_risk",
            f"Confirmed frauds involving {who}, labels known by now, last 30 days (decayed).",
            "card customer merchant terminal device ip",
        ),
        (
            L.O_N30,
            "labelled_count_30d",
            "30d",
            "label_count",
            "decayed",
            "label_risk",
            f"Labelled transactions (fraud or genuine) of {who} known in the last 30 days.",
            "card customer merchant terminal device ip",
        ),
        (
            L.O_FRATE30,
            "fraud_rate_30d",
            "30d",
            "fraud_rate",
            "decayed",
            "label_risk",
            f"Fraud rate of {who}'s labelled transactions, last 30 days (smoothed towards 1%).",
            "card customer merchant terminal device ip",
        ),
        (
            L.O_DAYS_SINCE_FRAUD,
            "days_since_fraud",
            None,
            "time_since_last",
            "none",
            "label_risk",
            f"Days since a fraud on {who} became known (empty if none).",
            "card customer merchant terminal device ip",
        ),
        (
            L.O_FAMT30,
            "fraud_amount_30d",
            "30d",
            "fraud_sum",
            "decayed",
            "label_risk",
            f"Amount of confirmed fraud involving {who}, last 30 days (decayed).",
            "card customer merchant terminal device ip",
        ),
        (
            L.O_GEO_DIST,
            "geo_dist_prev_km",
            None,
            "distance",
            "none",
            "geo",
            f"Kilometres from {who}'s previous located transaction.",
            "card customer",
        ),
        (
            L.O_GEO_SPEED,
            "geo_speed_kmh",
            None,
            "speed",
            "none",
            "geo",
            f"Implied travel speed (km/h) since {who}'s previous located transaction: impossible travel.",
            "card customer",
        ),
        (
            L.O_GEO_CENTROID,
            "geo_dist_home_km",
            "30d",
            "distance",
            "decayed",
            "geo",
            f"Kilometres from {who}'s usual location (30-day decayed centroid).",
            "card customer",
        ),
        (
            L.O_MIX_SAME_CH,
            "channel_same_share_30d",
            "30d",
            "share",
            "decayed",
            "mix",
            f"Share of {who}'s recent transactions in this same channel.",
            "card customer merchant",
        ),
        (
            L.O_MIX_SAME_EM,
            "entry_mode_same_share_30d",
            "30d",
            "share",
            "decayed",
            "mix",
            f"Share of {who}'s recent transactions with this same entry mode.",
            "card customer merchant",
        ),
        (
            L.O_MIX_ECOM,
            "ecom_share_30d",
            "30d",
            "share",
            "decayed",
            "mix",
            f"Share of {who}'s recent transactions that were e-commerce.",
            "card customer merchant",
        ),
        (
            L.O_MIX_KEYED,
            "keyed_share_30d",
            "30d",
            "share",
            "decayed",
            "mix",
            f"Share of {who}'s recent transactions with magstripe or manual entry (skimming, keyed fraud).",
            "card customer merchant",
        ),
    )
    out = []
    for o, stem, win, agg, wt, fam, desc, who_gets in rows:
        if who_gets == "*" or ent in who_gets.split():
            out.append(
                FeatureSpec(
                    f"{ent}_{stem}",
                    ent,
                    win,
                    agg,
                    desc,
                    family=fam,
                    window_type=wt,
                    source=("E", e, o),
                )
            )
    return out


def _pair_specs(p: int, name: str, a: str, b: str) -> list[FeatureSpec]:
    rows = (
        (
            L.P_N,
            "n_lifetime",
            None,
            "count",
            "lifetime",
            f"Times this {a} was used with this {b} before.",
        ),
        (
            L.P_FIRST,
            "is_first",
            None,
            "novelty",
            "lifetime",
            f"1 if this is the first time this {a} meets this {b}.",
        ),
        (
            L.P_COUNT30,
            "count_30d",
            "30d",
            "count",
            "decayed",
            f"Transactions of this {a} with this {b}, last 30 days (decayed).",
        ),
        (
            L.P_RATIO30,
            "amount_ratio_mean_30d",
            "30d",
            "ratio",
            "decayed",
            f"This amount divided by the average of this {a} with this {b} (30 days).",
        ),
        (
            L.P_SECS,
            "secs_since_last",
            None,
            "time_since_last",
            "none",
            f"Seconds since this {a} last used this {b}.",
        ),
        (L.P_AGE, "age_days", None, "age", "lifetime", f"Days since this {a} first used this {b}."),
    )
    return [
        FeatureSpec(
            f"{name}_{stem}",
            name,
            win,
            agg,
            desc,
            family="pair",
            window_type=wt,
            source=("P", p, o),
        )
        for o, stem, win, agg, wt, desc in rows
    ]


_T_DOC: dict[str, tuple[str, str | None, str, str]] = {
    # name -> (aggregation, window, kind, description)
    "amount": ("value", None, "numeric", "Transaction amount."),
    "log_amount": ("value", None, "numeric", "Logarithm of the amount, log(1 + amount)."),
    "amount_is_integer": (
        "flag",
        None,
        "numeric",
        "1 if the amount is a whole number (round amounts).",
    ),
    "amount_cents": ("value", None, "numeric", "Cents part of the amount (0..99)."),
    "mcc": ("value", None, "categorical", "Merchant category code (ISO 18245)."),
    "mcc_prior_risk": (
        "value",
        None,
        "numeric",
        "Known risk tier of the merchant category (0 low, 1 elevated, 2 high).",
    ),
    "channel": (
        "value",
        None,
        "categorical",
        "Channel code (0 POS, 1 e-commerce, 2 ATM, 3 mail/phone, 4 P2P).",
    ),
    "entry_mode": (
        "value",
        None,
        "categorical",
        "Entry-mode code (0 chip, 1 contactless, 2 magstripe, 3 manual, 4 CNP, 5 token).",
    ),
    "hour": ("value", None, "numeric", "Hour of day (UTC)."),
    "hour_sin": ("cyclic", None, "numeric", "Hour of day (UTC) on the circle, sine."),
    "hour_cos": ("cyclic", None, "numeric", "Hour of day (UTC) on the circle, cosine."),
    "day_of_week": ("value", None, "categorical", "Day of week (0 Monday .. 6 Sunday, UTC)."),
    "dow_sin": ("cyclic", None, "numeric", "Day of week on the circle, sine."),
    "dow_cos": ("cyclic", None, "numeric", "Day of week on the circle, cosine."),
    "is_night": ("flag", None, "numeric", "1 between 00:00 and 06:00 UTC (night-time)."),
    "is_weekend": ("flag", None, "numeric", "1 on Saturday or Sunday (UTC)."),
    "mcc_fraud_rate_30d": (
        "fraud_rate",
        "30d",
        "numeric",
        "Fraud rate of this merchant category over labels known in the last 30 days (smoothed).",
    ),
    "mcc_fraud_count_30d": (
        "fraud_count",
        "30d",
        "numeric",
        "Confirmed frauds in this merchant category known in the last 30 days (decayed).",
    ),
    "mcc_labelled_count_30d": (
        "label_count",
        "30d",
        "numeric",
        "Labelled transactions in this merchant category known in the last 30 days.",
    ),
    "mcc_tx_count_24h": (
        "count",
        "24h",
        "numeric",
        "Transactions in this merchant category in the last 24h, all merchants (decayed).",
    ),
    "is_card_present": (
        "flag",
        None,
        "numeric",
        "1 if the card was physically present (chip or contactless).",
    ),
    "is_keyed_entry": (
        "flag",
        None,
        "numeric",
        "1 for magstripe or manually keyed entry (skimming / stolen data risk).",
    ),
}


def _tx_specs() -> list[FeatureSpec]:
    out = []
    doc: tuple[str, str | None, str, str]
    for o, name in enumerate(L.T_NAMES):
        if name.startswith("missing_"):
            field_ = name.removeprefix("missing_")
            doc = (
                "flag",
                None,
                "numeric",
                f"1 if the transaction has no {field_.replace('_', ' ')}.",
            )
        else:
            doc = _T_DOC[name]
        agg, win, kind, desc = doc
        entity = "mcc" if name.startswith("mcc_") and name != "mcc_prior_risk" else "transaction"
        fam = "label_risk" if "fraud" in name or "labelled" in name else "transaction"
        out.append(
            FeatureSpec(
                name,
                entity,
                win,
                agg,
                desc,
                kind=kind,
                family=fam,
                window_type="decayed" if win else "none",
                source=("T", 0, o),
            )
        )
    return out


@lru_cache(maxsize=1)
def _catalogue() -> tuple[FeatureSpec, ...]:
    specs = _tx_specs()
    for e, ent in enumerate(L.ENTITIES):
        specs += _window_specs(e, ent)
        specs += _entity_specs(e, ent)
    for p, (name, a, b) in enumerate(L.PAIRS):
        specs += _pair_specs(p, name, a, b)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):  # pragma: no cover - a catalogue bug
        raise AssertionError("duplicate feature names in the catalogue")
    return tuple(specs)


def catalogue() -> list[FeatureSpec]:
    """Every feature the engine computes, in matrix-column order."""
    return list(_catalogue())


def catalogue_hash(specs: tuple[FeatureSpec, ...] | list[FeatureSpec] | None = None) -> str:
    """sha256 over the specs (default: the full catalogue) and the state/output layout version."""
    specs = _catalogue() if specs is None else specs
    body = {
        "layout_version": L.LAYOUT_VERSION,
        "ring": L.K,
        "hll": L.HLL_M,
        "specs": [s.to_dict() for s in specs],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def select(names: list[str] | tuple[str, ...] | None) -> list[FeatureSpec]:
    """Specs of ``names`` (in that order), or the full catalogue for None."""
    if names is None:
        return catalogue()
    by_name = {s.name: s for s in _catalogue()}
    unknown = [n for n in names if n not in by_name]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(
            f"The 'features' parameter of FeatureEngine must list distinct names from "
            f"`riskflow features list`. Got unknown {unknown[:5]!r} (of {len(names)} names) instead."
        )
    return [by_name[n] for n in names]


#: The ``active`` flag an entity output sets (see :func:`compile_layout`).
_OUTPUT_FLAGS: tuple[tuple[tuple[int, ...], int], ...] = (
    (L.RING_OUT, L.ACT_RING),
    (L.RING_SCAN_OUT, L.ACT_SCAN),
    (L.KEY_OUT, L.ACT_KEYS),
    (L.LABEL_OUT, L.ACT_LABEL),
    (L.GEO_OUT, L.ACT_GEO),
    (L.MIX_OUT, L.ACT_MIX),
)


def compile_layout(
    specs: list[FeatureSpec],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kernel parameters from the specs: (win_ms, colE, colP, colT, mcc_prior, active).

    A decayed window no spec reads is switched off (0 ms), and an entity no
    spec reads is skipped entirely (``active`` 0), so a subset costs less.
    Within a computed entity, ``active`` also says whether it keeps its ring of
    recent times and amounts (:data:`~._kernels._layout.ACT_RING`), scans it
    (``ACT_SCAN``), keeps counterparty keys (``ACT_KEYS``), reads state past
    the ring (``ACT_WIDE``, else its rows are prefetched only that far), and
    which of the label, geography and mix blocks it runs. State no selected
    feature reads is not maintained (a subset's snapshot is its own: the
    catalogue hash differs).
    """
    win = np.zeros((L.NE, L.NW), np.float64)
    colE = np.full((L.NE, L.NOUT_E), -1, np.int32)
    colP = np.full((L.NP, L.NOUT_P), -1, np.int32)
    colT = np.full(L.NT, -1, np.int32)
    active = np.zeros(L.NE + L.NP, np.uint8)
    for c, s in enumerate(specs):
        kind, a, o = s.source
        if kind == "E":
            colE[a, o] = c
            active[a] |= L.ACT_ON
            for block, flag in _OUTPUT_FLAGS:
                if o in block:
                    active[a] |= flag
            if o not in L.NARROW_OUT:
                active[a] |= L.ACT_WIDE
            if o < L.NW * L.W_OUT:
                w = o // L.W_OUT
                win[a, w] = parse_window(WINDOWS[L.ENTITIES[a]][w])
        elif kind == "P":
            colP[a, o] = c
            active[L.NE + a] = L.ACT_ON
        else:
            colT[o] = c
            if o in L.T_MCC_LABEL_OUT:  # labels find the MCC through the merchant's state
                active[L.ENTITIES.index("merchant")] |= L.ACT_ON
    prior = np.zeros(L.N_MCC, np.float64)
    for m, r in MCC_PRIOR_RISK.items():
        prior[m] = r
    return win, colE, colP, colT, prior, active
