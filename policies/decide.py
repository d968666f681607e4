"""The pure decision function: calibrated score -> approve / review / decline.

Codes: 0 approve (score below ``t_review``), 1 review (between), 2 decline
(at or above ``t_decline``). This module imports numpy only, so the stream
can use it without pulling any training library.

>>> import numpy as np
>>> decide(np.array([0.1, 0.5, 0.95]), 0.5, 0.9).tolist()
[0, 1, 2]
>>> p = ThresholdPolicy(0.3, 0.8, version="v1")
>>> p.decide(np.array([0.29, 0.3, 0.8])).tolist()
[0, 1, 2]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from riskflow.policies.exceptions import PolicyError

__all__ = ["APPROVE", "REVIEW", "DECLINE", "DECISION_NAMES", "decide", "ThresholdPolicy"]

APPROVE, REVIEW, DECLINE = 0, 1, 2
DECISION_NAMES: tuple[str, ...] = ("approve", "review", "decline")


def _check_thresholds(t_review: float, t_decline: float) -> None:
    for name, v in (("t_review", t_review), ("t_decline", t_decline)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not (0.0 <= v <= 1.0):
            raise PolicyError(
                f"The {name!r} threshold must be a number in [0, 1]. Got {v!r} instead."
            )
    if t_review > t_decline:
        raise PolicyError(
            f"t_review ({t_review}) must not exceed t_decline ({t_decline}); "
            "swap them or lower t_review."
        )


def decide(scores: np.ndarray, t_review: float, t_decline: float) -> np.ndarray:
    """Decision codes (int8) for calibrated ``scores``; NaN scores are reviewed.

    >>> decide(np.array([0.0, np.nan, 1.0]), 0.2, 0.2).tolist()
    [0, 1, 2]
    """
    s = np.asarray(scores, dtype=np.float64)
    out = (s >= t_review).astype(np.int8)
    out += s >= t_decline
    out[np.isnan(s)] = REVIEW  # an unscorable payment goes to a human, never silently through
    return out


@dataclass(frozen=True)
class ThresholdPolicy:
    """Two thresholds, a version and where they came from; immutable.

    Parameters
    ----------
    t_review, t_decline
        Score thresholds in [0, 1] with ``t_review <= t_decline``.
    version
        Identifier logged with every decision (``policy_version``).
    source
        ``config``, ``static``, ``controller``, ``rl``, ``fallback``, ...
    effective_ms
        Event time (epoch ms) from which the thresholds apply, if known.
    """

    t_review: float
    t_decline: float
    version: str = "config"
    source: str = "config"
    effective_ms: int | None = None

    def __post_init__(self) -> None:
        _check_thresholds(self.t_review, self.t_decline)
        object.__setattr__(self, "t_review", float(self.t_review))
        object.__setattr__(self, "t_decline", float(self.t_decline))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Decision codes for ``scores`` (see :func:`decide`)."""
        return decide(scores, self.t_review, self.t_decline)

    def with_(self, **changes: Any) -> ThresholdPolicy:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_review": self.t_review,
            "t_decline": self.t_decline,
            "version": self.version,
            "source": self.source,
            "effective_ms": self.effective_ms,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ThresholdPolicy:
        try:
            return cls(
                float(d["t_review"]),
                float(d["t_decline"]),
                str(d.get("version", "unversioned")),
                str(d.get("source", "unknown")),
                None if d.get("effective_ms") is None else int(d["effective_ms"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, PolicyError):
                raise
            raise PolicyError(
                f"A policy needs numeric 't_review' and 't_decline'. Got {d!r} instead."
            ) from exc


def logit(p: float | np.ndarray, eps: float = 1e-6) -> Any:
    """log(p / (1 - p)) with p clipped to [eps, 1 - eps]."""
    q = np.clip(p, eps, 1 - eps)
    return np.log(q / (1 - q))


def expit(x: float | np.ndarray) -> Any:
    """The inverse of :func:`logit`."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def is_finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
