"""How many CPUs this process may really use.

``os.cpu_count()`` counts the host's cores. A worker pinned to some of them
(``taskset``, a cpuset) or capped by a cgroup CPU quota (a Kubernetes
``limits.cpu``, ``docker run --cpus``) can use fewer, and threads beyond that
only take turns. ``usable_cpus`` is the smallest of the three.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["usable_cpus"]

#: cgroup v2's quota file (``"max 100000"`` or ``"150000 100000"``).
_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _quota_cpus(cpu_max: Path) -> int | None:
    """Whole CPUs a cgroup v2 quota allows (rounded up), or None when unlimited or unknown."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def usable_cpus(cpu_max: Path = _CPU_MAX) -> int:
    """CPUs this process can run on at once: affinity, capped by a cgroup v2 quota.

    >>> usable_cpus() >= 1
    True
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    quota = _quota_cpus(cpu_max)
    return max(1, min(n, quota) if quota is not None else n)
