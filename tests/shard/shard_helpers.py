"""Helpers of the shard tests: ``nucleus-bench`` as real processes, and the run directories they write."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from timeouts import PROCESS_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
#: Five devices for three seconds, every event type, session changes and heartbeats (scenarios/README.md).
SMOKE = str(ROOT / "scenarios" / "smoke.toml")


def bench(*args: str) -> list[str]:
    """The command line of ``nucleus-bench ARGS`` in a fresh interpreter of this tree."""
    return [sys.executable, "-m", "bench", *args]


def run_all(commands: Sequence[Sequence[str]], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at once (as the pods of a Job start), then wait for each; bounded in time."""
    procs = [subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
             for cmd in commands]
    done = []
    try:
        for cmd, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(timeout=2 * PROCESS_TIMEOUT_S)
            done.append(subprocess.CompletedProcess(list(cmd), proc.returncode, out, err))
    finally:
        for proc in procs:  # our own children, by their handles: none outlives a failed test
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


def summary(run_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return result


def only_run(out: Path) -> Path:
    """The one run directory under ``out``."""
    runs = [p for p in out.iterdir() if (p / "summary.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def one_line_error(err: str) -> str:
    """The error a command printed on stderr: exactly one ``nucleus-bench ...: error:`` line, no traceback."""
    lines = [line for line in err.strip().splitlines() if line.startswith("nucleus-bench")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
