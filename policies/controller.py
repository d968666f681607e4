"""Target-rate controller: keeps review volume (and optionally the decline rate) at a set point.

Each interval it sets the thresholds to the score quantiles of the last few
intervals that would have produced exactly the target rates. No learning, no
labels: a strong, explainable baseline for the RL agent.

>>> import numpy as np
>>> rc = RateController(ThresholdPolicy(0.5, 0.9), target_review_rate=0.1, window=2)
>>> p = rc.propose(np.linspace(0, 1, 1001))
>>> round(p.t_review, 2), p.t_decline   # 10% of scores fall in [t_review, 0.9)
(0.8, 0.9)
"""

from __future__ import annotations

from collections import deque

import numpy as np

from riskflow.policies.decide import ThresholdPolicy
from riskflow.policies.exceptions import bad_param

__all__ = ["RateController"]


class RateController:
    """Quantile set-point controller.

    Parameters
    ----------
    static
        The thresholds to start from (and ``t_decline`` when its target is None).
    target_review_rate
        Share of payments to send to review (e.g. capacity / expected volume).
    target_decline_rate
        Share of payments to decline; ``None`` keeps the static ``t_decline``.
    window
        Intervals of recent scores the quantiles are taken over.
    target_reviews_per_interval
        If given, the review target as a count per interval (e.g. the review
        capacity); it overrides ``target_review_rate``, as a rate of the
        recent volume.
    ceiling
        If True the review target is a ceiling: ``t_review`` never drops below
        the static one (no extra reviews when there is spare capacity), it only
        rises to keep reviews at the target when volume or scores grow.

    >>> rc = RateController(ThresholdPolicy(0.5, 0.9), 0.1, window=1, ceiling=True)
    >>> round(rc.propose(np.linspace(0, 1, 1001)).t_review, 2)  # 40% would be reviewed: cut to 10%
    0.8
    >>> rc.propose(np.linspace(0, 0.52, 1001)).t_review  # 4% would be: stay static
    0.5
    """

    def __init__(
        self,
        static: ThresholdPolicy,
        target_review_rate: float | None,
        target_decline_rate: float | None = None,
        window: int = 3,
        target_reviews_per_interval: float | None = None,
        ceiling: bool = False,
    ) -> None:
        for name, v in (
            ("target_review_rate", target_review_rate),
            ("target_decline_rate", target_decline_rate),
        ):
            if v is not None and not (isinstance(v, int | float) and 0 <= v < 1):
                raise bad_param("RateController", name, "None or a number in [0, 1)", v)
        if not isinstance(window, int) or window < 1:
            raise bad_param("RateController", "window", "an int >= 1", window)
        self.static = static
        self.target_review_rate = target_review_rate
        self.target_decline_rate = target_decline_rate
        self.window = window
        self.target_reviews_per_interval = target_reviews_per_interval
        self.ceiling = ceiling
        self._buf: deque[np.ndarray] = deque(maxlen=window)

    def propose(self, scores: np.ndarray) -> ThresholdPolicy:
        """Fold one interval's scores in and return the thresholds for the next."""
        self._buf.append(np.asarray(scores, dtype=np.float64))
        s = np.concatenate(self._buf)
        s = s[np.isfinite(s)]
        if s.size < 20:
            return self.static.with_(source="controller")
        td = self.static.t_decline
        if self.target_decline_rate is not None:
            td = float(np.quantile(s, 1 - self.target_decline_rate))
        tr = self.static.t_review
        rate = self.target_review_rate
        if self.target_reviews_per_interval is not None:
            rate = min(self.target_reviews_per_interval * len(self._buf) / s.size, 1.0)
        if rate is not None:
            above_d = float(np.mean(s >= td))
            tr = float(np.quantile(s, max(0.0, 1 - above_d - rate)))
            if self.ceiling:
                tr = max(tr, self.static.t_review)
        tr = min(tr, td)
        return ThresholdPolicy(tr, td, self.static.version, "controller")
