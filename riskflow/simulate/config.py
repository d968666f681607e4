"""The simulator's one frozen, validated configuration object and its presets.

>>> cfg = SimulationConfig(customers=500, days=3, seed=7)
>>> cfg.fraud_rate, cfg.drift, cfg.start_date
(0.005, 'none', '2026-01-05')
>>> SimulationConfig.preset("demo", seed=1).customers
1500
>>> SimulationConfig(customers=0)
Traceback (most recent call last):
...
riskflow.errors.ConfigError: The 'customers' parameter of SimulationConfig must be an int in [1, 5000000]. Got 0 instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from riskflow.errors import ConfigError

__all__ = [
    "SimulationConfig",
    "SCENARIOS",
    "DRIFTS",
    "PRESETS",
    "DEFAULT_SCENARIO_MIX",
]

#: Fraud scenarios, in the order of their integer codes (0 is legitimate).
SCENARIOS: tuple[str, ...] = (
    "stolen_card",  # card cloned / stolen, used far from home: impossible travel
    "card_testing",  # burst of tiny e-commerce auths, then large ones
    "account_takeover",  # new device + new IP + changed spending
    "skimming",  # compromised terminal; its cards defrauded elsewhere later
    "high_amount",  # one payment far above the customer's habit
    "merchant_bustout",  # collusive new merchant pushes stolen cards, then vanishes
)
#: Drift options for policy evaluation.
DRIFTS: tuple[str, ...] = ("none", "fraud_spike", "new_scenario", "volume_shift")

#: Share of fraudulent *transactions* per scenario (normalised on use).
DEFAULT_SCENARIO_MIX: dict[str, float] = {
    "stolen_card": 0.20,
    "card_testing": 0.20,
    "account_takeover": 0.20,
    "skimming": 0.15,
    "high_amount": 0.10,
    "merchant_bustout": 0.15,
}

#: name -> overrides. demo: a few seconds, yet six weeks with 1% fraud so that
#: chargebacks (median 18 days late) are known in time to train on; standard:
#: the dataset the model is trained on (~1.5M tx over 9 weeks, < 1 min);
#: bench: ~10M tx.
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"customers": 1_500, "days": 42, "fraud_rate": 0.01},
    "standard": {"customers": 24_000, "days": 63},
    "bench": {"customers": 165_000, "days": 60},
}


def _bad(name: str, what: str, value: Any) -> ConfigError:
    return ConfigError(
        f"The {name!r} parameter of SimulationConfig must be {what}. Got {value!r} instead."
    )


# (name, type, lo, hi): declared as data, checked in one place.
_NUMERIC: tuple[tuple[str, type, float, float], ...] = (
    ("customers", int, 1, 5_000_000),
    ("days", int, 1, 3_660),
    ("seed", int, 0, 2**63 - 1),
    ("fraud_rate", float, 0.0, 0.5),
    ("tx_per_customer_day", float, 0.01, 100.0),
    ("unreported_share", float, 0.0, 1.0),
    ("label_delay_median_days", float, 0.0, 365.0),
    ("label_delay_sigma", float, 0.0, 3.0),
    ("label_delay_min_days", float, 0.0, 365.0),
    ("legit_dispute_rate", float, 0.0, 0.1),
    ("spike_factor", float, 1.0, 100.0),
    ("volume_factor", float, 0.1, 10.0),
)


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulated dataset (same config -> same bytes).

    Parameters
    ----------
    customers
        Number of customers; merchants, terminals and cards scale with it.
    days
        Length of the stream in days from ``start_date`` (UTC midnight).
    seed
        Random seed; the output is a pure function of the config.
    fraud_rate
        Target share of fraudulent transactions (realistic: 0.001-0.01).
    scenario_mix
        Scenario name -> share of fraudulent transactions (normalised).
    tx_per_customer_day
        Mean legitimate transactions per customer and day.
    unreported_share
        Share of fraud incidents whose victim never reports them (no label).
    label_delay_median_days, label_delay_sigma, label_delay_min_days
        Chargeback delay: lognormal with this median and sigma, at least the minimum.
    legit_dispute_rate
        Share of legitimate transactions disputed and found legitimate (label 0).
    drift
        ``none``, ``fraud_spike`` (fraud rate times ``spike_factor`` over a
        window), ``new_scenario`` (``drift_scenario`` absent before
        ``drift_start_day``) or ``volume_shift`` (volume times
        ``volume_factor`` and a larger e-commerce share from ``drift_start_day``).
    drift_start_day, drift_days
        Where the drift starts (default: the middle) and, for ``fraud_spike``,
        how long it lasts (default: a fifth of the stream, at least a day).
    start_date
        First day of the stream, ``YYYY-MM-DD`` (UTC).
    """

    customers: int = 10_000
    days: int = 28
    seed: int = 0
    fraud_rate: float = 0.005
    scenario_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SCENARIO_MIX))
    tx_per_customer_day: float = 1.0
    unreported_share: float = 0.2
    label_delay_median_days: float = 18.0
    label_delay_sigma: float = 0.55
    label_delay_min_days: float = 1.0
    legit_dispute_rate: float = 0.0005
    drift: str = "none"
    drift_start_day: int | None = None
    drift_days: int | None = None
    drift_scenario: str = "account_takeover"
    spike_factor: float = 3.0
    volume_factor: float = 1.5
    start_date: str = "2026-01-05"

    def __post_init__(self) -> None:
        for name, kind, lo, hi in _NUMERIC:
            v: Any = getattr(self, name)
            if kind is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
                object.__setattr__(self, name, v)
            in_range = isinstance(v, int | float) and lo <= v <= hi  # False for NaN
            ok = in_range and isinstance(v, kind) and not isinstance(v, bool)
            if not ok:
                what = f"an int in [{lo}, {hi}]" if kind is int else f"a float in [{lo:g}, {hi:g}]"
                raise _bad(name, what, v)
        if not isinstance(self.scenario_mix, Mapping) or not self.scenario_mix:
            raise _bad(
                "scenario_mix",
                f"a non-empty mapping of scenario -> weight from {SCENARIOS}",
                self.scenario_mix,
            )
        mix: dict[str, float] = {}
        for k, w in self.scenario_mix.items():
            if k not in SCENARIOS:
                raise _bad("scenario_mix", f"keyed by scenario names from {SCENARIOS}", k)
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w < float("inf"):
                raise _bad("scenario_mix", "a mapping to finite weights >= 0", {k: w})
            mix[k] = float(w)
        if sum(mix.values()) <= 0 and self.fraud_rate > 0:
            raise _bad("scenario_mix", "a mapping with at least one positive weight", mix)
        object.__setattr__(self, "scenario_mix", mix)
        if self.drift not in DRIFTS:
            raise _bad("drift", f"one of {DRIFTS}", self.drift)
        if self.drift_scenario not in SCENARIOS:
            raise _bad("drift_scenario", f"one of {SCENARIOS}", self.drift_scenario)
        for name in ("drift_start_day", "drift_days"):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= self.days
            ):
                raise _bad(name, f"None or an int in [0, days={self.days}]", v)
        if (
            self.label_delay_min_days > self.label_delay_median_days
            and self.label_delay_median_days > 0
        ):
            raise _bad(
                "label_delay_min_days",
                f"at most label_delay_median_days={self.label_delay_median_days:g}",
                self.label_delay_min_days,
            )
        try:
            datetime.strptime(self.start_date, "%Y-%m-%d")
        except (TypeError, ValueError):
            raise _bad("start_date", "a date written YYYY-MM-DD", self.start_date) from None

    # -- derived values -------------------------------------------------------------
    @property
    def start_ms(self) -> int:
        """Epoch milliseconds of ``start_date`` 00:00 UTC."""
        d = datetime.strptime(self.start_date, "%Y-%m-%d").replace(tzinfo=UTC)
        return int(d.timestamp() * 1000)

    @property
    def drift_start(self) -> int:
        """First day the drift applies (default: the middle of the stream)."""
        return self.days // 2 if self.drift_start_day is None else self.drift_start_day

    @property
    def drift_length(self) -> int:
        """Length in days of the ``fraud_spike`` window."""
        return max(1, self.days // 5) if self.drift_days is None else self.drift_days

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SimulationConfig:
        """A named preset (``demo``, ``standard``, ``bench``) with overrides on top."""
        if name not in PRESETS:
            raise ConfigError(
                f"The 'preset' parameter of SimulationConfig must be one of {tuple(PRESETS)}. "
                f"Got {name!r} instead."
            )
        return cls(**{**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (what the manifest records)."""
        d = dataclasses.asdict(self)
        d["scenario_mix"] = dict(self.scenario_mix)
        return d
