"""The plan as a whole: deterministic byte for byte, sharding-invariant, time-ordered, ramped, unique ids."""

from __future__ import annotations

import hashlib
import heapq
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fleet import ID_STRIDE, Plan, Send
from bench.fleet.plan import FINAL_FLUSH_NS
from bench.protocol import encode_events
from bench.protocol.errors import UsageError
from bench.protocol.message import Transport
from bench.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SMALL = Scenario(name="small", duration_s=4.0, devices=7, ramp_s=1.5, per_device_rate=6.0, heartbeat_s=0.5,
                 http_flush_s=0.8, session_s=1.5, idle_gap_s=0.3, error_share=0.1, userid_share=0.05,
                 props_share=0.05, stack_bytes=(50, 300))
TRANSPORTS: tuple[Transport, ...] = ("ws", "http")

Row = tuple[int, int, bytes, tuple[int, ...]]


def rows(sends: Iterable[Send]) -> list[Row]:
    """Each send as (at_ns, device, encoded bytes, created_ns): what "byte for byte" compares."""
    return [(s.at_ns, s.device, encode_events(s.events), s.created_ns) for s in sends]


def digest(plan: Plan) -> str:
    h = hashlib.sha256()
    for transport in TRANSPORTS:
        for at, device, data, created in rows(plan.sends(transport)):
            h.update(f"{transport}|{at}|{device}|{created}|".encode() + data)
    return h.hexdigest()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_same_seed_same_bytes(transport: Transport) -> None:
    """Two plans of the same scenario and seed yield identical sends, byte for byte."""
    assert rows(Plan(SMALL).sends(transport)) == rows(Plan(SMALL).sends(transport))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_different_seed_different_events(transport: Transport) -> None:
    """Another seed gives other events (device ids, times, contents)."""
    other = SMALL.with_overrides(seed=SMALL.seed + 1)
    assert rows(Plan(SMALL).sends(transport)) != rows(Plan(other).sends(transport))


def test_same_bytes_in_a_fresh_interpreter_without_io_modules() -> None:
    """Another process (other hash salt) builds the same plan, and the fleet loads no asyncio or sockets."""
    code = (
        "import sys; import bench.fleet, bench.scenario;"
        "print(sorted(m for m in ('asyncio', 'socket', 'aiohttp', 'websockets', 'gevent', 'locust', 'uvloop')"
        " if m in sys.modules));"
        "sys.path.insert(0, 'tests/fleet'); from test_fleet_plan import SMALL, digest;"
        "print(digest(bench.fleet.Plan(SMALL)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == digest(Plan(SMALL))


def _merged(shards: list[Plan], transport: Transport) -> list[Send]:
    return list(heapq.merge(*(p.sends(transport) for p in shards), key=lambda s: (s.at_ns, s.device)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), devices=st.integers(1, 9), shards=st.integers(1, 5),
       transport=st.sampled_from(TRANSPORTS))
def test_shards_are_disjoint_and_their_union_is_the_plan(seed: int, devices: int, shards: int,
                                                         transport: Transport) -> None:
    """For any seed and sharding: shards own disjoint devices covering the fleet, and their sends merged by
    (at_ns, device) are exactly the unsharded plan's."""
    scenario = SMALL.with_overrides(seed=seed, devices=devices, duration_s=2.0)
    parts = [Plan(scenario, shard=k, shards=shards) for k in range(shards)]
    owned = [set(p.devices) for p in parts]
    assert sum(map(len, owned)) == devices and set().union(*owned) == set(range(devices))
    for plan in parts:
        assert all(s.device in plan.devices for s in plan.sends(transport))
    assert rows(_merged(parts, transport)) == rows(Plan(scenario).sends(transport))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sends_are_ordered_by_time_then_device(transport: Transport) -> None:
    """sends() is non-decreasing in at_ns; on equal times, devices come in index order."""
    keys = [(s.at_ns, s.device) for s in Plan(SMALL).sends(transport)]
    assert keys == sorted(keys)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_iter_device_is_the_devices_share_of_sends(transport: Transport) -> None:
    """iter_device(d) yields exactly the sends of device d that sends() yields, in the same order."""
    plan = Plan(SMALL, shard=1, shards=2)
    everything = list(plan.sends(transport))
    for device in plan.devices:
        assert rows(plan.iter_device(device, transport)) == rows(s for s in everything if s.device == device)


def test_ramp_devices_arrive_evenly_and_send_nothing_before() -> None:
    """Device d of n connects at ramp * d / n; its first send (the init) is then, none is earlier."""
    plan = Plan(SMALL)
    ramp_ns = int(SMALL.ramp_s * 1e9)
    first: dict[int, Send] = {}
    for send in plan.sends("ws"):
        first.setdefault(send.device, send)
    for device in range(SMALL.devices):
        assert plan.connect_at_ns(device) == ramp_ns * device // SMALL.devices
        assert first[device].at_ns == plan.connect_at_ns(device)
        assert first[device].events[0].TYPE.value == "init"
    for send in plan.sends("http"):
        assert send.at_ns > plan.connect_at_ns(send.device)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nothing_is_created_after_the_duration(transport: Transport) -> None:
    """No event is created at or after duration_s; HTTP's final flush is within a second after it."""
    plan = Plan(SMALL)
    end = plan.end_ns
    assert end == round(SMALL.duration_s * 1e9)
    sends = list(plan.sends(transport))
    assert all(c < end for s in sends for c in s.created_ns)
    if transport == "ws":
        assert all(s.at_ns < end for s in sends)
    else:
        assert all(s.at_ns <= end + FINAL_FLUSH_NS for s in sends)


def test_event_ids_are_unique_integers_below_2_53() -> None:
    """Every trackable event has an int id, unique in the run, from its device's id block, < 2**53."""
    ids: list[int] = []
    for send in Plan(SMALL).sends("ws"):
        for event in send.events:
            if send.is_heartbeat:
                assert event.id is None
                continue
            assert isinstance(event.id, int) and 0 < event.id < 2**53
            assert event.id // ID_STRIDE == send.device
            ids.append(event.id)
    assert len(ids) == len(set(ids)) == Plan(SMALL).expected_events()


def test_device_ids_are_stable_hex_per_device_and_seed() -> None:
    """deviceId: 64 hex characters, distinct per device, the same in every plan, another for another seed."""
    plan = Plan(SMALL)
    ids = [plan.device_id(d) for d in range(SMALL.devices)]
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids) and len(set(ids)) == len(ids)
    assert ids == [Plan(SMALL, shard=1, shards=3).device_id(d) for d in range(SMALL.devices)]
    assert Plan(SMALL.with_overrides(seed=99)).device_id(0) != ids[0]
    for send in plan.sends("ws"):
        assert {e.device_id for e in send.events} == {ids[send.device]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_expected_events_counts_the_trackable_events(transport: Transport) -> None:
    """expected_events() is the number of id-carrying events sends() yields, per shard too."""
    for shards in (1, 3):
        parts = [Plan(SMALL, shard=k, shards=shards) for k in range(shards)]
        for plan in parts:
            sent = sum(1 for s in plan.sends(transport) for e in s.events if e.id is not None)
            assert plan.expected_events() == sent
        assert sum(p.expected_events() for p in parts) == Plan(SMALL).expected_events()


def test_bad_arguments_are_usage_errors() -> None:
    """An unknown transport or impossible shard is a UsageError; a device outside the fleet, a ValueError."""
    with pytest.raises(UsageError, match="transport"):
        Plan(SMALL).sends("carrier-pigeon")  # type: ignore[arg-type]
    for shard, shards in ((0, 0), (2, 2), (-1, 3)):
        with pytest.raises(UsageError, match="shard"):
            Plan(SMALL, shard=shard, shards=shards)
    with pytest.raises(ValueError):
        Plan(SMALL).connect_at_ns(SMALL.devices)


def test_more_shards_than_devices_leaves_some_empty() -> None:
    """A shard with no devices has an empty plan."""
    plan = Plan(SMALL.with_overrides(devices=2), shard=3, shards=4)
    assert plan.devices == () and list(plan.sends("ws")) == [] and plan.expected_events() == 0


def test_the_smoke_scenario_plans() -> None:
    """The shipped smoke scenario yields a plan with events on both transports."""
    plan = Plan(load_scenario(ROOT / "scenarios" / "smoke.toml"))
    assert plan.expected_events() > 0
    assert sum(len(s.events) for s in plan.sends("http")) == plan.expected_events()
