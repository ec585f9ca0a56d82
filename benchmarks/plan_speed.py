"""How fast the fleet plan generates sends on one core: a benchmark that prints figures, never a test.

Run from the repository root::

    .venv/bin/python -m benchmarks.plan_speed                       # desktop-fleet, 10,000 devices, 15k ev/s
    .venv/bin/python -m benchmarks.plan_speed --duration 45 --runs 5 --events-per-message 10

Another tree's plan (e.g. the last commit's, to compare) is measured by putting it first on the path (``-P``:
the current directory is not put before it; ``.`` after it finds ``benchmarks``); the first line printed
names the ``bench`` package measured::

    git archive HEAD bench | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before:. .venv/bin/python -P -m benchmarks.plan_speed

Each figure is the median (and the best) of ``--runs`` runs, in CPU time of this process
(``time.process_time``), the cases taken round robin so that a busy neighbour weighs on all of them alike:

- ``gen``: sends per CPU-second of ``Plan.sends(transport)`` alone (a fresh plan per run);
- ``gen+encode``: the same, plus ``encode_events(send.events)`` per send, as the runner's scheduler does;
- ``gen+encoded``: the same, reading ``Send.encoded`` instead (when the plan offers it);
- ``expected_events()``: seconds per call on a fresh plan (in the WebSocket rows' run).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import bench
from bench.fleet import Plan
from bench.protocol import encode_events
from bench.protocol.message import Transport
from bench.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _gen(plan: Plan, transport: Transport) -> int:
    n = 0
    for _ in plan.sends(transport):
        n += 1
    return n


def _gen_encode(plan: Plan, transport: Transport) -> int:
    n = 0
    for send in plan.sends(transport):
        encode_events(send.events)
        n += 1
    return n


def _gen_encoded(plan: Plan, transport: Transport) -> int:
    n = 0
    for send in plan.sends(transport):
        send.encoded  # noqa: B018 - the attribute read is what is measured
        n += 1
    return n


def _seconds(scenario: Scenario, transport: Transport, body: Callable[[Plan, Transport], int]) -> float:
    plan = Plan(scenario)
    start = time.process_time()
    body(plan, transport)
    return time.process_time() - start


def _expected(scenario: Scenario, _: Transport) -> int:
    return Plan(scenario).expected_events()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_speed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "desktop-fleet.toml"))
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=15_000.0, help="fleet events/s; -1: the scenario's")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--events-per-message", type=int, default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario).with_overrides(
        devices=args.devices, rate=args.rate if args.rate >= 0 else None, duration_s=args.duration)
    if args.events_per_message is not None:
        scenario = replace(scenario, events_per_message=args.events_per_message)
    print(f"bench from {Path(bench.__file__).parent}")
    rate = scenario.device_rate * scenario.devices
    print(f"{scenario.name}: {scenario.devices} devices, {rate:g} events/s, {scenario.duration_s:g} s, "
          f"{scenario.events_per_message} event(s) per message; median of {args.runs} runs, CPU time")
    bodies: dict[str, Callable[[Plan, Transport], int]] = {"gen": _gen, "gen+encode": _gen_encode}
    if hasattr(Plan(scenario).sends("ws").__next__(), "encoded"):
        bodies["gen+encoded"] = _gen_encoded
    transports: tuple[Transport, ...] = ("ws", "http")
    cases = [(t, label, body) for t in transports for label, body in bodies.items()]
    times: dict[tuple[str, str], list[float]] = {(t, label): [] for t, label, _ in cases}
    times["ws", "expected_events()"] = []
    for _ in range(args.runs):  # round robin: a noisy neighbour spreads over every case alike
        for transport, label, body in cases:
            times[transport, label].append(_seconds(scenario, transport, body))
        start = time.process_time()
        count = _expected(scenario, "ws")
        times["ws", "expected_events()"].append(time.process_time() - start)
    for transport in transports:
        sends = events = 0
        for send in Plan(scenario).sends(transport):
            sends += 1
            events += len(send.events)
        for label in bodies:
            seconds = max(1e-9, statistics.median(times[transport, label]))
            best = max(1e-9, min(times[transport, label]))
            print(f"  {transport:4} {label:12} {sends / seconds:>10,.0f} sends/s {events / seconds:>10,.0f} "
                  f"events/s  {1e6 * seconds / sends:6.2f} µs per send (best {1e6 * best / sends:6.2f}; "
                  f"{sends:,} sends, {events:,} events)")
    expected = times["ws", "expected_events()"]
    print(f"  expected_events() {statistics.median(expected):.4f} s (best {min(expected):.4f}) "
          f"for {count:,} events")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
