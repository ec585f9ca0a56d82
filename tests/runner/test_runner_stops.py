"""SIGTERM and a lost shard during ``nucleus-bench run``: the figures measured are written, never erased.

SIGTERM is what ``timeout``, CI runners and ``docker stop`` send, to the run's process alone: the run
treats it as the first Ctrl-C (exit 143). A shard of ``--processes N`` killed mid-run stops the run: the
others' figures are merged and written, the summary names the lost shard, exit 4. Real processes against
the real target.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from runner_helpers import LONG_SCENARIO, stored
from timeouts import TIMEOUT_S

from bench.target.embedded import EmbeddedTarget


def _shard_pids(parent: int) -> list[int]:
    """The run's shard processes: children of ``parent`` named after their shard (spawn's helpers are not)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"multiprocessing.spawn" in cmdline:
            pids.append(int(entry.name))
    return sorted(pids)


def _start(tmp_path: Path, target: EmbeddedTarget, app_id: str, processes: int) -> subprocess.Popen[bytes]:
    scenario = tmp_path / "long.toml"
    scenario.write_text(LONG_SCENARIO, encoding="utf-8")
    argv = [sys.executable, "-m", "bench.cli", "run", str(scenario), "--target", target.url, "--app-id",
            app_id, "--out", str(tmp_path / "results"), "--no-progress", "--processes", str(processes)]
    err = (tmp_path / "stderr.txt").open("wb")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    err.close()
    deadline = time.monotonic() + TIMEOUT_S
    while stored(target, app_id) < 50:  # the run is sending and being acked
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill(proc)
            pytest.fail(f"the run did not get going: {(tmp_path / 'stderr.txt').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # our own process group
    proc.wait()


def _finish(proc: subprocess.Popen[bytes], tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    try:
        code = proc.wait(timeout=TIMEOUT_S)
    finally:
        _kill(proc)
    stderr = (tmp_path / "stderr.txt").read_text()
    (run_dir,) = (tmp_path / "results").glob("*")
    return code, stderr, json.loads((run_dir / "summary.json").read_text())


def _check_identity(ws: dict[str, Any]) -> None:
    events = ws["events"]
    assert events["sent"] == events["acked"] + events["rejected"] + events["lost"] + events["in_flight"]
    assert ws["accounting"]["ok"], ws["accounting"]


@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_to_the_run_alone_writes_what_was_measured_and_exits_143(
        tmp_path: Path, target: EmbeddedTarget, app_id: str, processes: int) -> None:
    """SIGTERM to the run's own PID (the shards get no signal from outside): the run stops as on Ctrl-C."""
    proc = _start(tmp_path, target, app_id, processes)
    os.kill(proc.pid, signal.SIGTERM)
    code, stderr, summary = _finish(proc, tmp_path)
    assert code == 143, stderr
    assert "Traceback" not in stderr
    assert summary["error"].startswith("interrupted (SIGTERM)")
    ws = summary["transports"]["ws"]
    assert ws["interrupted"] is True and ws["events"]["acked"] >= 50
    assert ws["client"]["processes"] == processes and ws["client"]["lost_processes"] == []
    _check_identity(ws)


def test_sigint_to_the_parent_alone_still_collects_every_shard(tmp_path: Path, target: EmbeddedTarget,
                                                                app_id: str) -> None:
    """``kill -INT`` to the parent of a sharded run (not its group): the parent stops its shards itself."""
    proc = _start(tmp_path, target, app_id, 2)
    os.kill(proc.pid, signal.SIGINT)
    code, stderr, summary = _finish(proc, tmp_path)
    assert code == 130, stderr
    ws = summary["transports"]["ws"]
    assert ws["client"]["processes"] == 2 and ws["interrupted"] is True
    _check_identity(ws)


def test_a_killed_shard_stops_the_run_and_the_others_figures_are_written(tmp_path: Path,
                                                                         target: EmbeddedTarget,
                                                                         app_id: str) -> None:
    """kill -9 of one shard: exit 4, one line naming it, the summary lists it, the survivor's figures hold."""
    proc = _start(tmp_path, target, app_id, 2)
    shards = _shard_pids(proc.pid)
    assert len(shards) == 2, shards
    os.kill(shards[1], signal.SIGKILL)  # a process this test's run started
    code, stderr, summary = _finish(proc, tmp_path)
    assert code == 4, stderr
    assert "Traceback" not in stderr
    lost_lines = [line for line in stderr.splitlines() if "was killed by SIGKILL" in line]
    assert len(lost_lines) == 1, stderr
    ws = summary["transports"]["ws"]
    (lost,) = ws["client"]["lost_processes"]
    assert f"(pid {shards[1]}) was killed by SIGKILL" in lost and "s into the run" in lost
    assert summary["error"].startswith(lost)
    assert ws["client"]["processes"] == 1 and ws["interrupted"] is True
    assert ws["events"]["acked"] > 0 and ws["events"]["planned"] is None
    _check_identity(ws)
    # the target stored the lost shard's events too: more than the survivor's acks account for
    assert stored(target, app_id) > ws["events"]["acked"]


def test_a_target_gone_by_reconciliation_is_said_unreachable(tmp_path: Path) -> None:
    """A foreign --target that stops answering before reconciliation: the summary says unreachable and why,
    not that it is not the reference target (a real closed port on loopback)."""
    import socket

    from bench.results.transport import TransportResult
    from bench.runner.app import RunRequest, reconcile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    base = f"http://127.0.0.1:{port}"
    request = RunRequest(scenario_path="x.toml", transports=("ws",), target_url=base, reconcile_timeout_s=2.0)
    rec = reconcile(request, TransportResult(transport="ws", reported_ids=[]), base, "a" * 24, False, None)
    assert not rec.done
    assert rec.note.startswith(f"{base} unreachable:") and "refused" in rec.note, rec.note
