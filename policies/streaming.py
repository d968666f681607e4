"""The online agent inside a stream: batches in, one guarded threshold update per interval out.

:class:`AgentPolicy` wraps an :class:`~riskflow.policies.OnlineAgent` for a
consumer that sees micro-batches (the stream worker, or replay). It decides
each batch with the live thresholds, accumulates the interval's payments and
the labels that arrive, and when event time crosses an interval boundary it
closes the window, steps the agent and hands the new thresholds to
``publish`` (the worker encodes them with
:func:`~riskflow.policies.encode_policy_update` onto the compacted policy
topic, from which every worker applies them).

>>> import numpy as np
>>> from riskflow.policies import Reference, ThresholdPolicy, CostModel, OnlineAgent, StaticProposer
>>> ref = Reference((0.1, 0.5, 0.9), 100.0, 0.01, 10.0, 3_600_000, 0.3, 0.8)
>>> agent = OnlineAgent(StaticProposer(ref.static_policy()), ref, CostModel())
>>> sent = []
>>> ap = AgentPolicy(agent, publish=sent.append)
>>> ap.decide_batch(np.array([0.1, 0.5, 0.9]), np.array([0, 1000, 2000]) + 1767225600000).tolist()
[0, 1, 2]
>>> _ = ap.decide_batch(np.array([0.2]), np.array([1767225600000 + 3_600_000]))
>>> len(sent), sent[0].effective_ms
(1, 1767229200000)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from riskflow.policies.agent import OnlineAgent
from riskflow.policies.decide import ThresholdPolicy
from riskflow.policies.window import WindowStats

__all__ = ["AgentPolicy"]

HOUR_MS = 3_600_000


class AgentPolicy:
    """Decide batches with the agent's live thresholds; step it at interval boundaries.

    Parameters
    ----------
    agent
        The guarded online agent (e.g. ``load_policy(path).make_agent()``).
    interval_ms
        Event-time interval between threshold updates (aligned to the epoch).
    publish
        Called with each new :class:`ThresholdPolicy` (e.g. produce to the policy topic).
    """

    def __init__(
        self,
        agent: OnlineAgent,
        interval_ms: int = HOUR_MS,
        publish: Callable[[ThresholdPolicy], None] | None = None,
    ) -> None:
        self.agent = agent
        self.interval_ms = int(interval_ms)
        self.publish = publish
        self._end: int | None = None
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._labels: list[tuple[np.ndarray, ...]] = []

    @property
    def current(self) -> ThresholdPolicy:
        return self.agent.current

    @property
    def version(self) -> str:
        return self.agent.current.version

    @property
    def t_review(self) -> float:
        return self.agent.current.t_review

    @property
    def t_decline(self) -> float:
        return self.agent.current.t_decline

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Decide with the live thresholds, without feeding the agent (no event times)."""
        return self.agent.current.decide(scores)

    def decide_batch(
        self, scores: np.ndarray, ts: np.ndarray, amounts: np.ndarray | None = None
    ) -> np.ndarray:
        """Decide a batch in event-time order, stepping the agent at each boundary crossed."""
        s = np.asarray(scores, dtype=np.float64)
        t = np.asarray(ts, dtype=np.int64)
        a = np.zeros_like(s) if amounts is None else np.asarray(amounts, dtype=np.float64)
        out = np.empty(s.shape[0], dtype=np.int8)
        i = 0
        while i < s.shape[0]:
            if self._end is None:
                self._end = int(t[i] // self.interval_ms * self.interval_ms + self.interval_ms)
            if t[i] >= self._end:
                self._close()
                continue
            j = i + int(np.searchsorted(t[i:], self._end, side="left"))
            d = self.agent.current.decide(s[i:j])
            out[i:j] = d
            self._parts.append((s[i:j], a[i:j], d, t[i:j]))
            i = j
        return out

    def observe_labels(
        self, label: np.ndarray, amount: np.ndarray, score: np.ndarray, decision: np.ndarray
    ) -> None:
        """Labels that just arrived, with the amount, score and decision of their payments."""
        self._labels.append(
            (
                np.asarray(label, np.int8),
                np.asarray(amount, np.float64),
                np.asarray(score, np.float64),
                np.asarray(decision, np.int8),
            )
        )

    def _close(self) -> None:
        assert self._end is not None
        cat: list[np.ndarray] = (
            [np.concatenate(x) for x in zip(*self._parts, strict=True)]
            if self._parts
            else [np.zeros(0), np.zeros(0), np.zeros(0, np.int8), np.zeros(0, np.int64)]
        )
        lab: list[np.ndarray] = (
            [np.concatenate(x) for x in zip(*self._labels, strict=True)]
            if self._labels
            else [np.zeros(0, np.int8), np.zeros(0), np.zeros(0), np.zeros(0, np.int8)]
        )
        w = WindowStats(
            self._end,
            cat[0],
            cat[1],
            cat[2].astype(np.int8),
            cat[3].astype(np.int64),
            lab[0],
            lab[1],
            lab[2],
            lab[3],
        )
        self._parts, self._labels = [], []
        new = self.agent.step(w)
        self._end += self.interval_ms
        if self.publish is not None:
            self.publish(new)
