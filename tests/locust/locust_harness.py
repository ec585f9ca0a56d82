"""What the Locust tests share: real reference targets and real headless Locust processes.

Every Locust process is a child started with ``[sys.executable, "-m", "locust", ...]`` on loopback, bounded
by ``PROCESS_TIMEOUT_S`` and killed by its PID if it outlives it or the test fails. (A module, not a
conftest.py: mypy checks the tests, and a second conftest module would clash with tests/conftest.py.)

Targets come from tests/conftest.py (``target``, ``target_factory``); ``run_locust_fixture()`` makes the
fixture that runs Locust, assigned in each test module (``run_locust = run_locust_fixture()``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # Locust's own dependency
import pytest
from timeouts import PROCESS_TIMEOUT_S

from bench.results.reconcile import fetch_json
from bench.target.embedded import EmbeddedTarget

TargetFactory = Callable[..., EmbeddedTarget]

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILES = ROOT / "locustfiles"
SMOKE = ROOT / "scenarios" / "smoke.toml"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def locust_argv(locustfile: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / locustfile), *args]


def start(argv: Sequence[str], cwd: Path = ROOT) -> subprocess.Popen[str]:
    return subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Kill a child by its PID if it still runs, and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(PROCESS_TIMEOUT_S)


@dataclass
class LocustRun:
    """A finished Locust process: exit code, output, and the results it wrote."""

    returncode: int
    stdout: str
    stderr: str
    results_dir: Path

    def summary(self) -> dict[str, Any]:
        """The one summary.json the run wrote."""
        found = sorted(self.results_dir.glob("*/summary.json"))
        assert len(found) == 1, f"expected one summary.json, found {found}\n{self.stderr[-3000:]}"
        doc: dict[str, Any] = json.loads(found[0].read_text())
        return doc


def finish(proc: subprocess.Popen[str], results_dir: Path) -> LocustRun:
    """Wait for a Locust child (bounded), then return what it did."""
    try:
        out, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        stop(proc)
    return LocustRun(proc.returncode, out, err, results_dir)


RunLocust = Callable[..., LocustRun]


def run_locust_fixture() -> Any:
    """A fixture that runs one headless Locust process to its end:
    ``run_locust("ws.py", "--host", url, users=3, run_time="4s")``."""

    @pytest.fixture
    def run_locust(tmp_path: Path) -> RunLocust:
        counter = iter(range(1000))

        def run(locustfile: str, *args: str, users: int = 3, run_time: str = "4s",
                scenario: Path = SMOKE) -> LocustRun:
            results = tmp_path / f"results-{next(counter)}"
            argv = locust_argv(locustfile, "--headless", "-u", str(users), "-r", str(users), "-t", run_time,
                               "--only-summary", "--scenario", str(scenario), "--results-dir", str(results),
                               *args)
            return finish(start(argv), results)

        return run

    return run_locust


def wait_until(probe: Callable[[], Any], what: str, poll_s: float = 0.05) -> Any:
    """Poll ``probe`` until it returns something truthy (returned), or fail after ``PROCESS_TIMEOUT_S``.

    For state of another process that announces nothing (a port that starts answering, statistics that
    fill up); the test asserts on the returned value once.
    """
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {PROCESS_TIMEOUT_S:g} s waiting for {what}")


def smoke_with_ack_timeout(tmp_path: Path, ack_timeout: str) -> Path:
    """The smoke scenario with another ack timeout (bounds the drain when acks can no longer come)."""
    path = tmp_path / f"smoke-ack-{ack_timeout}.toml"
    path.write_text(SMOKE.read_text().replace('ack_timeout = "5s"', f'ack_timeout = "{ack_timeout}"'))
    assert f'ack_timeout = "{ack_timeout}"' in path.read_text()
    return path


def app_stats(target: EmbeddedTarget, app_id: str) -> dict[str, Any]:
    """The reference target's ``/app/{appId}/stats`` (stored events, distinct devices...)."""
    doc: dict[str, Any] = fetch_json(f"{target.url}/app/{app_id}/stats", timeout_s=PROCESS_TIMEOUT_S)
    return doc


def devices_storing(target: EmbeddedTarget, app_id: str, devices: int) -> Callable[[], bool]:
    """A ``wait_until`` probe: at least ``devices`` distinct devices have events stored in the app."""
    return lambda: int(app_stats(target, app_id)["devices"]) >= devices


def gone(pids: Sequence[int]) -> bool:
    """None of these processes runs any more (a zombie awaiting its reaper counts as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True
