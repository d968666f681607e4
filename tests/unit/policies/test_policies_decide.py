from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from riskflow.policies import PolicyError, ThresholdPolicy, decide


def naive_decide(scores, tr, td):
    out = []
    for s in scores:
        out.append(1 if np.isnan(s) else (2 if s >= td else (1 if s >= tr else 0)))
    return np.array(out, dtype=np.int8)


@pytest.mark.parametrize("tr,td", [(0.0, 0.0), (0.3, 0.3), (0.2, 0.9), (1.0, 1.0), (0.5, 1.0)])
def test_decide_matches_naive(tr, td):
    s = np.r_[np.random.default_rng(1).random(500), [0.0, 1.0, tr, td, np.nan]]
    got = decide(s, tr, td)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, naive_decide(s, tr, td))


def test_threshold_policy_validates_and_is_frozen():
    with pytest.raises(PolicyError, match="must not exceed"):
        ThresholdPolicy(0.9, 0.5)
    with pytest.raises(PolicyError, match=r"in \[0, 1\]"):
        ThresholdPolicy(-0.1, 0.5)
    p = ThresholdPolicy(0.1, 0.5, version="v")
    with pytest.raises(AttributeError):
        p.t_review = 0.2  # type: ignore[misc]
    assert ThresholdPolicy.from_dict(p.to_dict()) == p


def test_importing_policies_does_not_import_training_libraries():
    code = (
        "import sys, riskflow.policies, riskflow.policies.backtest; "
        "bad = [m for m in ('gymnasium', 'stable_baselines3', 'torch') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
