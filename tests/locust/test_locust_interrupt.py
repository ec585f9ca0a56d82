"""Ctrl-C to a headless Locust run: the summary is still written, and says the run was interrupted."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

from locust_harness import SMOKE, finish, locust_argv, start, stop, wait_until

from bench.target.embedded import EmbeddedTarget

EVENT_TYPES = {"init", "event", "error", "userid", "props"}


def _ws_acks(prefix: Path) -> int:
    """WS acks in Locust's --csv statistics (rewritten every second while it runs); 0 before any."""
    try:
        with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as fh:
            return sum(int(row["Request Count"]) for row in csv.DictReader(fh)
                       if row["Type"] == "WS" and row["Name"] in EVENT_TYPES)
    except (OSError, KeyError, ValueError, TypeError):  # not written yet, or caught mid-rewrite
        return 0


def test_sigint_mid_run_writes_an_interrupted_summary(target: EmbeddedTarget, tmp_path: Path) -> None:
    """SIGINT while the users run: summary.json is written, marked interrupted, its accounting holds, and
    the exit code is 130, as ``nucleus-bench run`` exits after Ctrl-C.

    The run time is far beyond the process bound: only the signal can end this run in time.
    """
    prefix, results = tmp_path / "stats", tmp_path / "results"
    proc = start(locust_argv("ws.py", "--headless", "-u", "3", "-r", "3", "-t", "30m", "--only-summary",
                             "--scenario", str(SMOKE), "--results-dir", str(results), "--host", target.url,
                             "--csv", str(prefix)))
    try:
        wait_until(lambda: _ws_acks(prefix), "WS acks in Locust's --csv statistics")
        os.kill(proc.pid, signal.SIGINT)
        run = finish(proc, results)
    finally:
        stop(proc)
    assert run.returncode == 130, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    ws = run.summary()["transports"]["ws"]
    assert ws["interrupted"] is True
    assert any(line.startswith("interrupted:") for line in run.stdout.splitlines()), run.stdout
    events, accounting = ws["events"], ws["accounting"]
    assert events["sent"] > 0 and accounting["ok"], accounting
    assert events["sent"] == (events["acked"] + events["rejected"] + events["lost"]
                              + accounting["in_flight"])
