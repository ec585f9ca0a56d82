"""What the plan costs per send, its C timeline against the Python twin: a benchmark, never a test.

``python -m benchmarks.plan_cost [--rounds N] [--quick]``, in one process, drains ``Plan.wire_sends("ws")``
(what the hot path's scheduler pulls) of three plans: 10,000 paced devices with 1-event messages, 100 devices
with 10-event messages and 100 with 1-event messages. Each round drains each plan twice, with
``bench._native.Ticks`` walking the devices' timelines and with ``Device._sends_py`` (the event writer is C
and the merge Python both times), timed by the process's CPU clock; it prints the medians of the rounds in
CPU-µs per send and their ratio. Run it from two checkouts in turn (from each one's root, its C file built) to
compare builds of the C file.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

from bench.fleet import Plan
from bench.native import twins
from bench.scenario import Scenario


@dataclass(frozen=True)
class _Case:
    label: str
    devices: int
    events_per_message: int
    per_device_rate: float


CASES = (
    _Case("10,000 paced devices, 1-event", 10_000, 1, 0.4),
    _Case("100 devices, 10-event", 100, 10, 800.0),
    _Case("100 devices, 1-event", 100, 1, 150.0),
)


def _scenario(case: _Case, duration_s: float) -> Scenario:
    return Scenario(name="plan-cost", duration_s=duration_s, devices=case.devices, ramp_s=0.0,
                    per_device_rate=case.per_device_rate, heartbeat_s=0.0, error_share=0.0,
                    userid_share=0.0, props_share=0.0, events_per_message=case.events_per_message,
                    payload_bytes=(100, 100))


def drain_us(scenario: Scenario) -> tuple[int, float]:
    """(sends, CPU-µs per send) of draining the plan's wire sends once."""
    sends = 0
    cpu0 = time.process_time()
    for _ in Plan(scenario).wire_sends("ws"):
        sends += 1
    return sends, (time.process_time() - cpu0) * 1e6 / max(1, sends)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_cost",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 s plans instead of 20 s")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds: at least 1, not {args.rounds}")
    ticks = twins.Ticks
    if ticks is None:
        print("benchmarks.plan_cost: bench._native is not built (or NUCLEUS_BENCH_PURE is set): "
              "there is no C timeline to compare", file=sys.stderr)
        return 1
    duration = 2.0 if args.quick else 20.0
    print(f"plan drained, CPU-us per send, medians of {args.rounds} alternating round(s)")
    print(f"{'plan':34s} {'sends':>9s} {'C twin':>8s} {'Python':>8s} {'ratio':>6s}")
    try:
        for case in CASES:
            scenario = _scenario(case, duration)
            c: list[float] = []
            py: list[float] = []
            for _ in range(args.rounds):
                for twin, out in ((ticks, c), (None, py)):
                    twins.Ticks = twin
                    sends, us = drain_us(scenario)
                    out.append(us)
            mc, mp = statistics.median(c), statistics.median(py)
            print(f"{case.label:34s} {sends:9,d} {mc:8.2f} {mp:8.2f} {mc / mp:6.2f}")
    finally:
        twins.Ticks = ticks
    return 0


if __name__ == "__main__":
    sys.exit(main())
