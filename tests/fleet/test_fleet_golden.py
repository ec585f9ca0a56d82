"""The plan's output, pinned: sha256 digests of every send of fixed scenarios, seeds and shards.

Same scenario + seed (+ shard) => identical Sends, byte for byte (api.md, "bench.fleet"). These digests were
taken from the plan before any change to how it is computed; a change to the fleet's code that alters one byte
of one send, one intended time, one device index or one creation time fails here. A deliberate change of the
generated stream (a new event field, another random draw) must update them, and say so: every recorded
benchmark result then refers to another stream.

To print the digests of the current code (to compare, or to update them deliberately)::

    .venv/bin/python tests/fleet/test_fleet_golden.py
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from bench.fleet import Plan
from bench.protocol import encode_events
from bench.protocol.message import Transport
from bench.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
TRANSPORTS: tuple[Transport, ...] = ("ws", "http")


#: sha256 of each shipped scenario's value (path aside) when the digests were taken: if a scenario file is
#: edited, its cases are reported as such rather than as a change of the plan.
SHIPPED = {
    "desktop-fleet": "7f825d5a811c78c00c719830310e760c2c03e67736d1e977c3cf799709708b77",
    "idle-heartbeats": "e65edc8a6a5686a8467e89e049dbae24b805a27616b27585c925ae869f2d9306",
    "smoke": "a7078467b84bec3facb63accea18c6b27749fe2639284b70ceac1cb9739a1ac3",
}


def scenario_digest(scenario: Scenario) -> str:
    return hashlib.sha256(repr(replace(scenario, path="")).encode()).hexdigest()


def shipped(name: str) -> Scenario:
    """A shipped scenario, as it was when the digests were taken (else the test fails and says so)."""
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    if scenario_digest(scenario) != SHIPPED[name]:
        pytest.fail(f"scenarios/{name}.toml changed since the golden digests were taken: its cases no longer "
                    "check the plan's code; re-pin them (see the module docstring)")
    return scenario


#: Every code path of the generator: sessions and idle gaps, the 30-minute silence rule, bursts, fixed
#: arrivals, no payloads, the locale key, split HTTP flushes, no heartbeats, a zero rate, many devices.
SMALL = Scenario(name="small", duration_s=4.0, devices=7, ramp_s=1.5, per_device_rate=6.0, heartbeat_s=0.5,
                 http_flush_s=0.8, session_s=1.5, idle_gap_s=0.3, error_share=0.1, userid_share=0.05,
                 props_share=0.05, stack_bytes=(50, 300))
SPARSE = Scenario(name="sparse", duration_s=8 * 3600.0, devices=12, ramp_s=600.0, per_device_rate=1 / 1500,
                  heartbeat_s=0.0, session_s=0.0, error_share=0.0, userid_share=0.0, props_share=0.0)


def _cases() -> dict[str, tuple[Scenario, int, int]]:
    desktop, idle, smoke = shipped("desktop-fleet"), shipped("idle-heartbeats"), shipped("smoke")
    return {
        "smoke": (smoke, 0, 1),
        "smoke-seed99-shard1of2": (smoke.with_overrides(seed=99), 1, 2),
        "desktop-fleet": (desktop, 0, 1),
        "desktop-fleet-seed5-shard2of3": (desktop.with_overrides(seed=5, duration_s=20.0), 2, 3),
        "desktop-fleet-burst4": (replace(desktop, events_per_message=4, duration_s=15.0), 0, 1),
        "desktop-fleet-10k-devices-shard1of4": (
            desktop.with_overrides(devices=10_000, rate=15_000.0, duration_s=6.0, connect_rate=1e9), 1, 4),
        "idle-heartbeats": (idle, 0, 1),
        "idle-heartbeats-seed11-shard0of2": (idle.with_overrides(seed=11, duration_s=30.0), 0, 2),
        "small": (SMALL, 0, 1),
        "small-fixed-burst3": (replace(SMALL, arrival="fixed", events_per_message=3), 0, 1),
        "small-no-payload-locale": (
            replace(SMALL, payload_bytes=(0, 0), locale_field="locale", seed=3), 0, 1),
        "small-split-flushes-no-heartbeat": (
            replace(SMALL, http_max_events=3, heartbeat_s=0.0, seed=4), 0, 1),
        "small-one-session-zero-rate": (replace(SMALL, per_device_rate=0.0, session_s=0.0), 0, 1),
        "sparse-silence": (SPARSE, 0, 1),
    }


def digest(plan: Plan, transport: Transport) -> str:
    """sha256 over every send: at_ns, device, created_ns and the encoded events, in plan order."""
    h = hashlib.sha256()
    for send in plan.sends(transport):
        assert type(send.events) is tuple and type(send.created_ns) is tuple
        created = ",".join(map(str, send.created_ns))
        h.update(f"{send.at_ns}|{send.device}|{created}|".encode())
        h.update(encode_events(send.events))
        h.update(b"\n")
    return h.hexdigest()


# name -> (ws digest, http digest, expected_events()); taken from the plan as it was first written, the HTTP
# digests re-pinned once since, deliberately: the final flush moved from the end of the run to each device's
# phase within the second after it (bench/fleet/plan.py, http_sends).
GOLDEN: dict[str, tuple[str, str, int]] = {
    "smoke": (
        "8ba7527abba4a63fa9f47c7c3b63a158da6700d93c869112d601a262223e1fb6",
        "cffeb5caa18ce0f918dfac2b7d662bd38d62eb2c9585614751be7758cb55b7dc",
        120),
    "smoke-seed99-shard1of2": (
        "8d82d5ad91ee2746f986e2f5b5462ddfa1e3ddbcf2adef58860213f97e9eff59",
        "0405a9e6b6e22d8075928556100642d6aff4ecbfd9b3fd556024f148032b76d9",
        58),
    "desktop-fleet": (
        "9c8c104c67ba57bcecb409e143f4f35e80021d5b692f09537b4fcfe4d510b6f1",
        "b5387e44c71392f62c65dfc9cd9eb9a0ebaff282b4c4217e5d01f418d115b43e",
        45065),
    "desktop-fleet-seed5-shard2of3": (
        "c3dceb00cea1214c19313df668a8f188ca8715fa110794141437717278edbf45",
        "4760ec6be6b5d086e5bd2bb97ce907037ff7f2ae14d5413e8f470aebb2271d43",
        6777),
    "desktop-fleet-burst4": (
        "a7e910b2d7f9be98f1396f163151a090d4f485954d070d486b6cc5b40236b44a",
        "83b910f5fad569ba8a08dc6f3b1cfb29943857a0e688cc1e62515e1f5cb505d9",
        14966),
    "desktop-fleet-10k-devices-shard1of4": (
        "6eef42464e010916fc882cb041ba1d8152e01238c76bdf285bde51110718d74b",
        "cb24895c98d5c8f9f3182371c6fc4a7167d7b9a5b0c0ead31cb6573d8ca65b62",
        15462),
    "idle-heartbeats": (
        "ca871df0f67275cbc060387a4225b4a6e2de6cdd7c1303452b8f9644f24f57b1",
        "30282c4963972c1e7e98a1264f057c1d6c13cc3cade32eb616d682be92caf9ef",
        2969),
    "idle-heartbeats-seed11-shard0of2": (
        "d3619d3288f0b80e1598c589bd3fd42ad9900e63a5e7126e546b1ba746b6c13a",
        "97feb58d38ee39f2db685f0a8aec4edf254c001e157dfd039b728b0526d85186",
        1184),
    "small": (
        "4f7756772db222e7ade87a3e971f6901c61c645e17450ab10611f9194fdf8d4e",
        "9b1a5ffedc5472dd50c3813d0aa0aa1b42b49e9a083a3acb5e8b66cf1988a98d",
        138),
    "small-fixed-burst3": (
        "844a14a07a8d376f6b1d5646f0a7bea7aabd237a39e087191e8cfbb1a7b41877",
        "ba8d4fb3c5dc0f51a608166307c27423246f9d7483a909f0d01b8ab64eda83d2",
        130),
    "small-no-payload-locale": (
        "3b24b9cb74086da59a0ab75f96d051b136f06274c731c7277a7ffce6bda4c7ff",
        "0cc8c1dec913f386a507be8477f7919885ba23793837e1a3878fdbfb7cc709f1",
        129),
    "small-split-flushes-no-heartbeat": (
        "7edc90d7a447f8a76211f5ea6c9ec0e58ced2f475b45d8d6fd58e376d6302ecb",
        "3b2b25c590184e878594204d66e7e7a0600db88b6c1182d58e86d35ee14d254e",
        146),
    "small-one-session-zero-rate": (
        "24872f2062f338f1fa90853e7ad5c51959ddceb784612c508f00d1b9057e7047",
        "92b9adf619d22f40c5d3c4ad54d01edcfe4d35be096e8b08899faa5f3ec7e582",
        7),
    "sparse-silence": (
        "5003ea7106b727b186c974e60d966f0e51e6d60b6c93d5fe97a1bc46ee5cdbe6",
        "81607fa9ab246e3d810acfb2b7ddd15b7a331b982f7e80b3a9498bb174b614a5",
        308),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_the_plan_is_byte_for_byte_what_it_was(name: str) -> None:
    """Both transports' sends of each pinned case hash to the recorded digests; expected_events() matches."""
    scenario, shard, shards = _cases()[name]
    ws, http, expected = GOLDEN[name]
    plan = Plan(scenario, shard=shard, shards=shards)
    assert plan.expected_events() == expected
    assert digest(plan, "ws") == ws
    assert digest(plan, "http") == http


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_the_hot_paths_wire_sends_are_the_same_sends(name: str) -> None:
    """``wire_sends`` (what the runner sends) equals ``sends`` field for field, for every pinned case (every
    code path of the generator), over both transports."""
    scenario, shard, shards = _cases()[name]
    for transport in TRANSPORTS:
        plan = Plan(scenario, shard=shard, shards=shards)
        sends = ((s.at_ns, s.device, s.encoded, s.ids, s.created_ns) for s in plan.sends(transport))
        wires = Plan(scenario, shard=shard, shards=shards).wire_sends(transport)
        n = 0
        for send, wire in zip(sends, wires, strict=True):
            assert (wire.at_ns, wire.device, wire.encoded, wire.ids, wire.created_ns) == send
            assert type(wire.ids) is tuple and type(wire.created_ns) is tuple
            n += 1
        assert n > 0


def test_every_case_is_pinned() -> None:
    """No case without digests, no digests without a case."""
    assert set(GOLDEN) == set(_cases())


if __name__ == "__main__":
    for case, (sc, k, n) in _cases().items():
        p = Plan(sc, shard=k, shards=n)
        print(f'    "{case}": (\n        "{digest(p, "ws")}",\n        "{digest(p, "http")}",\n'
              f"        {p.expected_events()}),")
