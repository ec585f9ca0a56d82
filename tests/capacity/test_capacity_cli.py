"""``nucleus-bench capacity`` end to end against the real embedded target, with a fixed injected ack delay.

A fixed ``--ack-delay-ms=50`` holds every ack 50 ms whatever the load, so the delay alone says where the knee
must be: with an objective below 50 ms no load meets it, with one far above it every load does and the
search climbs to the cap it is given. Steps of 2 s keep each search to a few seconds.
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
from timeouts import PROCESS_TIMEOUT_S, TIMEOUT_S

from bench.cli import main

ROOT = Path(__file__).resolve().parents[2]
DELAY_MS = 50
#: The per-second histograms' resolution (bench.metrics.SECOND_LAYOUT): a 50 ms ack reads back within 3.2 %.
RESOLUTION = 0.032

SCENARIO = """\
name = "capacity-fast"
seed = 3
duration = "2s"

[fleet]
devices = 2
ramp = "200ms"

[events]
per_device_rate = 20

[transport]
heartbeat = "1m"
http_flush = "250ms"
ack_timeout = "2s"
"""

FAST = ["--step-duration", "2s", "--warmup", "500ms", f"--target-arg=--ack-delay-ms={DELAY_MS}",
        "--target-store", "memory", "--no-progress"]


def _scenario(tmp_path: Path) -> str:
    path = tmp_path / "fast.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    return str(path)


def _capacity(tmp_path: Path) -> dict[str, Any]:
    (run_dir,) = (tmp_path / "results").glob("*-capacity-*")
    doc: dict[str, Any] = json.loads((run_dir / "capacity.json").read_text())
    return doc


def test_no_load_meets_an_objective_below_the_ack_delay(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """p99 <= 20 ms against acks held 50 ms: every step fails on latency, the search descends to one device
    and reports that no load met the objective, the target being the limit."""
    code = main(["capacity", _scenario(tmp_path), "--slo-p99", "20ms", "--start", "2", *FAST,
                 "--out", str(tmp_path / "results")])
    out = capsys.readouterr().out
    assert code == 0
    ws = _capacity(tmp_path)["transports"]["ws"]
    assert [s["devices"] for s in ws["steps"]] == [2, 1]
    for s in ws["steps"]:
        assert not s["ok"] and s["limit"] == "target" and s["reason"].startswith("latency")
        assert s["p99_us"] >= DELAY_MS * 1000 * (1 - RESOLUTION)  # the delay holds every ack
        assert s["lost"] == 0 and s["errors"] == 0
    knee = ws["knee"]
    assert knee["devices"] is None and knee["rate"] is None
    assert knee["limit"] == "target" and knee["ending"] == "nothing-met"
    assert knee["broke_at"]["devices"] == 1
    assert "ws: no load met the objective" in out
    assert "ws step 1: 2 devices (40 events/s)" in out


def test_the_scenarios_objective_is_the_searchs_when_no_flag_gives_one(tmp_path: Path) -> None:
    """[objective] p99 = "20ms" in the scenario, no --slo-p99: the search judges by it (one step of one
    device, missed against acks held 50 ms) and capacity.json records it. Without a warm-up given, each step
    has its own: its fleet's ramp + 2 s, at most half the step (here the half: 1 s of 2)."""
    path = tmp_path / "objective.toml"
    path.write_text(SCENARIO + '\n[objective]\np99 = "20ms"\nmax_loss = 0.01\n', encoding="utf-8")
    fast = [arg for arg in FAST if arg not in ("--warmup", "500ms")]
    code = main(["capacity", str(path), "--start", "1", "--max", "1", *fast,
                 "--out", str(tmp_path / "results")])
    assert code == 0
    doc = _capacity(tmp_path)
    assert doc["slo"] == {"p99_us": 20_000.0, "max_loss": 0.01} and doc["search"]["warmup_s"] is None
    (step,) = doc["transports"]["ws"]["steps"]
    assert not step["ok"] and step["reason"].startswith("latency") and step["reason"].endswith("> 20.0 ms")
    assert step["warmup_s"] == 1.0


def test_the_search_climbs_to_the_cap_when_the_objective_is_above_the_delay(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """p99 <= 1 s against acks held 50 ms: every step meets it, over both transports, up to --max; the answer
    is at least the cap, with no limit found. capacity.json has the documented shape."""
    code = main(["capacity", _scenario(tmp_path), "--slo-p99", "1s", "--start", "2", "--max", "4",
                 "--transport", "both", *FAST, "--out", str(tmp_path / "results")])
    out = capsys.readouterr().out
    assert code == 0
    doc = _capacity(tmp_path)
    assert doc["schema"] == "nucleus-bench/capacity/1" and doc["scenario"]["name"] == "capacity-fast"
    assert doc["slo"] == {"p99_us": 1_000_000.0, "max_loss": 0.0}
    assert list(doc["transports"]) == ["ws", "http"] and not doc["interrupted"]
    for name, block in doc["transports"].items():
        assert [(s["devices"], s["rate"]) for s in block["steps"]] == [(2, 40.0), (4, 80.0)], name
        assert all(s["ok"] and s["limit"] is None and s["lost"] == 0 for s in block["steps"]), name
        assert all(s["warmup_s"] == 0.5 for s in block["steps"]), name  # --warmup 500ms, every step
        assert all(s["p99_us"] >= DELAY_MS * 1000 * (1 - RESOLUTION) for s in block["steps"]), name
        knee = block["knee"]
        assert (knee["devices"], knee["rate"], knee["limit"], knee["ending"]) == (4, 80.0, "none", "cap")
        assert knee["broke_at"] is None
        assert f"{name}: at least 4 devices (80 events/s) within the objective (no step failed up to" in out
    (run_dir,) = (tmp_path / "results").glob("*-capacity-*")
    assert sorted(p.name for p in (run_dir / "steps").iterdir()) == [
        "http-01.json", "http-02.json", "ws-01.json", "ws-02.json"]


@pytest.mark.parametrize(("argv", "names"), [
    (["--slo-p99", "soon"], "bad duration 'soon'"),
    (["--slo-p99", "0ms"], "--slo-p99 must be positive"),
    (["--slo-p99", "1s", "--max-loss", "2"], "--max-loss '2'"),
    (["--slo-p99", "1s", "--min", "8", "--max", "4"], "--max 4 is below --min 8"),
    (["--slo-p99", "1s", "--factor", "1"], "--factor must be above 1"),
    (["--slo-p99", "1s", "--step-duration", "2s", "--warmup", "3s"], "--warmup 3s must be shorter"),
    (["--slo-p99", "1s", "--step-duration", "100ms"], "shorter than the ramp"),
    (["--slo-p99", "1s", "--target", "http://127.0.0.1:1"], "target http://127.0.0.1:1 is unreachable"),
    (["--slo-p99", "1s", "--target-arg=--bogus"], "the embedded target did not start"),
    ([], "capacity needs an objective: --slo-p99, or an [objective] p99 in "),
    (["--max-loss", "0.1"], "--max-loss needs an objective"),
])
def test_bad_input_is_one_line_and_nothing_is_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   argv: list[str], names: str) -> None:
    """A bad flag or target is refused in one line naming it, exit 2, before any step or file is written."""
    code = main(["capacity", _scenario(tmp_path), *argv, "--out", str(tmp_path / "results"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and names in err, err
    assert err.startswith("nucleus-bench capacity: error: "), err
    assert not list((tmp_path / "results").glob("*"))  # --out may exist (checked writable), empty


def test_ctrl_c_keeps_the_steps_done_so_far(tmp_path: Path) -> None:
    """SIGINT in the middle of a search (a real process, its own process group): exit 130, capacity.json
    holds every finished step and the bracket they give, the table is printed."""
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "bench.cli", "capacity", _scenario(tmp_path), "--slo-p99", "1s",
            "--start", "1", "--max", "64", *FAST, "--out", str(out)]
    with (tmp_path / "stdout.txt").open("wb") as stdout, (tmp_path / "stderr.txt").open("wb") as stderr:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, start_new_session=True, cwd=ROOT)
        try:
            deadline = time.monotonic() + PROCESS_TIMEOUT_S
            while not _steps_done(out):  # the first step has ended; the second is running
                assert proc.poll() is None, "the search ended by itself"
                assert time.monotonic() < deadline, "no step ended"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    stdout_text, stderr_text = (tmp_path / "stdout.txt").read_text(), (tmp_path / "stderr.txt").read_text()
    assert code == 130, stderr_text
    assert "interrupted (Ctrl-C)" in stderr_text and "Traceback" not in stderr_text
    doc = json.loads(next(out.glob("*-capacity-*")).joinpath("capacity.json").read_text())
    ws = doc["transports"]["ws"]
    assert doc["interrupted"] and ws["steps"] and all(s["ok"] for s in ws["steps"])
    assert ws["knee"]["ending"] == "interrupted" and ws["knee"]["devices"] == ws["steps"][-1]["devices"]
    assert "ws step 1: 1 device" in stdout_text and "interrupted (Ctrl-C) after" in stdout_text


def _steps_done(out: Path) -> bool:
    for path in out.glob("*-capacity-*/capacity.json"):
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            return False
        if doc["transports"].get("ws", {}).get("steps"):
            return True
    return False
