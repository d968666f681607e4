"""The backtest report: one self-contained HTML file a risk lead reads.

No scripts, no external assets: charts are inline SVG (:mod:`riskflow._svg`),
images (e.g. policy plots) are embedded as data URIs. Input is plain data
(:class:`RunView` per model x policy), so the report renders the same whether
it comes from ``riskflow replay`` or a notebook.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from riskflow._svg import bar_chart, histogram, line_chart

__all__ = ["RunView", "render_report"]

_DAY_MS = 86_400_000


@dataclass(frozen=True)
class RunView:
    """What the report shows of one model x policy run.

    ``daily`` has one row per UTC day with columns ``day`` (epoch ms of
    midnight), ``cost``, ``decline_rate``, ``review_rate``, ``n``; and
    ``thresholds`` has ``ts`` (epoch ms), ``t_review``, ``t_decline``.
    """

    name: str
    model: str
    policy: str
    metrics: Mapping[str, Any]
    scores: np.ndarray
    labels: np.ndarray
    daily: pd.DataFrame
    thresholds: pd.DataFrame
    reason_counts: Mapping[str, int] = field(default_factory=dict)
    #: Per-rule backtest figures (riskflow.policies.rules.backtest.rule_report), if rules ran.
    rules: Mapping[str, Any] | None = None


def _day_fmt(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%m-%d")


def _num(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if pct:
        return f"{100 * float(v):.2f}%"
    if isinstance(v, int) or (isinstance(v, float) and abs(v) >= 1000):
        return f"{float(v):,.0f}"
    return f"{float(v):.4f}"


def _table(runs: Sequence[RunView]) -> str:
    fprs = list(next(iter(runs)).metrics.get("recall_at_fpr", {}).keys()) if runs else []
    # money-valued parts only (the cost dict also carries counts)
    cost_parts = sorted(
        {k for r in runs for k in r.metrics.get("cost", {}) if k.endswith(("_loss", "_cost"))}
    )
    head = (
        ["run", "ROC AUC", "avg precision"]
        + [f"recall @ FPR {f}" for f in fprs]
        + ["precision top-k / day", "total cost"]
        + [p.replace("_", " ") for p in cost_parts]
        + ["decline rate", "review rate"]
    )
    best = min((r.metrics.get("cost", {}).get("total", np.inf) for r in runs), default=np.inf)
    rows = []
    for r in runs:
        m = r.metrics
        cost = m.get("cost", {})
        cells = (
            [html.escape(r.name), _num(m.get("roc_auc")), _num(m.get("average_precision"))]
            + [_num(m.get("recall_at_fpr", {}).get(f)) for f in fprs]
            + [_num(m.get("precision_top_k_per_day")), _num(cost.get("total"))]
            + [_num(cost.get(p)) for p in cost_parts]
            + [_num(m.get("decline_rate"), pct=True), _num(m.get("review_rate"), pct=True)]
        )
        cls = ' class="best"' if cost.get("total") == best and len(runs) > 1 else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _rules_table(r: RunView) -> str:
    """One row per rule: hits, precision, recall contribution, cost impact, model overlap."""
    rep = r.rules or {}
    head = ["rule", "mode", "action", "priority", "hits", "precision", "recall",
            "recall contribution", "cost impact", "overlap with model", "decided"]  # fmt: skip
    rows = []
    for x in rep.get("rules", []):
        cells = [
            html.escape(str(x["id"])), html.escape(x["mode"]), html.escape(x["action"]),
            str(x["priority"]), f"{x['hits']:,}", _num(x["precision"], pct=True),
            _num(x["recall"], pct=True), _num(x["recall_contribution"], pct=True),
            _num(x["cost_impact"]), _num(x["overlap_model"], pct=True), f"{x['decided']:,}",
        ]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    lists = rep.get("lists", {})
    return (
        f"<h3>{html.escape(r.name)} (rules {html.escape(str(rep.get('version')))})</h3>"
        f"<p>cost: model only {_num(rep.get('cost_model_only'))}, with lists "
        f"{_num(rep.get('cost_with_lists'))}, with rules {_num(rep.get('cost_with_rules'))}; "
        f"allow-list hits {lists.get('allow_hits', 0):,}, deny-list hits "
        f"{lists.get('deny_hits', 0):,}. Cost impact and recall contribution are each rule's "
        "alone on top of the model and lists (shadow rules priced as if active).</p>"
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _by_model(runs: Sequence[RunView]) -> dict[str, RunView]:
    out: dict[str, RunView] = {}
    for r in runs:
        out.setdefault(r.model, r)
    return out


def render_report(
    runs: Sequence[RunView],
    *,
    title: str = "riskflow replay backtest",
    summary: Mapping[str, Any] | None = None,
    feature_importance: Mapping[str, Mapping[str, float]] | None = None,
    images: Sequence[tuple[str, bytes]] = (),
) -> str:
    """The report as one HTML string.

    Parameters
    ----------
    runs
        One view per model x policy, in the order the comparison table lists them.
    summary
        Facts about the replayed data shown at the top (rows, period, labels, ...).
    feature_importance
        Model name -> feature -> importance (top 20 shown).
    images
        (caption, PNG bytes) pairs embedded at the end, e.g. policy plots.
    """
    models = _by_model(runs)
    sections: list[str] = []
    sections.append("<h2>Comparison</h2>" + _table(runs))
    if any(r.rules for r in runs):
        sections.append("<h2>Rules</h2>" + "".join(_rules_table(r) for r in runs if r.rules))

    pr, roc = {}, {}
    for name, r in models.items():
        y = np.asarray(r.labels, dtype=int)
        if 0 < y.sum() < y.size:
            p, rc, _ = precision_recall_curve(y, r.scores)
            pr[name] = (rc, p)
            fpr, tpr, _ = roc_curve(y, r.scores)
            roc[name] = (fpr, tpr)
    if pr:
        sections.append(
            "<h2>Detection</h2><div class='row'>"
            + line_chart(
                pr,
                title="Precision-recall",
                xlabel="recall",
                ylabel="precision",
                xlim=(0, 1),
                ylim=(0, 1),
            )
            + line_chart(
                roc,
                title="ROC (FPR up to 5%)",
                xlabel="false-positive rate",
                ylabel="true-positive rate",
                xlim=(0, 0.05),
                ylim=(0, 1),
            )
            + "</div>"
        )
    dists = []
    for name, r in models.items():
        y = np.asarray(r.labels, dtype=bool)
        dists.append(
            histogram(
                {"legitimate": r.scores[~y], "fraud": r.scores[y]},
                log_y=True,
                title=f"Score distribution by label: {name}",
                xlabel="calibrated score",
            )
        )
    if dists:
        sections.append("<h2>Scores</h2><div class='row'>" + "".join(dists) + "</div>")

    def daily(col: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {
            r.name: (r.daily["day"].to_numpy(float), r.daily[col].to_numpy(float))
            for r in runs
            if col in r.daily
        }

    sections.append(
        "<h2>Cost and decisions over time</h2><div class='row'>"
        + line_chart(
            daily("cost"), title="Cost per day", xlabel="day", ylabel="cost", xfmt=_day_fmt
        )
        + line_chart(
            daily("decline_rate"),
            title="Decline rate per day",
            xlabel="day",
            ylabel="share declined",
            xfmt=_day_fmt,
        )
        + line_chart(
            daily("review_rate"),
            title="Review rate per day",
            xlabel="day",
            ylabel="share reviewed",
            xfmt=_day_fmt,
        )
        + "</div>"
    )
    th = {}
    for r in runs:
        t = r.thresholds
        if len(t):
            th[f"{r.name}: review"] = (t["ts"].to_numpy(float), t["t_review"].to_numpy(float))
            th[f"{r.name}: decline"] = (t["ts"].to_numpy(float), t["t_decline"].to_numpy(float))
    if th:
        sections.append(
            "<h2>Thresholds over time</h2>"
            + line_chart(
                th,
                title="Thresholds",
                xlabel="day",
                ylabel="score threshold",
                ylim=(0, 1),
                xfmt=_day_fmt,
            )
        )
    reasons = [
        bar_chart(
            list(r.reason_counts)[:15],
            [r.reason_counts[k] for k in list(r.reason_counts)[:15]],
            title=f"Top reason codes: {r.name}",
            xlabel="transactions reviewed or declined",
        )
        for r in runs
        if r.reason_counts
    ]
    if reasons:
        sections.append("<h2>Reason codes</h2><div class='row'>" + "".join(reasons) + "</div>")
    if feature_importance:
        charts = []
        for name, imp in feature_importance.items():
            top = sorted(imp.items(), key=lambda kv: -kv[1])[:20]
            charts.append(
                bar_chart(
                    [k for k, _ in top],
                    [v for _, v in top],
                    title=f"Feature importance: {name}",
                    xlabel="gain",
                )
            )
        sections.append("<h2>Feature importance</h2><div class='row'>" + "".join(charts) + "</div>")
    for caption, png in images:
        data = base64.b64encode(png).decode()
        sections.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    facts = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
        for k, v in (summary or {}).items()
    )
    generated = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1800px; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 2px 16px; font-size: 13px; }}
dt {{ color: #666; }} .row {{ display: flex; flex-wrap: wrap; gap: 12px; }}
table {{ border-collapse: collapse; font-size: 12px; }} th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: right; }}
th {{ background: #f5f5f5; }} td:first-child {{ text-align: left; }} tr.best td {{ background: #eaf6ea; }}
figure img {{ max-width: 100%; }} .muted {{ color: #777; font-size: 12px; }}
</style></head><body>
<h1>{html.escape(title)}</h1><p class="muted">Generated {generated} by riskflow. Best total cost highlighted.</p>
<dl>{facts}</dl>
{"".join(sections)}
</body></html>
"""
