"""Offline replay backtest: what the live system would have decided.

A history (transactions + labels with their label times) is replayed in
event-time order through the same :class:`~riskflow.features.FeatureEngine`,
model and policy code as the stream worker, without Kafka. Labels reach the
feature state (and online policies) only at their label time. Features are
computed once and shared by every model x policy pair, so champion and
challengers are compared on exactly the same inputs.

Outputs (``OUT_DIR``): ``decisions.parquet`` (one row per transaction x run),
``metrics.json`` (per run: detection metrics, cost and its parts, decision
rates, per-day series) and ``report.html`` (:mod:`riskflow.report`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskflow import metrics as _metrics
from riskflow.batch import LabelBatch, TxBatch
from riskflow.cpus import usable_cpus
from riskflow.memory import zeros
from riskflow.pipeline import DECISION_NAMES
from riskflow.report import RunView, render_report
from riskflow.table import Dataset

__all__ = ["ReplayRun", "ReplayResult", "replay", "write_outputs"]

_DAY_MS = 86_400_000
#: Transactions per step: large enough that per-call overheads vanish, small
#: enough that labels are handed over often and memory stays modest.
DEFAULT_CHUNK = 65_536
#: Memory kept for the feature rows of the highest-scored transactions, so
#: reason codes need no second feature pass (~650k rows of 100 features).
#: Flagged rows that did not fit are recomputed by a second pass.
DEFAULT_REASON_BUFFER_BYTES = 256 * 2**20
Progress = Callable[[int, int], None]


@dataclass
class ReplayRun:
    """Results of one model x policy over the whole replay."""

    name: str
    model: str
    policy: str
    model_version: str
    policy_version: str
    score: np.ndarray
    decision: np.ndarray
    reasons: list[str]
    reason_counts: Counter[str]
    thresholds: pd.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)
    daily: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: With rules: the policy's own decisions, the rules' hits, per-tx rule codes.
    model_decision: np.ndarray | None = None
    rule_hits: Any = None
    rule_codes: list[str] = field(default_factory=list)


@dataclass
class ReplayResult:
    """Everything a replay produced, before it is written out."""

    transactions: pd.DataFrame
    truth: np.ndarray
    runs: list[ReplayRun]
    timings_s: dict[str, float]
    feature_importance: dict[str, dict[str, float]]

    @property
    def tx_per_s(self) -> float:
        """Transactions per wall-clock second of the replay core.

        Features, models, policies and reason codes: ``timings_s["total"]``.
        The stages overlap when the feature engine and the models run side
        by side, so their own seconds can add up to more.
        """
        busy = self.timings_s.get("total", 0.0)
        return len(self.transactions) / busy if busy > 0 else float("nan")


PolicyFactory = Callable[[str, Any], Any]


def replay(
    dataset: Dataset,
    engine_factory: Callable[[], Any],
    models: Sequence[tuple[str, Any]],
    policies: Sequence[tuple[str, PolicyFactory]],
    *,
    cost_model: Any = None,
    interval_ms: int = 3_600_000,
    chunk_size: int = DEFAULT_CHUNK,
    reason_k: int = 3,
    progress: Progress | None = None,
    rules: Any = None,
    overlap: bool | None = None,
    score_threads: int | None = None,
    reason_buffer_bytes: int = DEFAULT_REASON_BUFFER_BYTES,
) -> ReplayResult:
    """Replay ``dataset`` through the feature engine, every model and every policy.

    Three steps, each the live system's own code:

    1. Features and scores: transactions in event-time order through a fresh
       engine (labels released at their label time) and every model.
    2. Policies: each model's scored stream through each policy, one interval
       at a time (:func:`riskflow.policies.backtest.run_policy`): online
       policies see only labels released by the end of each interval, as in
       the stream. Policies never change features or scores, so running them
       after scoring gives the decisions the stream would have emitted.
    3. Reason codes for every reviewed or declined transaction, from the
       feature rows step 1 kept for the highest scores (at most
       ``reason_buffer_bytes``); a flagged row scored below what was kept
       (an online policy's threshold fell that low, or a rule flagged it) is
       recomputed by a second feature pass, which is exact because the engine
       is deterministic.

    With ``overlap`` (default: more than one CPU) the models score up to
    ``score_threads`` chunks (default: one per CPU) in worker threads while
    the engine computes the next (the model kernels release the GIL): the
    feature engine still sees the chunks one after another, in order, and
    each chunk's rules and kept rows are handled in order, so every feature,
    score and decision is the same as without it.

    Parameters
    ----------
    dataset
        Canonical transactions (event-time order) and labels.
    engine_factory
        Returns a fresh :class:`riskflow.features.FeatureEngine`.
    models
        ``(name, model)`` pairs (``predict_proba``, ``reason_codes``, ``version``).
    policies
        ``(name, factory)`` pairs; ``factory(model_name, stream)`` returns a
        :class:`~riskflow.policies.ThresholdPolicy` or an
        :class:`~riskflow.policies.OnlineAgent` for that model's scored stream.
    rules
        A :class:`riskflow.policies.rules.RulesView` (rules + lists), applied
        to every run in the stream's decision order after its policy; each
        run's metrics then carry a ``rules`` table (:func:`~riskflow.policies.rules.backtest.rule_report`).
    overlap, score_threads, reason_buffer_bytes
        Speed only (see above); the results do not depend on them.
    """
    from riskflow.policies import CostModel
    from riskflow.policies.backtest import ScoredStream, run_policy

    cm = cost_model if cost_model is not None else CostModel()
    tx_df = dataset.transactions
    n = len(tx_df)
    t_start = time.perf_counter()
    tx = TxBatch.from_frame(tx_df)
    # Label work in a side thread (pandas, ~0.35 + 0.2 s on 1M transactions):
    # the join while the engine sizes its tables, the labels per transaction
    # (only the policies and the evaluation need them) beside the scoring.
    side = ThreadPoolExecutor(1, thread_name_prefix="replay-labels")
    joined = side.submit(
        lambda: LabelBatch.join(dataset.labels, tx_df) if len(dataset.labels) else None
    )
    hindsight = side.submit(lambda: (_truth(dataset), *_released(dataset)))
    side.shutdown(wait=False)
    timings = {
        "prepare": time.perf_counter() - t_start,
        "features": 0.0,
        "models": 0.0,
        "policies": 0.0,
        "reasons": 0.0,
    }
    total_steps = n
    if overlap is None:
        overlap = usable_cpus() > 1
    if score_threads is None:
        score_threads = usable_cpus()
    if score_threads < 1:
        raise ValueError(f"score_threads must be at least 1. Got {score_threads} instead.")

    scores = {name: np.empty(n, dtype=np.float64) for name, _ in models}
    rule_parts: dict[str, list[Any]] = {name: [] for name, _ in models}
    feature_index: dict[str, int] = {}
    if rules is not None:
        names = engine_factory().feature_names
        feature_index = {f: i for i, f in enumerate(names)}
        timings["rules"] = 0.0
    # Stage seconds reported by the models themselves (members, blend and
    # calibration), when their predict_proba accepts a ``timings`` dict.
    stage = {name: _accepts(model.predict_proba, "timings") for name, model in models}
    kept = {
        name: _KeptRows(max(reason_buffer_bytes // max(len(models), 1), 0)) for name, _ in models
    }

    def chunks() -> Iterator[tuple[int, int, TxBatch, LabelBatch | None]]:
        cursor = 0
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            chunk = tx.take(slice(start, stop))
            lb = None
            if labels is not None:
                # Every label known by the chunk's last transaction; the engine
                # releases each one exactly at its label time inside the chunk.
                end = int(np.searchsorted(labels.label_time, chunk.ts[-1], side="right"))
                if end > cursor:
                    lb = LabelBatch(*(a[cursor:end] for a in labels))
                    cursor = end
            yield start, stop, chunk, lb

    def predict(model: Any, name: str, X: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        # Thread-safe: the model kernels share no scratch state, and each call
        # gets its own timings dict (merged in order by the caller).
        own: dict[str, float] = {}
        t0 = time.perf_counter()
        p = model.predict_proba(X, timings=own) if stage[name] else model.predict_proba(X)
        own["models"] = time.perf_counter() - t0
        return p, own

    def finish(start: int, stop: int, chunk: TxBatch, X: np.ndarray, parts: list[Any]) -> None:
        # Chunk order: the rules' hits and the kept rows are appended in event order.
        for (name, _), part in zip(models, parts, strict=True):
            p, own = part.result() if isinstance(part, Future) else part
            scores[name][start:stop] = p
            for key, sec in own.items():
                timings[key] = timings.get(key, 0.0) + sec
            flag_anyway = None
            if rules is not None:
                # The stream's own rules stage (RulesView.evaluate), chunk by chunk.
                t0 = time.perf_counter()
                hits = rules.evaluate(chunk, X, scores[name][start:stop], feature_index)
                rule_parts[name].append(hits)
                flag_anyway = _rule_flagged(hits)
                timings["rules"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            kept[name].add(start, X, scores[name][start:stop], flag_anyway)
            timings["reasons"] += time.perf_counter() - t0

    engine = _sized(engine_factory(), tx, timings)
    t0 = time.perf_counter()
    labels = joined.result()
    timings["prepare"] += time.perf_counter() - t0
    in_flight: deque[tuple[int, int, TxBatch, np.ndarray, list[Any]]] = deque()
    with contextlib.ExitStack() as stack:
        pool = None
        if overlap:
            pool = stack.enter_context(
                ThreadPoolExecutor(score_threads, thread_name_prefix="replay-score")
            )
        # Feature matrices are written into a ring of buffers, one more than
        # the chunks still being scored: fresh memory for every chunk (80 MB
        # at 65,536 rows) made the feature pass ~8 % slower (2026-11-30).
        ring: list[np.ndarray] = []
        n_ring = score_threads + 1 if pool is not None else 1
        reuse = _accepts(engine.process, "out")
        for k, (start, stop, chunk, lb) in enumerate(chunks()):
            t0 = time.perf_counter()
            if reuse:
                if len(ring) < n_ring:
                    ring.append(zeros((min(chunk_size, n), len(engine.feature_names)), np.float32))
                X = engine.process(chunk, lb, out=ring[k % n_ring][: stop - start])
            else:
                X = engine.process(chunk, lb)
            timings["features"] += time.perf_counter() - t0
            if pool is None:
                finish(start, stop, chunk, X, [predict(m, name, X) for name, m in models])
            else:
                # The models of up to ``score_threads`` chunks score side by
                # side while the engine computes the next one; each chunk is
                # finished in order, so results do not depend on the threads.
                parts: list[Any] = [pool.submit(predict, m, name, X) for name, m in models]
                in_flight.append((start, stop, chunk, X, parts))
                while len(in_flight) > score_threads:
                    finish(*in_flight.popleft())
            if progress:
                progress(stop, total_steps)
        while in_flight:
            finish(*in_flight.popleft())

    truth, label_time, label = hindsight.result()
    runs: list[ReplayRun] = []
    ts = tx.ts
    for mname, model in models:
        stream = ScoredStream(ts, scores[mname], tx.amount, truth, label_time, label, name=mname)
        for pname, factory in policies:
            t0 = time.perf_counter()
            pol = factory(mname, stream)
            result = run_policy(stream, pol, cm, interval_ms=interval_ms, name=f"{mname} / {pname}")
            timings["policies"] += time.perf_counter() - t0
            thr = result.thresholds.rename(columns={"t": "ts"})
            decision = result.decisions.astype(np.int8)
            extra: dict[str, Any] = {}
            if rules is not None and rule_parts[mname]:
                from riskflow.policies.rules import RuleHits

                hits = RuleHits.concat(rule_parts[mname])
                final, by = hits.decide(decision)
                codes = hits.reason_codes(by)
                extra = {
                    "model_decision": decision,
                    "rule_hits": hits,
                    "rule_codes": [
                        "; ".join(c["code"] for c in codes.get(i, ())) for i in range(n)
                    ],
                }
                decision = final
            runs.append(
                ReplayRun(
                    name=f"{mname} / {pname}",
                    model=mname,
                    policy=pname,
                    model_version=str(model.version),
                    policy_version=str(getattr(pol, "version", pname)),
                    score=scores[mname],
                    decision=decision,
                    reasons=[""] * n,
                    reason_counts=Counter(),
                    thresholds=thr,
                    metrics={"policy_run": result.summary()},
                    **extra,
                )
            )

    t0 = time.perf_counter()
    flagged_by_model = {
        mname: np.flatnonzero(np.any([r.decision > 0 for r in runs if r.model == mname], axis=0))
        for mname, _ in models
    }
    width = len(engine.feature_names)
    rows_X = {mname: kept[mname].take(rows, width) for mname, rows in flagged_by_model.items()}
    missing = np.unique(
        np.concatenate(
            [np.zeros(0, np.int64)] + [flagged_by_model[m][at < 0] for m, (_, at) in rows_X.items()]
        )
    )
    timings["second_pass_rows"] = float(missing.size)
    if missing.size:
        X_missing = _feature_rows(_sized(engine_factory(), tx), chunks(), missing)
    for mname, model in models:
        rows = flagged_by_model[mname]
        if not rows.size:
            continue
        X_rows, at = rows_X[mname]
        gone = at < 0
        if gone.any():
            X_rows[gone] = X_missing[np.searchsorted(missing, rows[gone])]
        named = _reason_labels(model, X_rows, reason_k)
        texts = {t: "; ".join(t) for t in set(named)}
        for run in runs:
            if run.model != mname:
                continue
            flagged = run.decision[rows] > 0
            per_code: Counter[tuple[str, ...]] = Counter()
            for row, t in zip(rows[flagged].tolist(), compress(named, flagged), strict=True):
                run.reasons[row] = texts[t]
                per_code[t] += 1
            for t, count in per_code.items():
                for code in t:
                    run.reason_counts[code] += count
    timings["reasons"] += time.perf_counter() - t0
    if progress:
        progress(total_steps, total_steps)
    timings["total"] = time.perf_counter() - t_start
    t0 = time.perf_counter()
    importance = {}
    for mname, model in models:
        fi = getattr(model, "feature_importance", None)
        if callable(fi):
            importance[mname] = {str(k): float(v) for k, v in fi().items()}
    for run in runs:
        evaluate_run(run, tx_df, truth, cm)
        if run.rule_hits is not None:
            from riskflow.policies.rules.backtest import rule_report

            run.metrics["rules"] = rule_report(
                run.rule_hits,
                run.model_decision,
                truth,
                tx.amount,
                tx.ts,
                cm,
                version=getattr(rules, "version", None),
            )
    timings["evaluate"] = time.perf_counter() - t0
    return ReplayResult(tx_df, truth, runs, timings, importance)


def _sized(engine: Any, tx: TxBatch, timings: dict[str, float] | None = None) -> Any:
    """``engine`` with its tables sized for all of ``tx`` up front (when it can be).

    The replay bench's feature pass took 4.2-5.5 s with tables growing as
    entities arrived and 1.9-2.2 s sized ahead, reserve included (same
    process, 1.02 M transactions, 2026-11-30). ``timings``: where to add
    the seconds it took, as feature time.
    """
    reserve = getattr(engine, "reserve", None)
    if callable(reserve):
        t0 = time.perf_counter()
        reserve(tx)
        if timings is not None:
            timings["features"] += time.perf_counter() - t0
    return engine


def _accepts(method: Any, keyword: str) -> bool:
    """Whether ``method`` takes ``keyword`` (the ensemble's stage clock and threads)."""
    try:
        return keyword in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _reason_labels(model: Any, X: np.ndarray, k: int) -> list[tuple[str, ...]]:
    """Per row of ``X``, its reason codes' labels (description, else feature name), strongest first.

    Every core explains: the engine and the scoring threads are done by now.
    A model with ``top_reasons`` (the :class:`~riskflow.models.Ensemble`)
    gives arrays, and each distinct combination of features is named once
    (74,566 rows of dicts cost ~0.6 s of Python before, 2026-11-30); other
    models go through their ``reason_codes``.
    """
    threads = usable_cpus()
    top = getattr(model, "top_reasons", None)
    if callable(top):
        feature = top(X, None, k, num_threads=threads).feature
        names = [
            str(d or f) for d, f in zip(model.descriptions_, model.feature_names_, strict=True)
        ]
        combos, inverse = np.unique(feature, axis=0, return_inverse=True)
        named = [tuple(names[j] for j in c if j >= 0) for c in combos.tolist()]
        return [named[i] for i in inverse.ravel().tolist()]
    kw = {"num_threads": threads} if _accepts(model.reason_codes, "num_threads") else {}
    codes = model.reason_codes(X, None, k=k, **kw)
    return [tuple(str(c.get("description") or c.get("feature")) for c in rc) for rc in codes]


def _rule_flagged(hits: Any) -> np.ndarray | None:
    """Rows the rules flag whatever the model says (their reason codes are needed too)."""
    decide = getattr(hits, "decide", None)
    if decide is None:
        return None
    final, _ = decide(np.zeros(len(hits), dtype=np.int8))
    return np.asarray(final) > 0


class _KeptRows:
    """Feature rows of a model's highest-scored transactions, for reason codes.

    Keeps every row scored at or above :attr:`floor` (and rows flagged
    anyway), in at most ``max_bytes``: when full, the floor rises to the score
    at half the capacity and the rows below it are dropped. The floor only
    rises, so every row scored at or above the final floor is kept; a flagged
    row below it is recomputed by a second pass (:func:`_feature_rows`).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.floor = -np.inf
        # One buffer, filled in event order and compacted in place when full:
        # appending copies and joining them cost 1.1 s of the replay bench's
        # 12 s (2026-11-30), all on the engine's thread.
        self._X: np.ndarray | None = None
        self._idx = np.zeros(0, np.int64)
        self._score = np.zeros(0, np.float64)
        self._m = 0

    def add(
        self, start: int, X: np.ndarray, score: np.ndarray, also: np.ndarray | None = None
    ) -> None:
        sel = score >= self.floor
        if also is not None:
            sel |= also
        rows = np.flatnonzero(sel)
        if not rows.size:
            return
        if self._X is None:
            cap = self.max_bytes // max(X.shape[1] * X.itemsize, 1)
            self._X = zeros((cap, X.shape[1]), X.dtype)
            self._idx = np.empty(cap, np.int64)
            self._score = np.empty(cap, np.float64)
        cap = self._X.shape[0]
        if self._m + rows.size > cap:
            self._raise_floor(score[rows], cap // 2)
            rows = rows[score[rows] >= self.floor]
        m, k = self._m, rows.size
        # Gathered straight into the buffer ("clip": the rows are valid, and
        # numpy buffers the default mode's output through a temporary).
        np.take(X, rows, axis=0, out=self._X[m : m + k], mode="clip")
        self._idx[m : m + k] = rows + start
        self._score[m : m + k] = score[rows]
        self._m = m + k

    def _raise_floor(self, incoming: np.ndarray, keep: int) -> None:
        """Floor at the ``keep``-th highest score of the kept and ``incoming`` rows; drop the rest."""
        score = np.concatenate([self._score[: self._m], incoming])
        floor = np.inf
        if 0 < keep < score.size:
            floor = float(np.partition(score, score.size - keep)[score.size - keep])
            if np.count_nonzero(score >= floor) > 2 * keep:  # ties at the floor: drop them
                floor = float(np.nextafter(floor, np.inf))
        self.floor = max(self.floor, floor)
        stay = np.flatnonzero(self._score[: self._m] >= self.floor)
        assert self._X is not None
        _compact(self._X, stay)
        self._idx[: stay.size] = self._idx[stay]
        self._score[: stay.size] = self._score[stay]
        self._m = stay.size

    def take(self, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows for sorted ``rows`` and where each was kept (-1: not kept, row left 0).

        The last call: when every row was kept, they are gathered to the
        buffer's head in place and returned as a view of it (a fresh 93 MB
        for the bench's flagged rows cost ~0.45 s, 2026-11-30).
        """
        at = np.full(rows.size, -1, np.int64)
        if self._X is None or not self._m or not rows.size:
            return np.zeros((rows.size, width), np.float32), at
        idx = self._idx[: self._m]
        pos = np.minimum(np.searchsorted(idx, rows), idx.size - 1)
        found = idx[pos] == rows
        at[found] = pos[found]
        if found.all():  # pos rises with rows, so pos[i] >= i
            _compact(self._X, pos)
            out, self._X, self._m = self._X[: rows.size], None, 0
            return out, at
        out = np.zeros((rows.size, width), np.float32)
        out[found] = self._X[pos[found]]
        return out, at


def _compact(X: np.ndarray, src: np.ndarray) -> None:
    """``X[:src.size] = X[src]`` in place, for rising ``src`` with ``src[i] >= i``.

    A block at a time: a block only reads rows at or after those it writes,
    and none that a later block still needs.
    """
    for lo in range(0, src.size, _COMPACT_ROWS):
        block = src[lo : lo + _COMPACT_ROWS]
        X[lo : lo + block.size] = X[block]


#: Rows moved per step when the kept rows are compacted (4,096 x 312 float32: 5 MB).
_COMPACT_ROWS = 4096


def _feature_rows(
    engine: Any,
    chunks: Iterable[tuple[int, int, TxBatch, LabelBatch | None]],
    rows: np.ndarray,
) -> np.ndarray:
    """Feature rows ``rows`` (sorted) from a second pass of a fresh engine over the chunks."""
    out: list[np.ndarray] = []
    for start, stop, chunk, lb in chunks:
        X = engine.process(chunk, lb)
        lo, hi = np.searchsorted(rows, [start, stop])
        if hi > lo:
            out.append(X[rows[lo:hi] - start])
        if hi >= rows.size:
            break
    return np.concatenate(out)


def _released(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per transaction: when its (first) label was released (inf: never) and its value (-1: none)."""
    lab = dataset.labels.drop_duplicates("tx_id", keep="first")
    pos = pd.Index(lab["tx_id"]).get_indexer(dataset.transactions["tx_id"])
    found = pos >= 0
    lt = np.full(pos.size, np.inf)
    y = np.full(pos.size, -1, np.int8)
    lt[found] = lab["label_time"].to_numpy(np.float64, na_value=np.inf)[pos[found]]
    y[found] = lab["label"].to_numpy(np.float64, na_value=-1).astype(np.int8)[pos[found]]
    return lt, y


def _truth(dataset: Dataset) -> np.ndarray:
    """Hindsight truth for evaluation: every fraud label in the data, whenever it came."""
    fraud = set(dataset.labels.loc[dataset.labels["label"] == 1, "tx_id"])
    return dataset.transactions["tx_id"].isin(fraud).to_numpy(dtype=np.int8)


def evaluate_run(run: ReplayRun, tx: pd.DataFrame, truth: np.ndarray, cost_model: Any) -> None:
    """Fill ``run.metrics`` and ``run.daily``: detection, cost and its parts, rates, per day."""
    from riskflow.policies import cost_breakdown

    ts = tx["event_time"].to_numpy(np.int64)
    amount = tx["amount"].to_numpy(np.float64)
    m = _metrics.evaluate(truth, run.score, ts)
    m["cost"] = cost_breakdown(run.decision, amount, truth, ts, model=cost_model)
    n = max(len(run.decision), 1)
    m["decline_rate"] = float(np.sum(run.decision == 2) / n)
    m["review_rate"] = float(np.sum(run.decision == 1) / n)
    m["decisions"] = {name: int(np.sum(run.decision == i)) for i, name in enumerate(DECISION_NAMES)}
    m["guardrail_violations"] = run.metrics.get("policy_run", {}).get("guardrail_violations", 0)
    day = (ts // _DAY_MS) * _DAY_MS
    rows = []
    for d in np.unique(day):
        sel = day == d
        c = cost_breakdown(run.decision[sel], amount[sel], truth[sel], ts[sel], model=cost_model)
        rows.append(
            {
                "day": int(d),
                "n": int(sel.sum()),
                "cost": float(c["total"]),
                "decline_rate": float(np.mean(run.decision[sel] == 2)),
                "review_rate": float(np.mean(run.decision[sel] == 1)),
                "fraud": int(truth[sel].sum()),
            }
        )
    run.daily = pd.DataFrame(rows)
    m["daily"] = run.daily.to_dict("list")
    m["thresholds"] = (
        run.thresholds[["ts", "t_review", "t_decline"]].to_dict("list")
        if len(run.thresholds)
        else {}
    )
    run.metrics = {**m, "policy_run": run.metrics.get("policy_run", {})}


def write_outputs(
    result: ReplayResult,
    out_dir: Path,
    *,
    summary: dict[str, Any] | None = None,
    images: Sequence[tuple[str, bytes]] = (),
) -> dict[str, Path]:
    """Write decisions.parquet, metrics.json and report.html into ``out_dir``.

    Seconds spent on each go into ``result.timings_s`` (``write_decisions``,
    ``write_metrics``, ``report``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tx = result.transactions
    frames = []
    for run in result.runs:
        frames.append(
            pd.DataFrame(
                {
                    "tx_id": tx["tx_id"].to_numpy(),
                    "event_time": tx["event_time"].to_numpy(),
                    "amount": tx["amount"].to_numpy(),
                    "label": result.truth,
                    "model": run.model,
                    "policy": run.policy,
                    "model_version": run.model_version,
                    "policy_version": run.policy_version,
                    "score": run.score,
                    "decision": np.asarray(DECISION_NAMES, dtype=object)[run.decision],
                    "reasons": run.reasons,
                    **({"rules": run.rule_codes} if run.rule_codes else {}),
                }
            )
        )
    paths = {
        "decisions": out_dir / "decisions.parquet",
        "metrics": out_dir / "metrics.json",
        "report": out_dir / "report.html",
    }
    pd.concat(frames, ignore_index=True).to_parquet(paths["decisions"], index=False)
    result.timings_s["write_decisions"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    doc = {
        "summary": summary or {},
        "timings_s": result.timings_s,
        "tx_per_s": result.tx_per_s,
        "runs": {
            run.name: {
                "model": run.model,
                "policy": run.policy,
                "model_version": run.model_version,
                "policy_version": run.policy_version,
                **run.metrics,
            }
            for run in result.runs
        },
    }
    paths["metrics"].write_text(json.dumps(_clean(doc), indent=2))
    result.timings_s["write_metrics"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    views = [
        RunView(
            r.name,
            r.model,
            r.policy,
            r.metrics,
            r.score,
            result.truth,
            r.daily,
            r.thresholds,
            dict(r.reason_counts.most_common(15)),
            r.metrics.get("rules"),
        )
        for r in result.runs
    ]
    paths["report"].write_text(
        render_report(
            views, summary=summary, feature_importance=result.feature_importance, images=images
        )
    )
    result.timings_s["report"] = time.perf_counter() - t0
    return paths


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        f = float(obj)
        return f if np.isfinite(f) else None
    return obj
