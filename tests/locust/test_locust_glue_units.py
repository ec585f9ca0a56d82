"""The pure parts of bench.locust_glue, in this process (none of them loads locust or gevent)."""

from __future__ import annotations

import argparse
import sys
import types
from typing import Any

import msgpack  # type: ignore[import-untyped]  # how Locust carries custom messages
import pytest

from bench.fleet import Plan
from bench.locust_glue.gates import Gates, evaluate
from bench.locust_glue.messages import merge_messages, result_message, worker_rows
from bench.locust_glue.options import DEFAULT_SCENARIO, GlueOptions, add_arguments
from bench.locust_glue.runstate import (
    OPEN_DURATION_S,
    PER_WORKER_DEVICES,
    RunSpec,
    RunState,
    device_index,
    fleet_scenario,
    plan_duration,
)
from bench.locust_glue.shadow import restore_stdlib
from bench.metrics import COUNTERS
from bench.protocol.errors import UsageError
from bench.protocol.message import encode_events
from bench.scenario import load_scenario

SMOKE = load_scenario("scenarios/smoke.toml")
DESKTOP = load_scenario("scenarios/desktop-fleet.toml")


def _block(sent: int = 100, acked: int = 100, rejected: int = 0, lost: int = 0, p99_us: float = 5000.0,
           eps: float = 50.0) -> dict[str, Any]:
    """A ``transports.<name>`` block of a summary, with only what the gates read."""
    return {"events": {"sent": sent, "acked": acked, "rejected": rejected, "lost": lost},
            "ack_latency_us": {"corrected": {"count": acked, "p99": p99_us}},
            "throughput": {"events_per_s": eps}}


# -- gates --------------------------------------------------------------------------------------------
def test_gates_off_say_nothing_whatever_the_figures() -> None:
    """Without thresholds no line is printed, even for a run that lost everything."""
    assert evaluate(Gates(), {"ws": _block(acked=0, lost=100, eps=0.0)}) == []


def test_gates_that_hold_say_nothing() -> None:
    """Figures within every threshold give no line."""
    gates = Gates(p99_ms=10.0, lost_ratio=0.0, fail_ratio=0.01, min_eps=40.0)
    assert evaluate(gates, {"ws": _block(), "http": _block(p99_us=9000.0)}) == []


@pytest.mark.parametrize(("gates", "flag"), [
    (Gates(p99_ms=1.0), "--check-p99-ms"),
    (Gates(lost_ratio=0.05), "--check-lost-ratio"),
    (Gates(fail_ratio=0.09), "--check-fail-ratio"),
    (Gates(min_eps=1000.0), "--check-min-eps"),
])
def test_each_violated_gate_gives_one_line_naming_its_flag(gates: Gates, flag: str) -> None:
    """One violated threshold, one line, which names the flag."""
    lines = evaluate(gates, {"ws": _block(acked=90, rejected=4, lost=6)})
    assert len(lines) == 1 and lines[0].startswith("check failed:") and lines[0].endswith(f"({flag})")


def test_p99_is_judged_per_transport() -> None:
    """Each transport must meet --check-p99-ms; the line names the one that does not."""
    lines = evaluate(Gates(p99_ms=10.0), {"ws": _block(p99_us=3000.0), "http": _block(p99_us=25_000.0)})
    assert len(lines) == 1 and lines[0].startswith("check failed: http p99")


def test_ratios_add_the_transports_up() -> None:
    """Lost and failure ratios are over every event sent by every transport."""
    transports = {"ws": _block(sent=100, acked=99, lost=1), "http": _block(sent=100, acked=98, rejected=2)}
    assert evaluate(Gates(lost_ratio=0.005), transports) == []  # 1 / 200
    assert len(evaluate(Gates(fail_ratio=0.014), transports)) == 1  # 3 / 200


# -- options -------------------------------------------------------------------------------------------
class _LocustLikeParser(argparse.ArgumentParser):
    """argparse taking Locust's extra ``include_in_web_ui`` keyword, as LocustArgumentParser does."""

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("include_in_web_ui", None)
        return super().add_argument(*args, **kwargs)


def _parse(*argv: str) -> argparse.Namespace:
    parser = _LocustLikeParser(exit_on_error=False)
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_options_default_to_the_desktop_fleet_and_no_gates() -> None:
    """Without flags: the default scenario, a fresh appId per run, /app/{appId}/track, no gate."""
    opts = GlueOptions.from_parsed(_parse())
    assert opts.scenario == DEFAULT_SCENARIO and opts.app_id == "" and opts.endpoint == "app"
    assert opts.results_dir == "results" and not opts.gates.any and opts.master_timeout_s == 15.0


def test_options_read_gates_from_flags_and_from_web_ui_strings() -> None:
    """Gates parse from the command line, and from the strings the web UI form sends."""
    assert GlueOptions.from_parsed(_parse("--check-p99-ms", "250", "--check-min-eps", "10")).gates \
        == Gates(p99_ms=250.0, min_eps=10.0)
    form = argparse.Namespace(check_lost_ratio="0.01", endpoint="short", app_id="abc_1")
    opts = GlueOptions.from_parsed(form)
    assert opts.gates == Gates(lost_ratio=0.01) and opts.endpoint == "short" and opts.app_id == "abc_1"


@pytest.mark.parametrize("argv", [("--check-lost-ratio", "2"), ("--check-p99-ms", "-1"),
                                  ("--check-min-eps", "fast"), ("--app-id", "not valid"),
                                  ("--endpoint", "other"), ("--master-timeout", "1"),
                                  ("--master-timeout", "60")])
def test_bad_option_values_are_refused(argv: tuple[str, ...]) -> None:
    """Out-of-range ratios, negative or non-numeric thresholds and malformed appIds are usage errors."""
    with pytest.raises(argparse.ArgumentError):
        _parse(*argv)


# -- the run's plan and numbering ----------------------------------------------------------------------
def test_a_locust_device_sends_what_the_hot_path_sends_for_it() -> None:
    """Device k of a Locust run has the hot path's events for device k, byte for byte, from its own t=0."""
    spec = RunSpec(run_id="r", scenario_path=SMOKE.path, scenario_text="",
                   app_ids=(("ws", "a"), ("http", "a")),
                   duration_s=SMOKE.duration_s)
    locust_plan = RunState(spec, SMOKE).plan
    hot_plan = Plan(SMOKE)
    for device in hot_plan.devices:
        start = hot_plan.connect_at_ns(device)
        ours = [(s.at_ns, encode_events(s.events)) for s in locust_plan.iter_device(device, "ws")]
        theirs = [(s.at_ns - start, encode_events(s.events)) for s in hot_plan.iter_device(device, "ws")]
        assert theirs and ours[: len(theirs)] == theirs


def test_a_whole_fleet_rate_becomes_the_same_rate_per_device() -> None:
    """Locust's user count sets the fleet; each device keeps the scenario's own rate."""
    wide = fleet_scenario(DESKTOP, 60.0)
    assert wide.device_rate == DESKTOP.device_rate and wide.ramp_s == 0.0 and wide.duration_s == 60.0


def test_plan_covers_the_locust_run() -> None:
    """The plan lasts the longer of the scenario and --run-time; a day without a run time."""
    assert plan_duration(SMOKE, 10.0) == 10.0
    assert plan_duration(SMOKE, 1.0) == SMOKE.duration_s
    assert plan_duration(SMOKE, None) == OPEN_DURATION_S


def test_workers_number_disjoint_devices() -> None:
    """Worker w's k-th user is device w * PER_WORKER_DEVICES + k; the standalone process starts at 0."""
    assert [device_index(0, k) for k in range(3)] == [0, 1, 2]
    assert device_index(1, 0) == PER_WORKER_DEVICES
    with pytest.raises(UsageError):
        device_index(0, PER_WORKER_DEVICES)


def test_run_spec_round_trips_and_refuses_garbage() -> None:
    """The spec crosses to the workers as JSON; anything else is a one-line usage error."""
    spec = RunSpec(run_id="abc", scenario_path="s.toml", scenario_text='name = "s"\nseed = 3\n',
                   app_ids=(("http", "h"), ("ws", "w")), duration_s=12.5, endpoint="short", insecure=True)
    assert RunSpec.from_json(msgpack.unpackb(msgpack.packb(spec.to_json()))) == spec
    with pytest.raises(UsageError):
        RunSpec.from_json(None)


# -- the worker -> master messages ---------------------------------------------------------------------
def _worker_run(worker: int, acked: int, lost: int) -> dict[str, Any]:
    """A RunState fed ``acked + lost`` events (one message each), drained; its message via msgpack."""
    now = [0]
    spec = RunSpec(run_id="r", scenario_path=SMOKE.path, scenario_text="",
                   app_ids=(("ws", "a"), ("http", "a")),
                   duration_s=5.0)
    run = RunState(spec, SMOKE, worker_index=worker, clock_ns=lambda: now[0])
    books = run.book("ws")
    conn = run.new_conn_id()
    for n in range(acked + lost):
        event_id = worker * 1000 + n
        books.tracker.on_send(conn, (event_id,), now[0], now[0], (now[0],))
        now[0] += 1_000_000
        if n < acked:
            books.tracker.on_ws_ack(conn, (event_id,), now[0])
            books.reported.append(event_id)
    run.stop_sending()
    run.finish()
    packed: dict[str, Any] = msgpack.unpackb(msgpack.packb(result_message(run, worker)))
    return packed


def test_merged_results_are_the_exact_sum_of_the_workers() -> None:
    """Counters add up, histograms add bucket by bucket, reported ids concatenate."""
    messages = {"w0": _worker_run(0, acked=7, lost=2), "w1": _worker_run(1, acked=5, lost=0)}
    merged = merge_messages(messages)["ws"]
    rows = worker_rows(messages)
    for counter in COUNTERS:
        assert getattr(merged.tracker, counter) == sum(row["ws"][counter] for row in rows)
    assert (merged.tracker.sent, merged.tracker.acked, merged.tracker.lost) == (14, 12, 2)
    assert merged.tracker.raw.count == 12 and merged.tracker.raw.min() == pytest.approx(1000.0, rel=0.01)
    assert merged.processes == 2 and len(merged.reported_ids or []) == 12


# -- the standard library's http, shadowed by locustfiles/http.py ---------------------------------------
def test_restore_stdlib_undoes_a_locustfile_named_like_a_stdlib_package() -> None:
    """After Locust registers locustfiles/http.py as "http", the standard package comes back."""
    import http

    real = sys.modules["http"]
    sys.modules["http"] = types.ModuleType("http")  # what Locust's loader does with locustfiles/http.py
    try:
        restore_stdlib("http")
        assert sys.modules["http"] is real is http
    finally:
        sys.modules["http"] = real
