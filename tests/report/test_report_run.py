"""The report of a real run: ``nucleus-bench run`` against the embedded reference target, then
``nucleus-bench report --latest`` as ``make bench`` calls it; the run's own figures show in both outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_helpers import Page

from bench.cli import main

#: Two seconds, six devices, both transports: a real run in a few seconds.
SCENARIO = """\
name = "report-run"
seed = 5
duration = "2s"

[fleet]
devices = 6
ramp = "200ms"

[events]
per_device_rate = 15

[transport]
heartbeat = "500ms"
http_flush = "500ms"
ack_timeout = "2s"
"""


def _ms(us: float) -> str:
    return f"{us / 1000:,.2f}"


def test_report_of_a_real_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--latest picks the directory the run printed; the page holds the three run plots and every headline
    figure of summary.json, rounded as the Markdown gives them."""
    scenario = tmp_path / "report-run.toml"
    scenario.write_text(SCENARIO)
    results = tmp_path / "results"
    assert main(["run", str(scenario), "--transport", "both", "--out", str(results), "--no-progress"]) == 0
    printed = re.search(r"^results: (.+)$", capsys.readouterr().out, re.M)
    assert printed is not None
    run_dir = Path(printed.group(1))

    assert main(["report", "--latest", str(results)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"report: {run_dir / 'report.html'}", f"summary: {run_dir / 'report.md'}"]

    summary = json.loads((run_dir / "summary.json").read_text())
    ws, http = summary["transports"]["ws"], summary["transports"]["http"]
    page = Page((run_dir / "report.html").read_text())
    assert set(page.plots) == {"spectrum", "timeline", "transports"}
    assert all(tags.count("svg") == 1 for tags in page.plots.values())
    md = (run_dir / "report.md").read_text()
    assert f"| events sent | {ws['events']['sent']:,} | {http['events']['sent']:,} |" in md
    assert f"| events acked | {ws['events']['acked']:,} | {http['events']['acked']:,} |" in md
    rows = {key: [f"{_ms(b['ack_latency_us']['corrected'][key])} / {_ms(b['ack_latency_us']['raw'][key])}"
                  for b in (ws, http)] for key in ("p50", "p99", "p999")}
    for label, key in (("p50", "p50"), ("p99", "p99"), ("p99.9", "p999")):
        assert f"| ack {label} corrected / raw (ms) | {rows[key][0]} | {rows[key][1]} |" in md
        assert all(cell.split(" / ")[0] in page.body_text for cell in rows[key])
    assert "| verdict | all OK | all OK |" in md
    assert f"{ws['throughput']['events_per_s']:,.0f}" in page.body_text


def test_a_judged_runs_report_shows_each_transports_objective_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--slo-p99 5ms against acks held 20 ms: run exits 3; the report holds each transport's verdict, a
    failure named with its reason in the HTML headline and as a line of the Markdown."""
    scenario = tmp_path / "report-run.toml"
    scenario.write_text(SCENARIO)
    results = tmp_path / "results"
    code = main(["run", str(scenario), "--transport", "both", "--out", str(results), "--no-progress",
                 "--slo-p99", "5ms", "--target-arg=--ack-delay-ms=20"])
    assert code == 3
    capsys.readouterr()
    assert main(["report", "--latest", str(results)]) == 0
    (run_dir,) = results.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    md = (run_dir / "report.md").read_text()
    page = Page((run_dir / "report.html").read_text())
    for name in ("ws", "http"):
        verdict = summary["objective"]["transports"][name]
        assert not verdict["met"]
        line = f"- **{name}** objective FAIL: missed ({verdict['limit']}): {verdict['reason']} (after a "
        assert line in md, md
        assert f"missed ({verdict['limit']}): {verdict['reason']}" in page.body_text
