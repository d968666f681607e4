"""Live view of the decisions topic: rate, latency, decision mix, recent declines.

:class:`DecisionStats` is the pure part (fed decoded decision records, asked
for a snapshot); ``riskflow watch`` wraps it in a Kafka consumer and a
terminal view that redraws a few times a second.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DecisionStats", "Snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """What the live view shows at one moment."""

    total: int
    rate_per_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    mix: dict[str, float]
    fallbacks: int
    recent_declines: list[dict[str, Any]]
    model_versions: list[str]
    policy_versions: list[str]


class DecisionStats:
    """Running statistics over decision records.

    Parameters
    ----------
    window_s
        Rate and latency quantiles cover the last ``window_s`` seconds of arrivals.
    keep_declines
        How many recent declines to keep for display.

    >>> s = DecisionStats()
    >>> _ = s.update([{"decision": "approve", "latency_ms": 3.0}, {"decision": "decline", "tx_id": "t9",
    ...            "score": 0.97, "reasons": [{"description": "New device"}], "latency_ms": 5.0}], now=10.0)
    >>> snap = s.snapshot(now=10.0)
    >>> snap.total, snap.mix["decline"], snap.recent_declines[0]["tx_id"]
    (2, 0.5, 't9')
    """

    def __init__(self, window_s: float = 10.0, keep_declines: int = 8) -> None:
        self.window_s = window_s
        self.total = 0
        self.fallbacks = 0
        self.mix: Counter[str] = Counter()
        self._arrivals: deque[tuple[float, float]] = deque()  # (arrival time, latency ms or nan)
        self._declines: deque[dict[str, Any]] = deque(maxlen=keep_declines)
        self._models: Counter[str] = Counter()
        self._policies: Counter[str] = Counter()

    def update(
        self,
        records: Iterable[Mapping[str, Any]],
        now: float | None = None,
        now_ms: float | None = None,
    ) -> DecisionStats:
        """Account for ``records`` that arrived at ``now`` (default: the monotonic clock).

        A record's latency is its ``latency_ms`` if it has one, else
        ``now_ms`` (wall clock in ms, default: the clock) minus its
        ``source_ts_ms``, the input record's Kafka timestamp the worker copies
        into each decision.
        """
        now = time.monotonic() if now is None else now
        now_ms = time.time() * 1000 if now_ms is None else now_ms
        for r in records:
            self.total += 1
            decision = str(r.get("decision", "?"))
            self.mix[decision] += 1
            self.fallbacks += bool(r.get("fallback"))
            lat = r.get("latency_ms")
            src = r.get("source_ts_ms")
            if not isinstance(lat, int | float) and isinstance(src, int | float):
                lat = now_ms - src
            self._arrivals.append(
                (now, float(lat) if isinstance(lat, int | float) else float("nan"))
            )
            if r.get("model_version"):
                self._models[str(r["model_version"])] += 1
            if r.get("policy_version"):
                self._policies[str(r["policy_version"])] += 1
            if decision == "decline":
                self._declines.appendleft(
                    {
                        "tx_id": r.get("tx_id"),
                        "score": r.get("score"),
                        "reasons": [
                            c.get("description") or c.get("feature") for c in r.get("reasons") or []
                        ],
                    }
                )
        return self

    def snapshot(self, now: float | None = None) -> Snapshot:
        now = time.monotonic() if now is None else now
        while self._arrivals and self._arrivals[0][0] < now - self.window_s:
            self._arrivals.popleft()
        lats = np.array([lat for _, lat in self._arrivals], dtype=float)
        lats = lats[np.isfinite(lats)]
        span = max(
            min(self.window_s, now - self._arrivals[0][0]) if self._arrivals else self.window_s,
            1e-3,
        )
        n = sum(self.mix.values()) or 1
        return Snapshot(
            total=self.total,
            rate_per_s=len(self._arrivals) / span if len(self._arrivals) > 1 else 0.0,
            latency_p50_ms=float(np.percentile(lats, 50)) if lats.size else None,
            latency_p99_ms=float(np.percentile(lats, 99)) if lats.size else None,
            mix={k: v / n for k, v in sorted(self.mix.items())},
            fallbacks=self.fallbacks,
            recent_declines=list(self._declines),
            model_versions=[m for m, _ in self._models.most_common(2)],
            policy_versions=[p for p, _ in self._policies.most_common(2)],
        )
