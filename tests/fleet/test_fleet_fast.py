"""The plan's fast paths keep its promises: counting without building, encoding once, nothing built early."""

from __future__ import annotations

import dataclasses
import gc
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bench.fleet.device
from bench.fleet import Plan, Send
from bench.fleet.content import Seeds, derive, device_id, device_rng, unit
from bench.protocol import EVENT_CLASSES, Event, Heartbeat, encode_events
from bench.protocol.errors import UsageError
from bench.protocol.message import Transport
from bench.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SMALL = Scenario(name="small", duration_s=4.0, devices=7, ramp_s=1.5, per_device_rate=6.0, heartbeat_s=0.5,
                 http_flush_s=0.8, session_s=1.5, idle_gap_s=0.3, error_share=0.1, userid_share=0.05,
                 props_share=0.05, stack_bytes=(50, 300), http_max_events=4)
#: Hours of sparse traffic: 30-minute silences inside sessions force extra inits.
SPARSE = Scenario(name="sparse", duration_s=8 * 3600.0, devices=12, ramp_s=600.0, per_device_rate=1 / 1500,
                  heartbeat_s=0.0, session_s=0.0, error_share=0.0, userid_share=0.0, props_share=0.0)
TRANSPORTS: tuple[Transport, ...] = ("ws", "http")


def tracked(plan: Plan, transport: Transport) -> int:
    """How many id-carrying events ``plan.sends(transport)`` yields."""
    return sum(1 for s in plan.sends(transport) for e in s.events if e.id is not None)


def shipped(name: str, **overrides: float) -> Scenario:
    return load_scenario(ROOT / "scenarios" / f"{name}.toml").with_overrides(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(("scenario", "shards"), [
    pytest.param(shipped("smoke"), 1, id="smoke"),
    pytest.param(shipped("smoke", seed=4), 3, id="smoke-seed4-3-shards"),
    pytest.param(shipped("desktop-fleet", duration_s=8.0, devices=120), 2, id="desktop-fleet-2-shards"),
    pytest.param(replace(shipped("desktop-fleet", duration_s=8.0, devices=60, seed=9), events_per_message=5),
                 1, id="desktop-fleet-bursts-of-5"),
    pytest.param(shipped("idle-heartbeats", duration_s=30.0, devices=300, seed=2), 4, id="idle-heartbeats"),
    pytest.param(SPARSE, 2, id="sparse-silences"),
    pytest.param(replace(SMALL, arrival="fixed", seed=5), 3, id="small-fixed"),
])
def test_expected_events_is_what_both_transports_send(scenario: Scenario, shards: int) -> None:
    """Per shard, expected_events() equals the id-carrying events of sends("ws") and of sends("http")."""
    for shard in range(shards):
        plan = Plan(scenario, shard=shard, shards=shards)
        assert plan.expected_events() == tracked(plan, "ws") == tracked(plan, "http")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), devices=st.integers(1, 6), shards=st.integers(1, 3),
       per_message=st.sampled_from((1, 1, 2, 7)), fixed=st.booleans(), session_s=st.sampled_from((0.0, 0.7)),
       rate=st.sampled_from((0.0, 3.0, 40.0)),
       shares=st.sampled_from(((0.02, 0.005, 0.005), (0.3, 0.3, 0.4))))
def test_expected_events_counts_any_plan(seed: int, devices: int, shards: int, per_message: int, fixed: bool,
                                         session_s: float, rate: float,
                                         shares: tuple[float, float, float]) -> None:
    """For any seed, sharding, burst size, arrival, session and kind mix, counting matches sending."""
    error, userid, props = shares
    scenario = replace(SMALL, seed=seed, devices=devices, events_per_message=per_message,
                       per_device_rate=rate, arrival="fixed" if fixed else "poisson", session_s=session_s,
                       duration_s=2.0, error_share=error, userid_share=userid, props_share=props)
    for shard in range(shards):
        plan = Plan(scenario, shard=shard, shards=shards)
        assert plan.expected_events() == tracked(plan, "ws")


def test_running_out_of_ids_is_the_same_usage_error_when_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device that would use up its block of ids fails sends() and expected_events() alike."""
    monkeypatch.setattr(bench.fleet.device, "ID_STRIDE", 50)
    plan = Plan(replace(SMALL, per_device_rate=100.0))
    for transport in TRANSPORTS:
        with pytest.raises(UsageError, match="would send more than 49 events"):
            list(plan.sends(transport))
    with pytest.raises(UsageError, match="device 0 would send more than 49 events"):
        plan.expected_events()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_encoded_is_encode_events(transport: Transport) -> None:
    """Send.encoded is exactly encode_events(send.events), the bytes the plan made are the events' own
    serialization, ids are the events' ids; a device's heartbeats share one encoding."""
    beats: dict[int, bytes] = {}
    for send in Plan(SMALL).sends(transport):
        assert send.encoded == encode_events(send.events)
        assert send.encoded is send.encoded  # encoded once, kept
        assert send.ids == tuple(e.id for e in send.events if e.id is not None)
        if not send.ids:  # a heartbeat
            assert beats.setdefault(send.device, send.encoded) is send.encoded
    assert bool(beats) == (transport == "ws")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_built_values_are_the_dataclasses_own(transport: Transport) -> None:
    """Every Send and event is exactly of its class, equal to what its dataclass __init__ builds; frozen."""
    for send in Plan(SMALL).sends(transport):
        assert type(send) is Send
        assert send == Send(send.at_ns, send.device, send.events, send.created_ns)
        for event in send.events:
            assert type(event) in EVENT_CLASSES.values()
            assert event == replace(event)
        with pytest.raises(dataclasses.FrozenInstanceError):
            send.events[0].id = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        send.at_ns = 0  # a Send refuses it at run time


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_waiting_device_holds_no_events(transport: Transport) -> None:
    """Midway through a plan, no event of it is alive but those of the Send just taken: each device's next
    events are made only when their time comes."""
    plan = Plan(replace(SMALL, devices=400, duration_s=6.0, per_device_rate=4.0, http_max_events=1000))
    half = sum(1 for _ in plan.sends(transport)) // 2
    sends = plan.sends(transport)
    last: Send | None = None
    for _, send in zip(range(half), sends, strict=False):
        last = send
    assert last is not None
    ours = {plan.device_id(d) for d in plan.devices}
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, Event) and not isinstance(o, Heartbeat)
             and o.device_id in ours]
    assert {id(e) for e in alive} <= {id(e) for e in last.events}
    assert next(sends, None) is not None  # the plan was not over


@given(seed=st.integers(0, 2**63 - 1), index=st.integers(0, 2**25 - 1),
       purpose=st.sampled_from(("device", "heartbeat", "http-flush", "x:y")))
def test_seeds_derive_what_the_functions_derive(seed: int, index: int, purpose: str) -> None:
    """Seeds (hash prefixes computed once) gives exactly derive, unit, device_rng and device_id's values."""
    seeds = Seeds(seed)
    for _ in range(2):  # the second time from the kept prefix
        assert seeds.derive(purpose, index) == derive(seed, purpose, index)
        assert seeds.unit(purpose, index) == unit(seed, purpose, index)
        assert seeds.device_id(index) == device_id(seed, index)
        assert seeds.device_rng(index).random() == device_rng(seed, index).random()
