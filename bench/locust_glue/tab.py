"""The rows of the web UI's Nucleus tab: what the instrument measures, as one table of Locust's own kind.

Pure: no gevent, no locust, no flask. ``rows(view)`` reads summary-schema blocks (live ones from
bench.locust_glue.live, or the finished run's summary.json) and returns the table's rows, every cell a
string, in the order they are shown (Locust's table keeps the order it is given until a column is clicked).

Locust's extended tab is a single table whose columns are fixed (``STRUCTURE``); each section fills the
columns it needs:

- ``run``: the tab's state (no run yet, live with N processes, finished) and problems this run logged;
- ``result`` (after the run): the reconciliation verdict, the results folder, summary.json and report.html
  (links in the Download Data tab: a cell of Locust's table holds text only);
- ``latency``: per transport, the ack latency corrected for coordinated omission (ack - intended send),
  raw (ack - actual write) and the delivery delay (ack - creation): count and p50/p90/p99/p99.9/max in µs
  from the exact histograms, merged over every process;
- ``accounting``: the identity ``sent = acked + rejected + lost + in flight`` and each term, rejections
  split by reason, duplicate acks;
- ``event type``: each event type's corrected and raw ack latency, the same way;
- ``generator``: the load generator's own health: schedule lag, event-loop lag, CPU share, saturation;
- ``end of run``: the lines the terminal printed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.results.summary import quantiles

#: The tab's key (``?tab=nucleus``) and title.
TAB_KEY = "nucleus"
TAB_TITLE = "Nucleus"
#: The table's columns, as Locust's ``extended_tables`` takes them (keys without "_": the page camel-cases).
STRUCTURE: tuple[dict[str, str], ...] = (
    {"key": "section", "title": "Section"},
    {"key": "transport", "title": "Transport"},
    {"key": "figure", "title": "Figure"},
    {"key": "count", "title": "Count"},
    {"key": "p50", "title": "p50 (µs)"},
    {"key": "p90", "title": "p90 (µs)"},
    {"key": "p99", "title": "p99 (µs)"},
    {"key": "p999", "title": "p99.9 (µs)"},
    {"key": "max", "title": "max (µs)"},
    {"key": "value", "title": "Value"},
)
COLUMNS = tuple(c["key"] for c in STRUCTURE)
#: The quantiles shown, by their summary.json keys.
QUANTILES = ("p50", "p90", "p99", "p999", "max")
#: Where the Download Data tab's links point (relative to the page, as Locust's own are).
SUMMARY_HREF = "./nucleus/summary.json"
REPORT_HREF = "./nucleus/report.html"

Row = dict[str, str]
#: Below this many ms Locust's own columns keep two significant digits (its own rule: whole ms below 100).
FINE_BELOW_MS = 10.0


@dataclass(frozen=True, slots=True)
class View:
    """What the tab shows at one moment.

    Attributes:
        state: "idle" (no run yet), "live" (figures so far) or "finished" (the run's summary.json).
        note: the state row's words (how many processes, as of when; or where the summary went).
        blocks: ``transports.<name>`` blocks in summary.json's schema.
        details: per transport, event-type histograms' summaries and refused events (``detail_json``).
        run_dir: the finished run's results folder.
        report: the folder holds report.html.
        writing_report: report.html is being written (``nucleus-bench report``, at the end of a web UI run).
        lines: the end-of-run lines, as the terminal printed them.
        problems: warnings and errors this run logged (a refused form, a worker that sent no result...).
        verdicts: per transport, its verdict against the scenario's ``[objective]`` (summary.json's
            ``objective.transports``; empty when the run was not judged).
    """

    state: str = "idle"
    note: str = "no run yet: start one with the form"
    blocks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    details: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    run_dir: str | None = None
    report: bool = False
    writing_report: bool = False
    lines: Sequence[str] = ()
    problems: Sequence[str] = ()
    verdicts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def fine(ms: float) -> float:
    """``ms`` to two significant digits (0.1345 -> 0.13, 3.456 -> 3.5)."""
    return float(f"{ms:.2g}")


def ms_figure(value: float | None) -> float:
    """A Min/Max cell of Locust's table: two significant digits below ``FINE_BELOW_MS``, else whole ms."""
    if value is None:
        return 0
    return fine(value) if value < FINE_BELOW_MS else round(value)


def us(value: float) -> str:
    """A µs figure as the tab prints it: one decimal (the histograms' buckets are <= 1 % wide)."""
    return f"{float(value):.1f}"


def row(section: str, transport: str, figure: str, *, count: Any = "", value: str = "",
        latency: Mapping[str, Any] | None = None) -> Row:
    """One row; ``latency`` (a summary latency object) fills count and the quantiles."""
    out = dict.fromkeys(COLUMNS, "")
    out.update(section=section, transport=transport, figure=figure, value=value,
               count=str(count) if count != "" else "")
    if latency is not None:
        out["count"] = str(int(latency["count"]))
        if latency["count"]:
            out.update({q: us(latency[q]) for q in QUANTILES})
    return out


def latency_rows(name: str, block: Mapping[str, Any]) -> list[Row]:
    lat = block["ack_latency_us"]
    out = [row("latency", name, "ack latency, corrected (ack - intended send)", latency=lat["corrected"]),
           row("latency", name, "ack latency, raw (ack - actual write)", latency=lat["raw"]),
           row("latency", name, "delivery delay (ack - creation)", latency=block["delivery_delay_us"])]
    if lat.get("flagged"):
        out.append(row("latency", name, "flagged", value="the generator was saturated: these latencies "
                                                          "include its own delay (see generator)"))
    return out


def event_type_rows(name: str, detail: Mapping[str, Any]) -> list[Row]:
    out = []
    for event_type, kinds in detail.get("types", {}).items():
        out.append(row("event type", name, f"type {event_type}: corrected", latency=kinds["corrected"]))
        out.append(row("event type", name, f"type {event_type}: raw", latency=kinds["raw"]))
    return out


def accounting_rows(name: str, block: Mapping[str, Any], detail: Mapping[str, Any]) -> list[Row]:
    ev, acc = block["events"], block["accounting"]
    refused: Mapping[Any, int] = detail.get("refused", {})
    left_out = int(ev["rejected"]) - sum(int(n) for n in refused.values())
    out = [row("accounting", name, "identity", value=str(acc["line"])),
           row("accounting", name, "sent", count=ev["sent"]),
           row("accounting", name, "acked", count=ev["acked"],
               value=f"{block['throughput']['events_per_s']:.1f} acked events/s"),
           row("accounting", name, "rejected", count=ev["rejected"]),
           row("accounting", name, "rejected: left out of reportedIds", count=left_out)]
    out += [row("accounting", name, f"rejected: batch refused with HTTP {status}", count=n)
            for status, n in refused.items()]
    out += [row("accounting", name, "lost", count=ev["lost"], value="no ack within the ack timeout"),
            row("accounting", name, "in flight", count=ev["in_flight"]),
            row("accounting", name, "duplicate acks", count=ev["duplicate_acks"]),
            row("accounting", name, "unknown acks", count=ev["unknown_acks"]),
            row("accounting", name, "late acks", count=ev["late_acks"])]
    return out


def generator_rows(name: str, block: Mapping[str, Any]) -> list[Row]:
    gen = block["generator"]
    verdict = ("yes: " + "; ".join(gen["reasons"]) if gen["saturated"]
               else "no: the generator kept its plan")
    return [row("generator", name, "schedule lag (send - intended)", latency=gen["schedule_lag_us"]),
            row("generator", name, "event-loop lag", latency=gen["loop_lag_us"]),
            row("generator", name, "CPU share of one core (busiest process)",
                value=f"{float(gen['cpu_share_max']):.0%}"),
            row("generator", name, "saturated", value=verdict)]


def reconciliation_verdict(rec: Mapping[str, Any]) -> str:
    """One line: what the server stored against what it acknowledged, and whether that is clean."""
    if not rec["done"]:
        return f"not done: {rec['note']}"
    found = []
    if rec["acked_not_stored"]:
        found.append(f"{rec['acked_not_stored']} acked but not stored (phantom acks)")
    if rec["stored_not_acked"]:
        found.append(f"{rec['stored_not_acked']} stored but never acked")
    if rec["duplicates_stored"]:
        found.append(f"{rec['duplicates_stored']} duplicates stored")
    verdict = "; ".join(found) if found else "OK: every acked event is stored once, and nothing else"
    note = f" ({rec['note']})" if rec.get("note") else ""
    return f"{rec['method']}: stored {rec['stored']}; {verdict}{note}"


def objective_verdict(verdict: Mapping[str, Any]) -> str:
    """One line: the transport met the scenario's objective, or who missed it and why."""
    state = "met" if verdict["met"] else f"MISSED ({verdict['limit']})"
    return f"{state}: {verdict['reason']} (after a {verdict['warmup_s']:g} s warm-up)"


def result_rows(view: View) -> list[Row]:
    out = [row("result", name, "reconciliation", value=reconciliation_verdict(block["reconciliation"]))
           for name, block in view.blocks.items()]
    out += [row("result", name, "objective", value=objective_verdict(verdict))
            for name, verdict in view.verdicts.items()]
    if view.run_dir is not None:
        out.append(row("result", "", "results folder", value=view.run_dir))
        out.append(row("result", "", "summary.json",
                       value=f"Download Data tab: summary.json of this run ({SUMMARY_HREF})"))
        if view.report:
            report = f"Download Data tab: report.html of this run ({REPORT_HREF})"
        elif view.writing_report:
            report = "being written (nucleus-bench report)"
        else:
            report = f"not written: nucleus-bench report {view.run_dir}"
        out.append(row("result", "", "report.html", value=report))
    return out


def rows(view: View) -> list[Row]:
    """The tab's rows for ``view``, in display order."""
    out = [row("run", "", "state", value=f"{view.state}: {view.note}")]
    out += [row("run", "", "problem", value=p) for p in view.problems]
    if view.state == "finished":
        out += result_rows(view)
    for name, block in view.blocks.items():
        out += latency_rows(name, block)
    for name, block in view.blocks.items():
        out += accounting_rows(name, block, view.details.get(name, {}))
    for name in view.blocks:
        out += event_type_rows(name, view.details.get(name, {}))
    for name, block in view.blocks.items():
        out += generator_rows(name, block)
    out += [row("end of run", "", "line", value=line) for line in view.lines]
    return out


def detail_json(details: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``detail.merge_json``'s histograms as summary latency objects (what ``rows`` and a file read)."""
    out: dict[str, dict[str, Any]] = {}
    for name, d in details.items():
        types = {t: {k: quantiles(h) for k, h in kinds.items()} for t, kinds in d["types"].items()}
        out[name] = {"types": types, "refused": {str(s): n for s, n in d["refused"].items()}}
    return out
