"""A run's verdict against an objective: its figures after the warm-up, judged. Pure: no I/O, no clock.

Two commands judge: ``nucleus-bench run`` with an objective (``--slo-p99``, or the scenario's ``[objective]``)
judges each transport's whole run, and ``nucleus-bench capacity`` judges each of its steps, a run at one load.
The first seconds of a run (the fleet's ramp, connections opening, the target's caches filling) are not what
the load costs when it lasts, so the latency is judged over the seconds after ``warmup_s`` only: the
per-second histograms of the run's series (``SecondSeries``, 3.2 % relative resolution) are added up over
those seconds. Loss, rejections and wire errors are counted over the whole run: an event lost while warming
up is still lost.

The order of the checks is the answer's: when the generator could not keep its plan, its latencies include
its own delay, so nothing it measured is the server's and the run's limit is "generator" whatever else went
wrong (DESIGN.md: the generator never reports its own saturation as the server's latency). Then errors and
rejected events, then loss, then the p99 against the objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.metrics import Histogram
from bench.metrics.series import SECOND_LAYOUT
from bench.protocol.errors import UsageError
from bench.results.saturation import saturation_reasons
from bench.results.transport import TransportResult
from bench.scenario import Objective, Scenario

#: Who stopped a run from meeting the objective: the server under test, or the load generator itself.
Limit = Literal["target", "generator"]
#: The exit status of a command whose run missed its objective, every identity holding (run, merge; Locust's
#: gates and objective exit 3 too).
EXIT_OBJECTIVE_MISSED = 3
#: The default warm-up: the fleet's ramp and this much after it, at most half the run.
WARMUP_AFTER_RAMP_S = 2.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """A verdict: met the objective, or which side (target or generator) failed it and why."""

    ok: bool
    reason: str
    limit: Limit | None = None

    def __post_init__(self) -> None:
        if self.ok != (self.limit is None):
            raise ValueError("a run that met the objective has no limit; one that failed names it")


def default_warmup(ramp_s: float, duration_s: float) -> float:
    """The seconds left out of the latency verdict when none are given: the ramp + 2 s, at most half the
    run."""
    return min(ramp_s + WARMUP_AFTER_RAMP_S, duration_s / 2)


#: The wire counters that count as errors of a run (bench.transports.common.TransportStats).
ERROR_COUNTERS = ("connect_errors", "closed_by_peer", "malformed_replies", "http_4xx", "http_5xx",
                  "request_errors")


@dataclass(frozen=True, slots=True)
class StepFigures:
    """What one run (or capacity step) measured, as the verdict reads it.

    Attributes:
        p50_us, p99_us: ack latency from the intended send over the seconds after the warm-up (None: none
            was acknowledged then).
        samples: events acknowledged after the warm-up (what the percentiles are of).
        sent, lost, in_flight, rejected: events of the whole run.
        errors: wire errors of the whole run, by counter (only the non-zero ones).
        sent_per_s, acked_per_s: events per second over the whole seconds of the send phase after the warm-up.
        generator: why the generator could not keep its plan (empty: it kept it).
        interrupted: Ctrl-C cut the run short (it has no verdict then).
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
    """The figures of one run: latency after ``warmup_s``, counts of the whole run."""
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
    """A latency in ms to 0.1 ms, or in whole seconds from 10 s up (1h reads 3600 s, not 3600000.0 ms)."""
    return f"{us / 1000:.1f} ms" if us < 10_000_000 else f"{us / 1e6:.0f} s"


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


def verdict_json(figures: StepFigures, outcome: Outcome, warmup_s: float) -> dict[str, Any]:
    """One transport's verdict as ``summary.json`` keeps it (results/README.md, ``objective``)."""
    return {"met": outcome.ok, "reason": outcome.reason, "limit": outcome.limit,
            "p50_us": figures.p50_us, "p99_us": figures.p99_us, "samples": figures.samples,
            "warmup_s": warmup_s, "lost": figures.lost + figures.in_flight, "sent": figures.sent}


#: Stands in for a scenario without ``[objective]`` when the command line gives the p99 (never read for it).
_NO_OBJECTIVE = Objective(p99_us=1.0)


def objective_in_force(scenario: Objective | None, *, p99_s: float | None = None,
                       max_loss: float | None = None, warmup_s: float | None = None) -> Objective | None:
    """The objective a command judges by: each value given on its command line over the scenario's
    ``[objective]``; None when neither names a p99.

    Raises:
        UsageError: a loss or warm-up with no p99 to go with it, or a value out of range.
    """
    if p99_s is None and scenario is None:
        if max_loss is not None or warmup_s is not None:
            given = "--max-loss" if max_loss is not None else "--warmup"
            raise UsageError(f"{given} needs an objective: --slo-p99, or the scenario's [objective] p99")
        return None
    base = scenario if scenario is not None else _NO_OBJECTIVE
    try:
        return Objective(p99_us=p99_s * 1e6 if p99_s is not None else base.p99_us,
                         max_loss=max_loss if max_loss is not None else base.max_loss,
                         warmup_s=warmup_s if warmup_s is not None else base.warmup_s)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def warmup_of(objective: Objective, ramp_s: float, duration_s: float) -> float:
    """The seconds left out of the latency verdict of a run lasting ``duration_s``.

    Raises:
        UsageError: the warm-up leaves no second of the run to judge.
    """
    warmup = objective.warmup_s if objective.warmup_s is not None else default_warmup(ramp_s, duration_s)
    if not 0 <= warmup < duration_s:
        raise UsageError(f"the warm-up of {warmup:g}s must be shorter than the run's {duration_s:g}s: the "
                         "verdict needs seconds after it")
    return warmup


@dataclass(frozen=True, slots=True)
class Judge:
    """The objective a run is judged by, and its warm-up in seconds of the run as it runs."""

    objective: Objective
    warmup_s: float

    @classmethod
    def of(cls, objective: Objective | None, scenario: Scenario) -> Judge | None:
        """The judge of a run of ``scenario`` (None: no objective). UsageError when the warm-up leaves
        nothing of the run to judge."""
        if objective is None:
            return None
        scale = scenario.time_scale  # the scenario's seconds are simulated; the verdict reads real ones
        ramp_s, duration_s = scenario.connect_ramp_s / scale, scenario.duration_s / scale
        return cls(objective, warmup_of(objective, ramp_s, duration_s))

    def verdict(self, result: TransportResult) -> dict[str, Any]:
        """One transport's verdict, as summary.json keeps it."""
        figures = step_figures(result, self.warmup_s)
        return verdict_json(figures, judge(figures, self.objective), self.warmup_s)

    def to_json(self, verdicts: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        """The summary's ``objective`` block: what was asked, and each judged transport's verdict."""
        o = self.objective
        return {"p99_us": o.p99_us, "max_loss": o.max_loss, "warmup_s": self.warmup_s,
                "met": all_met(verdicts) if verdicts else None,
                "transports": dict(verdicts)}


def all_met(verdicts: Mapping[str, Mapping[str, Any]]) -> bool:
    """Every judged transport met the objective (true when none was judged: nothing was missed)."""
    return all(v["met"] for v in verdicts.values())


def objective_line(transport: str, verdict: Mapping[str, Any]) -> str:
    """``ws: objective met: p99 3.1 ms <= 50.0 ms, 0 lost`` or why it was missed, and who the limit was."""
    if verdict["met"]:
        return f"{transport}: objective met: {verdict['reason']} (after a {verdict['warmup_s']:g} s warm-up)"
    return (f"{transport}: objective NOT met ({verdict['limit']}): {verdict['reason']} (after a "
            f"{verdict['warmup_s']:g} s warm-up)")
