"""The run's clock: ``bench._native.RunClock`` (C) and ``run_clock``'s closure read the same clock."""

from __future__ import annotations

import time

import pytest

import bench.runner.engine as engine
from bench.native import Kind, switched

native = pytest.importorskip("bench._native", reason="bench._native is not built (no C compiler at install)")


@pytest.mark.parametrize("twin", ["c", "python"])
def test_the_clock_is_monotonic_ns_since_its_origin_and_the_origin_can_move(twin: Kind) -> None:
    origin = time.monotonic_ns() - 5_000_000_000
    with switched(twin):
        clock, set_origin = engine.run_clock(origin)
    assert (type(clock) is native.RunClock) == (twin == "c")
    before = time.monotonic_ns() - origin
    read = clock()
    after = time.monotonic_ns() - origin
    assert type(read) is int and before <= read <= after
    set_origin(origin + 7_000_000_000)  # t=0 two seconds from now: the clock reads below zero
    before = time.monotonic_ns() - origin - 7_000_000_000
    read = clock()
    assert before <= read <= time.monotonic_ns() - origin - 7_000_000_000 and read < 0


def test_the_c_clock_refuses_arguments() -> None:
    clock = native.RunClock(0)
    with pytest.raises(TypeError):
        clock(1)
    with pytest.raises(TypeError):
        native.RunClock("0")
