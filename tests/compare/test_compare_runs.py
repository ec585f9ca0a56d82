"""``nucleus-bench compare`` on real runs of the embedded target: the same build is no regression, a target
that holds each ack 20 ms longer is one, named by its latency metrics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import PROCESS_TIMEOUT_S

from bench.cli import main

#: Five seconds (the fewest a verdict resamples), 400 events/s: enough seconds and events for intervals.
SCENARIO = """\
name = "compare"
seed = 3
duration = "5s"

[fleet]
devices = 20
ramp = "200ms"

[events]
per_device_rate = 20
"""

#: The same allowance for both comparisons. Two runs of one build on two shared cores differ by more than
#: 5 % at sub-millisecond latencies (run to run, +14 % on p50 was measured), so the test tells the build's
#: noise from a 20 ms ack delay (p50 from ~1 ms to ~21 ms) with an allowance between the two.
ALLOWANCE = "100%"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real runs: two of the same build and target, one whose target delays every ack by 20 ms."""
    root = tmp_path_factory.mktemp("compare-runs")
    scenario = root / "compare.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    out: dict[str, Path] = {}
    for name, extra in (("a", []), ("b", []), ("slow", ["--target-arg=--ack-delay-ms=20"])):
        code = main(["run", str(scenario), "--out", str(root / name), "--no-progress", "--target-store",
                     "memory", *extra])
        assert code == 0, name
        (out[name],) = (root / name).iterdir()
    return out


def compare(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``nucleus-bench compare ARGS`` in its own process: its exit status and output."""
    return subprocess.run([sys.executable, "-m", "bench", "compare", *map(str, args)], capture_output=True,
                          text=True, timeout=PROCESS_TIMEOUT_S, check=False)


def test_a_run_compared_with_itself_changes_nothing(runs: dict[str, Path]) -> None:
    """The same run on both sides: paired seconds, every interval exactly 0, no change, exit 0."""
    proc = compare(runs["a"], runs["a"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no regression" in proc.stdout and "regressed" not in proc.stdout
    assert "[+0.0%, +0.0%]" in proc.stdout


def test_two_runs_of_one_build_are_no_regression(runs: dict[str, Path]) -> None:
    """Two runs of one build: no regression beyond the allowance. The tails of two 5-second runs are left a
    wide one: on a shared 2-core machine the 99.9th percentile of a few thousand acks moves with whatever
    else runs in that second (+620 % seen between two such runs while other test processes ran), which is a
    change of the machine, not of the build; the 20 ms ack delay below still shows at every quantile."""
    proc = compare(runs["a"], runs["b"], "--max-regression", ALLOWANCE, "--max-regression", "*p99.9=2000%")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no regression" in proc.stdout.splitlines()[-1]


def test_a_slower_ack_is_a_regression_named_by_its_metric(runs: dict[str, Path]) -> None:
    """--ack-delay-ms=20 on the target: exit 1, and the conclusion names the latency that regressed."""
    proc = compare(runs["a"], runs["slow"], "--max-regression", ALLOWANCE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    conclusion = proc.stdout.splitlines()[-1]
    assert conclusion.startswith("REGRESSION: ") and "ws p50 +" in conclusion and "ws raw-p50 +" in conclusion
    assert "lost" not in conclusion and "throughput" not in conclusion  # slower, not lossier
