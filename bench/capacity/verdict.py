"""One step's verdict: its figures after the warm-up, judged against the objective. Pure: no I/O, no clock.

A step is one ``run_transport`` at one load. Its first seconds (the fleet's ramp, connections opening, the
target's caches filling) are not what the load costs when it lasts, so the latency is judged over the
seconds after ``warmup_s`` only: the per-second histograms of the run's series (``SecondSeries``, 3.2 %
relative resolution) are added up over those seconds. Loss, rejections and wire errors are counted over the
whole step: an event lost while warming up is still lost.

The order of the checks is the answer's: when the generator could not keep its plan, its latencies include
its own delay, so nothing it measured is the server's and the step's limit is "generator" whatever else went
wrong (DESIGN.md: the generator never reports its own saturation as the server's latency). Then errors and
rejected events, then loss, then the p99 against the objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.capacity.search import Outcome
from bench.metrics import Histogram
from bench.metrics.series import SECOND_LAYOUT
from bench.results.saturation import saturation_reasons
from bench.results.transport import TransportResult

#: The wire counters that count as errors of a step (bench.transports.common.TransportStats).
ERROR_COUNTERS = ("connect_errors", "closed_by_peer", "malformed_replies", "http_4xx", "http_5xx",
                  "request_errors")


@dataclass(frozen=True, slots=True)
class Objective:
    """What a step must meet: ack latency p99 (corrected, µs) and the share of events it may lose."""

    p99_us: float
    max_loss: float = 0.0

    def __post_init__(self) -> None:
        if not (self.p99_us > 0 and math.isfinite(self.p99_us)):
            raise ValueError(f"the p99 objective must be a positive time, not {self.p99_us}")
        if not 0.0 <= self.max_loss <= 1.0:
            raise ValueError(f"the loss allowed is a share of the events sent, 0 to 1, not {self.max_loss}")


@dataclass(frozen=True, slots=True)
class StepFigures:
    """What one step measured, as the verdict reads it.

    Attributes:
        p50_us, p99_us: ack latency from the intended send over the seconds after the warm-up (None: none
            was acknowledged then).
        samples: events acknowledged after the warm-up (what the percentiles are of).
        sent, lost, in_flight, rejected: events of the whole step.
        errors: wire errors of the whole step, by counter (only the non-zero ones).
        sent_per_s, acked_per_s: events per second over the whole seconds of the send phase after the warm-up.
        generator: why the generator could not keep its plan (empty: it kept it).
        interrupted: Ctrl-C cut the step short (it has no verdict then).
    """

    p50_us: float | None
    p99_us: float | None
    samples: int
    sent: int
    lost: int
    in_flight: int
    rejected: int
    errors: dict[str, int] = field(default_factory=dict)
    sent_per_s: float = 0.0
    acked_per_s: float = 0.0
    generator: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def steady_seconds(result: TransportResult, warmup_s: float) -> range:
    """The whole seconds of the send phase after the warm-up (all of the send phase if that leaves none)."""
    end = max(int(result.send_s - result.plan_tail_s), 1)
    first = min(math.ceil(warmup_s), end - 1)
    return range(max(first, 0), end)


def _window_histogram(result: TransportResult, name: str, first: int) -> Histogram:
    """Histogram ``name`` of the series added up over every second from ``first`` on (drain included:
    the acks that come after the send phase are of events sent in the window)."""
    total = Histogram(SECOND_LAYOUT)
    for second in range(first, len(result.series)):
        total.merge(result.series.histogram(name, second))
    return total


def step_figures(result: TransportResult, warmup_s: float) -> StepFigures:
    """The figures of one step: latency after ``warmup_s``, counts of the whole step."""
    window = steady_seconds(result, warmup_s)
    acks = _window_histogram(result, "corrected", window.start)
    lag = _window_histogram(result, "schedule_lag", window.start)
    rows = [row for row in result.series.rows() if row["second"] in window]
    seconds = max(len(window), 1)
    t, stats = result.tracker, result.stats
    p50, p99 = acks.percentiles((50.0, 99.0)) if acks.count else (None, None)
    return StepFigures(
        p50_us=p50, p99_us=p99, samples=acks.count, sent=t.sent, lost=t.lost, in_flight=t.in_flight,
        rejected=t.rejected,
        errors={name: getattr(stats, name) for name in ERROR_COUNTERS if getattr(stats, name)},
        sent_per_s=sum(r["sent"] for r in rows) / seconds,
        acked_per_s=sum(r["acked"] for r in rows) / seconds,
        generator=saturation_reasons(result.reasons, lag), interrupted=result.interrupted,
    )


def _ms(us: float) -> str:
    return f"{us / 1000:.1f} ms"


def judge(figures: StepFigures, objective: Objective) -> Outcome:
    """Met the objective, or the first reason it did not (see the module docstring for the order)."""
    f = figures
    if f.generator:
        return Outcome(False, "generator saturated: " + "; ".join(f.generator), "generator")
    if f.error_count or f.rejected:
        parts = [f"{n} {name.replace('_', ' ')}" for name, n in f.errors.items()]
        if f.rejected:
            parts.append(f"{f.rejected} events rejected")
        return Outcome(False, "errors: " + ", ".join(parts), "target")
    lost = f.lost + f.in_flight
    if f.sent and lost / f.sent > objective.max_loss:
        allowed = "none allowed" if objective.max_loss == 0 else f"{objective.max_loss:.3%} allowed"
        return Outcome(False, f"loss: {lost} of {f.sent} events lost ({lost / f.sent:.3%}; {allowed})",
                       "target")
    if f.p99_us is None:
        return Outcome(False, "no event was acknowledged after the warm-up", "target")
    if f.p99_us > objective.p99_us:
        return Outcome(False, f"latency: p99 {_ms(f.p99_us)} > {_ms(objective.p99_us)}", "target")
    return Outcome(True, f"p99 {_ms(f.p99_us)} <= {_ms(objective.p99_us)}, {lost} lost")
