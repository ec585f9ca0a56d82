"""A comparison of two sets of runs: every metric's row, the notes that qualify them, and their rendering as
a terminal table (rich) and as Markdown.

Reads only result files (bench.results.read): it never needs a run to be alive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.compare.samples import common_transports, side_of
from bench.compare.verdict import Options, Row, regressions, transport_rows
from bench.protocol.errors import UsageError
from bench.results.read import Run

#: The scenario keys that make two runs the same load (the path may differ).
_SAME_LOAD = ("name", "seed", "duration_s", "devices", "rate", "per_device_rate", "events_per_message",
              "http_flush_s", "ack_timeout_s")


@dataclass(frozen=True, slots=True)
class Report:
    """What ``nucleus-bench compare`` says.

    Attributes:
        base, new: where each side was read from, and how many runs it holds.
        options: how it was computed.
        rows: one per metric and transport.
        notes: what qualifies the rows (transports left out, differing scenarios, one run per side).
    """

    base: tuple[str, int]
    new: tuple[str, int]
    options: Options
    rows: tuple[Row, ...]
    notes: tuple[str, ...]

    @property
    def regressed(self) -> list[Row]:
        return regressions(self.rows)

    def conclusion(self) -> str:
        """One line: ``no regression`` (with the count of each verdict) or what regressed."""
        bad = self.regressed
        if not bad:
            counts: dict[str, int] = {}
            for row in self.rows:
                counts[row.verdict] = counts.get(row.verdict, 0) + 1
            return "no regression (" + ", ".join(f"{n} {v}" for v, n in counts.items()) + ")"
        return "REGRESSION: " + "; ".join(
            f"{r.transport} {r.key} {_pct(r.change)} {_interval(r.interval)} beyond {r.allowance:.0%}"
            for r in bad)


def _scenario_notes(base: Sequence[Run], new: Sequence[Run]) -> list[str]:
    notes = []
    for key in _SAME_LOAD:
        b = sorted({str(run.summary.get("scenario", {}).get(key)) for run in base})
        n = sorted({str(run.summary.get("scenario", {}).get(key)) for run in new})
        if b != n or len(b) > 1:
            notes.append(f"scenario {key} differs: {'/'.join(b)} (BASELINE) vs {'/'.join(n)} (NEW): the "
                         "comparison measures that too")
    return notes


def _objective_notes(base: Sequence[Run], new: Sequence[Run], transports: Sequence[str]) -> list[str]:
    """Where runs were judged against an objective (``objective`` in summary.json): how many of each side's
    runs met it, per transport (a verdict of its own, beside the comparison's)."""
    def met(runs: Sequence[Run], transport: str) -> str:
        verdicts = [((run.summary.get("objective") or {}).get("transports") or {}).get(transport)
                    for run in runs]
        judged = [v for v in verdicts if isinstance(v, dict)]
        return f"met in {sum(1 for v in judged if v.get('met'))} of {len(judged)}" if judged else "not judged"

    notes = []
    for t in transports:
        b, n = met(base, t), met(new, t)
        if (b, n) != ("not judged", "not judged"):
            notes.append(f"{t} objective: {b} run(s) (BASELINE), {n} run(s) (NEW)")
    return notes


def compare_runs(base: Sequence[Run], new: Sequence[Run], options: Options, *,
                 where: tuple[str, str] = ("BASELINE", "NEW")) -> Report:
    """Compare every transport the runs of both sides have.

    Raises:
        UsageError: a side has no run, or no transport is in every run of both sides.
    """
    if not base or not new:
        raise UsageError("compare needs at least one run on each side")
    transports, left_out = common_transports(base, new)
    if not transports:
        raise UsageError(f"{where[0]} and {where[1]} have no transport in common "
                         f"({'/'.join(sorted(base[0].results))} vs {'/'.join(sorted(new[0].results))})")
    notes = _scenario_notes(base, new)
    paired = len(base) == 1 and len(new) == 1 and not notes
    rows: list[Row] = []
    for t in transports:
        rows += transport_rows(t, side_of(base, t), side_of(new, t), options, paired=paired)
    if left_out:
        notes.append(f"not compared (not in every run of both sides): {', '.join(left_out)}")
    notes += _objective_notes(base, new, transports)
    if paired:
        notes.append("one run a side, of the same scenario and seed: their seconds are resampled in pairs "
                     "(second n of one with second n of the other)")
    if len(base) == 1 or len(new) == 1:
        notes.append("one run on a side: the intervals cover the spread between its seconds, not between "
                     "runs of one build (give a directory of repeated runs to include that)")
    return Report(base=(where[0], len(base)), new=(where[1], len(new)), options=options, rows=tuple(rows),
                  notes=tuple(notes))


# -- rendering --------------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    if x is None:
        return "-"
    if x == float("inf"):
        return "+inf"
    return f"{x:+.1%}"


def _interval(ci: tuple[float, float] | None) -> str:
    return "-" if ci is None else f"[{_pct(ci[0])}, {_pct(ci[1])}]"


HEADERS = ("transport", "metric", "better", "BASELINE", "NEW", "change", "interval", "allowed", "verdict",
           "note")


def cells(row: Row) -> tuple[str, ...]:
    """One row of the table as text, in ``HEADERS`` order."""
    return (row.transport, f"{row.label} [{row.key}]", row.better, row.base, row.new, _pct(row.change),
            _interval(row.interval), f"{row.allowance:.0%}" if row.verdict != "not judged" else "-",
            row.verdict, row.note)


def header_lines(report: Report) -> list[str]:
    o = report.options
    return [f"BASELINE: {report.base[0]} ({report.base[1]} run(s))",
            f"NEW: {report.new[0]} ({report.new[1]} run(s))",
            f"method: bootstrap over seconds, {o.resamples} resamples, seed {o.seed}, "
            f"{o.confidence:.0%} interval of NEW / BASELINE - 1"]


def terminal_table(report: Report) -> Any:
    """A rich Table of every row; the verdicts coloured."""
    from rich.table import Table

    colours: Mapping[str, str] = {"regressed": "bold red", "improved": "green", "no change": "",
                                  "inconclusive": "yellow", "not judged": "dim"}
    conf = f"{report.options.confidence:.0%} interval"
    table = Table(title="nucleus-bench compare")
    for h in HEADERS:
        table.add_column(conf if h == "interval" else h,
                         justify="right" if h in ("BASELINE", "NEW", "change", "allowed") else "left")
    for row in report.rows:
        text = cells(row)
        style = colours[row.verdict]
        table.add_row(*text[:-2], f"[{style}]{row.verdict}[/]" if style else row.verdict, text[-1])
    return table


def markdown(report: Report) -> str:
    """The report as Markdown: the header lines, a table, the notes and the conclusion."""
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    conf = f"{report.options.confidence:.0%} interval"
    lines = ["# nucleus-bench compare", "", *(f"- {line}" for line in header_lines(report)), "",
             "| " + " | ".join(conf if h == "interval" else h for h in HEADERS) + " |",
             "|" + "|".join("---:" if h in ("BASELINE", "NEW", "change", "allowed") else "---"
                            for h in HEADERS) + "|"]
    for row in report.rows:
        text = list(cells(row))
        if row.verdict == "regressed":
            text[-2] = "**regressed**"
        lines.append("| " + " | ".join(esc(c) for c in text) + " |")
    lines.append("")
    lines += [f"- note: {esc(n)}" for n in report.notes]
    lines += ["", f"**{report.conclusion()}**", ""]
    return "\n".join(lines)
