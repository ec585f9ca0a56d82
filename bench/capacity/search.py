"""The capacity search as pure logic: given the steps tried so far, the next load to try, or the knee.

Theory of operation. A *load* is one number on the axis being stepped (devices, or the fleet's events/s).
Each step runs the scenario at one load and ends with an ``Outcome``: it met the objective or not, and if
not, whether the target or the generator was the limit. The search never runs anything itself: the driver
asks ``next_load(config, tried)`` and gets either a load or a ``Knee``, so the whole strategy is testable
with a fake step function and no clock.

1. **Climb**: from ``start``, multiply the load by ``factor`` while every step meets the objective, up to
   ``high`` (the cap). A step that meets it at the cap ends the search: the knee is above the cap.
2. **Descend**: when the first failure comes before any success, divide by ``factor`` down to ``low``; if
   even ``low`` fails, no load met the objective.
3. **Bisect** between the highest load that met the objective below the lowest failure (``good``) and that
   failure (``bad``) until they are within ``resolution`` of each other (relative to ``good``), or one
   ``quantum`` apart (a device is the smallest step of a fleet).

At most ``max_steps`` steps are run; the search then reports the bracket it has. Noise can make a higher
load pass after a lower one failed: the bracket is always (highest success below the lowest failure,
lowest failure), so a lucky step above a failure never raises the knee.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bench.results.verdict import Limit, Outcome

#: Why the search stopped ("interrupted" is the driver's: Ctrl-C, the bracket of the steps done so far).
Ending = Literal["resolved", "cap", "nothing-met", "max-steps", "interrupted"]


@dataclass(frozen=True, slots=True)
class Tried:
    """One step of the search: the load it ran and its verdict."""

    load: float
    outcome: Outcome

    @property
    def ok(self) -> bool:
        return self.outcome.ok


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """How the search steps.

    Attributes:
        start: the first load.
        low: the smallest load tried when the start already fails.
        high: the largest load tried (None: no cap but ``max_steps``).
        factor: the climb's multiplier (and the descent's divisor), > 1.
        resolution: the search stops once the bracket is this narrow relative to its lower end.
        quantum: loads are whole multiples of this (1: whole devices or events/s); 0: any number.
        max_steps: the most steps run.
    """

    start: float
    low: float = 1.0
    high: float | None = None
    factor: float = 2.0
    resolution: float = 0.05
    quantum: float = 1.0
    max_steps: int = 12

    def __post_init__(self) -> None:
        if not (self.low > 0 and math.isfinite(self.low)):
            raise ValueError(f"the lowest load must be positive, not {self.low}")
        if self.high is not None and self.high < self.low:
            raise ValueError(f"the cap {self.high:g} is below the lowest load {self.low:g}")
        if not self.factor > 1:
            raise ValueError(f"the step factor must be above 1, not {self.factor}")
        if not self.resolution > 0:
            raise ValueError(f"the resolution must be positive, not {self.resolution}")
        if self.quantum < 0 or self.max_steps < 1:
            raise ValueError("the quantum must be >= 0 and max_steps >= 1")

    def clamp(self, load: float) -> float:
        """``load`` on the grid of ``quantum``, within [low, high]."""
        if self.quantum:
            load = round(load / self.quantum) * self.quantum
        load = max(load, self.low)
        return min(load, self.high) if self.high is not None else load


@dataclass(frozen=True, slots=True)
class Knee:
    """Where the search ended.

    Attributes:
        good: the highest load that met the objective below ``bad`` (None: no load met it).
        bad: the lowest load that failed (None: none failed, the knee is above every load tried).
        ending: why the search stopped: bracket ``resolved``, ``cap`` met, ``nothing-met``, ``max-steps``,
            or ``interrupted``.
    """

    good: Tried | None
    bad: Tried | None
    ending: Ending

    @property
    def limit(self) -> Limit | Literal["none"]:
        """What stopped the load from going higher: the failing step's side, or "none" when nothing failed."""
        if self.bad is None or self.bad.outcome.limit is None:
            return "none"
        return self.bad.outcome.limit


def bracket(tried: Sequence[Tried]) -> tuple[Tried | None, Tried | None]:
    """(highest success below the lowest failure, lowest failure); either may be None."""
    failures = [t for t in tried if not t.ok]
    bad = min(failures, key=lambda t: t.load) if failures else None
    below = [t for t in tried if t.ok and (bad is None or t.load < bad.load)]
    good = max(below, key=lambda t: t.load) if below else None
    return good, bad


def next_load(config: SearchConfig, tried: Sequence[Tried]) -> float | Knee:
    """The next load to run, or the ``Knee`` when the search is over."""
    if not tried:
        return config.clamp(config.start)
    good, bad = bracket(tried)
    if len(tried) >= config.max_steps:
        return Knee(good, bad, "max-steps")
    if bad is None:
        assert good is not None
        return _climb(config, good)
    if good is None:
        return _descend(config, bad)
    return _bisect(config, good, bad)


def _climb(config: SearchConfig, good: Tried) -> float | Knee:
    if config.high is not None and good.load >= config.high:
        return Knee(good, None, "cap")
    load = config.clamp(good.load * config.factor)
    if load <= good.load:  # the grid rounded it back: one quantum up
        load = config.clamp(good.load + max(config.quantum, good.load * config.resolution))
    return load


def _descend(config: SearchConfig, bad: Tried) -> float | Knee:
    if bad.load <= config.low:
        return Knee(None, bad, "nothing-met")
    load = config.clamp(bad.load / config.factor)
    if config.quantum and load >= bad.load:
        load = max(config.low, bad.load - config.quantum)
    return load


def _bisect(config: SearchConfig, good: Tried, bad: Tried) -> float | Knee:
    width = bad.load - good.load
    if width <= max(config.resolution * good.load, config.quantum):
        return Knee(good, bad, "resolved")
    mid = config.clamp((good.load + bad.load) / 2)
    if not good.load < mid < bad.load:  # nothing on the grid between them
        return Knee(good, bad, "resolved")
    return mid
