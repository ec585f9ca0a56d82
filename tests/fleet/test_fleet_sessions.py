"""What the generated stream says: session rules of contract.md, rates, event kinds and their contents."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import replace

import pytest

from bench.fleet import MAX_SESSION_ID, SILENCE_NS, Plan
from bench.protocol import Event, Init, encode_events, parse_envelope
from bench.protocol.message import Transport
from bench.scenario import Mix, Scenario

NS = 1_000_000_000
BUSY = Scenario(name="busy", duration_s=6.0, devices=8, ramp_s=1.0, per_device_rate=10.0, heartbeat_s=1.0,
                session_s=2.0, idle_gap_s=0.5, error_share=0.1, userid_share=0.05, props_share=0.05,
                stack_bytes=(300, 900), payload_bytes=(60, 500))
#: Hours of sparse traffic: gaps of 30 minutes and more happen inside sessions.
SPARSE = Scenario(name="sparse", duration_s=8 * 3600.0, devices=12, ramp_s=600.0, per_device_rate=1 / 1500,
                  heartbeat_s=0.0, session_s=0.0, error_share=0.0, userid_share=0.0, props_share=0.0)


def timelines(plan: Plan) -> dict[int, list[tuple[int, Event]]]:
    """device -> its trackable events with their creation times, in order (from the WebSocket plan)."""
    out: dict[int, list[tuple[int, Event]]] = defaultdict(list)
    for send in plan.sends("ws"):
        if not send.is_heartbeat:
            out[send.device].extend(zip(send.created_ns, send.events, strict=True))
    return out


@pytest.mark.parametrize("scenario", [BUSY, SPARSE], ids=["busy", "sparse"])
def test_session_rules_of_the_contract_hold(scenario: Scenario) -> None:
    """Per device: init first; each init opens a new sessionId; every event is in a session opened by an init;
    after 30 min or more of silence the next event is an init with a new sessionId."""
    silences = 0
    for device, events in timelines(Plan(scenario)).items():
        assert isinstance(events[0][1], Init), device
        opened: set[int] = set()
        session, last_at = 0, None
        for at, event in events:
            if isinstance(event, Init):
                assert event.session_id not in opened and event.session_id != session
                session = event.session_id or 0
                opened.add(session)
            assert event.session_id == session and 1 <= session <= MAX_SESSION_ID
            if last_at is not None and at - last_at >= SILENCE_NS:
                assert isinstance(event, Init), (device, at)
                silences += 1
            last_at = at
    if scenario is SPARSE:
        assert silences > 0  # the rule was exercised, not vacuously true


def test_idle_gaps_start_new_sessions() -> None:
    """With sessions.length set, devices go quiet for about idle_gap (>= half of it), then send an init."""
    inits = 0
    for events in timelines(Plan(BUSY)).values():
        for (before, _), (at, event) in itertools.pairwise(events):
            if isinstance(event, Init):
                inits += 1
                assert at - before >= BUSY.idle_gap_s * NS * 0.5
    assert inits >= BUSY.devices  # about duration / (length + gap) sessions per device


def test_init_and_error_carry_the_extra_data() -> None:
    """init and error carry platform, osVersion, totalRam, version and language; other types carry none."""
    for events in timelines(Plan(BUSY)).values():
        for _, event in events:
            if event.TYPE.value in ("init", "error"):
                assert event.extra is not None and event.missing_required() == ()
            else:
                assert event.extra is None


def test_attributes_follow_the_mixes() -> None:
    """Device attributes come from the scenario's mixes, with locale sent under the configured key."""
    scenario = replace(BUSY, platforms=Mix(("linux",), (1.0,)), locales=Mix(("ja-JP",), (1.0,)),
                       locale_field="locale", devices=4)
    for events in timelines(Plan(scenario)).values():
        extra = events[0][1].extra
        assert extra is not None and extra.platform == "linux" and extra.locale == "ja-JP"
        assert extra.language is None and extra.os_version in scenario.os_version_mix("linux").values


def test_every_event_is_valid_on_the_wire() -> None:
    """Each message parses back with the protocol core's own parser: no event is rejected."""
    plan = Plan(BUSY)
    transports: tuple[Transport, ...] = ("ws", "http")
    for transport in transports:
        for send in plan.sends(transport):
            envelope = parse_envelope(encode_events(send.events))
            assert envelope.rejected == () and len(envelope.events) == len(send.events)


def test_events_carry_no_date() -> None:
    """The plan cannot know wall time: events have no date; the server uses its receive time."""
    assert all(e.date is None for events in timelines(Plan(BUSY)).values() for _, e in events)


def test_kinds_follow_their_shares() -> None:
    """error, userid and props make up about their shares of the events; the rest are plain events."""
    scenario = replace(BUSY, duration_s=30.0, devices=20, session_s=0.0)
    kinds = Counter(e.TYPE.value for events in timelines(Plan(scenario)).values() for _, e in events)
    ticks = sum(kinds.values()) - kinds["init"]
    assert ticks > 5000
    for kind, share in (("error", 0.1), ("userid", 0.05), ("props", 0.05), ("event", 0.8)):
        assert kinds[kind] == pytest.approx(share * ticks, rel=0.1), kind


def test_error_payloads_have_stack_and_message_of_the_configured_size() -> None:
    """Errors carry {"stack", "message"}, stacks within stack_bytes; event payloads stay within range."""
    low, high = BUSY.stack_bytes
    sizes = set()
    for events in timelines(Plan(BUSY)).values():
        for _, event in events:
            if event.TYPE.value == "error":
                assert event.payload is not None and set(event.payload) == {"stack", "message"}
                assert low <= len(event.payload["stack"]) <= high and event.name in BUSY.error_names.values
                sizes.add(len(event.payload["stack"]))
            elif event.TYPE.value == "event":
                assert event.payload is not None and event.name in BUSY.event_names.values
                size = len(encode_events([event])) - len(encode_events([replace(event, payload=None)]))
                assert size <= BUSY.payload_bytes[1] + len(',"payload":')
    assert len(sizes) > 1


def test_no_payload_when_payload_bytes_is_zero() -> None:
    """payload_bytes = 0: plain events carry no payload at all."""
    plan = Plan(replace(BUSY, payload_bytes=(0, 0)))
    assert all(e.payload is None for events in timelines(plan).values() for _, e in events
               if e.TYPE.value == "event")


def test_userid_sticks_to_later_events() -> None:
    """After a device sends userid, its later events carry that userId, as the modules do."""
    seen = 0
    for events in timelines(Plan(BUSY)).values():
        user = None
        for _, event in events:
            if event.TYPE.value == "userid":
                user = event.user_id
                assert user
                seen += 1
            assert event.user_id == user
    assert seen > 0


def test_fixed_arrivals_hit_the_rate_per_device() -> None:
    """arrival = fixed: each device sends rate x its time online events (within one), inits on top."""
    scenario = replace(BUSY, arrival="fixed", session_s=0.0, rate=400.0, devices=8)
    plan = Plan(scenario)
    for device, events in timelines(plan).items():
        online_s = scenario.duration_s - plan.connect_at_ns(device) / NS
        ticks = sum(1 for _, e in events if not isinstance(e, Init))
        assert abs(ticks - 400.0 / 8 * online_s) <= 1, device


def test_poisson_arrivals_hit_the_total_rate() -> None:
    """arrival = poisson: a total rate spread over devices gives that many events (count-based, seeded)."""
    for seed in (1, 2, 3):
        scenario = replace(BUSY, seed=seed, session_s=0.0, rate=500.0, devices=25, ramp_s=0.0,
                           duration_s=20.0)
        ticks = sum(1 for events in timelines(Plan(scenario)).values() for _, e in events
                    if not isinstance(e, Init))
        assert ticks == pytest.approx(500.0 * 20.0, rel=0.05)


def test_bursts_keep_the_event_rate() -> None:
    """events_per_message groups events without changing the event rate."""
    base = replace(BUSY, arrival="fixed", session_s=0.0, ramp_s=0.0, duration_s=10.0)
    one, four = Plan(base), Plan(replace(base, events_per_message=4))
    assert four.expected_events() == pytest.approx(one.expected_events(), rel=0.05)


def test_zero_rate_sends_only_inits_and_heartbeats() -> None:
    """A device rate of 0: one init per device, then only heartbeats."""
    plan = Plan(replace(BUSY, per_device_rate=0.0, session_s=0.0))
    kinds = Counter(e.TYPE.value for s in plan.sends("ws") for e in s.events)
    assert kinds["init"] == BUSY.devices and set(kinds) == {"init", "heartbeat"}
