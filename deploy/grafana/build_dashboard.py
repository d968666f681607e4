"""Build the riskflow Grafana dashboard (dashboards/riskflow.json) with Grafana's foundation SDK.

The JSON is generated, never edited by hand: the SDK's typed builders
(``grafana-foundation-sdk`` from PyPI, the dev extra) produce the panels,
targets, variables and grid positions. Regenerate after a change::

    .venv/bin/python deploy/grafana/build_dashboard.py          # rewrite the JSON
    .venv/bin/python deploy/grafana/build_dashboard.py --check  # exit 1 if it is stale

Every query selects ``job="$job"`` and ``instance=~"$instance"``; the metric
names are the worker's (``streams/metrics.py``), which a test checks against
a running worker's ``/metrics``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).with_name("dashboards") / "riskflow.json"
UID = "riskflow-worker"
#: The datasource is chosen by the ${datasource} variable; compose provisions uid riskflow-prometheus.
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'job="$job", instance=~"$instance"'
RATE = "$__rate_interval"


def q(expr: str, legend: str = "", ref: str = "A", fmt: PromQueryFormat | None = None) -> Any:
    target = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref)
    if fmt is not None:
        target = target.format(fmt)
    return target.datasource(DS)


def ts(
    title: str,
    unit: str,
    *targets: Any,
    w: int = 8,
    h: int = 8,
    desc: str = "",
    stack: bool = False,
) -> Any:
    p = (
        timeseries.Panel()
        .title(title)
        .description(desc)
        .datasource(DS)
        .unit(unit)
        .span(w)
        .height(h)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    if stack:
        p = p.stacking(StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(30)
    for t in targets:
        p = p.with_target(t)
    return p


def st(title: str, unit: str, target: Any, w: int = 4, desc: str = "") -> Any:
    return (
        stat.Panel()
        .title(title)
        .description(desc)
        .datasource(DS)
        .unit(unit)
        .span(w)
        .height(4)
        .graph_mode(BigValueGraphMode.AREA)
        .color_mode(BigValueColorMode.VALUE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(target)
    )


def quantiles(metric: str, by: str = "") -> list[Any]:
    group = f"le{', ' + by if by else ''}"
    extra = f" {{{{{by}}}}}" if by else ""
    return [
        q(
            f"histogram_quantile({p}, sum by ({group}) (rate({metric}_bucket{{{SEL}}}[{RATE}])))",
            f"p{int(p * 100)}{extra}",
            ref,
        )
        for p, ref in ((0.5, "A"), (0.99, "B"))
    ]


def build() -> dict[str, Any]:
    """The dashboard as the JSON object Grafana provisions."""
    d = (
        dash.Dashboard("riskflow")
        .uid(UID)
        .description(
            "riskflow stream workers: throughput, decisions, latency, lag, state. See docs/runbook.md."
        )
        .tags(["riskflow", "fraud", "kafka"])
        .time("now-1h", "now")
        .refresh("10s")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .readonly()
        .with_variable(
            dash.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .current(VariableOption(text="Prometheus", value="riskflow-prometheus"))
        )
        .with_variable(
            dash.QueryVariable("job")
            .label("Job")
            .datasource(DS)
            .query("label_values(riskflow_batches_total, job)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .current(VariableOption(text="riskflow", value="riskflow"))
        )
        .with_variable(
            dash.QueryVariable("instance")
            .label("Worker")
            .datasource(DS)
            .query('label_values(riskflow_batches_total{job="$job"}, instance)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )

    d = d.with_row(dash.Row("Overview"))
    d = d.with_panel(
        st("Workers up", "short", q(f"sum(up{{{SEL}}})"), desc="Workers Prometheus can scrape.")
    )
    d = d.with_panel(
        st("Decisions / s", "reqps", q(f"sum(rate(riskflow_decisions_total{{{SEL}}}[{RATE}]))"))
    )
    d = d.with_panel(
        st(
            "Decline rate",
            "percentunit",
            q(
                f'sum(rate(riskflow_decisions_total{{{SEL}, decision="decline"}}[{RATE}]))'
                f" / sum(rate(riskflow_decisions_total{{{SEL}}}[{RATE}]))"
            ),
            desc="Alert RiskflowDeclineRateHigh above 5%.",
        )
    )
    d = d.with_panel(
        st(
            "P99 latency (consume -> decision)",
            "ms",
            q(
                f"histogram_quantile(0.99, sum by (le) (rate(riskflow_latency_from_consume_ms_bucket{{{SEL}}}[{RATE}])))"
            ),
            desc="Target 50 ms (alert RiskflowLatencyP99High).",
        )
    )
    d = d.with_panel(
        st(
            "Consumer lag",
            "short",
            q(f"sum(max by (topic, partition) (riskflow_consumer_lag{{{SEL}}}))"),
            desc="Records not yet processed, all topics (max over workers per partition).",
        )
    )
    d = d.with_panel(
        st(
            "Fallback decisions / s",
            "reqps",
            q(f"sum(rate(riskflow_fallback_decisions_total{{{SEL}}}[{RATE}]))"),
            desc="Non-zero means scoring fails (alert RiskflowFallbackDecisions).",
        )
    )

    d = d.with_row(dash.Row("Throughput and decisions"))
    d = d.with_panel(
        ts(
            "Records consumed / s",
            "reqps",
            q(
                f"sum by (topic) (rate(riskflow_consumed_records_total{{{SEL}}}[{RATE}]))",
                "{{topic}}",
            ),
        )
    )
    d = d.with_panel(
        ts(
            "Decisions / s by decision",
            "reqps",
            q(
                f"sum by (decision) (rate(riskflow_decisions_total{{{SEL}}}[{RATE}]))",
                "{{decision}}",
            ),
            stack=True,
        )
    )
    d = d.with_panel(
        ts(
            "Dead letters and fallbacks / s",
            "reqps",
            q(
                f"sum by (topic) (rate(riskflow_dead_letters_total{{{SEL}}}[{RATE}]))",
                "dead letters {{topic}}",
            ),
            q(
                f"sum(rate(riskflow_fallback_decisions_total{{{SEL}}}[{RATE}]))",
                "fallback decisions",
                "B",
            ),
        )
    )
    d = d.with_panel(
        heatmap.Panel()
        .title("Score distribution")
        .datasource(DS)
        .span(12)
        .height(8)
        .with_target(
            q(
                f"sum by (le) (increase(riskflow_score_bucket{{{SEL}}}[{RATE}]))",
                "{{le}}",
                fmt=PromQueryFormat.HEATMAP,
            )
        )
    )
    d = d.with_panel(
        ts(
            "Decisions / s by worker",
            "reqps",
            q(
                f"sum by (instance) (rate(riskflow_decisions_total{{{SEL}}}[{RATE}]))",
                "{{instance}}",
            ),
            w=12,
            desc="Uneven when partitions are: a worker scores only the partitions it owns.",
        )
    )

    d = d.with_row(dash.Row("Latency"))
    d = d.with_panel(
        ts(
            "Latency from record timestamp",
            "ms",
            *quantiles("riskflow_latency_from_record_ms"),
            desc="Decision produced minus the input record's Kafka timestamp: includes lag.",
        )
    )
    d = d.with_panel(
        ts(
            "Latency from consume",
            "ms",
            *quantiles("riskflow_latency_from_consume_ms"),
            desc="Decision produced minus consume time: the worker's own share.",
        )
    )
    d = d.with_panel(
        ts(
            "Stage time p99 per batch",
            "ms",
            q(
                f"histogram_quantile(0.99, sum by (le, stage) (rate(riskflow_stage_ms_bucket{{{SEL}}}[{RATE}])))",
                "{{stage}}",
            ),
        )
    )
    d = d.with_panel(
        ts(
            "Mean batch size",
            "short",
            q(
                f"sum(rate(riskflow_batch_size_sum{{{SEL}}}[{RATE}])) / sum(rate(riskflow_batch_size_count{{{SEL}}}[{RATE}]))",
                "transactions / batch",
            ),
            w=12,
        )
    )
    d = d.with_panel(
        ts(
            "Batches / s by worker",
            "reqps",
            q(f"sum by (instance) (rate(riskflow_batches_total{{{SEL}}}[{RATE}]))", "{{instance}}"),
            w=12,
        )
    )

    d = d.with_row(dash.Row("Kafka and state"))
    d = d.with_panel(
        ts(
            "Consumer lag by partition",
            "short",
            q(
                f"max by (topic, partition) (riskflow_consumer_lag{{{SEL}}})",
                "{{topic}}/{{partition}}",
            ),
            w=12,
            desc="End offset minus processed position; each worker reports every partition its replica follows.",
        )
    )
    d = d.with_panel(
        ts(
            "State: snapshots, replays, skipped redeliveries",
            "short",
            q(
                f"sum by (instance) (increase(riskflow_checkpoints_total{{{SEL}}}[{RATE}]))",
                "snapshots {{instance}}",
            ),
            q(
                f"sum by (instance) (increase(riskflow_gap_replayed_records_total{{{SEL}}}[{RATE}]))",
                "replayed {{instance}}",
                "B",
            ),
            q(
                f"sum by (instance) (increase(riskflow_redelivered_skipped_total{{{SEL}}}[{RATE}]))",
                "skipped {{instance}}",
                "C",
            ),
            w=12,
        )
    )
    d = d.with_panel(
        ts(
            "Policy updates applied",
            "short",
            q(
                f"sum by (instance) (increase(riskflow_policy_updates_total{{{SEL}}}[{RATE}]))",
                "{{instance}}",
            ),
            w=12,
        )
    )
    d = d.with_panel(
        ts(
            "Labels waiting for their transaction, and dropped",
            "short",
            q(
                f"max by (instance) (riskflow_labels_waiting{{{SEL}}})",
                "waiting {{instance}}",
            ),
            q(
                f"max by (instance) (riskflow_labels_unmatched{{{SEL}}})",
                "dropped {{instance}}",
                "B",
            ),
            w=12,
            desc=(
                "Waiting: labels that arrived before their transaction reached this worker "
                "(bounded by stream.waiting_labels, kept in the snapshot). Dropped: the oldest "
                "waiting labels, pushed out at that bound, whose transaction never came. A "
                "waiting count stuck at the bound with dropped rising means labels whose tx_id "
                "matches no transaction (another stream's labels, or ids mapped differently)."
            ),
        )
    )

    d = d.with_panel(
        ts(
            "Event-loop stalls and state captures (P99 and max bucket)",
            "ms",
            q(
                f"histogram_quantile(0.99, sum by (le, instance) (rate(riskflow_event_loop_lag_ms_bucket{{{SEL}}}[{RATE}])))",
                "loop lag p99 {{instance}}",
            ),
            q(
                f"histogram_quantile(1, sum by (le, instance) (rate(riskflow_checkpoint_capture_ms_bucket{{{SEL}}}[{RATE}])))",
                "capture max {{instance}}",
                "B",
            ),
            w=12,
            desc=(
                "Loop lag: how late a 50 ms timer fired, i.e. how long one step held the "
                "worker's event loop (a big batch, a state capture, a table growing, a GC "
                "pass); every decision behind it waits as long. Capture: the loop's share of "
                "each checkpoint (copying the state; the write runs in a thread)."
            ),
        )
    )

    out = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    # Grafana keys panel state by id: unique, stable, in reading order.
    for i, panel in enumerate(out["panels"], start=1):
        panel["id"] = i
    return out


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
