"""Locust's web UI with the device-fleet locustfile: the custom arguments show, a swarm runs devices."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from locust_harness import ROOT, SMOKE, LocustRun, free_port, locust_argv, stop, wait_until
from timeouts import PROCESS_TIMEOUT_S

from bench.target.embedded import EmbeddedTarget


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=PROCESS_TIMEOUT_S) as resp:
            body: bytes = resp.read()
            return body
    except OSError:  # not listening yet
        return None


def _ws_rows(base: str) -> list[dict[str, Any]]:
    body = _get(f"{base}/stats/requests")
    stats = json.loads(body)["stats"] if body else []
    return [row for row in stats
            if row["method"] == "WS" and row["name"] != "connect" and row["num_requests"]]


def _swarm(base: str, target: EmbeddedTarget, users: int) -> None:
    """The form's Start (or, while a test runs, its Edit) with ``users`` users of the smoke scenario."""
    form = urllib.parse.urlencode({"user_count": users, "spawn_rate": users, "host": target.url,
                                   "scenario": str(SMOKE)}).encode()
    with urllib.request.urlopen(f"{base}/swarm", data=form, timeout=PROCESS_TIMEOUT_S) as resp:
        assert json.loads(resp.read())["success"] is True


def _users(base: str) -> int:
    body = _get(f"{base}/stats/requests")
    return int(json.loads(body)["user_count"]) if body else 0


def test_web_ui_runs_the_scenario_typed_into_its_form(target: EmbeddedTarget, tmp_path: Path) -> None:
    """The form lists --scenario; a swarm with another scenario runs it and shows WS rows with latencies.
    An Edit to more users mid-run is what the summary records (devices and users that ran), and SIGTERM
    while it runs ends it as an interrupted run (exit 130)."""
    port, results = free_port(), tmp_path / "results"
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "locust.log", "w") as log:
        proc = subprocess.Popen(locust_argv("ws.py", "--web-host", "127.0.0.1", "--web-port", str(port),
                                            "--host", target.url, "--results-dir", str(results)),
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        page = wait_until(lambda: _get(base + "/"), "the web UI to answer").decode()
        assert '"scenario"' in page and "desktop-fleet.toml" in page  # the form's field and its default
        _swarm(base, target, 2)
        rows = wait_until(lambda: _ws_rows(base), "WS rows in /stats/requests")
        assert all(row["avg_response_time"] > 0 for row in rows)
        _swarm(base, target, 4)  # Edit: 4 users from now on
        wait_until(lambda: _users(base) == 4, "4 users running after the Edit")
        os.kill(proc.pid, signal.SIGTERM)  # Locust shuts down gracefully and writes the summary
        proc.wait(PROCESS_TIMEOUT_S)
    finally:
        stop(proc)
    assert proc.returncode == 130
    summary = LocustRun(proc.returncode, "", "", results).summary()
    assert summary["scenario"]["name"] == "smoke"
    assert (summary["scenario"]["devices"], summary["locust"]["users"]) == (4, 4)
    assert summary["transports"]["ws"]["wire"]["connects"] >= 4
    assert summary["transports"]["ws"]["events"]["acked"] > 0
    assert summary["transports"]["ws"]["interrupted"] is True  # SIGTERM came while the swarm ran
