"""CI gates: ``--check-*`` thresholds, evaluated on the exact merged figures of a summary.

Pure (no locust, no gevent): it reads the ``transports`` object of a ``summary.json`` (schema:
results/README.md), so a gate sees the same figures a report shows, merged exactly over every worker.

Each gate is one row of ``GATES`` (table dispatch): the flag, what it reads, how it compares. A violated
threshold yields one line; the Locust front door prints each line and sets a non-zero exit code
(``EXIT_GATES``).

What each figure is:

- ``--check-p99-ms``: p99 ack latency in ms, corrected for coordinated omission (ack time - *intended*
  send time, the figure summaries headline), judged per transport: each transport that ran must meet it.
- ``--check-lost-ratio``: events never acknowledged within the ack timeout / events sent, all transports.
- ``--check-fail-ratio``: events not acknowledged for any reason (rejected + lost) / events sent.
- ``--check-min-eps``: acknowledged events per second of the send phase, all transports summed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

#: Process exit code when a gate is violated (Locust itself uses 1 for errors, 2 for crashes).
EXIT_GATES = 3


@dataclass(frozen=True, slots=True)
class Gates:
    """The thresholds of one run; ``None``: that gate is off."""

    p99_ms: float | None = None
    lost_ratio: float | None = None
    fail_ratio: float | None = None
    min_eps: float | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure a gate compares: ``label`` names it in the verdict line."""

    label: str
    value: float


def _counts(transports: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(sent, acked, rejected, lost) summed over the transports that ran."""
    sent = acked = rejected = lost = 0
    for t in transports.values():
        ev = t["events"]
        sent, acked = sent + ev["sent"], acked + ev["acked"]
        rejected, lost = rejected + ev["rejected"], lost + ev["lost"]
    return sent, acked, rejected, lost


def p99_figures(transports: Mapping[str, Any]) -> list[Figure]:
    """Corrected p99 ack latency of each transport that acknowledged anything, in ms."""
    out = []
    for name, t in sorted(transports.items()):
        corrected = t["ack_latency_us"]["corrected"]
        if corrected["count"]:
            out.append(Figure(f"{name} p99 ack latency (ms)", corrected["p99"] / 1000.0))
    return out


def lost_figures(transports: Mapping[str, Any]) -> list[Figure]:
    sent, _, _, lost = _counts(transports)
    return [Figure(f"lost ratio ({lost} of {sent} events)", lost / sent if sent else 0.0)]


def fail_figures(transports: Mapping[str, Any]) -> list[Figure]:
    sent, _, rejected, lost = _counts(transports)
    failed = rejected + lost
    return [Figure(f"failure ratio ({failed} of {sent} events rejected or lost)",
                   failed / sent if sent else 0.0)]


def eps_figures(transports: Mapping[str, Any]) -> list[Figure]:
    eps = sum(float(t["throughput"]["events_per_s"]) for t in transports.values())
    return [Figure("acknowledged events/s", eps)]


@dataclass(frozen=True, slots=True)
class Gate:
    """One threshold: its flag, where its limit sits in ``Gates``, its figures, and the failing comparison."""

    flag: str
    attr: str
    figures: Callable[[Mapping[str, Any]], list[Figure]]
    violated: Callable[[float, float], bool]
    symbol: str


#: Table dispatch: every gate, in the order their verdict lines print.
GATES: tuple[Gate, ...] = (
    Gate("--check-p99-ms", "p99_ms", p99_figures, operator.gt, ">"),
    Gate("--check-lost-ratio", "lost_ratio", lost_figures, operator.gt, ">"),
    Gate("--check-fail-ratio", "fail_ratio", fail_figures, operator.gt, ">"),
    Gate("--check-min-eps", "min_eps", eps_figures, operator.lt, "<"),
)


def evaluate(gates: Gates, transports: Mapping[str, Any]) -> list[str]:
    """One line per violated threshold (empty: every gate holds, or none is set).

    Args:
        gates: the thresholds.
        transports: the ``transports`` object of a summary (``{"ws": {...}, "http": {...}}``).
    """
    lines: list[str] = []
    for gate in GATES:
        limit = getattr(gates, gate.attr)
        if limit is None:
            continue
        for fig in gate.figures(transports):
            if gate.violated(fig.value, limit):
                lines.append(f"check failed: {fig.label} {fig.value:.6g} {gate.symbol} {limit:g} "
                             f"({gate.flag})")
    return lines
