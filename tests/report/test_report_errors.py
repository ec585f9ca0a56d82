"""Bad input to ``nucleus-bench report``: one line naming the file and what is wrong, exit 2, no report
written and nothing of the run touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from report_helpers import KNOWN_CAPACITY, write_known_run

from bench.cli import main


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``nucleus-bench report ARGS``: exit 2 and exactly one line on stderr, no traceback; that line."""
    assert main(["report", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("nucleus-bench report: error: ")
    return lines[0]


def _edit_json(path: Path, edit: Callable[[dict[str, object]], None]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A RESULT that does not exist is named."""
    line = one_line_error(capsys, str(tmp_path / "nope"))
    assert line.endswith(f"{tmp_path / 'nope'}: no such directory")


def test_a_folder_that_is_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory without summary.json or capacity.json is not taken for a run; --latest on an empty folder
    says it holds no run."""
    (tmp_path / "empty").mkdir()
    assert "neither summary.json nor capacity.json there" in one_line_error(capsys, str(tmp_path / "empty"))
    assert "no run directory in it" in one_line_error(capsys, "--latest", str(tmp_path / "empty"))


def test_corrupt_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A truncated summary.json: its path, 'not JSON' and where the parser stopped; no report."""
    run_dir = write_known_run(tmp_path / "run")
    text = (run_dir / "summary.json").read_text()
    (run_dir / "summary.json").write_text(text[: len(text) // 2])
    line = one_line_error(capsys, str(run_dir))
    assert f"{run_dir / 'summary.json'}: not JSON (" in line and "line" in line
    assert not (run_dir / "report.html").exists() and not (run_dir / "report.md").exists()
    assert (run_dir / "summary.json").read_text() == text[: len(text) // 2]


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["transports"]["ws"]["events"].pop("sent"),
     "summary.json: transports.ws.events.sent is missing"),
    (lambda d: d["transports"]["http"]["ack_latency_us"]["raw"].update(p99="slow"),
     "summary.json: transports.http.ack_latency_us.raw.p99 must be a number, not 'slow'"),
    (lambda d: d.update(schema="something/else"), "summary.json: schema 'something/else', expected"),
    (lambda d: d.update(transports=[]), "summary.json: no transport blocks"),
])
def test_summary_with_a_bad_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   edit: Callable[[dict[str, object]], None], expected: str) -> None:
    """A summary.json that parses but lacks a figure or has one of the wrong type: the key is named."""
    run_dir = write_known_run(tmp_path / "run")
    _edit_json(run_dir / "summary.json", edit)
    assert expected in one_line_error(capsys, str(run_dir))
    assert not (run_dir / "report.html").exists()


def test_missing_or_broken_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each transport's result-<t>.json must be there and well formed: its per-second rows, its histograms."""
    run_dir = write_known_run(tmp_path / "run")
    (run_dir / "result-ws.json").rename(run_dir / "kept.json")
    assert one_line_error(capsys, str(run_dir)).endswith("result-ws.json: no such file")
    (run_dir / "kept.json").rename(run_dir / "result-ws.json")
    _edit_json(run_dir / "result-http.json",
               lambda d: d["series"]["rows"][1].__setitem__(1, "many"))  # type: ignore[index]
    assert "result-http.json: series: row 1 must be 6 integers >= 0" in one_line_error(capsys, str(run_dir))
    _edit_json(run_dir / "result-http.json",
               lambda d: d["series"]["rows"][1].__setitem__(1, 4100))  # type: ignore[index]
    _edit_json(run_dir / "result-ws.json",
               lambda d: d["tracker"]["raw"].update(count=5))  # type: ignore[index]
    line = one_line_error(capsys, str(run_dir))
    assert "result-ws.json: tracker result: raw: buckets do not add up" in line


def test_bad_capacity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """capacity.json of another schema, or a step without its rate, is one line naming the key."""
    run_dir = write_known_run(tmp_path / "run", capacity=True)
    _edit_json(run_dir / "capacity.json", lambda d: d.update(schema="nucleus-bench/capacity/0"))
    assert "capacity.json: schema 'nucleus-bench/capacity/0' is not" in one_line_error(capsys, str(run_dir))
    doc = json.loads(json.dumps(KNOWN_CAPACITY))
    del doc["transports"]["ws"]["steps"][1]["rate"]
    (run_dir / "capacity.json").write_text(json.dumps(doc))
    assert "capacity.json: transports.ws.steps[1].rate is missing" in one_line_error(capsys, str(run_dir))


def test_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out where no file can be written (under a regular file), or naming the .md: one line."""
    run_dir = write_known_run(tmp_path / "run")
    (tmp_path / "file").write_text("")
    line = one_line_error(capsys, str(run_dir), "--out", str(tmp_path / "file" / "report.html"))
    assert "report.html: the report cannot be written there" in line
    assert "name the HTML file" in one_line_error(capsys, str(run_dir), "--out", str(tmp_path / "r.md"))
