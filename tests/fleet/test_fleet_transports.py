"""One event stream, two transports: WebSocket messages and heartbeats, HTTP flushes of the same events."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import replace

import pytest

from bench.fleet import Plan, Send
from bench.fleet.plan import FINAL_FLUSH_NS
from bench.protocol import Heartbeat, encode_events
from bench.scenario import Scenario

SCENARIO = Scenario(name="transports", duration_s=5.0, devices=6, ramp_s=1.0, per_device_rate=8.0,
                    heartbeat_s=0.7, http_flush_s=0.9, session_s=2.0, idle_gap_s=0.4, error_share=0.1,
                    userid_share=0.05, props_share=0.05, stack_bytes=(50, 300))
NS = 1_000_000_000


def by_device(sends: list[Send]) -> dict[int, list[Send]]:
    out: dict[int, list[Send]] = defaultdict(list)
    for send in sends:
        out[send.device].append(send)
    return out


def events_by_id(sends: list[Send]) -> dict[object, tuple[bytes, int]]:
    """id -> (the event's encoded bytes, its created_ns), for every trackable event."""
    return {e.id: (encode_events([e]), created) for s in sends for e, created in zip(s.events, s.created_ns,
                                                                                     strict=True)
            if e.id is not None}


def test_ws_and_http_carry_the_same_events() -> None:
    """Same ids, same bytes, same creation times, in the same per-device order, over both transports."""
    plan = Plan(SCENARIO)
    ws, http = list(plan.sends("ws")), list(plan.sends("http"))
    assert events_by_id(ws) == events_by_id(http)
    ws_dev, http_dev = by_device(ws), by_device(http)
    for device in plan.devices:
        ws_ids = [e.id for s in ws_dev[device] for e in s.events if e.id is not None]
        assert ws_ids == [e.id for s in http_dev[device] for e in s.events]


def test_ws_sends_each_burst_when_created() -> None:
    """WebSocket: created_ns == at_ns for every event, and the first send of a device holds its init."""
    sends = list(Plan(SCENARIO).sends("ws"))
    assert all(c == s.at_ns for s in sends for c in s.created_ns)
    for device_sends in by_device(sends).values():
        assert device_sends[0].events[0].TYPE.value == "init"


def test_ws_heartbeats_keep_their_period_and_carry_no_id() -> None:
    """A heartbeat send holds one Heartbeat (machineId, no id, no session), every heartbeat_s per device."""
    plan = Plan(SCENARIO)
    period = round(SCENARIO.heartbeat_s * NS)
    for device, sends in by_device(list(plan.sends("ws"))).items():
        beats = [s for s in sends if s.is_heartbeat]
        assert beats, device
        for beat in beats:
            (event,) = beat.events
            assert isinstance(event, Heartbeat) and event.id is None and event.session_id is None
            assert event.to_obj() == {"type": "heartbeat", "machineId": plan.device_id(device)}
        times = [b.at_ns for b in beats]
        assert all(b - a == period for a, b in itertools.pairwise(times))
        assert plan.connect_at_ns(device) < times[0] <= plan.connect_at_ns(device) + period
        assert times[-1] + period >= round(SCENARIO.duration_s * NS)


def test_no_heartbeats_over_http_or_when_disabled() -> None:
    """HTTP never carries heartbeats; heartbeat = 0 turns them off for WebSocket."""
    assert not any(isinstance(e, Heartbeat) for s in Plan(SCENARIO).sends("http") for e in s.events)
    quiet = Plan(replace(SCENARIO, heartbeat_s=0.0))
    assert not any(s.is_heartbeat for s in quiet.sends("ws"))


def test_http_flushes_respect_the_interval() -> None:
    """Each device flushes on its own grid of http_flush_s (then once after the end); an event waits less
    than an interval before a periodic flush."""
    plan = Plan(SCENARIO)
    period, end = round(SCENARIO.http_flush_s * NS), round(SCENARIO.duration_s * NS)
    for device, sends in by_device(list(plan.sends("http"))).items():
        grid = sends[0].at_ns % period
        for send in sends:
            if send.at_ns > end:  # the final flush
                assert send is sends[-1] and send.at_ns <= end + FINAL_FLUSH_NS, device
                assert all(c < end for c in send.created_ns)
                continue
            assert send.at_ns % period == grid, device
            assert all(0 <= send.at_ns - c < period for c in send.created_ns)
            assert list(send.created_ns) == sorted(send.created_ns)
        times = [s.at_ns for s in sends]
        assert len(times) == len(set(times))  # one request per flush (no split at this size)


def test_http_final_flush_follows_the_end_at_each_devices_phase() -> None:
    """Events created after a device's last periodic flush go out within a second after the end, each device
    at its own phase (so the fleet does not flush at one instant)."""
    plan = Plan(replace(SCENARIO, http_flush_s=2.0, session_s=0.0))
    end = round(SCENARIO.duration_s * NS)
    finals = [s for s in plan.sends("http") if s.at_ns > end]
    assert {s.device for s in finals} == set(plan.devices)
    assert all(s.at_ns <= end + FINAL_FLUSH_NS for s in finals)
    assert len({s.at_ns for s in finals}) == len(finals)  # no two devices at the same instant


def test_http_splits_large_flushes() -> None:
    """A flush of more than http_max_events events becomes several requests at the same time, in order."""
    big = Plan(replace(SCENARIO, http_max_events=3))
    sends = list(big.sends("http"))
    assert all(len(s.events) <= 3 for s in sends)
    assert any(a.at_ns == b.at_ns and a.device == b.device for a, b in itertools.pairwise(sends))
    assert events_by_id(sends) == events_by_id(list(Plan(SCENARIO).sends("http")))


@pytest.mark.parametrize("per_message", [1, 4])
def test_ws_events_per_message(per_message: int) -> None:
    """WebSocket messages carry events_per_message events (an init that opens a session travels alone)."""
    plan = Plan(replace(SCENARIO, events_per_message=per_message))
    for send in plan.sends("ws"):
        if send.is_heartbeat or send.events[0].TYPE.value == "init":
            assert len(send.events) == 1
        else:
            assert len(send.events) == per_message
