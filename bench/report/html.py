"""The HTML page: one self-contained file, read in the order a reader asks their questions.

First the headline of each column (what happened to the events, ack latency from the intended send and
from the write, throughput) with its verdicts; then the plots; then the tables; last, the runs' facts.
Everything is inline: the style sheet, the plots (SVG), no script, no font, image or style fetched from
anywhere, so the file opens the same offline, attached to a CI job or mailed. Every text that comes from
a result file is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from bench.report.model import Column, Report
from bench.report.tables import Table, capacity_table, column_tables, count, ms, rate, run_table

_STYLE = """
:root { --ink:#1d2733; --muted:#5f6b7a; --line:#dfe4ea; --band:#f5f7fa; --ok:#1e8449; --warn:#b9770e;
        --fail:#c0392b; --none:#7f8c8d; --accent:#2f6fb0; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color:var(--ink); background:#fff; }
header { background:#24303f; color:#fff; padding:18px 32px; }
header h1 { margin:0; font-size:22px; font-weight:600; }
header p { margin:4px 0 0; color:#c5cfdb; font-size:13px; }
main { padding:20px 32px 40px; max-width:1320px; }
h2 { font-size:17px; margin:30px 0 10px; padding-bottom:4px; border-bottom:2px solid var(--line); }
.error { background:#fdecea; border-left:4px solid var(--fail); padding:10px 14px; margin:12px 0; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(300px, 1fr)); gap:16px; }
.card { border:1px solid var(--line); border-radius:6px; padding:14px 16px; background:var(--band); }
.card h3 { margin:0 0 10px; font-size:15px; color:var(--accent); }
.figures { display:grid; grid-template-columns:repeat(4, 1fr); gap:8px; margin-bottom:10px; }
.fig { background:#fff; border:1px solid var(--line); border-radius:4px; padding:6px 8px; }
.fig b { display:block; font-size:20px; font-weight:600; }
.fig span { color:var(--muted); font-size:12px; }
.fig small { display:block; color:var(--muted); font-size:11px; }
.badges { display:flex; flex-wrap:wrap; gap:6px; }
.badge { border-radius:10px; padding:2px 9px; font-size:12px; color:#fff; }
.badge.ok { background:var(--ok); } .badge.warn { background:var(--warn); }
.badge.fail { background:var(--fail); } .badge.none { background:var(--none); }
figure { margin:0 0 18px; border:1px solid var(--line); border-radius:6px; padding:10px; max-width:1040px; }
figure svg { width:100%; height:auto; display:block; }
.tables { display:grid; grid-template-columns:repeat(auto-fill, minmax(440px, 1fr)); gap:4px 28px;
          align-items:start; }
.tables h3 { font-size:14px; margin:14px 0 4px; }
.tables section { min-width:0; overflow-x:auto; }
.tables section.wide { grid-column:1 / -1; }
table { border-collapse:collapse; margin:6px 0 4px; font-size:13px; }
th, td { padding:4px 12px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th:first-child, td:first-child { text-align:left; }
thead th { background:var(--band); font-weight:600; white-space:normal; }
tbody tr:nth-child(even) td { background:#fafbfc; }
tr.marked td { background:#fff4d6 !important; font-weight:600; }
td.wrap { white-space:normal; max-width:640px; text-align:left; word-break:break-all; }
p.note { color:var(--muted); font-size:12px; margin:2px 0 14px; max-width:1000px; }
footer { color:var(--muted); font-size:12px; padding:0 32px 24px; }
"""


def _figure(value: str, label: str, sub: str = "") -> str:
    small = f"<small>{escape(sub)}</small>" if sub else ""
    return f'<div class="fig"><b>{escape(value)}</b><span>{escape(label)}</span>{small}</div>'


def card(c: Column) -> str:
    """The headline of one column: events, latency corrected (raw beneath), throughput, verdicts."""
    figures = [
        _figure(count(c.sent), "events sent"), _figure(count(c.acked), "acked"),
        _figure(count(c.lost), "lost", f"rejected {count(c.rejected)}"),
        _figure(rate(c.events_per_s), "events/s acked"),
        *(_figure(ms(getattr(c.corrected, key)), f"{label} ms corrected", f"raw {ms(getattr(c.raw, key))}")
          for label, key in (("p50", "p50"), ("p99", "p99"), ("p99.9", "p999"))),
        _figure(ms(c.delivery.p99), "delivery p99 ms", f"p50 {ms(c.delivery.p50)}"),
    ]
    badges = "".join(f'<span class="badge {escape(v.state)}" title="{escape(v.text)}">{escape(v.name)}: '
                     f"{escape(v.text)}</span>" for v in c.verdicts)
    return (f'<div class="card"><h3>{escape(c.label)}</h3><div class="figures">{"".join(figures)}</div>'
            f'<div class="badges">{badges}</div></div>')


def table(t: Table, *, wrap_from: int = 99, title: bool = True, wide: bool = False) -> str:
    """One table; cells of columns from ``wrap_from`` on may wrap (long texts: reasons, command lines);
    ``wide``: it takes the whole width of the tables' grid."""
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    rows = []
    for k, row in enumerate(t.rows):
        cells = "".join(f'<td class="wrap">{escape(v)}</td>' if i >= wrap_from else f"<td>{escape(v)}</td>"
                        for i, v in enumerate(row))
        rows.append(f'<tr class="marked">{cells}</tr>' if k in t.marked else f"<tr>{cells}</tr>")
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    heading = f"<h3>{escape(t.title)}</h3>" if title else ""
    attrs = ' class="wide"' if wide else ""
    return (f"<section{attrs}>{heading}<table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{note}</section>")


def _errors(report: Report) -> str:
    return "".join(f'<div class="error"><b>{escape(r.label)}</b> stopped on an error: {escape(r.error)}</div>'
                   for r in report.runs if r.error)


def render(report: Report, plots: Sequence[tuple[str, str, str]], sources: Sequence[str]) -> str:
    """The whole page. ``plots``: (id, heading, inline svg) in page order; ``sources``: the run directories
    it was written from, named in the footer."""
    started = ", ".join(r.started_at for r in report.runs if r.started_at)
    parts = [f"<header><h1>nucleus-bench report: {escape(report.title)}</h1>"
             f"<p>{escape(', '.join(r.label for r in report.runs))}"
             f"{escape(' · started ' + started) if started else ''}</p></header><main>", _errors(report)]
    if report.columns:
        parts.append(f'<h2>Headline</h2><div class="cards">{"".join(card(c) for c in report.columns)}</div>'
                     '<p class="note">corrected: from the intended send time (what a device sees, free of '
                     "coordinated omission); raw: from the actual write.</p>")
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [f'<figure class="plot" id="plot-{escape(pid)}" aria-label="{escape(heading)}">'
                  f"{svg}</figure>" for pid, heading, svg in plots]
    if report.columns or report.capacity:
        parts.append('<h2>Tables</h2><div class="tables">')
        parts += [table(t) for t in column_tables(report.columns)]
        parts += [table(capacity_table(c), wrap_from=6, wide=True) for c in report.capacity]
        parts.append("</div>")
    parts.append("<h2>Runs</h2>" + table(run_table(report), wrap_from=1, title=False))
    parts.append("</main>")
    footer = f"<footer>written by nucleus-bench report from {escape(', '.join(sources))}</footer>"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>nucleus-bench report: {escape(report.title)}</title><style>{_STYLE}</style></head>"
            f"<body>{''.join(parts)}{footer}</body></html>\n")

