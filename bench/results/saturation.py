"""When the load generator could not keep its plan (issue 7): the limits and the reasons given.

Any one reason marks a run saturated; its latencies are then flagged as including the generator's own
delay (results/README.md, "Generator saturation"). The CPU share and how far the scheduler fell behind are
judged per process, where they happen; schedule lag p99 is judged on the merged histogram.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.metrics import Histogram

#: schedule lag p99 above this (µs): sends went out late often enough to distort the tail.
SATURATION_LAG_P99_US = 10_000.0
#: the scheduler fell this far behind (µs) at least once.
SATURATION_BEHIND_US = 1_000_000.0
#: the process used this share of one core while sending (one event loop runs on one core).
SATURATION_CPU_SHARE = 0.9


def process_reasons(cpu_share: float, behind_us: float) -> list[str]:
    """The per-process saturation signals (lag p99 is judged on the merged histogram)."""
    out: list[str] = []
    if cpu_share >= SATURATION_CPU_SHARE:
        out.append(f"generator CPU at {cpu_share:.0%} of a core (limit {SATURATION_CPU_SHARE:.0%})")
    if behind_us > SATURATION_BEHIND_US:
        out.append(f"scheduler fell {behind_us / 1e6:.2f} s behind its plan "
                   f"(limit {SATURATION_BEHIND_US / 1e6:g} s)")
    return out


def saturation_reasons(process: Iterable[str], schedule_lag: Histogram) -> list[str]:
    """Every reason, sorted: the processes' own and the schedule lag's (empty: the plan was kept)."""
    reasons = set(process)
    lag_p99 = schedule_lag.percentile(99.0)
    if lag_p99 > SATURATION_LAG_P99_US:
        reasons.add(f"schedule lag p99 {lag_p99 / 1000:.1f} ms > {SATURATION_LAG_P99_US / 1000:g} ms")
    return sorted(reasons)
