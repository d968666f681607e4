"""Tiny dependency-free SVG charts for self-contained HTML reports.

Enough for what a risk lead reads in a backtest report: line charts (PR/ROC
curves, series over time), step histograms and horizontal bars. Output is an
``<svg>`` string to inline in HTML, so a report is one file with no scripts.

>>> svg = line_chart({"a": ([0, 1], [0, 1])}, title="t")
>>> svg.startswith("<svg") and "</svg>" in svg
True
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["line_chart", "histogram", "bar_chart", "PALETTE"]

#: Colour-blind-safe palette (Okabe-Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
_W, _H = 560, 320
_ids = itertools.count()  # unique clip-path ids within one report
_M = {"l": 64, "r": 16, "t": 34, "b": 46}


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:.3g}"


def _frame(
    title: str, xlabel: str, ylabel: str, x0: float, x1: float, y0: float, y1: float, xfmt=_fmt
) -> tuple[list[str], Callable[[float], float], Callable[[float], float]]:
    pw, ph = _W - _M["l"] - _M["r"], _H - _M["t"] - _M["b"]
    clip = f"plot{next(_ids)}"
    xs = (
        (lambda x: _M["l"] + (x - x0) / (x1 - x0) * pw) if x1 > x0 else (lambda x: _M["l"] + pw / 2)
    )
    ys = (
        (lambda y: _M["t"] + ph - (y - y0) / (y1 - y0) * ph)
        if y1 > y0
        else (lambda y: _M["t"] + ph / 2)
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f'<text x="{_W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="600">{_esc(title)}</text>',
        f'<rect x="{_M["l"]}" y="{_M["t"]}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
        f'<clipPath id="{clip}"><rect x="{_M["l"]}" y="{_M["t"]}" width="{pw}" height="{ph}"/></clipPath>',
    ]
    for t in _ticks(y0, y1):
        y = ys(t)
        out.append(
            f'<line x1="{_M["l"]}" x2="{_M["l"] + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{_M["l"] - 6}" y="{y + 4:.1f}" text-anchor="end">{_esc(_fmt(t))}</text>'
        )
    for t in _ticks(x0, x1):
        x = xs(t)
        out.append(
            f'<text x="{x:.1f}" y="{_M["t"] + ph + 16}" text-anchor="middle">{_esc(xfmt(t))}</text>'
        )
    out.append(
        f'<text x="{_M["l"] + pw / 2}" y="{_H - 8}" text-anchor="middle">{_esc(xlabel)}</text>'
    )
    out.append(
        f'<text x="14" y="{_M["t"] + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_M["t"] + ph / 2})">{_esc(ylabel)}</text>'
    )
    out.append(f'<g clip-path="url(#{clip})">')  # closed by the caller after the data
    return out, xs, ys


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = _M["t"] + 12 + 14 * i
        x = _W - _M["r"] - 150
        out.append(
            f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        out.append(f'<text x="{x + 14}" y="{y + 1}">{_esc(name)[:28]}</text>')
    return out


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


def line_chart(
    series: Mapping[str, tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    xfmt=_fmt,  # noqa: ANN001 - a formatter for x tick labels (e.g. dates)
    max_points: int = 400,
) -> str:
    """Lines, one per named (x, y) series; long series are thinned to ``max_points``."""
    xs_all = np.concatenate([_finite(x) for x, _ in series.values()] or [np.zeros(1)])
    ys_all = np.concatenate([_finite(y) for _, y in series.values()] or [np.zeros(1)])
    x0, x1 = xlim or ((float(xs_all.min()), float(xs_all.max())) if xs_all.size else (0.0, 1.0))
    y0, y1 = ylim or (
        (min(0.0, float(ys_all.min())), float(ys_all.max())) if ys_all.size else (0.0, 1.0)
    )
    if y1 <= y0:
        y1 = y0 + 1.0
    out, sx, sy = _frame(title, xlabel, ylabel, x0, x1, y0, y1, xfmt)
    for i, (name, (x, y)) in enumerate(series.items()):
        x, y = np.asarray(x, float), np.asarray(y, float)
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if x.size > max_points:
            idx = np.unique(np.linspace(0, x.size - 1, max_points).astype(int))
            x, y = x[idx], y[idx]
        if not x.size:
            continue
        pts = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(x, y, strict=True))
        colour = PALETTE[i % len(PALETTE)]
        out.append(
            f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.8"><title>{_esc(name)}</title></polyline>'
        )
    out += _legend(list(series))
    out.append("</svg>")
    return "\n".join(out)


def histogram(  # noqa: PLR0913
    samples: Mapping[str, Sequence[float] | np.ndarray],
    *,
    bins: int = 40,
    range_: tuple[float, float] = (0.0, 1.0),
    density: bool = True,
    log_y: bool = False,
    title: str = "",
    xlabel: str = "",
) -> str:
    """Step histograms of several samples on shared bins (e.g. scores by label)."""
    edges = np.linspace(range_[0], range_[1], bins + 1)
    shares = {}
    for name, s in samples.items():
        counts, _ = np.histogram(np.clip(_finite(s), range_[0], range_[1]), bins=edges)
        shares[name] = counts / max(counts.sum(), 1) if density else counts.astype(float)
    positive = [float(y[y > 0].min()) for y in shares.values() if (y > 0).any()]
    # Empty bins sit one decade below the smallest non-empty one on a log axis.
    floor = 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1e-6
    series = {}
    for name, y in shares.items():
        if log_y:
            y = np.log10(np.maximum(y, floor))
        series[name] = (np.repeat(edges, 2)[1:-1], np.repeat(y, 2))
    ylabel = ("log10 " if log_y else "") + ("share of transactions" if density else "count")
    lo = min((float(np.min(y)) for _, y in series.values()), default=0.0) if log_y else 0.0
    return line_chart(
        series,
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
        xlim=range_,
        ylim=(lo, max((float(np.max(y)) for _, y in series.values()), default=1.0)),
    )


def bar_chart(
    labels: Sequence[str], values: Sequence[float], *, title: str = "", xlabel: str = ""
) -> str:
    """Horizontal bars, largest first (e.g. reason-code counts, feature importance)."""
    order = np.argsort(-np.asarray(values, dtype=float), kind="stable")
    labels = [labels[i] for i in order]
    values = [float(values[i]) for i in order]
    row, left = 18, 290
    h = _M["t"] + row * max(len(labels), 1) + 30
    vmax = max(values, default=1.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {h}" width="{_W}" height="{h}" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f'<text x="{_W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="600">{_esc(title)}</text>',
    ]
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        y = _M["t"] + i * row
        w = (v / vmax) * (_W - left - 60)
        out.append(
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{_esc(_short(lab, 46))}</text>'
        )
        out.append(
            f'<rect x="{left}" y="{y + 2}" width="{max(w, 0):.1f}" height="{row - 5}" fill="{PALETTE[0]}"/>'
        )
        out.append(f'<text x="{left + w + 4:.1f}" y="{y + 12}">{_esc(_fmt(v))}</text>')
    out.append(
        f'<text x="{left + (_W - left) / 2}" y="{h - 8}" text-anchor="middle">{_esc(xlabel)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out)
