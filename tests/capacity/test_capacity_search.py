"""The capacity search strategy, driven by fake step functions: pure logic, no target, no clock."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from timeouts import PROCESS_TIMEOUT_S

from bench.capacity.search import Knee, SearchConfig, Tried, bracket, next_load
from bench.results.verdict import Outcome

StepFn = Callable[[float], Outcome]

MET = Outcome(True, "met")
SLOW = Outcome(False, "latency", "target")
SATURATED = Outcome(False, "generator saturated", "generator")


def search(config: SearchConfig, step: StepFn) -> tuple[Knee, list[Tried]]:
    """Run the search to its end with ``step`` as the step function."""
    tried: list[Tried] = []
    for _ in range(1000):  # bounded: the search must end well before
        load = next_load(config, tried)
        if isinstance(load, Knee):
            return load, tried
        assert all(t.load != load for t in tried), f"load {load} tried twice"
        tried.append(Tried(load, step(load)))
    raise AssertionError("the search did not end")


def latency_curve(capacity: float, slo_ms: float) -> StepFn:
    """A server whose p99 grows as an M/M/1 queue's does: 5 ms + 1 ms * load / (capacity - load)."""
    def step(load: float) -> Outcome:
        p99 = 5.0 + load / (capacity - load) if load < capacity else math.inf
        return MET if p99 <= slo_ms else SLOW
    return step


def test_the_knee_of_a_latency_curve_is_bracketed_within_the_resolution() -> None:
    """p99 = SLO at 45/46 of the capacity: the search brackets that load within 5 % and names the target."""
    knee, tried = search(SearchConfig(start=100, resolution=0.05), latency_curve(1000.0, 50.0))
    true_knee = 1000.0 * 45 / 46
    assert knee.ending == "resolved" and knee.limit == "target"
    assert knee.good is not None and knee.bad is not None
    assert knee.good.load <= true_knee < knee.bad.load
    assert knee.bad.load - knee.good.load <= 0.05 * knee.good.load
    assert [t.load for t in tried[:5]] == [100, 200, 400, 800, 1600]  # the climb doubles


@settings(max_examples=300, deadline=None)
@given(true_knee=st.floats(1.0, 20_000.0), start=st.integers(1, 5000),
       factor=st.sampled_from([1.5, 2.0, 3.0]), resolution=st.floats(0.01, 0.3))
def test_any_threshold_is_bracketed_in_a_bounded_number_of_steps(true_knee: float, start: int, factor: float,
                                                                  resolution: float) -> None:
    """Wherever the threshold lies and wherever the search starts, it ends resolved with the threshold inside
    the bracket, the bracket within the resolution (or one device), in about log steps."""
    config = SearchConfig(start=start, factor=factor, resolution=resolution, max_steps=100)
    knee, tried = search(config, lambda load: MET if load <= true_knee else SLOW)
    assert knee.ending == "resolved"
    assert knee.good is not None and knee.bad is not None
    assert knee.good.load <= true_knee < knee.bad.load
    assert knee.bad.load - knee.good.load <= max(resolution * knee.good.load, 1.0)
    climb = math.ceil(abs(math.log(true_knee / start)) / math.log(factor)) + 1
    narrow = math.ceil(math.log2((factor - 1) / resolution + 1)) + 1
    assert len(tried) <= climb + narrow + 2


def test_a_saturating_generator_is_the_limit_never_the_target() -> None:
    """The generator saturates at 300 while the server would hold 1000: the knee's limit is the generator,
    and the target's figure is only what the generator drove within its plan."""
    def step(load: float) -> Outcome:
        if load > 300:
            return SATURATED
        return latency_curve(1000.0, 50.0)(load)

    knee, _ = search(SearchConfig(start=50), step)
    assert knee.limit == "generator"
    assert knee.good is not None and knee.bad is not None
    assert knee.good.load <= 300 < knee.bad.load


def test_the_target_is_the_limit_when_it_fails_before_the_generator() -> None:
    """The server's knee (~978) comes before the generator saturates (5000): the target is the limit."""
    def step(load: float) -> Outcome:
        return SATURATED if load > 5000 else latency_curve(1000.0, 50.0)(load)

    knee, _ = search(SearchConfig(start=50), step)
    assert knee.limit == "target" and knee.good is not None and knee.good.load < 1000


def test_loss_is_a_failure_like_latency() -> None:
    """A step that loses events fails whatever its latency: the knee stops below the first lossy load."""
    lossy = Outcome(False, "loss: 3 of 9000 events lost", "target")
    knee, _ = search(SearchConfig(start=10), lambda load: lossy if load >= 77 else MET)
    assert knee.good is not None and knee.bad is not None
    assert knee.good.load < 77 <= knee.bad.load and knee.bad.outcome is lossy


def test_nothing_met_descends_to_the_lowest_load_and_says_so() -> None:
    """When even the first step fails the search divides its way down to --min, then reports no load met."""
    knee, tried = search(SearchConfig(start=40, low=1), lambda load: SLOW)
    assert knee.ending == "nothing-met" and knee.good is None and knee.limit == "target"
    assert [t.load for t in tried] == [40, 20, 10, 5, 2, 1]


def test_the_cap_ends_the_climb() -> None:
    """Every load meets the objective: the search stops at the cap, which it does try, with no limit."""
    knee, tried = search(SearchConfig(start=3, high=20), lambda load: MET)
    assert [t.load for t in tried] == [3, 6, 12, 20]
    assert knee.ending == "cap" and knee.limit == "none" and knee.good is tried[-1] and knee.bad is None


@pytest.mark.parametrize("outcome", [MET, SLOW])
def test_the_step_count_is_bounded(outcome: Outcome) -> None:
    """Without a cap an endless climb (or descent) still stops at max_steps."""
    knee, tried = search(SearchConfig(start=10_000, max_steps=5), lambda load: outcome)
    assert len(tried) == 5
    assert knee.ending == "max-steps"


def test_a_lucky_step_above_a_failure_does_not_raise_the_knee() -> None:
    """Noise: 800 passes after 600 failed. The bracket stays (highest success below 600, 600)."""
    tried = [Tried(100, MET), Tried(600, SLOW), Tried(800, MET), Tried(300, MET)]
    good, bad = bracket(tried)
    assert good is tried[3] and bad is tried[1]
    load = next_load(SearchConfig(start=100), tried)
    assert load == 450


def test_loads_stay_on_the_grid_and_inside_the_bounds() -> None:
    """Devices are whole; the start is clamped into [low, high]; a rate axis may use any number."""
    assert next_load(SearchConfig(start=0.2, low=1), []) == 1
    assert next_load(SearchConfig(start=500, high=64), []) == 64
    assert next_load(SearchConfig(start=7, quantum=0), [Tried(7, MET), Tried(8, SLOW)]) == 7.5
    with pytest.raises(ValueError):
        SearchConfig(start=5, low=10, high=5)
    with pytest.raises(ValueError):
        Outcome(True, "met", "target")


def test_the_strategy_and_the_verdict_load_neither_the_runner_nor_a_network_library() -> None:
    """search, verdict, axis and report are pure: imported in a fresh interpreter they load no network
    library and neither the runner nor the target (only app.py runs steps)."""
    probe = ("import json, sys; import bench.capacity.search, bench.results.verdict, bench.capacity.axis, "
             "bench.capacity.report; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('aiohttp', 'websockets', 'uvloop', 'locust', 'gevent') or m.startswith(('bench.runner', "
             "'bench.target')))))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False,
                          timeout=PROCESS_TIMEOUT_S, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
