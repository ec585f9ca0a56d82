"""Headless Locust runs of both locustfiles against a real reference target on loopback."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from locust_harness import SMOKE, RunLocust, TargetFactory, run_locust_fixture

from bench.target.embedded import EmbeddedTarget

run_locust = run_locust_fixture()

#: contract: the target holds each ack back this long (--ack-delay-ms 50).
ACK_DELAY_US = 50_000
#: No ack can come much sooner than the injected delay: the target's timers run on its event loop's cached
#: clock (libuv: whole milliseconds, read at the start of a loop iteration), so a delay can end a little
#: early; histograms add <= 1 % relative error. 10 % below the delay is well outside both.
FLOOR_US = ACK_DELAY_US * 0.9
#: Measurement tolerance above the injected delay (scheduling on a loaded 2-core machine); not a speed goal.
TOLERANCE_US = 100_000
EVENT_TYPES = {"init", "event", "error", "userid", "props"}


def _locust_rows(prefix: Path) -> list[dict[str, Any]]:
    """Locust's own final statistics (``--json-file``, written at shutdown after the drain)."""
    rows: list[dict[str, Any]] = json.loads(Path(f"{prefix}.json").read_text())
    return rows


def _csv_types(prefix: Path) -> set[str]:
    """The request types in Locust's --csv statistics (rewritten every second while it runs)."""
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as fh:
        return {row["Type"] for row in csv.DictReader(fh)}


def test_ws_user_times_each_ack_as_the_target_delays_it(run_locust: RunLocust, target_factory: TargetFactory,
                                                        tmp_path: Path) -> None:
    """WS latencies are true per-event ack times: every one at least the injected 50 ms, near it, never 0."""
    delayed_target = target_factory(ack_delay_ms=ACK_DELAY_US // 1000)
    prefix = tmp_path / "stats"
    run = run_locust("ws.py", "--host", delayed_target.url, "--csv", str(prefix), "--json-file", str(prefix),
                     "--check-lost-ratio", "0", "--check-fail-ratio", "0")
    assert run.returncode == 0, run.stderr[-3000:]
    ws = run.summary()["transports"]["ws"]
    events = ws["events"]
    assert events["sent"] > 0 and events["acked"] == events["sent"] == events["planned"]
    assert ws["accounting"]["ok"] and ws["interrupted"] is False  # ended by -t, not by a signal
    for kind in ("raw", "corrected"):
        latency = ws["ack_latency_us"][kind]
        assert latency["count"] == events["acked"]
        assert FLOOR_US <= latency["p50"] <= ACK_DELAY_US + TOLERANCE_US, (kind, latency)
    rec = ws["reconciliation"]
    assert rec["done"] and rec["acked_not_stored"] == 0 and rec["stored_not_acked"] == 0
    rows = [r for r in _locust_rows(prefix) if r["method"] == "WS" and r["name"] in EVENT_TYPES]
    assert sum(r["num_requests"] for r in rows) == events["acked"]
    for row in rows:  # Locust's own rows carry the same true latencies, with sub-millisecond precision
        assert row["min_response_time"] >= FLOOR_US / 1000, row
        assert row["total_response_time"] != int(row["total_response_time"]), row
    assert "WS" in _csv_types(prefix)


def test_http_user_delivers_every_created_event(run_locust: RunLocust, target: EmbeddedTarget,
                                               tmp_path: Path) -> None:
    """HTTP batches: every event the devices created is posted, acknowledged, stored, and its delays kept."""
    prefix = tmp_path / "stats"
    run = run_locust("http.py", "--host", target.url, "--csv", str(prefix), "--json-file", str(prefix),
                     "--check-lost-ratio", "0")
    assert run.returncode == 0, run.stderr[-3000:]
    http = run.summary()["transports"]["http"]
    events = http["events"]
    assert events["sent"] > 0 and events["acked"] == events["sent"] == events["planned"]
    assert http["delivery_delay_us"]["count"] == events["acked"]
    assert http["ack_latency_us"]["raw"]["count"] == events["acked"]
    assert http["wire"]["messages_sent"] > 0 and http["wire"]["http_4xx"] == http["wire"]["http_5xx"] == 0
    rec = http["reconciliation"]
    assert rec["done"] and rec["stored"] == events["acked"] and rec["acked_not_stored"] == 0
    rows = _locust_rows(prefix)
    posts = [r for r in rows if r["method"] == "POST" and r["name"] == "/app/[appId]/track"]
    assert posts and posts[0]["num_requests"] == http["wire"]["messages_sent"]
    assert sum(r["num_requests"] for r in rows if r["method"] == "HTTP" and r["name"] in EVENT_TYPES) \
        == events["acked"]
    assert "POST" in _csv_types(prefix)


def test_violated_threshold_exits_non_zero_and_says_which(run_locust: RunLocust,
                                                         target: EmbeddedTarget) -> None:
    """A violated --check-* exits 3 and prints one line naming it; a threshold that holds prints none."""
    run = run_locust("ws.py", "--host", target.url, "--check-min-eps", "1e9", "--check-lost-ratio", "0",
                     users=1, run_time="2s")
    assert run.returncode == 3, run.stderr[-3000:]
    failed = [line for line in run.stdout.splitlines() if line.startswith("check failed:")]
    assert len(failed) == 1 and "(--check-min-eps)" in failed[0], run.stdout


def test_the_scenarios_objective_is_judged_and_a_miss_exits_3(
        run_locust: RunLocust, target_factory: TargetFactory, tmp_path: Path) -> None:
    """[objective] in the scenario: Locust judges each transport as ``run`` does (p99 after the warm-up, from
    the merged figures), writes the verdict in summary.json, prints it, and exits 3 on a miss."""
    delayed_target = target_factory(ack_delay_ms=ACK_DELAY_US // 1000)
    objective = '\n[objective]\np99 = "{}"\nwarmup = "500ms"\n'
    missed, met = tmp_path / "missed.toml", tmp_path / "met.toml"
    missed.write_text(SMOKE.read_text() + objective.format("10ms"))
    met.write_text(SMOKE.read_text() + objective.format("5s"))
    run = run_locust("ws.py", "--host", delayed_target.url, scenario=missed, run_time="3s")
    assert run.returncode == 3, run.stderr[-3000:]
    verdict = run.summary()["objective"]["transports"]["ws"]
    assert not verdict["met"] and verdict["limit"] == "target" and verdict["warmup_s"] == 0.5
    assert verdict["p99_us"] >= FLOOR_US and verdict["reason"].endswith("> 10.0 ms")
    assert "ws: objective NOT met (target): latency: p99 " in run.stdout
    run = run_locust("ws.py", "--host", delayed_target.url, scenario=met, run_time="3s")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.summary()["objective"]["met"] is True and "ws: objective met: p99 " in run.stdout


def test_bad_scenario_is_one_line_and_exit_2(run_locust: RunLocust, tmp_path: Path) -> None:
    """A wrong scenario file stops Locust before it starts: one line naming file, line and key; exit 2."""
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[fleet]\ndevics = 3\n')
    run = run_locust("ws.py", "--host", "http://127.0.0.1:9", scenario=bad)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert f"nucleus-bench: error: {bad}:3: fleet.devics: unknown key" in run.stderr


@pytest.mark.parametrize(("locustfile", "host"), [
    ("ws.py", "ftp://127.0.0.1:1"), ("http.py", "notaurl"), ("ws.py", "http://"), ("http.py", "http://h:port"),
])
def test_bad_host_is_one_line_and_exit_2_before_any_user(run_locust: RunLocust, locustfile: str,
                                                         host: str) -> None:
    """A --host that is no http(s) URL stops Locust in its init: one line naming --host, exit 2.

    The run time is far beyond the process bound: a Locust that started its users would be killed there.
    """
    run = run_locust(locustfile, "--host", host, run_time="30m")
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("nucleus-bench: error:")]
    assert len(errors) == 1 and repr(host) in errors[0] and "--host" in errors[0], run.stderr[-3000:]
    assert not run.results_dir.exists()  # nothing ran, nothing written


def test_a_spawn_rate_above_the_scenarios_connect_rate_is_said_once(run_locust: RunLocust,
                                                                     target: EmbeddedTarget,
                                                                     tmp_path: Path) -> None:
    """-r paces Locust's users as [fleet] connect_rate paces a run's fleet: asking for more connects per
    second than the scenario allows is said in one line before the users start; the run goes on as asked."""
    from locust_harness import SMOKE

    scenario = tmp_path / "slow-connects.toml"
    scenario.write_text(SMOKE.read_text().replace('ramp = "500ms"', 'ramp = "500ms"\nconnect_rate = 2'))
    assert "connect_rate = 2" in scenario.read_text()
    run = run_locust("ws.py", "--host", target.url, scenario=scenario, users=3, run_time="2s")
    assert run.returncode == 0, run.stderr[-3000:]
    said = "spawning 3 users/s asks for more connects/s"
    lines = [line for line in run.stderr.splitlines() if said in line]
    assert len(lines) == 1 and "connect rate of 2/s" in lines[0], run.stderr[-3000:]
    quiet = run_locust("ws.py", "--host", target.url, users=3, run_time="2s")  # smoke: 1,500/s
    assert "asks for more connects/s" not in quiet.stderr
