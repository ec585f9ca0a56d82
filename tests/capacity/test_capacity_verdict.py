"""A step's verdict: the warm-up left out of its latency, and the order of the reasons it can fail for."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from bench.capacity.axis import Axis
from bench.capacity.report import Step, knee_json, knee_line, step_json
from bench.capacity.search import Knee, Tried
from bench.metrics import AckTracker, Histogram, SecondSeries
from bench.results.saturation import process_reasons
from bench.results.transport import TransportResult
from bench.results.verdict import Outcome, StepFigures, judge, step_figures
from bench.scenario import Objective, Scenario
from bench.transports.common import TransportStats

OBJECTIVE = Objective(p99_us=250_000.0)


def _per_second(values: Mapping[int, float], n: int = 200) -> dict[int, Histogram]:
    out = {}
    for second, value in values.items():
        h = Histogram()
        h.record_many([value] * n)
        out[second] = h
    return out


def make_step_result(*, acked: int = 100, lost: int = 0, rejected: int = 0,
                     latency_us: Mapping[int, float], lag_us: Mapping[int, float] | None = None,
                     send_s: float = 5.0, cpu_share: float = 0.2,
                     stats: TransportStats | None = None) -> TransportResult:
    """A ws step: counts from a real ack tracker; per-second latency and schedule lag as given."""
    tracker = AckTracker(timeout_ns=10**9)
    ids = tuple(range(acked + rejected))
    tracker.on_send(1, ids, 0, 10, (0,) * len(ids))
    tracker.on_ws_ack(1, ids[:acked], 1_000_000)  # the rest of the message is left out: rejected
    lost_ids = tuple(range(10**6, 10**6 + lost))
    tracker.on_send(2, lost_ids, 0, 10, (0,) * lost)
    tracker.finish(2_000_000)  # never answered: lost
    series = SecondSeries()
    for second, h in _per_second(latency_us).items():
        series.add_histogram("corrected", second, h)
    for second, h in _per_second(lag_us or {}).items():
        series.add_histogram("schedule_lag", second, h)
    for second in range(int(send_s)):
        series.add(second, sent=100, acked=90)
    return TransportResult(transport="ws", tracker=tracker.result(), stats=stats or TransportStats(),
                           series=series, send_s=send_s, cpu_share_max=cpu_share,
                           reasons=process_reasons(cpu_share, 0.0))


def test_the_warm_up_is_left_out_of_the_latency_verdict() -> None:
    """Slow first seconds (a ramp) fail the step when counted, and do not once the warm-up covers them."""
    result = make_step_result(latency_us={0: 900_000.0, 1: 900_000.0, 2: 20_000.0, 3: 20_000.0, 4: 20_000.0})
    counted = step_figures(result, warmup_s=0.0)
    warmed = step_figures(result, warmup_s=2.0)
    assert judge(counted, OBJECTIVE).limit == "target"
    assert not judge(counted, OBJECTIVE).ok
    assert judge(warmed, OBJECTIVE).ok
    assert warmed.samples == 600 and counted.samples == 1000
    assert warmed.sent_per_s == 100 and warmed.acked_per_s == 90


def test_acks_of_the_drain_count_in_the_verdict() -> None:
    """Acks that come after the send phase are of events sent in the window: a slow drain fails the step."""
    result = make_step_result(latency_us={2: 20_000.0, 3: 20_000.0, 5: 2e6, 6: 2e6}, send_s=5.0)
    assert not judge(step_figures(result, warmup_s=2.0), OBJECTIVE).ok


def test_a_saturated_generator_outranks_every_other_reason() -> None:
    """Schedule lag after the warm-up: the generator is the limit, even with latency and loss over the
    objective; the same lag during the warm-up alone does not saturate the step."""
    late = make_step_result(lost=5, latency_us={3: 900_000.0}, lag_us={3: 50_000.0})
    outcome = judge(step_figures(late, warmup_s=2.0), OBJECTIVE)
    assert outcome.limit == "generator" and "schedule lag" in outcome.reason
    early = make_step_result(latency_us={3: 20_000.0}, lag_us={0: 50_000.0})
    assert judge(step_figures(early, warmup_s=2.0), OBJECTIVE).ok
    busy = make_step_result(latency_us={3: 20_000.0}, cpu_share=0.97)
    assert judge(step_figures(busy, warmup_s=2.0), OBJECTIVE).limit == "generator"


def test_loss_fails_a_step_unless_the_objective_allows_that_share() -> None:
    """5 of 105 events lost: over --max-loss 0 and 1 %, within 10 %."""
    result = make_step_result(lost=5, latency_us={3: 20_000.0})
    figures = step_figures(result, warmup_s=2.0)
    outcome = judge(figures, OBJECTIVE)
    assert not outcome.ok and outcome.reason.startswith("loss: 5 of 105") and outcome.limit == "target"
    assert not judge(figures, Objective(250_000.0, max_loss=0.01)).ok
    assert judge(figures, Objective(250_000.0, max_loss=0.1)).ok


def test_errors_and_rejected_events_fail_a_step_by_name() -> None:
    """Wire errors and events the target left out of its replies are the target's failures, named."""
    stats = TransportStats()
    stats.connect_errors = 3
    errors = judge(step_figures(make_step_result(latency_us={3: 1000.0}, stats=stats), 2.0), OBJECTIVE)
    assert not errors.ok and errors.reason == "errors: 3 connect errors"
    rejected = judge(step_figures(make_step_result(rejected=4, latency_us={3: 1000.0}), 2.0), OBJECTIVE)
    assert rejected.reason == "errors: 4 events rejected"


def test_no_ack_after_the_warm_up_is_no_pass() -> None:
    """A step whose events were all acked in the warm-up has nothing to judge: it does not meet the SLO."""
    figures = step_figures(make_step_result(latency_us={0: 1000.0}), warmup_s=2.0)
    assert figures.p99_us is None
    assert not judge(figures, OBJECTIVE).ok


def test_a_p99_exactly_at_the_objective_meets_it() -> None:
    """The objective is "at most": equal passes, above fails."""
    figures = StepFigures(p50_us=1.0, p99_us=250_000.0, samples=10, sent=10, lost=0, in_flight=0, rejected=0)
    assert judge(figures, OBJECTIVE).ok
    with pytest.raises(ValueError):
        Objective(p99_us=0.0)


def test_devices_axis_keeps_each_devices_rate() -> None:
    """A whole-fleet rate (1200/s over 300 devices) becomes 4 events/s per device, at any fleet size; the
    rate axis keeps the fleet and counts the devices its rate would feed."""
    sc = Scenario(devices=300, rate=1200.0, ramp_s=5.0, duration_s=45.0)
    axis = Axis.of(sc, "devices")
    step = axis.scenario_at(sc, 900, duration_s=20.0)
    assert (step.devices, step.device_rate, step.duration_s) == (900, 4.0, 20.0)
    assert axis.rate_at(900) == 3600.0 and axis.devices_at(900) == 900
    rate = Axis.of(sc, "rate")
    assert rate.scenario_at(sc, 2000.0, 20.0).devices == 300 and rate.devices_at(2001.0) == 500


def _step(n: int, tried: Tried) -> Step:
    figures = StepFigures(p50_us=1.0, p99_us=2.0, samples=1, sent=1, lost=0, in_flight=0, rejected=0)
    return Step(n, tried, figures, "a" * 24)


def test_a_generator_knee_gives_no_server_figure() -> None:
    """When the generator is the limit the answer says so and the load it met is a lower bound only."""
    axis = Axis("devices", 4.0, 300)
    good = Tried(600, Outcome(True, "met"))
    bad = Tried(1200, Outcome(False, "generator saturated: x", "generator"))
    steps = [_step(1, good), _step(2, bad)]
    knee = knee_json(Knee(good, bad, "resolved"), axis, steps)
    assert knee["limit"] == "generator" and knee["broke_at"] == step_json(steps[1], axis)
    line = knee_line("ws", {"knee": knee})
    assert line.startswith("ws: the generator is the limit, not the target") and "at least" in line
    assert "capacity" not in line
