"""Both front ends, run for real on one scenario, write summary.json in one shape with one scenario block.

``nucleus-bench run`` (in this process) and a headless Locust process (a child, killed by its PID if it
outlives ``PROCESS_TIMEOUT_S``) each drive scenarios/desktop-fleet.toml at the shared reference target.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from timeouts import PROCESS_TIMEOUT_S

from bench.cli import main
from bench.results.summary import DRIVEN_KEYS
from bench.target.embedded import EmbeddedTarget

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = str(ROOT / "scenarios" / "desktop-fleet.toml")
#: Shortest run the scenario allows (its ramp is 5 s); Locust runs 3 users for 3 s.
RUN_DURATION = "5s"
USERS, LOCUST_RUN_TIME = 3, "3s"


def _start_locust(target_url: str, results: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "ws.py"), "--headless",
            "-u", str(USERS), "-r", str(USERS), "-t", LOCUST_RUN_TIME, "--only-summary", "--host", target_url,
            "--scenario", DESKTOP, "--results-dir", str(results)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for the child (bounded); its exit code and stderr."""
    try:
        _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(PROCESS_TIMEOUT_S)
    return proc.returncode, err


def _summary(results: Path) -> dict[str, Any]:
    found = sorted(results.glob("*/summary.json"))
    assert len(found) == 1, found
    doc: dict[str, Any] = json.loads(found[0].read_text())
    return doc


def _shape(obj: Any) -> Any:
    """The keys of a JSON document, nested; every value that is not an object is None."""
    return {k: _shape(v) for k, v in obj.items()} if isinstance(obj, dict) else None


def test_run_and_locust_write_one_scenario_block_and_one_schema(tmp_path: Path,
                                                                target: EmbeddedTarget) -> None:
    """Real runs of desktop-fleet: the scenario blocks agree on every key but DRIVEN_KEYS (devices are
    Locust's users, the plan lasts its run), per_device_rate is 4 events/s on both, the headers and the
    ws blocks have the same keys, and only Locust's summary has its driver block."""
    locust = _start_locust(target.url, tmp_path / "locust")
    code = main(["run", DESKTOP, "--duration", RUN_DURATION, "--transport", "ws", "--target", target.url,
                 "--out", str(tmp_path / "run"), "--no-progress"])
    locust_code, err = _finish(locust)
    assert code == 0 and locust_code == 0, err[-3000:]
    hot, loc = _summary(tmp_path / "run"), _summary(tmp_path / "locust")
    driven = set(DRIVEN_KEYS)
    assert {k: v for k, v in loc["scenario"].items() if k not in driven} == \
        {k: v for k, v in hot["scenario"].items() if k not in driven}
    assert hot["scenario"]["per_device_rate"] == loc["scenario"]["per_device_rate"] == 4.0
    assert (hot["scenario"]["devices"], hot["scenario"]["duration_s"]) == (300, 5.0)
    assert (loc["scenario"]["devices"], loc["scenario"]["duration_s"]) == (USERS, 45.0)
    assert hot["target"] == loc["target"] == {"url": target.url, "embedded": False}
    assert set(loc) - set(hot) == {"driver", "locust"} and set(hot) <= set(loc)
    assert _shape(loc["transports"]["ws"]) == _shape(hot["transports"]["ws"])
    assert hot["processes"] == loc["processes"] == 1 and hot["ok"] and loc["ok"]
