from __future__ import annotations

import pytest

from riskflow.errors import ConfigError
from riskflow.simulate import DRIFTS, PRESETS, SCENARIOS, SimulationConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"customers": 0},
            "The 'customers' parameter of SimulationConfig must be an int in [1, 5000000]. Got 0 instead.",
        ),
        (
            {"days": 2.5},
            "The 'days' parameter of SimulationConfig must be an int in [1, 3660]. Got 2.5 instead.",
        ),
        (
            {"fraud_rate": 0.9},
            "The 'fraud_rate' parameter of SimulationConfig must be a float in [0, 0.5]. Got 0.9 instead.",
        ),
        ({"fraud_rate": float("nan")}, "'fraud_rate' parameter"),
        ({"seed": True}, "'seed' parameter"),
        ({"drift": "spike"}, "The 'drift' parameter of SimulationConfig must be one of"),
        ({"scenario_mix": {"phishing": 1.0}}, "keyed by scenario names"),
        ({"scenario_mix": {"skimming": -1.0}}, "finite weights >= 0"),
        ({"scenario_mix": {"skimming": 0.0}}, "at least one positive weight"),
        ({"drift_start_day": 50, "days": 10}, "'drift_start_day' parameter"),
        ({"start_date": "05/01/2026"}, "a date written YYYY-MM-DD. Got '05/01/2026' instead."),
        (
            {"label_delay_min_days": 30.0, "label_delay_median_days": 10.0},
            "at most label_delay_median_days",
        ),
    ],
)
def test_bad_parameters_raise_sklearn_style_messages(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        SimulationConfig(**kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_defaults_and_derived_values() -> None:
    cfg = SimulationConfig(days=10)
    assert cfg.start_ms == 1_767_571_200_000  # 2026-01-05T00:00:00Z, a Monday
    assert cfg.drift_start == 5 and cfg.drift_length == 2
    assert set(cfg.scenario_mix) == set(SCENARIOS)
    assert SimulationConfig(spike_factor=2).spike_factor == 2.0  # ints accepted for floats
    assert "none" in DRIFTS and len(DRIFTS) == 4


def test_config_is_frozen_and_json_ready() -> None:
    cfg = SimulationConfig(scenario_mix={"skimming": 2})
    with pytest.raises(AttributeError):
        cfg.customers = 5  # type: ignore[misc]
    d = cfg.to_dict()
    assert d["scenario_mix"] == {"skimming": 2.0} and d["customers"] == cfg.customers


def test_presets() -> None:
    assert set(PRESETS) == {"demo", "standard", "bench"}
    std = SimulationConfig.preset("standard")
    # the model issue's dataset: ~1-2M transactions over 8-10 weeks
    assert 8 * 7 <= std.days <= 10 * 7
    assert 1_000_000 <= std.customers * std.tx_per_customer_day * std.days <= 2_000_000
    bench = SimulationConfig.preset("bench")
    assert 9e6 <= bench.customers * bench.days <= 11e6
    assert SimulationConfig.preset("demo", seed=4, days=None).seed == 4
    with pytest.raises(ConfigError, match="'preset' parameter"):
        SimulationConfig.preset("huge")
