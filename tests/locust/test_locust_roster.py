"""The pure rules behind lost processes: the master's roster, who may join, when a master is gone, and the
address ``--processes`` gives its workers. (The real processes are in test_locust_lost.py.)"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import msgpack  # type: ignore[import-untyped]  # how Locust carries custom messages
import pytest

from bench.locust_glue.collect import master_gone
from bench.locust_glue.messages import devices_run, empty_message, lost_error, run_header
from bench.locust_glue.options import align_forked_workers
from bench.locust_glue.roster import LEFT, NO_HEARTBEAT, NO_RESULT, Roster
from bench.locust_glue.runstate import Identity, RunSpec
from bench.scenario import load_scenario

STARTED = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
WS = Identity.of("0.1.0", ["WsDevice"], [("ws.py", b"class WsDevice: ...")])


# -- the roster ---------------------------------------------------------------------------------------
def test_a_worker_that_ran_users_stays_expected_once_locust_marks_it_missing() -> None:
    """Locust zeroes a missing worker's users; the roster still expects its result and says when it was
    last heard and seen lost, once."""
    roster = Roster(STARTED)
    assert roster.observe({"a": (0, False, 2), "b": (1, False, 2)}, 1.0) == []
    roster.heard("b", 1.5)
    (lost,) = roster.observe({"a": (0, False, 2), "b": (1, True, 0)}, 4.5)
    assert (lost.worker, lost.users, lost.last_heard_s, lost.lost_after_s, lost.reason) == (1, 2, 1.5, 4.5,
                                                                                           NO_HEARTBEAT)
    assert lost.lost_at == STARTED + timedelta(seconds=4.5)
    assert roster.observe({"a": (0, False, 2), "b": (1, True, 0)}, 5.0) == []  # said once
    assert roster.expected() == {"a", "b"} and roster.peak_users == 4
    roster.report("a")
    assert roster.settled({"a"}) and [w.node for w in roster.missing({"a"}, 9.0)] == ["b"]


def test_a_worker_that_left_without_its_result_is_lost_and_one_that_reported_is_not() -> None:
    """Gone from Locust's list: lost unless its result came first (a worker that quits sends it first)."""
    roster = Roster(STARTED)
    roster.observe({"a": (0, False, 1), "b": (1, False, 1)}, 1.0)
    roster.report("a")
    (lost,) = roster.observe({}, 2.0)
    assert (lost.node, lost.reason) == ("b", LEFT)


def test_a_missing_worker_whose_heartbeats_resume_is_expected_again() -> None:
    roster = Roster(STARTED)
    roster.observe({"a": (0, False, 1)}, 1.0)
    assert len(roster.observe({"a": (0, True, 0)}, 4.0)) == 1
    roster.observe({"a": (0, False, 1)}, 5.0)
    assert not roster.settled(set())  # back: its result is awaited again


def test_a_worker_that_said_it_runs_devices_is_expected_though_no_sample_saw_its_users() -> None:
    """Killed between two samples: its own nucleus_running message already made it expected, and the
    devices it said it had started count as devices that ran."""
    roster = Roster(STARTED)
    roster.observe({"a": (0, False, 0)}, 0.2)
    roster.running("a", 0, 1)
    roster.running("a", 0, 3)
    (lost,) = roster.observe({"a": (0, True, 0)}, 4.0)
    assert (lost.users, lost.devices) == (0, 3) and devices_run({}, [lost]) == 3


def test_workers_that_never_ran_users_are_not_expected_unless_asked_to_drain() -> None:
    """An idle worker is no loss; one still live at the drain that never answers is."""
    roster = Roster(STARTED)
    roster.observe({"idle": (0, False, 0)}, 1.0)
    assert roster.expected() == set() and roster.settled(set())
    assert not roster.settled(set(), also={"idle"})
    (lost,) = roster.missing(set(), 20.0, also={"idle"})
    assert (lost.reason, lost.users, lost.lost_after_s) == (NO_RESULT, 0, 20.0)


def test_the_header_counts_the_devices_that_ran_and_names_the_lost() -> None:
    """devices = every reporting process's devices + what each lost worker was seen running; the error
    says who, when and what it means; missing_workers carries the same."""
    roster = Roster(STARTED)
    roster.observe({"a": (0, False, 3), "b": (1, False, 2)}, 1.0)
    lost = roster.missing({"a"}, 6.0)
    arrived = {"a": empty_message("r", 0, "") | {"devices": 5}}  # 3 users, 2 of them re-spawned
    assert devices_run(arrived, lost) == 7
    error = lost_error(lost)
    assert error is not None and error.startswith("worker 1 sent no result before the collection deadline")
    smoke = load_scenario("scenarios/smoke.toml")
    spec = RunSpec(run_id="r", scenario_path=smoke.path, scenario_text="", app_ids=(("ws", "a"),),
                   duration_s=3.0)
    doc = run_header(smoke, spec, arrived, users=5, started=STARTED, lost=lost, target_url="http://t",
                     embedded=False, locust_version="2").to_json()
    assert doc["error"] == error and doc["scenario"]["devices"] == 7 and doc["locust"]["users"] == 5
    assert doc["locust"]["missing_workers"] == [lost[0].to_json()]
    assert lost_error([]) is None


# -- who may join --------------------------------------------------------------------------------------
@pytest.mark.parametrize("other, says", [
    (Identity.of("0.2.0", ["WsDevice"], [("ws.py", b"class WsDevice: ...")]),
     "nucleus-bench 0.2.0, the master runs 0.1.0"),
    (Identity.of("0.1.0", ["HttpDevice"], [("http.py", b"class HttpDevice: ...")]),
     "user classes HttpDevice, the master runs WsDevice"),
    (Identity.of("0.1.0", ["WsDevice"], [("ws.py", b"class WsDevice: pass")]),
     "locustfile ws.py differs from the master's ws.py (contents)"),
])
def test_a_worker_that_differs_is_told_how_in_one_line(other: Identity, says: str) -> None:
    assert WS.differs(other) == says
    assert WS.differs(Identity.of("0.1.0", ["WsDevice"], [("ws.py", b"class WsDevice: ...")])) is None


def test_the_identity_travels_in_the_run_spec() -> None:
    """Through msgpack, as Locust carries the spawn message's options."""
    spec = RunSpec(run_id="r", scenario_path="s.toml", scenario_text="", app_ids=(("ws", "a"),),
                   duration_s=1.0, identity=WS)
    assert RunSpec.from_json(msgpack.unpackb(msgpack.packb(spec.to_json()))) == spec


# -- a worker's master ---------------------------------------------------------------------------------
def test_a_master_is_gone_when_its_heartbeats_stop_or_the_process_that_forked_the_worker_exits() -> None:
    assert master_gone(100.0, None, 15.0, None, 1) is None  # no heartbeat yet: nothing to judge
    assert master_gone(100.0, 90.0, 15.0, None, 1) is None
    said = master_gone(100.0, 80.0, 15.0, None, 1)
    assert said == "no heartbeat from the master for 20 s (--master-timeout 15)"
    assert master_gone(100.0, 99.0, 15.0, 4242, 4242) is None
    assert master_gone(100.0, 99.0, 15.0, 4242, 1) == "the master process 4242 that forked this worker exited"


# -- --processes ---------------------------------------------------------------------------------------
def _parsed(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"processes": 2, "worker": False, "master_bind_host": "*",
                               "master_bind_port": 5557, "master_host": "127.0.0.1", "master_port": 5557}
    return argparse.Namespace(**(base | kw))


def _refuse(message: str) -> None:
    raise SystemExit(message)


@pytest.mark.parametrize("given, dials", [
    ({"master_bind_port": 6001}, ("127.0.0.1", 6001)),
    ({"master_bind_host": "127.0.0.2", "master_bind_port": 6001}, ("127.0.0.2", 6001)),
    ({"master_bind_port": 6001, "master_port": 7000}, ("127.0.0.1", 6001)),  # the master's own port wins
    ({"processes": None, "master_bind_port": 6001}, ("127.0.0.1", 5557)),    # no fork: untouched
    ({"worker": True, "master_host": "10.0.0.9", "master_port": 7000}, ("10.0.0.9", 7000)),  # remote master
])
def test_forked_workers_dial_the_address_their_master_binds(given: dict[str, object],
                                                            dials: tuple[str, int]) -> None:
    ns = _parsed(**given)
    align_forked_workers(ns, _refuse)
    assert (ns.master_host, ns.master_port) == dials


def test_processes_with_a_random_master_port_is_refused_in_one_line() -> None:
    with pytest.raises(SystemExit, match="give --master-bind-port a fixed port"):
        align_forked_workers(_parsed(master_bind_port=0), _refuse)
