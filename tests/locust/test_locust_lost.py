"""Locust processes that die, differ or are stopped mid-run: no lost worker or signal erases a number.

Every process is real (masters, workers, forked workers) on loopback, against a real reference target; each
run is a few seconds of the smoke scenario, and every wait is bounded (``wait_until``, ``finish``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # Locust's own dependency
from locust_harness import (
    SMOKE,
    devices_storing,
    finish,
    free_port,
    gone,
    locust_argv,
    run_locust_fixture,
    smoke_with_ack_timeout,
    start,
    stop,
    wait_until,
)

from bench.locust_glue.roster import NO_HEARTBEAT, NO_RESULT
from bench.target.embedded import EmbeddedTarget

run_locust = run_locust_fixture()
_WORKER_LINE = re.compile(r"nucleus-bench worker (\d+) ws: sent (\d+) = acked (\d+)")


def _app() -> str:
    """An appId of this test's own on the shared target (its stats tell when this run's devices store)."""
    return f"lost-{secrets.token_hex(6)}"


def _master_argv(port: int, results: Path, target: EmbeddedTarget, app: str, *args: str,
                 scenario: Path = SMOKE, users: int = 4, run_time: str = "30m") -> list[str]:
    return locust_argv("ws.py", "--master", "--headless", "-u", str(users), "-r", str(users), "-t", run_time,
                       "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--only-summary",
                       "--scenario", str(scenario), "--results-dir", str(results), "--host", target.url,
                       "--app-id", app, *args)


def _worker_argv(port: int, locustfile: str = "ws.py", *args: str) -> list[str]:
    return locust_argv(locustfile, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                       *args)


def _partials(results: Path) -> list[dict[str, Any]]:
    """The partial summaries workers wrote themselves (``...-worker<N>/summary.json``)."""
    return [json.loads(p.read_text()) for p in sorted(results.glob("*-worker*/summary.json"))]


def test_a_worker_killed_mid_run_is_listed_with_when_and_the_run_fails(target: EmbeddedTarget,
                                                                       tmp_path: Path) -> None:
    """kill -9 of one of two workers: missing_workers names it with when it was last heard and lost, the
    summary's error says its events are missing, the exit code is 1, and the target's stored count is the
    merged acks plus what the lost worker sent (stored but never acked), which the note says."""
    port, results, app = free_port(), tmp_path / "results", _app()
    scenario = smoke_with_ack_timeout(tmp_path, "1s")  # a worker lost at the very end costs 1 s + grace
    master = start(_master_argv(port, results, target, app, "--expect-workers", "2", scenario=scenario,
                                run_time="8s"))
    workers = [start(_worker_argv(port)) for _ in range(2)]
    try:
        wait_until(devices_storing(target, app, 4), "both workers' devices storing events")
        os.kill(workers[1].pid, signal.SIGKILL)
        run = finish(master, results)
        survivor = finish(workers[0], results)
    finally:
        for proc in (master, *workers):
            stop(proc)
    assert run.returncode == 1, run.stderr[-3000:]
    summary = run.summary()
    ((kept, _, acked),) = [m.groups() for m in _WORKER_LINE.finditer(survivor.stderr)]
    (lost,) = summary["locust"]["missing_workers"]
    assert lost["worker"] == 1 - int(kept) and lost["devices"] == 2
    assert lost["reason"] in (NO_HEARTBEAT, NO_RESULT)  # the latter when it was killed at the very end
    assert lost["last_heard_after_s"] is not None and lost["last_heard_after_s"] < lost["lost_after_s"]
    assert lost["lost_at"] > summary["started_at"]
    error = summary["error"]
    assert error.startswith(f"worker {lost['worker']} ") and "not in these figures" in error
    assert any(line.startswith("lost: worker") for line in run.stdout.splitlines()), run.stdout
    assert (summary["scenario"]["devices"], summary["locust"]["users"], summary["processes"]) == (4, 4, 1)
    ws = summary["transports"]["ws"]
    assert ws["events"]["acked"] == int(acked)  # the survivor's acks only
    rec = ws["reconciliation"]
    assert rec["done"] and rec["acked_not_stored"] == 0
    assert rec["stored"] == ws["events"]["acked"] + rec["stored_not_acked"] and rec["stored_not_acked"] > 0
    assert f"lost worker(s) {lost['worker']}" in rec["note"]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("ws: reconciliation")]
    assert line.endswith(f"({rec['note']})")  # the terminal's reconciliation line says whose the gap is


def test_a_worker_running_another_locustfile_is_refused_in_one_line(target: EmbeddedTarget,
                                                                    tmp_path: Path) -> None:
    """A worker started with http.py against a ws.py master is refused at connect (one line each side,
    exit 2); the master waits for a worker that matches and runs the whole fleet on it."""
    port, results, app = free_port(), tmp_path / "results", _app()
    master = start(_master_argv(port, results, target, app, "--expect-workers", "1", users=2, run_time="3s"))
    good = None
    try:
        bad = finish(start(_worker_argv(port, "http.py")), results)
        good = start(_worker_argv(port))
        run = finish(master, results)
        finish(good, results)
    finally:
        for proc in (master, good):
            if proc is not None:
                stop(proc)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    (line,) = [line for line in bad.stderr.splitlines() if "nucleus-bench" in line]
    assert line == ("nucleus-bench: error: the master refused this worker: it runs user classes HttpDevice, "
                    "the master runs WsDevice")
    assert len([line for line in run.stderr.splitlines() if "refused worker" in line]) == 1
    assert run.returncode == 0, run.stderr[-3000:]
    summary = run.summary()
    assert summary["error"] is None and summary["locust"]["missing_workers"] == []
    assert (summary["processes"], summary["scenario"]["devices"], summary["locust"]["users"]) == (1, 2, 2)


def test_a_worker_whose_master_is_killed_exits_1_with_its_own_partial_result(target: EmbeddedTarget,
                                                                             tmp_path: Path) -> None:
    """kill -9 of the master: the worker stops within --master-timeout, drains, writes its part of the run
    under the results dir (error and interrupted set, accounting whole) and exits 1."""
    port, results, app = free_port(), tmp_path / "results", _app()
    master = start(_master_argv(port, results, target, app, "--expect-workers", "1", users=2))
    worker = start(_worker_argv(port, "ws.py", "--master-timeout", "3"))
    try:
        wait_until(devices_storing(target, app, 2), "the worker's devices storing events")
        os.kill(master.pid, signal.SIGKILL)
        master.wait()
        run = finish(worker, results)
    finally:
        for proc in (master, worker):
            stop(proc)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "nucleus-bench: the master is gone (no heartbeat from the master" in run.stderr
    assert not list(results.glob("*-smoke/summary.json"))  # the master wrote nothing
    (partial,) = _partials(results)
    assert partial["error"].startswith("the master was lost (no heartbeat") and partial["processes"] == 1
    ws = partial["transports"]["ws"]
    assert ws["interrupted"] and ws["accounting"]["ok"] and ws["events"]["acked"] > 0
    assert ws["reconciliation"]["done"] is False and "master was lost" in ws["reconciliation"]["note"]


def test_processes_dial_the_master_bind_port_and_never_outlive_their_master(target: EmbeddedTarget,
                                                                            tmp_path: Path) -> None:
    """--processes 2 with --master-bind-port only: the forked workers reach the master on that port and
    run; kill -9 of the master and both exit at once, each writing its partial result: no child lingers."""
    port, results, app = free_port(), tmp_path / "results", _app()
    master = start(locust_argv("ws.py", "--processes", "2", "--headless", "-u", "4", "-r", "4", "-t", "30m",
                               "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                               "--only-summary", "--scenario", str(SMOKE), "--results-dir", str(results),
                               "--host", target.url, "--app-id", app))
    children: list[int] = []
    try:
        wait_until(devices_storing(target, app, 4), "both forked workers' devices storing events")
        children = [child.pid for child in psutil.Process(master.pid).children()]
        os.kill(master.pid, signal.SIGKILL)
        run = finish(master, results)  # its pipes close when the forked workers holding them exit too
        wait_until(lambda: gone(children), "the forked workers to exit")
    finally:
        stop(master)
        for pid in children:
            if not gone([pid]):
                os.kill(pid, signal.SIGKILL)
    assert len(children) == 2
    assert run.stderr.count("nucleus-bench: the master is gone (the master process") == 2, run.stderr[-3000:]
    partials = _partials(results)
    assert len(partials) == 2 and all(p["transports"]["ws"]["events"]["acked"] > 0 for p in partials)


def test_sigterm_to_the_master_writes_an_interrupted_summary_and_exits_130(target: EmbeddedTarget,
                                                                           tmp_path: Path) -> None:
    """SIGTERM to a master mid-run is the first Ctrl-C: every worker drains, the summary is written and
    marked interrupted, the exit code is 130; the worker, told to quit, exits 0."""
    port, results, app = free_port(), tmp_path / "results", _app()
    master = start(_master_argv(port, results, target, app, "--expect-workers", "1", users=2))
    worker = start(_worker_argv(port))
    try:
        wait_until(devices_storing(target, app, 2), "the worker's devices storing events")
        os.kill(master.pid, signal.SIGTERM)
        run = finish(master, results)
        quit_worker = finish(worker, results)
    finally:
        for proc in (master, worker):
            stop(proc)
    assert run.returncode == 130, run.stderr[-3000:]
    assert quit_worker.returncode == 0, quit_worker.stderr[-3000:]
    summary = run.summary()
    ws = summary["transports"]["ws"]
    assert ws["interrupted"] is True and summary["error"] is None and ws["accounting"]["ok"]
    assert ws["events"]["acked"] > 0 and summary["processes"] == 1
    assert any(line.startswith("interrupted:") for line in run.stdout.splitlines()), run.stdout


def test_a_target_down_at_reconciliation_is_reported_unreachable(run_locust: Any, tmp_path: Path) -> None:
    """The target stops before the run ends: reconciliation is not done, and says the target was
    unreachable (connection refused), not that it is not the reference target."""
    target = EmbeddedTarget(store="memory").start()
    try:
        url = target.url
    finally:
        target.stop()  # down before Locust starts: every device fails to connect, and so does the read-back
    run = run_locust("ws.py", "--host", url, users=1, run_time="1s",
                     scenario=smoke_with_ack_timeout(tmp_path, "1s"))
    rec = run.summary()["transports"]["ws"]["reconciliation"]
    assert rec["done"] is False and rec["note"] == f"{url} unreachable: connection refused"
    assert f"ws: reconciliation not done ({url} unreachable: connection refused)" in run.stdout
