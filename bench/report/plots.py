"""The report's plots, drawn with matplotlib into SVG text that the page holds inline.

matplotlib's object API is used directly (``Figure``, no pyplot): no display, no global backend, no state
kept between plots. Text stays text in the SVG (``svg.fonttype: none``), so the page's plots are sharp,
small and searchable. Ids inside an SVG come from a fixed salt, so one set of files gives the same page
byte for byte, and are prefixed with the plot's name, so they stay unique on the page. The SVG's metadata
block (creator URL, date) is dropped: the page names no address at all.

Each plot function takes the model's columns or curves and returns ``<svg ...>...</svg>``; ``PLOTS``
lists them in page order.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from bench.report.model import CapacityCurve, Column, Report
from bench.report.tables import rate

#: Colours of the columns, in order (WebSocket blue, HTTP orange for one run).
PALETTE = ("#2f6fb0", "#e07b28", "#3a9a5b", "#b03a48", "#7d5ba6", "#8c6d31", "#d16ba5", "#5a6b7b")
FAIL = "#c0392b"
_RC: dict[Any, Any] = {  # rc keys are Literal-typed in matplotlib's stubs
    "svg.fonttype": "none", "svg.hashsalt": "nucleus-bench", "font.size": 9, "axes.titlesize": 10,
    "axes.titleweight": "bold", "axes.grid": True, "grid.alpha": 0.35, "grid.linewidth": 0.6,
    "axes.spines.top": False, "axes.spines.right": False, "legend.fontsize": 8, "legend.frameon": False,
    "font.family": "sans-serif",
}
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_ID = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def colour(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def to_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prologue, no metadata) to put inline in HTML."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return _METADATA.sub("", text[text.index("<svg"):]).strip()


def _empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center", va="center", color="#777")


def _ms_log_axis(ax: Axes) -> None:
    """A log y axis in ms with plain numbers (0.5, 1, 2, 5, 10...) rather than powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _nines(k: int) -> str:
    """The percentile at 10**k on the 1/(1 - q) axis: 0 -> "0%", 1 -> "90%", 3 -> "99.9%"."""
    return "0%" if k == 0 else f"{100 - 10.0 ** (2 - k):.{max(0, k - 2)}f}%"


def spectrum_plot(columns: Sequence[Column]) -> str:
    """Latency by percentile, HDR style: the x axis is 1/(1 - q) on a log scale, so each decade is one
    more nine; corrected solid, raw dashed, one colour per column."""
    fig = Figure(figsize=(9.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    deepest = 1
    for k, c in enumerate(columns):
        for kind, style in (("corrected", "-"), ("raw", "--")):
            s = c.spectra.get(kind)
            if s is None or not s.percentiles:
                continue
            x = [1.0 / (1.0 - q / 100.0) for q in s.percentiles]
            deepest = max(deepest, math.ceil(math.log10(x[-1]) - 1e-9))
            ax.plot(x, [v / 1000.0 for v in s.values_us], style, color=colour(k),
                    lw=1.6 if style == "-" else 1.1, label=f"{c.label} {kind}")
    if not ax.lines:
        _empty(ax, "no latency recorded")
    else:
        ax.set_xscale("log")
        ax.set_xticks([10.0 ** k for k in range(deepest + 1)], [_nines(k) for k in range(deepest + 1)])
        ax.xaxis.set_minor_formatter(NullFormatter())
        _ms_log_axis(ax)
        ax.legend(loc="upper left")
    ax.set_xlabel("percentile")
    ax.set_ylabel("ack latency (ms)")
    ax.set_title("Ack latency by percentile (corrected solid, raw dashed)")
    return to_svg(fig)


def timeline_plot(columns: Sequence[Column]) -> str:
    """Per second of the run: events acked (and lost, as crosses) above, ack latency p99 and p50 below."""
    fig = Figure(figsize=(9.0, 5.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    for k, c in enumerate(columns):
        rows = c.series
        if not rows:
            continue
        top.plot([r.second for r in rows], [r.acked for r in rows], color=colour(k), lw=1.5, label=c.label)
        lost = [(r.second, r.lost + r.rejected) for r in rows if r.lost or r.rejected]
        if lost:
            top.plot(*zip(*lost, strict=True), "x", color=colour(k), label=f"{c.label} lost + rejected")
        for key, style in (("ack_p99_us", "-"), ("ack_p50_us", ":")):
            pts = [(r.second, v / 1000.0) for r in rows if (v := getattr(r, key)) is not None]
            if pts:
                bottom.plot(*zip(*pts, strict=True), style, color=colour(k), lw=1.5,
                            label=f"{c.label} {key[4:7]}")
    if not top.lines:
        _empty(top, "no per-second rows")
    else:
        top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plot: never over a line
    if bottom.lines:
        _ms_log_axis(bottom)
        bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        _empty(bottom, "no latency recorded")
    top.set_ylim(bottom=0)
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_title("Throughput over time (events acked per second)")
    bottom.set_title("Ack latency over time (corrected p99 solid, p50 dotted, ms)")
    bottom.set_xlabel("seconds since the start of the run")
    top.set_ylabel("events/s")
    bottom.set_ylabel("ms")
    return to_svg(fig)


def _bars(ax: Axes, labels: Sequence[str], values: Sequence[float], title: str, fmt: str, *,
          colours: Sequence[str]) -> None:
    bars = ax.bar(range(len(values)), values, color=colours, width=0.6)
    ax.bar_label(bars, labels=[fmt.format(v) for v in values], fontsize=8, padding=2)
    ax.set_xticks(range(len(values)), labels, rotation=20 if len(labels) > 2 else 0, ha="right"
                  if len(labels) > 2 else "center")
    ax.set_title(title)
    ax.grid(axis="x", visible=False)
    ax.margins(y=0.18)


def transports_plot(columns: Sequence[Column]) -> str:
    """The transports side by side: client cost (events/s per core, bytes per event), delivery delay and
    loss, one bar per column."""
    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 4)
    labels = [c.label for c in columns]
    colours = [colour(k) for k in range(len(columns))]
    _bars(axes[0], labels, [c.events_per_cpu_s for c in columns], "events/s per client core", "{:,.0f}",
          colours=colours)
    _bars(axes[1], labels, [c.bytes_per_event for c in columns], "bytes per event", "{:,.0f}",
          colours=colours)
    ax = axes[2]
    p50 = [max(c.delivery.p50, 1.0) / 1000.0 for c in columns]
    p99 = [max(c.delivery.p99, 1.0) / 1000.0 for c in columns]
    x = list(range(len(columns)))
    ax.bar([i - 0.2 for i in x], p50, width=0.4, color=colours, alpha=0.55, label="p50")
    hi = ax.bar([i + 0.2 for i in x], p99, width=0.4, color=colours, label="p99")
    ax.bar_label(hi, labels=[f"{v:,.1f}" for v in p99], fontsize=8, padding=2)
    ax.set_xticks(x, labels, rotation=20 if len(labels) > 2 else 0)
    _ms_log_axis(ax)
    ax.set_title("delivery delay p50 | p99 (ms)")
    ax.grid(axis="x", visible=False)
    shares = [100.0 * c.lost_share for c in columns]
    _bars(axes[3], labels, shares, "lost + rejected (% of sent)", "{:.2f} %",
          colours=[FAIL if c.lost or c.rejected else colour(k) for k, c in enumerate(columns)])
    axes[3].set_ylim(0, max([1.0, *shares]) * 1.2)  # no loss: a 0-1 % axis, not one around zero
    if not columns:
        for a in axes:
            _empty(a, "no transport")
    return to_svg(fig)


def capacity_plot(curves: Sequence[CapacityCurve]) -> str:
    """p99 by offered load, one line per search: passing steps as dots, failing ones as red crosses, the
    knee (the highest load that kept the limits) a dashed line with its rate written beside it."""
    fig = Figure(figsize=(9.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    rates = [s.rate for c in curves for s in c.steps if s.rate > 0]
    for k, curve in enumerate(curves):
        pts = [(s.rate, s.p99_us / 1000.0, s.ok) for s in curve.steps
               if s.p99_us is not None and s.p99_us > 0]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=colour(k), lw=1.4, label=curve.label)
            for good in (True, False):
                sel = [p for p in pts if p[2] is good]
                if sel:
                    ax.plot([p[0] for p in sel], [p[1] for p in sel], "o" if good else "X", ms=7,
                            color=colour(k) if good else FAIL, zorder=3)
        if curve.knee_rate is not None:
            ax.axvline(curve.knee_rate, ls="--", color=colour(k), lw=1.2)
            ax.annotate(f"knee {rate(curve.knee_rate)} events/s", (curve.knee_rate, 1.0),
                        xycoords=("data", "axes fraction"), xytext=(4, -12), textcoords="offset points",
                        color=colour(k), fontweight="bold")
    slo = next((c.slo_p99_us for c in curves if c.slo_p99_us), None)
    if slo:
        ax.axhline(slo / 1000.0, ls=":", color=FAIL, lw=1.0, label="p99 limit")
    if not ax.lines:
        _empty(ax, "no capacity step measured")
    else:
        if rates and max(rates) / min(rates) > 10:
            ax.set_xscale("log")
        _ms_log_axis(ax)
        ax.legend(loc="upper left")
    ax.set_xlabel("offered load (events/s)")
    ax.set_ylabel("ack latency p99 (ms)")
    ax.set_title("Capacity: p99 by offered load (dots kept the limits, crosses did not)")
    return to_svg(fig)


#: The plots of a page, in order: (id, heading, whether the report has what it needs, draw).
PLOTS: tuple[tuple[str, str, Callable[[Report], bool], Callable[[Report], str]], ...] = (
    ("spectrum", "Latency percentile spectrum", lambda r: bool(r.columns),
     lambda r: spectrum_plot(r.columns)),
    ("timeline", "Throughput and latency over time", lambda r: bool(r.columns),
     lambda r: timeline_plot(r.columns)),
    ("transports", "Transports side by side", lambda r: bool(r.columns),
     lambda r: transports_plot(r.columns)),
    ("capacity", "Capacity curve", lambda r: bool(r.capacity), lambda r: capacity_plot(r.capacity)),
)


def scoped(svg: str, prefix: str) -> str:
    """The SVG with every id, and every reference to one, prefixed: matplotlib numbers the elements of each
    figure from 1 (``axes_1``), and ids must be unique across the page that holds several figures inline."""
    return _ID.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)


def draw(report: Report) -> list[tuple[str, str, str]]:
    """Every plot the report has data for, as (id, heading, svg), in page order."""
    with rc_context(_RC):
        return [(pid, heading, scoped(plot(report), pid)) for pid, heading, has, plot in PLOTS if has(report)]
