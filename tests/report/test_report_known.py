"""``nucleus-bench report`` on run directories written by hand with known numbers: every figure shows, as
it should be rounded, in the HTML page and in the Markdown summary; every plot is there; nothing fetched."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from report_helpers import KNOWN_SUMMARY, Page, known_histograms, write_capacity_only, write_known_run

from bench.cli import main
from bench.report.load import read_run
from bench.report.model import build_report, spectrum

PLOTS = {"spectrum", "timeline", "transports"}


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Path, Path]:
    """Run ``nucleus-bench report ARGS``; the HTML and Markdown paths it printed."""
    assert main(["report", *args]) == 0
    out = capsys.readouterr().out
    html = re.search(r"^report: (.+)$", out, re.M)
    md = re.search(r"^summary: (.+)$", out, re.M)
    assert html and md, out
    return Path(html.group(1)), Path(md.group(1))


def _digest(run_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.iterdir())}


def test_known_figures_in_html_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Events, latency corrected and raw (ms, two decimals), throughput and verdicts of the files show in both
    outputs, written beside the run; the run's own files are left as they were."""
    run_dir = write_known_run(tmp_path / "20261206T102030Z-known-figures")
    before = _digest(run_dir)
    html_path, md_path = report(capsys, str(run_dir))
    assert (html_path, md_path) == (run_dir / "report.html", run_dir / "report.md")
    after = _digest(run_dir)
    assert {k: v for k, v in after.items() if not k.startswith("report.")} == before
    page = Page(html_path.read_text())
    md = md_path.read_text()
    text = page.body_text
    for figure in ("12,345", "12,000", "300", "4,115", "4,099", "1.23", "56.78", "98.76", "0.99", "23.45",
                   "45.67", "345.60", "777.70", "888.80", "1,548", "6,837", "407", "395"):
        assert figure in text, figure
    assert "| events sent | 12,345 | 12,345 |" in md
    assert "| events lost | 300 | 0 |" in md
    assert "| events rejected | 45 | 0 |" in md
    assert "| throughput (events/s acked) | 4,115 | 4,099 |" in md
    assert "| ack p50 corrected / raw (ms) | 1.23 / 0.99 | 345.60 / 2.10 |" in md
    assert "| ack p99 corrected / raw (ms) | 56.78 / 23.45 | 777.70 / 4.30 |" in md
    assert "| ack p99.9 corrected / raw (ms) | 98.76 / 45.67 | 888.80 / 5.40 |" in md
    assert "| verdict | loss FAIL | all OK |" in md
    assert "**ws** loss FAIL: 300 lost, 45 rejected (2.79 % of sent)" in md
    assert "known-figures" in md and "`report.html`" in md
    assert "2026-12-06 10:20:30 UTC" in text


def test_every_plot_is_an_inline_svg_and_nothing_is_fetched(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The page parses, holds one inline SVG per plot (with the columns' legends), and names no address
    outside itself: no src, href or url() but fragments of its own SVGs, no script."""
    html_path, _ = report(capsys, str(write_known_run(tmp_path / "run")))
    text = html_path.read_text()
    page = Page(text)
    assert set(page.plots) == PLOTS
    for name, tags in page.plots.items():
        assert tags.count("svg") == 1 and "path" in tags, name
    legends = " ".join(page.svg_text["spectrum"])
    assert all(label in legends for label in ("ws corrected", "ws raw", "http corrected", "http raw"))
    assert "events/s per client core" in " ".join(page.svg_text["transports"])
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert all(a.startswith("#") for a in page.addresses), page.addresses
    urls = [u for style in page.styles for u in re.findall(r"url\(\s*['\"]?([^'\")]*)", style)]
    assert all(u.startswith("#") for u in urls), urls
    assert not re.search(r"@import|@font-face", text)
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids)) > 100  # the plots' own ids, unique on the page
    refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', text))
    assert refs and refs <= set(ids)  # and every reference of an SVG finds its target


def test_capacity_curve_marks_the_knee(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a capacity.json the page adds the capacity plot, the knee written on it; its table lists the
    steps by load with the knee's row marked, and the summary gives the knee."""
    run_dir = write_known_run(tmp_path / "run", capacity=True)
    html_path, md_path = report(capsys, str(run_dir))
    text = html_path.read_text()
    page = Page(text)
    assert set(page.plots) == PLOTS | {"capacity"}
    svg = " ".join(page.svg_text["capacity"])
    assert "knee 4,000 events/s" in svg and "ws" in svg
    rows = re.findall(r"<tr( class=\"marked\")?><td>([\d,]+)</td><td>([\d,-]+)</td><td>([\d.,-]+)</td>", text)
    assert [(r[1], r[2], r[3]) for r in rows] == [("1,000", "100", "2.00"), ("2,000", "200", "3.10"),
                                                   ("4,000", "400", "5.20"), ("8,000", "800", "81.23")]
    assert [r[1] for r in rows if r[0]] == ["4,000"]
    assert "ok (knee)" in text and "over" in text and "p99 81.2 ms over 50.0 ms" in text
    md = md_path.read_text()
    assert "ws: knee at 4,000 events/s (the target is the limit" in md
    assert "| **4,000** | **400** | **5.20** | **0** | **0** | **ok (knee)** |" in md
    assert "| 8,000 | 800 | 81.23 | 17 | 3 | over | p99 81.2 ms over 50.0 ms |" in md


def test_capacity_only_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A capacity search's directory (capacity.json, no summary.json) is reported with its curve alone."""
    html_path, md_path = report(capsys, str(write_capacity_only(tmp_path / "cap")))
    page = Page(html_path.read_text())
    assert set(page.plots) == {"capacity"}
    assert "knee at 4,000 events/s" in md_path.read_text()


def test_several_runs_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two run directories: one column per run and transport, labelled by run; report.html in the current
    directory unless --out names another file (the summary beside it)."""
    first = write_known_run(tmp_path / "runs" / "first", transports=("ws",))
    second = write_known_run(tmp_path / "runs" / "second")
    monkeypatch.chdir(tmp_path)
    html_path, md_path = report(capsys, str(first), str(second))
    assert (html_path, md_path) == (Path("report.html"), Path("report.md"))
    md = md_path.read_text()
    assert "|  | first ws | second ws | second http |" in md
    assert "| events sent | 12,345 | 12,345 | 12,345 |" in md
    legends = " ".join(Page(html_path.read_text()).svg_text["spectrum"])
    assert "first ws corrected" in legends and "second http raw" in legends
    html_path, md_path = report(capsys, str(first), str(second), "--out", str(tmp_path / "cmp" / "both.html"))
    assert html_path == tmp_path / "cmp" / "both.html" and md_path == tmp_path / "cmp" / "both.md"


def test_latest_reports_the_run_written_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--latest: of a folder of runs, the one started last by its name's UTC timestamp (which survives a
    copy that resets file times), and of two started in the same second the one written last: what
    `make bench` reports after its run."""
    import os

    results = tmp_path / "results"
    write_known_run(results / "20261206T100000Z-a")  # written now, started earlier
    copied = write_known_run(results / "20261206T110000Z-b")
    for name in ("summary.json", "result-ws.json"):
        os.utime(copied / name, (1_000_000, 1_000_000))
    assert report(capsys, "--latest", str(results))[0] == copied / "report.html"
    same_second = write_known_run(results / "20261206T110000Z-b-2")
    assert report(capsys, "--latest", str(results))[0] == same_second / "report.html"
    (results / "notes").mkdir()  # a folder that is no run is passed over
    assert report(capsys, "--latest", str(results))[0] == same_second / "report.html"


def test_spectrum_of_known_values() -> None:
    """The spectrum of 1..10,000 µs reads each percentile back within the histogram's resolution, reaches
    the last rank the count can tell (99.99 %), and never decreases."""
    s = spectrum(known_histograms()["corrected"])
    assert s.percentiles[0] == 0.0 and s.percentiles[-1] == pytest.approx(99.99)
    for q, v in zip(s.percentiles, s.values_us, strict=True):
        assert v == pytest.approx(max(1.0, q * 100.0), rel=0.01, abs=1.0)
    assert list(s.values_us) == sorted(s.values_us)


def test_model_reads_the_summary(tmp_path: Path) -> None:
    """The model's columns carry the summary's figures as they are, and a verdict per thing to check."""
    rep = build_report([read_run(write_known_run(tmp_path / "run"))])
    ws, http = rep.columns
    assert (ws.sent, ws.acked, ws.lost, ws.rejected) == (12345, 12000, 300, 45)
    assert ws.corrected.p99 == KNOWN_SUMMARY["transports"]["ws"]["ack_latency_us"]["corrected"]["p99"]
    assert {v.name: v.state for v in ws.verdicts} == {"run": "ok", "accounting": "ok", "generator": "ok",
                                                      "loss": "fail", "reconciliation": "ok"}
    assert all(v.state == "ok" for v in http.verdicts)
    assert [r.acked for r in ws.series] == [3900, 4000, 4100]
    assert [r.lag_p99_us for r in ws.series] == [pytest.approx(300.0, rel=0.033)] * 2 + [None]
    for r in ws.series:  # second s: acks of 1..1000(s+1) µs, read back within the series' 3.2 %
        assert r.ack_p99_us == pytest.approx(990.0 * (r.second + 1), rel=0.033)
        assert r.ack_p50_us == pytest.approx(500.0 * (r.second + 1), rel=0.033)


@pytest.mark.parametrize(("knee", "line"), [
    ({"rate": None, "devices": None, "reason": "no load met the objective: even at 100 devices: p99 over"},
     "ws: no knee: no load met the objective: even at 100 devices: p99 over"),
    (None, "ws: no knee: the search did not finish"),
])
def test_capacity_without_a_knee(tmp_path: Path, knee: dict[str, object] | None, line: str) -> None:
    """A search that found no load within the objective, or still running, says so; no row is marked."""
    import json

    from bench.report import markdown
    from bench.report.tables import capacity_table

    run_dir = write_capacity_only(tmp_path / "cap")
    doc = json.loads((run_dir / "capacity.json").read_text())
    doc["transports"]["ws"]["knee"] = knee
    (run_dir / "capacity.json").write_text(json.dumps(doc))
    rep = build_report([read_run(run_dir)])
    (curve,) = rep.capacity
    assert curve.knee_rate is None and not capacity_table(curve).marked
    assert f"{line}." in markdown.render(rep, "report.html", [str(run_dir)])


def test_a_run_that_stopped_on_an_error_with_a_saturated_generator(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The run's error line heads both outputs; a saturated generator and an interrupted transport are
    verdicts in words, never a silent figure."""
    import copy

    from report_helpers import block, latency

    summary = copy.deepcopy(KNOWN_SUMMARY)
    summary["error"] = "target http://127.0.0.1:9 is unreachable: Connection refused"
    summary["transports"]["ws"] = block(sent=10, acked=10, rejected=0, lost=0, events_per_s=5.0,
                                        corrected=latency(1.0, 2.0, 3.0, 4.0, 5.0),
                                        raw=latency(1.0, 2.0, 3.0, 4.0, 5.0),
                                        delivery=latency(1.0, 2.0, 3.0, 4.0, 5.0), events_per_cpu_s=100.0,
                                        bytes_per_event=400.0, saturated=True)
    summary["transports"]["http"]["interrupted"] = True
    html_path, md_path = report(capsys, str(write_known_run(tmp_path / "run", summary=summary)))
    md = md_path.read_text()
    assert "> **run stopped on an error:** target http://127.0.0.1:9 is unreachable: Connection refused" in md
    assert "| generator | SATURATED | kept its plan |" in md
    assert "- **ws** generator WARN: saturated: schedule lag p99 12.0 ms > 10 ms" in md
    assert "- **ws** run FAIL: target http://127.0.0.1:9 is unreachable" in md
    assert "- **http** run WARN: interrupted (Ctrl-C): figures up to then" in md
    text = Page(html_path.read_text()).body_text
    assert "run stopped on an error: target http://127.0.0.1:9 is unreachable" in text.replace(" | ", " ")
    assert "generator: saturated: schedule lag p99 12.0 ms > 10 ms" in text
