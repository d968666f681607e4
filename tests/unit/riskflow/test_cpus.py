from __future__ import annotations

import os
from pathlib import Path

import pytest

from riskflow.cpus import usable_cpus


@pytest.mark.parametrize(
    ("cpu_max", "cap"),
    [
        ("max 100000\n", None),  # no quota
        ("150000 100000\n", 2),  # 1.5 CPUs: two threads can still run, rounded up
        ("100000 100000\n", 1),
        ("50000 100000\n", 1),  # below one CPU: still one thread
        ("garbage", None),  # unreadable: ignored, not fatal
    ],
)
def test_quota_caps_affinity(tmp_path: Path, cpu_max: str, cap: int | None) -> None:
    f = tmp_path / "cpu.max"
    f.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if cap is None else min(affinity, cap)
    assert usable_cpus(f) == expected


def test_affinity_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert usable_cpus(tmp_path / "absent") == 4
    f = tmp_path / "cpu.max"
    f.write_text("300000 100000")
    assert usable_cpus(f) == 3
