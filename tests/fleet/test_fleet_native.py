"""bench._native (C) and the Python it stands in for make the same plan: the same draws, the same bytes.

The plan uses ``bench._native.track_run`` for runs of the common ``event`` kind when it is built; with it
switched off, the Python loop runs. Every Send of both must be equal, byte for byte, for any seed, burst size
and kind mix, and running out of ids must fail alike.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Literal, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bench.fleet.device
import bench.fleet.plan
import bench.fleet.send
from bench.fleet import Plan
from bench.fleet.send import WireSend
from bench.native import KINDS, switched, twins
from bench.protocol.errors import UsageError
from bench.protocol.message import Transport
from bench.scenario import Scenario

native = pytest.importorskip("bench._native", reason="bench._native is not built (no C compiler at install)")

BASE = Scenario(name="native", duration_s=3.0, devices=5, ramp_s=1.0, per_device_rate=30.0, heartbeat_s=0.5,
                http_flush_s=0.7, session_s=1.2, idle_gap_s=0.2, error_share=0.1, userid_share=0.05,
                props_share=0.05, stack_bytes=(50, 300), http_max_events=6)


def plans(scenario: Scenario, transport: Transport, shards: int = 1) -> tuple[list[WireSend], list[WireSend]]:
    """The wire sends of ``scenario`` (each shard's in turn) with the C twins, then without them."""
    def sends() -> list[WireSend]:
        return [s for k in range(shards)
                for s in Plan(scenario, shard=k, shards=shards).wire_sends(transport)]

    with switched("c"):
        with_c = sends()
    with switched("python"):
        without = sends()
    return with_c, without


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), per_message=st.sampled_from((1, 2, 10)),
       shares=st.sampled_from(((0.0, 0.0, 0.0), (0.1, 0.05, 0.05), (0.3, 0.3, 0.4), (0.0, 0.5, 0.0))),
       payload=st.sampled_from(((0, 0), (20, 400))), transport=st.sampled_from(("ws", "http")),
       devices=st.sampled_from((1, 5, 40)), shards=st.sampled_from((1, 3)),
       ramp_s=st.sampled_from((0.0, 1.0, 5.0)))
def test_c_and_python_make_the_same_plan(seed: int, per_message: int, shares: tuple[float, float, float],
                                         payload: tuple[int, int], transport: Transport, devices: int,
                                         shards: int, ramp_s: float) -> None:
    """Byte for byte, in the same order: the event writer and the timeline, merged (ties of time
    included: a ramp of 0 starts every device at once; a ramp past the run's end leaves devices that never
    come online)."""
    error, userid, props = shares
    scenario = replace(BASE, seed=seed, events_per_message=per_message, error_share=error,
                       userid_share=userid, props_share=props, payload_bytes=payload, devices=devices,
                       ramp_s=ramp_s)
    with_c, without = plans(scenario, transport, shards)
    assert with_c == without
    assert sum(len(s.ids) for s in with_c) == Plan(scenario).expected_events()


@pytest.mark.parametrize("per_message", [1, 10])
def test_running_out_of_ids_fails_alike(monkeypatch: pytest.MonkeyPatch, per_message: int) -> None:
    """The device that uses up its block of ids fails at the same send, with the same error, either way."""
    monkeypatch.setattr(bench.fleet.device, "ID_STRIDE", 60)
    scenario = replace(BASE, per_device_rate=200.0, events_per_message=per_message)
    outcomes = []
    for kind in KINDS:
        made: list[object] = []
        with switched(kind), pytest.raises(UsageError, match="would send more than 59 events") as info:
            for send in Plan(scenario).wire_sends("ws"):
                made.append(tuple(send))
        outcomes.append((made, str(info.value)))
    assert outcomes[0] == outcomes[1]


def _walk(scenario: Scenario, index: int, make: object, ticks: object,
          wrap_draws: bool = False) -> list[tuple[object, ...]]:
    """Every message of device ``index`` by ``sends_made`` with the C timeline on or off, each with the
    device's ``due_ns`` and ``next_id`` after it, and how it ended (an error's text, or None).

    ``wrap_draws``: the device draws through a Python function around its stream (the same numbers), so that
    ``Ticks`` writes each event as a bytes object instead of joining the hot path's message in its buffer."""
    cfg = bench.fleet.device.FleetConfig.build(scenario)
    device = bench.fleet.device.Device(cfg, index)
    if wrap_draws:
        stream = device.random
        device.random = lambda: stream()
    seen: list[tuple[object, ...]] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(twins, "Ticks", ticks)  # the timeline alone: track_run stays as it is
        it = device.sends_made(make, cfg.heartbeat_ns)  # type: ignore[arg-type]
        assert (type(it) is native.Ticks) == (ticks is not None)
        try:
            for send in it:
                got = tuple(send) if isinstance(send, WireSend) else (send.at_ns, send.parts, send.ids,
                                                                        send.created_ns, send.encoded)
                seen.append((got, device.due_ns, device.next_id))
        except UsageError as exc:
            seen.append((str(exc),))
        assert next(it, None) is None  # over for good, an error or not
    return seen


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), arrival=st.sampled_from(("poisson", "fixed")),
       heartbeat_s=st.sampled_from((0.0, 0.35, 5.0)), session_s=st.sampled_from((0.0, 0.4, 1.2)),
       per_message=st.sampled_from((1, 3, 10)), wire=st.booleans(), index=st.integers(0, 4),
       rate=st.sampled_from((0.5, 30.0)), wrap_draws=st.booleans())
def test_ticks_walks_the_timeline_as_the_python_generator(seed: int, arrival: Literal["poisson", "fixed"],
                                                         heartbeat_s: float,
                                                         session_s: float, per_message: int, wire: bool,
                                                         index: int, rate: float, wrap_draws: bool) -> None:
    """``bench._native.Ticks`` against ``Device._sends_py`` for one device: the same messages (WireSends,
    joined from its buffer or from one bytes object per event, or Sends through ``make_send``), and the
    same ``due_ns`` and ``next_id`` after each one."""
    scenario = replace(BASE, seed=seed, arrival=arrival, heartbeat_s=heartbeat_s, session_s=session_s,
                       events_per_message=per_message, per_device_rate=rate)
    make = bench.fleet.send.make_wire if wire else bench.fleet.send.make_send
    assert (_walk(scenario, index, make, native.Ticks, wrap_draws)
            == _walk(scenario, index, make, None, wrap_draws))


@pytest.mark.parametrize("session_s", [0.0, 5400.0])
def test_ticks_opens_a_session_after_thirty_minutes_of_silence_as_python(session_s: float) -> None:
    """A device a few events per hour (gaps past 30 minutes: a new init first) over a 20-hour run, with
    heartbeats and, in turn, sessions of an hour and a half: the C timeline is the Python one."""
    scenario = replace(BASE, duration_s=72_000.0, per_device_rate=1 / 1500, heartbeat_s=3600.0,
                       session_s=session_s, idle_gap_s=600.0, ramp_s=0.0)
    for index in range(5):
        c = _walk(scenario, index, bench.fleet.send.make_wire, native.Ticks)
        assert c == _walk(scenario, index, bench.fleet.send.make_wire, None)
    inits = sum(b'"type":"init"' in cast(tuple[int, int, bytes], m[0])[2] for m in c)
    assert inits > 2  # the silence rule (and the sessions) opened sessions after the first


def test_ticks_refuses_wrong_arguments_with_an_error() -> None:
    """Wrong types or times out of range raise (never a crash)."""
    cfg = bench.fleet.device.FleetConfig.build(BASE)
    device = bench.fleet.device.Device(cfg, 0)
    back = (device, bench.fleet.device._DUE_SLOT, bench.fleet.device._NEXT_ID_SLOT)
    state = (device.random, 0, 0, device.next_id, device.last_id, b"", device._device_b)
    calls = (device._init_for_c, device._events_after_for_c, device._beat_wire, bench.fleet.send.make_wire)
    args = (back, state, calls, WireSend, 0, cfg.end_ns, cfg.end_ns, 0, 0, 1e9, True, 1, 1.0,
            cfg.track_wire, cfg.track_bounds)
    assert next(native.Ticks(*args)) is not None
    with pytest.raises(TypeError):
        native.Ticks(*args[:5])
    with pytest.raises(TypeError, match="wire_type"):
        native.Ticks(*args[:3], int, *args[4:])
    with pytest.raises(ValueError, match="out of range"):
        native.Ticks(*args[:6], 1 << 62, *args[7:])
    with pytest.raises(TypeError, match="data descriptors"):
        native.Ticks((device, object(), back[2]), *args[1:])
    with pytest.raises(TypeError):  # the slots are Device's: another object is refused at the first write
        next(native.Ticks((object(), *back[1:]), *args[1:]))
    with pytest.raises(TypeError, match="init must return"):
        next(native.Ticks(back, state, (lambda next_id: b"x", *calls[1:]), *args[3:]))


def test_track_run_draws_and_writes_as_the_python_loop() -> None:
    """One call, by hand: a stop at the first kind draw at or above the limit, ids in order, the draws the
    Python loop makes (a kind, a name, a payload variant per event)."""
    wire = ((b"A", (b"a0", b"a1")), (b"B", (b"b0", b"b1", b"b2")))
    bounds = (0.5, 2.0)
    rnd = random.Random(3).random
    ref = random.Random(3).random
    out: list[bytes] = []
    event_id, u = native.track_run(rnd, 50, 0.8, wire, bounds, b"|s|", b"|d|", 41, 10**6, out)
    expected = []
    i = 41
    while True:
        kind = ref()
        if kind >= 0.8:
            break
        head, tails = wire[0 if ref() < 0.5 else 1]
        expected.append(head + b"|s|" + b"%d" % i + b"|d|" + tails[int(ref() * len(tails))])
        i += 1
    assert out == expected and event_id == i and u == kind
    assert rnd() == ref()  # the same number of draws


def test_track_run_refuses_wrong_arguments_with_an_error() -> None:
    """Wrong types raise TypeError (never a crash); ids past last_id stop the run with -1.0."""
    rnd = random.Random(1).random
    wire = ((b"A", (b"a",)),)
    with pytest.raises(TypeError):
        native.track_run(rnd, 1, 1.0, [], (2.0,), b"", b"", 1, 9, [])
    with pytest.raises(TypeError, match="session_b must be bytes"):
        native.track_run(rnd, 1, 1.0, wire, (2.0,), "s", b"", 1, 9, [])
    with pytest.raises(TypeError):
        native.track_run(rnd, 1, 1.0, wire)
    out: list[bytes] = []
    assert native.track_run(rnd, 5, 1.0, wire, (2.0,), b"", b"", 8, 9, out) == (10, -1.0)
    assert out == [b"A8a", b"A9a"]
