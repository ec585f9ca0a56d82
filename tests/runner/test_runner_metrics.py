"""``run --metrics-port``: live figures in the Prometheus text format, scraped over HTTP from a real run."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from runner_helpers import one_line_error
from timeouts import PROCESS_TIMEOUT_S, TIMEOUT_S

from bench.cli import main
from bench.metrics import Histogram
from bench.runner.live import BOUNDS_S, buckets
from bench.runner.procs import merge_snapshots
from bench.target.embedded import EmbeddedTarget

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "scenarios" / "smoke.toml")
QUANTILES = {"0.5": "p50", "0.9": "p90", "0.99": "p99", "0.999": "p999"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _metrics_url(stderr_path: Path, proc: subprocess.Popen[bytes]) -> str:
    """The endpoint's URL, from the line the run prints before any load."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in stderr_path.read_text().splitlines():
            if "live metrics (Prometheus) at " in line:
                return line.rsplit(" ", 1)[1]
        assert proc.poll() is None, stderr_path.read_text()
        time.sleep(0.05)
    raise AssertionError("the run never said where its metrics are")


def _scrape_until_exit(url: str, proc: subprocess.Popen[bytes]) -> list[Samples]:
    """Scrape ten times a second until the run exits (it holds until a scrape reads its last figures)."""
    seen: list[Samples] = []
    deadline = time.monotonic() + 2 * PROCESS_TIMEOUT_S
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the run did not end"
        with contextlib.suppress(OSError):  # the endpoint closed between the poll and the scrape: it ends
            seen.append(_scrape(url))
        time.sleep(0.1)
    return seen


@pytest.mark.parametrize("processes", [1, 2])
def test_scraped_counters_rise_and_end_equal_to_the_summary(tmp_path: Path, target: EmbeddedTarget,
                                                            app_id: str, processes: int) -> None:
    """During a real run the endpoint serves counters that rise; its final figures (counters, quantiles
    raw and corrected, the histogram's count) are summary.json's; with processes the parent serves all."""
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "bench", "run", SMOKE, "--target", target.url, "--app-id", app_id, "--out",
            str(out), "--no-progress", "--processes", str(processes), "--metrics-port", "0",
            "--metrics-hold", str(PROCESS_TIMEOUT_S)]
    err_path = tmp_path / "stderr.txt"
    with err_path.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        try:
            url = _metrics_url(err_path, proc)
            assert url.startswith("http://127.0.0.1:")
            seen = _scrape_until_exit(url, proc)
            code = proc.wait(timeout=TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = err_path.read_text()
    assert code == 0, stderr
    assert "serving the final metrics until scraped" in stderr
    (run_dir,) = out.glob("*")
    ws = json.loads((run_dir / "summary.json").read_text())["transports"]["ws"]
    sent = [v for s in seen if (v := _get(s, "nucleus_bench_sent_events_total", transport="ws")) is not None]
    assert sent == sorted(sent) and any(0 < v < ws["events"]["sent"] for v in sent), sent  # rising
    final = [s for s in seen if _get(s, "nucleus_bench_transport_finished", transport="ws") == 1.0]
    assert final, "no scrape saw the final figures"
    _check_final(final[-1], ws, app_id)


def _check_final(samples: Samples, ws: dict[str, Any], app_id: str) -> None:
    events = ws["events"]
    for key in ("sent", "acked", "rejected", "lost"):
        assert _get(samples, f"nucleus_bench_{key}_events_total", transport="ws") == events[key], key
    assert _get(samples, "nucleus_bench_in_flight_events", transport="ws") == events["in_flight"] == 0
    for kind in ("corrected", "raw"):
        want = ws["ack_latency_us"][kind]
        for label, key in QUANTILES.items():
            got = _get(samples, "nucleus_bench_ack_latency_quantile_seconds", transport="ws", kind=kind,
                       quantile=label)
            assert got is not None and math.isclose(got * 1e6, want[key], rel_tol=1e-9), (kind, key)
        count = _get(samples, "nucleus_bench_ack_latency_seconds_count", transport="ws", kind=kind)
        assert count == want["count"] + want["underflow"] + want["overflow"] == events["acked"]
    info = _get(samples, "nucleus_bench_info", transport="ws", scenario="smoke", app_id=app_id, shard="")
    assert info == 1.0


def test_a_taken_metrics_port_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--metrics-port on a port something else holds: one line naming it, exit 2, before any load."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["run", SMOKE, "--target", "http://127.0.0.1:9", "--metrics-port", str(port),
                     "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in one_line_error(capsys)
    assert not any((tmp_path / "out").glob("*/summary.json"))


def test_without_the_flag_prometheus_client_is_not_loaded() -> None:
    """Off by default: the run's modules load no prometheus_client (nothing of the endpoint is imported)."""
    probe = ("import sys, bench.runner.app, bench.runner.engine, bench.runner.procs, bench.runner.cli; "
             "print('prometheus_client' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          timeout=PROCESS_TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_histogram_buckets_are_cumulative_and_count_every_value() -> None:
    """Buckets at the fixed bounds: underflow in every bucket, overflow only in +Inf, each value once."""
    h = Histogram()
    h.record_many([0.5, 50.0, 150.0, 300.0, 2_000_000.0, 7_200_000_000.0])  # 0.5 µs under, 2 h over
    got = dict(buckets(h))
    assert len(got) == len(BOUNDS_S) + 1
    assert (got["0.0001"], got["0.00025"], got["0.0005"], got["1.0"], got["2.5"], got["60.0"]) == (
        2.0, 3.0, 4.0, 4.0, 5.0, 5.0)
    assert got["+Inf"] == 6.0
    values = list(got.values())
    assert values == sorted(values)


def test_snapshots_of_processes_merge_their_histograms_exactly() -> None:
    """The parent's view of several processes: counters summed, latency histograms added bucket by bucket."""
    parts: list[dict[str, Any]] = []
    for values in ([100.0, 200.0], [300.0], [5_000.0, 9_000.0, 1.0]):
        corrected, raw = Histogram(), Histogram()
        corrected.record_many(values)
        raw.record_many([v / 2 for v in values])
        parts.append({"t": 1.0, "sent": len(values), "acked": len(values), "lost": 0, "rejected": 0,
                      "in_flight": 0, "errors": 0, "p50": 0.0, "p99": 0.0, "lag_p99": 0.0,
                      "corrected": corrected, "raw": raw})
    merged = merge_snapshots(parts)
    whole = Histogram()
    whole.record_many([100.0, 200.0, 300.0, 5_000.0, 9_000.0, 1.0])
    assert merged["sent"] == 6 and merged["corrected"] == whole
    assert merged["raw"].total == 6 and parts[0]["corrected"].total == 2  # the inputs are left as they were
