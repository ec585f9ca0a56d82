"""Helpers of the runner tests: a fast scenario, the CLI called in-process, its results read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.results.reconcile import fetch_json
from bench.target.embedded import EmbeddedTarget

#: Two seconds, six devices, every event type, heartbeats, short flushes and a one-second ack timeout.
FAST_SCENARIO = """\
name = "fast"
seed = 11
duration = "2s"

[fleet]
devices = 6
ramp = "200ms"

[events]
per_device_rate = 15
userid_share = 0.05
props_share = 0.05

[errors]
share = 0.05
stack_bytes = [200, 1000]

[transport]
heartbeat = "500ms"
http_flush = "500ms"
ack_timeout = "1s"
"""


def write_scenario(tmp_path: Path, text: str = FAST_SCENARIO) -> str:
    path = tmp_path / "fast.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_cli(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any] | None, Path | None]:
    """``nucleus-bench run ARGS --out tmp --no-progress``: exit code, summary.json, run directory."""
    out = tmp_path / "results"
    code = main(["run", *args, "--out", str(out), "--no-progress"])
    runs = sorted(out.glob("*")) if out.exists() else []
    if not runs:
        return code, None, None
    return code, json.loads((runs[-1] / "summary.json").read_text()), runs[-1]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The error the command printed: exactly one line on stderr."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("nucleus-bench")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


#: A run far longer than a test: only a signal ends it in time (the Ctrl-C and SIGTERM tests).
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


def stored(target: EmbeddedTarget, app_id: str) -> int:
    """How many events of ``app_id`` the reference target has stored (0 before the app has any)."""
    try:
        stats = fetch_json(f"{target.url}/app/{app_id}/stats")
    except OSError:
        return 0  # the app has no events yet
    return int(stats["stored"]["total"])
