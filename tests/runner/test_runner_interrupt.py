"""Ctrl-C during ``nucleus-bench run``: the run stops early and writes what it measured.

A real ``nucleus-bench run`` process (and, sharded, its children) against the real target; SIGINT goes to
the process group the test started, as a terminal's Ctrl-C does.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from runner_helpers import LONG_SCENARIO, stored
from timeouts import PROCESS_TIMEOUT_S, TIMEOUT_S

from bench.target.embedded import EmbeddedTarget

ROOT = Path(__file__).resolve().parents[2]
@pytest.mark.parametrize("processes", [1, 2])
def test_ctrl_c_writes_what_was_measured_and_exits_130(tmp_path: Path, target: EmbeddedTarget, app_id: str,
                                                       processes: int) -> None:
    scenario = tmp_path / "long.toml"
    scenario.write_text(LONG_SCENARIO, encoding="utf-8")
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "bench.cli", "run", str(scenario), "--transport", "both", "--target",
            target.url, "--app-id", f"{app_id},{'f' * 24}", "--out", str(out), "--no-progress",
            "--processes", str(processes)]
    with (tmp_path / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while stored(target, app_id) < 50:  # the run is sending and being acked
                assert proc.poll() is None, "the run ended by itself"
                assert time.monotonic() < deadline, "no events stored"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)  # our own process group: the run and its shards
            code = proc.wait(timeout=TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 130, stderr
    assert "interrupted (Ctrl-C)" in stderr
    (run_dir,) = out.glob("*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["error"].startswith("interrupted (Ctrl-C)")
    assert list(summary["transports"]) == ["ws"]  # stopped there: HTTP never started
    ws = summary["transports"]["ws"]
    events = ws["events"]
    assert ws["interrupted"] is True
    assert events["acked"] >= 50 and events["lost"] == 0
    assert events["sent"] == events["acked"] + events["rejected"] + events["lost"] + events["in_flight"]
    # cut short of the ten minutes; the rest of the plan is not replayed to count it, so the exit does
    # not wait in proportion to the plan's size
    assert events["planned"] is None
    assert ws["client"]["processes"] == processes


class _HangsAfterFirst(http.server.BaseHTTPRequestHandler):
    """A --verify-url that answers its first GET (the count before the load) and never the next ones."""

    answered = 0
    hanging = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        cls = type(self)
        if cls.answered == 0:
            cls.answered += 1
            body = b'{"count": 0}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        cls.hanging.set()
        cls.release.wait(PROCESS_TIMEOUT_S)  # a black hole until the test ends

    def log_message(self, *args: object) -> None:
        pass


def test_ctrl_c_during_reconciliation_still_writes_the_load(tmp_path: Path, target: EmbeddedTarget,
                                                            app_id: str) -> None:
    """Ctrl-C while the run waits for a --verify-url that never answers: exit 130, and summary.json holds
    the whole load, interrupted, its reconciliation not done (nothing measured is lost)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HangsAfterFirst)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "results"
    count_url = f"http://127.0.0.1:{server.server_address[1]}/count"
    argv = [sys.executable, "-m", "bench.cli", "run", str(ROOT / "scenarios" / "smoke.toml"), "--transport",
            "ws", "--target", target.url, "--app-id", app_id, "--out", str(out), "--no-progress",
            "--verify-url", count_url, "--reconcile-timeout", "600"]
    try:
        with (tmp_path / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            try:
                assert _HangsAfterFirst.hanging.wait(PROCESS_TIMEOUT_S), "the run never asked for the count"
                os.killpg(proc.pid, signal.SIGINT)
                code = proc.wait(timeout=TIMEOUT_S)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    finally:
        _HangsAfterFirst.release.set()
        server.shutdown()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 130, stderr
    (run_dir,) = out.glob("*")
    ws = json.loads((run_dir / "summary.json").read_text())["transports"]["ws"]
    assert ws["interrupted"] is True and ws["accounting"]["ok"]
    assert ws["events"]["sent"] > 0 and ws["events"]["acked"] == ws["events"]["sent"]
    assert not ws["reconciliation"]["done"] and "Ctrl-C" in ws["reconciliation"]["note"]
