"""The report's tables and number formats: pure, shared by the HTML page and the Markdown summary.

A table is rows of strings, built once from the model, so the page and the summary cannot disagree on a
figure or on how it is rounded. Latencies are shown in milliseconds with two decimals (the summary keeps
µs), counts with thousands separators, rates as whole events per second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.report.model import CapacityCurve, Column, Latency, Report

#: Latency quantiles of the tables, as (label, summary key).
QUANTILES: tuple[tuple[str, str], ...] = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"),
                                          ("p99.9", "p999"), ("max", "max"))


def ms(us: float | None) -> str:
    """µs as milliseconds, two decimals: 1980.0 -> "1.98"."""
    return "-" if us is None else f"{us / 1000:,.2f}"


def count(n: int) -> str:
    return f"{n:,}"


def rate(x: float) -> str:
    """A rate or a size, whole: 40707.2 -> "40,707"."""
    return f"{x:,.0f}"


def value(v: Any) -> str:
    """A less central figure as it is in the file: ints with separators, floats to 3 significant digits."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    if isinstance(v, list):
        return "; ".join(map(str, v)) or "-"
    return str(v)


@dataclass(frozen=True, slots=True)
class Table:
    """One table: a header (its first cell heads the row labels), rows of cells, rows to highlight."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    marked: frozenset[int] = field(default_factory=frozenset)


Getter = Callable[[Column], str]


def _per_column(title: str, columns: Sequence[Column], rows: Sequence[tuple[str, Getter]],
                note: str = "") -> Table:
    return Table(title, ("", *(c.label for c in columns)),
                 tuple((label, *(get(c) for c in columns)) for label, get in rows), note)


def _field(*keys: str) -> Getter:
    def get(c: Column) -> str:
        return value(c.block.opt(*keys))
    return get


def _latency_rows(name: str, pick: Callable[[Column], Latency]) -> list[tuple[str, Getter]]:
    def getter(key: str) -> Getter:
        return lambda c: ms(float(getattr(pick(c), key)))
    return [(f"{name} {label}", getter(key)) for label, key in QUANTILES]


def _lag(key: str) -> Getter:
    def get(c: Column) -> str:
        v = c.block.opt("generator", "schedule_lag_us", key)
        return ms(float(v)) if isinstance(v, int | float) else "-"
    return get


def headline_table(columns: Sequence[Column]) -> Table:
    """The figures first looked for: what happened to the events, latency, throughput, verdicts."""
    rows: list[tuple[str, Getter]] = [
        ("events sent", lambda c: count(c.sent)), ("events acked", lambda c: count(c.acked)),
        ("events lost", lambda c: count(c.lost)), ("events rejected", lambda c: count(c.rejected)),
        ("throughput (events/s acked)", lambda c: rate(c.events_per_s)),
        *((f"ack {label} corrected / raw (ms)",
           (lambda k: lambda c: f"{ms(getattr(c.corrected, k))} / {ms(getattr(c.raw, k))}")(key))
          for label, key in QUANTILES[:1] + QUANTILES[2:4]),
        ("generator", lambda c: "SATURATED" if c.saturated else "kept its plan"),
        ("verdict", lambda c: "; ".join(f"{v.name} {v.state.upper()}" for v in c.verdicts if v.state != "ok")
         or "all OK"),
    ]
    return _per_column("Headline", columns, rows)


def latency_table(columns: Sequence[Column]) -> Table:
    rows = [*_latency_rows("corrected", lambda c: c.corrected), *_latency_rows("raw", lambda c: c.raw),
            *_latency_rows("delivery delay", lambda c: c.delivery),
            ("schedule lag p99", _lag("p99")), ("schedule lag max", _lag("max"))]
    return _per_column("Latency (ms)", columns, rows,
                       "corrected: ack received - the event's intended send time (free of coordinated "
                       "omission); raw: - the actual write; delivery delay: - the event's creation "
                       "(HTTP's batching wait included).")


_EVENT_KEYS = ("planned", "sent", "acked", "rejected", "lost", "in_flight", "duplicate_acks", "unknown_acks",
               "late_acks", "resent", "stray_replies")


def events_table(columns: Sequence[Column]) -> Table:
    rows = [(key.replace("_", " "), _field("events", key)) for key in _EVENT_KEYS]
    return _per_column("Events", columns, rows, "every sent event ends acked, rejected, lost or in flight.")


def client_table(columns: Sequence[Column]) -> Table:
    rows: list[tuple[str, Getter]] = [
        ("events/s acked", lambda c: rate(c.events_per_s)),
        ("events/s sent", _field("throughput", "sent_events_per_s")),
        ("messages/s", _field("throughput", "messages_per_s")),
        ("send phase (s)", _field("throughput", "send_s")),
        ("send + drain (s)", _field("throughput", "wall_s")), ("client CPU (s)", _field("client", "cpu_s")),
        ("events/s per client core", lambda c: rate(c.events_per_cpu_s)),
        ("client CPU µs per event", _field("client", "cpu_us_per_event")),
        ("bytes per event", lambda c: rate(c.bytes_per_event)),
        ("bytes sent", _field("client", "bytes_sent")),
        ("bytes received", _field("client", "bytes_received")),
        ("processes", _field("client", "processes")), ("peak RSS (kB)", _field("client", "max_rss_kb")),
        ("busiest process's CPU share", _field("generator", "cpu_share_max")),
        ("generator saturated", lambda c: "YES: " + value(c.block.opt("generator", "reasons"))
         if c.saturated else "no"),
    ]
    return _per_column("Throughput and client cost", columns, rows,
                       "events/s per client core: sent events per CPU-second of the harness; bytes per "
                       "event: every byte written (frames, headers, handshakes) / events sent.")


def wire_table(columns: Sequence[Column]) -> Table:
    keys: list[str] = []
    for c in columns:
        wire = c.block.opt("wire")
        keys += [k for k in (wire if isinstance(wire, dict) else {}) if k not in keys]
    return _per_column("Wire", columns, [(k.replace("_", " "), _field("wire", k)) for k in keys])


def reconciliation_table(columns: Sequence[Column]) -> Table:
    keys = ("done", "method", "stored", "acked_not_stored", "stored_not_acked", "duplicates_stored", "note")
    return _per_column("Reconciliation", columns,
                       [(k.replace("_", " "), _field("reconciliation", k)) for k in keys],
                       "what the server stored, compared with what it acknowledged.")


def run_table(report: Report) -> Table:
    names: list[str] = []
    for run in report.runs:
        names += [name for name, _ in run.facts if name not in names]
    facts = [dict(run.facts) for run in report.runs]
    return Table("Runs", ("", *(r.label for r in report.runs)),
                 tuple((name, *(f.get(name, "-") for f in facts)) for name in names))


def capacity_table(curve: CapacityCurve) -> Table:
    """A capacity search's steps, the knee's row marked."""
    rows, marked = [], set()
    for k, step in enumerate(curve.steps):
        knee = curve.knee_rate is not None and step.rate == curve.knee_rate
        if knee:
            marked.add(k)
        verdict = ("ok" if step.ok else "over") + (" (knee)" if knee else "")
        rows.append((rate(step.rate), "-" if step.devices is None else count(step.devices), ms(step.p99_us),
                     count(step.lost), count(step.errors), verdict, step.reason or "-"))
    header = ("events/s offered", "devices", "p99 (ms)", "lost", "errors + rejected", "verdict", "reason")
    return Table(f"Capacity: {curve.label}", header, tuple(rows), knee_line(curve), frozenset(marked))


def column_tables(columns: Sequence[Column]) -> list[Table]:
    """The tables of the run's figures, after the plots, in reading order."""
    if not columns:
        return []
    return [latency_table(columns), events_table(columns), client_table(columns),
            reconciliation_table(columns), wire_table(columns)]


def knee_line(curve: CapacityCurve) -> str:
    """The knee in one line: its rate and why, or why there is none."""
    if curve.knee_rate is None:
        return f"{curve.label}: no knee: {curve.knee_reason}"
    return f"{curve.label}: knee at {rate(curve.knee_rate)} events/s" + (
        f" ({curve.knee_reason})" if curve.knee_reason else "")

