"""Ctrl-C during ``nucleus-bench run``: the run stops early and writes what it measured.

A real ``nucleus-bench run`` process (and, sharded, its children) against the real target; SIGINT goes to
the process group the test started, as a terminal's Ctrl-C does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from timeouts import TIMEOUT_S

from bench.results.reconcile import fetch_json
from bench.target.embedded import EmbeddedTarget

#: A run far longer than the test: only Ctrl-C ends it in time.
LONG_SCENARIO = """\
name = "long"
seed = 5
duration = "10m"

[fleet]
devices = 6

[events]
per_device_rate = 20

[transport]
ack_timeout = "5s"
"""


def _stored(target: EmbeddedTarget, app_id: str) -> int:
    try:
        stats = fetch_json(f"{target.url}/app/{app_id}/stats")
    except OSError:
        return 0  # the app has no events yet
    return int(stats["stored"]["total"])


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
            while _stored(target, app_id) < 50:  # the run is sending and being acked
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
    assert events["sent"] < events["planned"]  # cut short of the ten minutes
    assert ws["client"]["processes"] == processes
