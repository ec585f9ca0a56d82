"""Locust's master/worker mode on loopback: one master, two workers, results merged exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path

from locust_harness import ROOT, SMOKE, finish, free_port, locust_argv, start, stop

from bench.metrics import COUNTERS
from bench.results.transport import TransportResult
from bench.target.embedded import EmbeddedTarget

_WORKER_LINE = re.compile(r"nucleus-bench worker (\d+) ws: sent (\d+) = acked (\d+)")


def test_merged_counts_equal_the_sum_of_the_workers(target: EmbeddedTarget, tmp_path: Path) -> None:
    """The master's summary is the exact sum of what each worker measured (and logged).

    The master is given the scenario by a path relative to its working directory; the workers run in
    another one, where that path names nothing: they follow the scenario the master sent.
    """
    port, results = free_port(), tmp_path / "results"
    elsewhere = tmp_path / "worker-cwd"
    elsewhere.mkdir()
    master = start(locust_argv(
        "ws.py", "--master", "--headless", "--expect-workers", "2", "-u", "4", "-r", "4", "-t", "4s",
        "--host", target.url, "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--only-summary", "--scenario", str(SMOKE.relative_to(ROOT)), "--results-dir", str(results)))
    worker_argv = locust_argv("ws.py", "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    workers = [start(worker_argv, cwd=elsewhere) for _ in range(2)]
    try:
        run = finish(master, results)
        logs = [finish(w, results).stderr for w in workers]
    finally:
        for proc in (master, *workers):
            stop(proc)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = run.summary()
    ws = summary["transports"]["ws"]
    rows = summary["locust"]["workers"]
    assert summary["processes"] == 2 and ws["client"]["processes"] == 2
    assert sorted(r["worker"] for r in rows) == [0, 1]
    assert all(r["ws"]["sent"] > 0 for r in rows)  # both workers ran devices
    for counter in COUNTERS:
        assert ws["events"][counter] == sum(r["ws"][counter] for r in rows), counter
    assert ws["ack_latency_us"]["raw"]["count"] == ws["events"]["acked"]
    logged = [m for log in logs for m in _WORKER_LINE.finditer(log)]
    assert sorted(int(m.group(1)) for m in logged) == [0, 1]
    assert sum(int(m.group(2)) for m in logged) == ws["events"]["sent"]
    assert sum(int(m.group(3)) for m in logged) == ws["events"]["acked"]
    rec = ws["reconciliation"]  # the two workers' devices never collide: every acked id is stored once
    assert rec["done"] and rec["stored"] == ws["events"]["acked"] and rec["duplicates_stored"] == 0
    # the per-second histograms of the two workers merged too: each second's acks are its latencies, and
    # the seconds add up to the merged run's histogram
    (result_file,) = results.glob("*/result-ws.json")
    result = TransportResult.from_json(json.loads(result_file.read_text()))
    series = result.series
    assert sum(row["acked"] for row in series.rows()) == ws["events"]["acked"]
    for row in series.rows():
        h = series.histogram("corrected", row["second"])
        assert h.count + h.underflow + h.overflow == row["acked"]
    total, whole = series.histogram_total("corrected"), result.tracker.corrected.coarsened(series.layout)
    assert [a.tolist() for a in total.nonzero()] == [a.tolist() for a in whole.nonzero()]
