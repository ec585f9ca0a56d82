"""The run's clock: ``run_clock`` reads ``time.monotonic_ns()`` from an origin that can move."""

from __future__ import annotations

import time

import bench.runner.engine as engine


def test_the_clock_is_monotonic_ns_since_its_origin_and_the_origin_can_move() -> None:
    origin = time.monotonic_ns() - 5_000_000_000
    clock, set_origin = engine.run_clock(origin)
    before = time.monotonic_ns() - origin
    read = clock()
    after = time.monotonic_ns() - origin
    assert type(read) is int and before <= read <= after
    set_origin(origin + 7_000_000_000)  # t=0 two seconds from now: the clock reads below zero
    before = time.monotonic_ns() - origin - 7_000_000_000
    read = clock()
    assert before <= read <= time.monotonic_ns() - origin - 7_000_000_000 and read < 0
