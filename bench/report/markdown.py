"""report.md: the report's summary in Markdown, for a CI job's page (GitHub's step summary, GitLab's notes).

What a reviewer needs without opening the HTML: the headline table (events, latency corrected and raw,
throughput, verdicts), a line for every verdict that is not OK, the capacity knees, and where the full
report is. Tables come from bench.report.tables, so each figure reads as on the page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench.report.model import Report
from bench.report.tables import Table, capacity_table, headline_table, knee_line

#: A cell that is a figure: numbers, separators, units and the "corrected / raw" pairs of the headline.
_FIGURE = re.compile(r"[-\d.,/ %]*")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _figures(cells: list[str]) -> bool:
    """Whether a column holds mostly figures (aligned right) rather than words (aligned left)."""
    return 2 * sum(1 for c in cells if _FIGURE.fullmatch(c)) >= len(cells)


def table(t: Table) -> list[str]:
    """A GitHub-flavoured Markdown table: the label column and words left, figures right; marked rows bold."""
    align = [":---", *("---:" if _figures([row[k] for row in t.rows]) else ":---"
                       for k in range(1, len(t.header)))]
    out = ["| " + " | ".join(_cell(h) for h in t.header) + " |", "|" + "|".join(align) + "|"]
    for k, row in enumerate(t.rows):
        cells = [_cell(c) for c in row]
        if k in t.marked:
            cells = [f"**{c}**" for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    return out


def render(report: Report, html_name: str, sources: Sequence[str]) -> str:
    """The whole summary; ``html_name``: the HTML report's file name, written beside it."""
    lines = [f"## nucleus-bench report: {report.title}", "",
             f"Runs: {', '.join(f'`{s}`' for s in sources)}. Full report with plots: `{html_name}`.", ""]
    lines += [f"> **{r.label} stopped on an error:** {r.error}" for r in report.runs if r.error]
    if report.columns:
        lines += [*table(headline_table(report.columns)), ""]
        lines.append("Latency in ms: corrected from the intended send time (what a device sees), raw from "
                     "the actual write.")
        lines.append("")
        notes = [f"- **{c.label}** {v.name} {v.state.upper()}: {v.text}"
                 for c in report.columns for v in c.verdicts if v.state not in ("ok", "none")]
        lines += [*notes, ""] if notes else []
    for curve in report.capacity:
        lines += [f"### Capacity: {curve.label}", "", f"{knee_line(curve)}.", "",
                  *table(capacity_table(curve)), ""]
    return "\n".join(lines).rstrip() + "\n"
