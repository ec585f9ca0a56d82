"""``nucleus-bench run`` end to end on the real reference target: accounting, reconciliation, faults."""

from __future__ import annotations

import csv
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runner_helpers import one_line_error, run_cli, write_scenario

from bench.cli import main
from bench.fleet import Plan
from bench.metrics import COLUMNS, LATENCY_COLUMNS, SECOND_HISTOGRAMS, TrackerResult
from bench.results.reconcile import fetch_json
from bench.results.transport import TransportResult
from bench.scenario import load_scenario
from bench.target.embedded import EmbeddedTarget

TargetFactory = Callable[..., EmbeddedTarget]


#: The keys every transport block of summary.json must have (issue: "at least").
SCHEMA: dict[str, tuple[str, ...]] = {
    "events": ("sent", "acked", "rejected", "lost", "in_flight", "duplicate_acks", "unknown_acks"),
    "throughput": ("events_per_s", "messages_per_s"),
    "client": ("cpu_s", "events_per_cpu_s", "bytes_sent", "bytes_per_event"),
    "generator": ("schedule_lag_us", "saturated"),
    "reconciliation": ("done", "stored", "acked_not_stored", "stored_not_acked", "duplicates_stored"),
    "accounting": ("sent", "acked", "rejected", "lost", "in_flight", "ok"),
}
QUANTILES = ("count", "p50", "p90", "p99", "p999", "max")


def _check_block(block: dict[str, Any]) -> None:
    for group, keys in SCHEMA.items():
        for key in keys:
            assert key in block[group], f"{group}.{key}"
    for latency in (block["ack_latency_us"]["corrected"], block["ack_latency_us"]["raw"],
                    block["delivery_delay_us"], block["generator"]["schedule_lag_us"]):
        assert set(QUANTILES) <= set(latency)
    assert block["accounting"]["ok"]


def test_both_transports_on_the_embedded_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --target: the embedded target; ws then http on one seeded stream; every file and key there."""
    scenario = write_scenario(tmp_path)
    code, summary, run_dir = run_cli(tmp_path, scenario, "--transport", "both")
    assert code == 0 and summary is not None and run_dir is not None
    assert "embedded reference target" in capsys.readouterr().err
    assert summary["schema"] == "nucleus-bench/summary/1" and summary["ok"]
    planned = Plan(load_scenario(scenario)).expected_events()
    ws, http = summary["transports"]["ws"], summary["transports"]["http"]
    for block in (ws, http):
        _check_block(block)
        events, rec = block["events"], block["reconciliation"]
        assert events["sent"] == planned and events["acked"] == planned
        assert rec["done"] and rec["stored"] == events["acked"]
        assert (rec["acked_not_stored"], rec["stored_not_acked"], rec["duplicates_stored"]) == (0, 0, 0)
    assert ws["app_id"] != http["app_id"] and len(ws["app_id"]) == 24
    assert ws["delivery_delay_us"]["p50"] < http["delivery_delay_us"]["p50"]  # HTTP waits for its flush
    # the ramp as it went: every WebSocket device came online, within the run, at a rate the summary gives
    devices = load_scenario(scenario).devices
    client = ws["client"]
    assert client["devices_online"] == devices and 0 < client["all_online_s"] < ws["throughput"]["wall_s"]
    assert client["online_per_s"] == pytest.approx(devices / client["all_online_s"])
    assert http["client"]["devices_online"] == 0 and http["client"]["online_per_s"] is None  # no connections
    for name in ("summary.json", "histograms.json", "meta.json", "series-ws.csv", "series-http.csv",
                 "result-ws.json", "result-http.json"):
        assert (run_dir / name).is_file(), name
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["scenario"]["sha256"] and meta["versions"]["websockets"] and meta["seed"] == 11
    for name in ("ws", "http"):
        _check_series(run_dir, name, planned)


def _check_series(run_dir: Path, transport: str, planned: int) -> None:
    """The per-second CSV and the result's per-second histograms: every ack in exactly one second."""
    with open(run_dir / f"series-{transport}.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["second", *COLUMNS, *LATENCY_COLUMNS]
        rows = list(reader)
    assert sum(int(row["acked"]) for row in rows) == planned
    for row in rows:  # a second with acks has their latency, a second without has none
        assert (row["ack_p50_us"] != "") == (int(row["acked"]) > 0), row
        if row["ack_p50_us"]:
            assert 0 < float(row["ack_p50_us"]) <= float(row["ack_p99_us"]) <= float(row["ack_max_us"])
    result = TransportResult.from_json(json.loads((run_dir / f"result-{transport}.json").read_text()))
    series = result.series
    for counts in series.rows():  # the acks counted in a second are the latencies recorded in it
        h = series.histogram("corrected", counts["second"])
        assert h.count + h.underflow + h.overflow == counts["acked"]
    for name in SECOND_HISTOGRAMS:  # and the seconds add up to the whole run's histogram, bucket by bucket
        total, whole = series.histogram_total(name), result.histograms[name].coarsened(series.layout)
        assert [a.tolist() for a in total.nonzero()] == [a.tolist() for a in whole.nonzero()], name
        assert (total.underflow, total.overflow) == (whole.underflow, whole.overflow), name


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_dropped_acks_are_reported_as_lost(tmp_path: Path, target_factory: TargetFactory,
                                           transport: str) -> None:
    """--drop-ack-ratio: exactly the events whose ack the target dropped are lost, and stored-not-acked."""
    target = target_factory(drop_ack_ratio=0.3, fault_seed=5)
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--transport", transport,
                               "--target", target.url)
    assert code == 0 and summary is not None
    block = summary["transports"][transport]
    stats = fetch_json(f"{target.url}/app/{block['app_id']}/stats")
    dropped = stats["faults"]["dropped_ack_ids"]
    assert dropped > 0
    assert block["events"]["lost"] == dropped == block["reconciliation"]["stored_not_acked"]
    assert block["reconciliation"]["acked_not_stored"] == 0 and block["accounting"]["ok"]


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_lying_acks_are_reported_as_phantom(tmp_path: Path, target_factory: TargetFactory,
                                           transport: str) -> None:
    """--lie-ack-ratio: acked-but-not-stored equals the number of ids the target lied about."""
    target = target_factory(lie_ack_ratio=0.3, fault_seed=9)
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--transport", transport,
                               "--target", target.url)
    assert code == 0 and summary is not None
    block = summary["transports"][transport]
    lied = fetch_json(f"{target.url}/app/{block['app_id']}/stats")["faults"]["lied_ids"]
    assert lied > 0
    assert block["reconciliation"]["acked_not_stored"] == lied
    assert block["events"]["acked"] == block["events"]["sent"]
    assert block["reconciliation"]["stored"] == block["events"]["acked"] - lied


def test_an_injected_ack_delay_is_measured(tmp_path: Path, target_factory: TargetFactory) -> None:
    """--ack-delay-ms 50: the median ack latency lands in a generous band around 50 ms (measurement check)."""
    target = target_factory(ack_delay_ms=50)
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--target", target.url)
    assert code == 0 and summary is not None
    latency = summary["transports"]["ws"]["ack_latency_us"]
    assert 45_000 <= latency["raw"]["p50"] <= latency["corrected"]["p50"] <= 250_000


def test_a_stalled_target_shows_in_corrected_latency_more_than_in_raw(
        tmp_path: Path, target_factory: TargetFactory) -> None:
    """With one HTTP request in flight, batches queue behind a stall: the wait is in corrected, not raw."""
    target = target_factory(stall_ms=300, stall_every_ms=600)
    code, summary, run_dir = run_cli(tmp_path, write_scenario(tmp_path), "--transport", "http",
                                     "--http-concurrency", "1", "--target", target.url)
    assert code == 0 and summary is not None and run_dir is not None
    result = TrackerResult.from_json(json.loads((run_dir / "result-http.json").read_text())["tracker"])
    assert result.corrected.max() >= 150_000  # the stall is visible
    assert result.corrected.mean() - result.raw.mean() >= 10_000  # and more so from the intended time


def test_two_processes_merge_exactly(tmp_path: Path, target: EmbeddedTarget) -> None:
    """--processes 2: the shards together send exactly the unsharded plan's events, all accounted for."""
    scenario = write_scenario(tmp_path)
    code, summary, run_dir = run_cli(tmp_path, scenario, "--processes", "2", "--target", target.url)
    assert code == 0 and summary is not None and run_dir is not None
    block = summary["transports"]["ws"]
    assert block["client"]["processes"] == 2
    planned = Plan(load_scenario(scenario)).expected_events()
    assert block["events"]["sent"] == planned
    assert block["events"]["acked"] == block["reconciliation"]["stored"] == block["events"]["sent"]
    assert block["generator"]["schedule_lag_us"]["count"] > 0
    _check_series(run_dir, "ws", planned)  # the shards' per-second histograms merged second by second


def test_verify_url_reconciles_by_count(tmp_path: Path, target: EmbeddedTarget) -> None:
    """--verify-url with {appId}: the stored count read before and after gives the net reconciliation."""
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--transport", "http", "--target",
                               target.url, "--verify-url", f"{target.url}/app/{{appId}}/stats")
    assert code == 0 and summary is not None
    rec = summary["transports"]["http"]["reconciliation"]
    assert rec["method"] == "verify-url" and rec["done"]
    assert rec["stored"] == summary["transports"]["http"]["events"]["acked"]
    assert rec["duplicates_stored"] is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("args, words", [
    (["missing.toml"], "missing.toml"),
    (["{scenario}", "--duration", "soon"], "duration"),
    (["{scenario}", "--app-id", "not an id!"], "--app-id"),
    (["{scenario}", "--transport", "both", "--app-id", "abc"], "--app-id"),
    (["{scenario}", "--processes", "0"], "--processes"),
    (["{scenario}", "--rate", "1e12"], "--rate"),
    (["{scenario}", "--source-addrs", "nowhere"], "--source-addrs"),
    (["{scenario}", "--target", "ftp://127.0.0.1:1"], "--target"),
    (["{scenario}", "--target", "http://127.0.0.1:{port}"], "unreachable"),
    (["{scenario}", "--target-arg=--no-such-flag"], "--no-such-flag"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], words: str) -> None:
    """A bad flag, scenario or target: one line naming it, exit status 2, nothing measured, no traceback."""
    scenario = write_scenario(tmp_path)
    argv = [a.format(scenario=scenario, port=_closed_port()) for a in args]
    code, summary, _ = run_cli(tmp_path, *argv)
    assert code == 2 and summary is None
    assert words in one_line_error(capsys)


@pytest.mark.parametrize("url", ["{target}/no/such/{{appId}}", "http://127.0.0.1:{port}/app/{{appId}}/stats"])
def test_a_bad_verify_url_is_refused_before_the_load(tmp_path: Path, target: EmbeddedTarget,
                                                    capsys: pytest.CaptureFixture[str], url: str) -> None:
    """A --verify-url that answers 404 or refuses: one line naming it, exit 2, nothing sent."""
    sent_before = fetch_json(f"{target.url}/stats")
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--target", target.url,
                               "--verify-url", url.format(target=target.url, port=_closed_port()))
    assert code == 2 and summary is None
    assert "--verify-url" in one_line_error(capsys)
    assert fetch_json(f"{target.url}/stats") == sent_before


def test_an_unwritable_out_is_refused_before_the_load(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--out naming a file, not a folder: one line naming --out, exit 2, before any target or load."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(["run", write_scenario(tmp_path), "--out", str(blocker / "results"), "--no-progress"])
    assert code == 2
    assert "--out" in one_line_error(capsys)


def test_a_bad_scenario_names_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scenario error is the scenario module's one line: file:line: key: detail."""
    scenario = write_scenario(tmp_path, 'name = "x"\n[fleet]\ndevics = 3\n')
    code, _, _ = run_cli(tmp_path, scenario)
    assert code == 2
    assert "fast.toml:3" in one_line_error(capsys)


def test_results_measured_before_an_error_are_still_written(
        tmp_path: Path, target: EmbeddedTarget, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The target vanishes before the second transport: exit 2, one line, the first one's results kept."""
    import bench.runner.app as app

    checks: list[str] = []
    real_preflight = app.preflight

    def preflight(base_url: str) -> None:
        checks.append(base_url)
        real_preflight(base_url if len(checks) == 1 else f"http://127.0.0.1:{_closed_port()}")

    monkeypatch.setattr(app, "preflight", preflight)
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--transport", "both",
                               "--target", target.url)
    assert code == 2 and summary is not None
    assert "unreachable" in one_line_error(capsys) and "unreachable" in summary["error"]
    assert list(summary["transports"]) == ["ws"] and summary["transports"]["ws"]["accounting"]["ok"]


def test_a_verify_url_that_never_answers_waits_only_the_reconcile_timeout(
        tmp_path: Path, target: EmbeddedTarget, capsys: pytest.CaptureFixture[str]) -> None:
    """A --verify-url that takes the connection and never answers: after --reconcile-timeout, one line
    naming it and exit 2, before the load."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        url = f"http://127.0.0.1:{hole.getsockname()[1]}/count"
        code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--target", target.url,
                                   "--verify-url", url, "--reconcile-timeout", "0.5")
    assert code == 2 and summary is None
    assert "--verify-url" in one_line_error(capsys)
