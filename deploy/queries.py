"""Every PromQL query the deploy files run, and the series and labels each one needs.

Sources: the Grafana dashboards in ``deploy/grafana/dashboards`` (each panel
target's ``expr`` and each query variable) and the Prometheus alert rules in
``deploy/prometheus/alerts.yml``. Each query is parsed with ``promql-parser``
(the Rust PromQL parser's Python binding), after Grafana's interval macros are
replaced by a duration, so a query that Prometheus would reject fails here.

The tests use it to check the queries against a running worker's ``/metrics``
(``tests/integration/test_deploy_metrics.py``); by hand::

    .venv/bin/python deploy/queries.py          # metric -> labels each query needs

>>> needs('sum by (topic) (rate(riskflow_consumed_records_total{job="riskflow"}[5m]))')
[Need(metric='riskflow_consumed_records_total', labels=('topic',))]
>>> needs('histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))')
[Need(metric='h_bucket', labels=('le',))]
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import promql_parser
import yaml

DEPLOY = Path(__file__).resolve().parent
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

#: Labels Prometheus attaches to every scraped series (target labels), so no exporter has them.
TARGET_LABELS = frozenset({"job", "instance"})
#: Series Prometheus makes itself for every scrape target.
SYNTHETIC_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
#: Grafana macros that are not PromQL; any duration stands in for them when parsing.
_MACROS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)\s*$")


class Need(NamedTuple):
    """One metric a query selects and the labels it relies on (matchers and groupings)."""

    metric: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    """A PromQL expression and where it comes from."""

    source: str
    expr: str

    def needs(self) -> list[Need]:
        try:
            return needs(self.expr)
        except ValueError as exc:
            raise ValueError(f"{self.source}: {exc}") from exc


def _promql(expr: str) -> str:
    for macro, value in _MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def needs(expr: str) -> list[Need]:
    """The metrics ``expr`` selects, each with the label names it matches or groups by.

    A label in a ``by (...)`` clause is needed by every metric inside that
    aggregation; ``on``/``ignoring`` labels and target labels are not counted
    (Prometheus adds ``job`` and ``instance`` itself).
    """
    try:
        ast = promql_parser.parse(_promql(expr))
    except Exception as exc:  # the binding raises a bare ValueError/RuntimeError
        raise ValueError(f"not valid PromQL: {expr!r}: {exc}") from exc
    return _walk(ast, ())


def _walk(node: Any, grouping: tuple[str, ...]) -> list[Need]:
    kind = type(node).__name__
    if kind == "VectorSelector":
        names = [m.name for m in node.matchers.matchers if m.name != "__name__"]
        labels = tuple(sorted((set(names) | set(grouping)) - TARGET_LABELS))
        return [Need(node.name, labels)]
    if kind == "AggregateExpr":
        mod = node.modifier
        inner = grouping
        if mod is not None and str(mod.type).endswith("By"):
            inner = tuple(sorted(set(grouping) | set(mod.labels)))
        out = _walk(node.expr, inner)
        if node.param is not None:
            out += _walk(node.param, grouping)
        return out
    children: list[Any] = []
    if kind == "BinaryExpr":
        children = [node.lhs, node.rhs]
    elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        children = [node.expr]
    elif kind == "MatrixSelector":
        children = [node.vector_selector]
    elif kind == "Call":
        children = list(node.args)
    return [n for child in children for n in _walk(child, grouping)]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def dashboard_queries(path: Path) -> list[Query]:
    """Panel targets and query variables of one Grafana dashboard JSON."""
    board = json.loads(path.read_text())
    out = []
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets") or []:
            if "expr" not in target:
                raise ValueError(
                    f"{path.name}: panel {panel.get('title')!r} has a target without expr"
                )
            out.append(
                Query(
                    f"{path.name} panel {panel.get('title')!r} {target.get('refId')}",
                    target["expr"],
                )
            )
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"] if isinstance(var["query"], str) else var["query"].get("query", "")
        m = _LABEL_VALUES.match(query)
        if m and m["selector"]:
            out.append(Query(f"{path.name} variable ${var['name']}", m["selector"]))
        elif not m:
            out.append(Query(f"{path.name} variable ${var['name']}", query))
    return out


def alert_queries(path: Path = ALERTS) -> list[Query]:
    """The ``expr`` of every alerting and recording rule of a Prometheus rules file."""
    doc = yaml.safe_load(path.read_text())
    return [
        Query(f"{path.name} {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in doc["groups"]
        for rule in group["rules"]
    ]


def all_queries() -> list[Query]:
    """Every query of the deploy files."""
    out = alert_queries(ALERTS)
    for board in sorted(DASHBOARDS.glob("*.json")):
        out += dashboard_queries(board)
    return out


def main() -> int:
    needed: dict[str, set[str]] = {}
    for query in all_queries():
        for need in query.needs():
            needed.setdefault(need.metric, set()).update(need.labels)
    for metric in sorted(needed):
        print(f"{metric:45} {' '.join(sorted(needed[metric]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
