"""What a comparison reads of one side (BASELINE or NEW) and one transport: its per-second samples and its
whole-run figures.

The samples are the seconds of ``result-<t>.json``'s series (results/README.md): per second, the bucket
counts of the ``corrected`` and ``raw`` ack latencies (``bench.metrics.SECOND_LAYOUT``) and the counters
(acked, sent, lost, rejected). The figures shown beside a verdict are the run's own (``summary.json`` and the
full-resolution histograms), so they read the same as the run's report; several runs on a side pool exactly
(histograms added, counters summed, rates averaged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.compare.stats import Floats
from bench.metrics import SECOND_LAYOUT, Histogram, Layout
from bench.protocol.errors import UsageError
from bench.results.read import Run
from bench.results.transport import TransportResult

#: The latency histograms a comparison judges, each kept whole and per second.
LATENCIES = ("corrected", "raw")


@dataclass(frozen=True, slots=True)
class Seconds:
    """Per-second samples of one side: per run, one row per second from 0 (a histogram's bucket counts, or
    counters side by side).

    Attributes:
        runs: each run's rows.
        sparse: a second with nothing in it is no sample (a latency histogram of a second without acks);
            otherwise every second is one (a second that acked nothing is a slow second, not a gap).
        cut: aligned with another side, the longer is cut to the shorter (throughput: the send phase's
            seconds); otherwise the shorter is padded with empty seconds.
    """

    runs: tuple[Floats, ...]
    sparse: bool = False
    cut: bool = False

    def _kept(self, rows: Floats) -> Floats:
        return rows[rows.any(axis=1)] if self.sparse else rows

    @property
    def count(self) -> int:
        """How many seconds are samples, over all runs."""
        return sum(len(self._kept(rows)) for rows in self.runs)

    def pooled(self) -> tuple[Floats, tuple[int, ...]]:
        """Every run's samples concatenated, and how many each run has: for an independent bootstrap."""
        kept = [self._kept(rows) for rows in self.runs]
        return np.concatenate(kept, axis=0), tuple(len(k) for k in kept)

    def aligned(self, other: Seconds) -> tuple[Floats, Floats]:
        """This one-run side's seconds and ``other``'s, second by second, as long as each other."""
        mine, theirs = self.runs[0], other.runs[0]
        if self.cut:
            n = min(len(mine), len(theirs))
            return mine[:n], theirs[:n]
        n = max(len(mine), len(theirs))
        return _pad(mine, n), _pad(theirs, n)


def _pad(rows: Floats, n: int) -> Floats:
    return np.concatenate([rows, np.zeros((n - len(rows), rows.shape[1]))]) if len(rows) < n else rows


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a comparison for one transport.

    Attributes:
        runs: how many runs it pools.
        layout: the layout of the per-second histograms.
        latency_seconds: per latency name, the seconds that hold any of its values (rows of bucket counts);
            None when a run did not keep that histogram per second (results written before it was).
        whole: per latency name, the runs' full-resolution histograms added up.
        acked: per whole second of the send phase, (events acked, 1): the throughput's samples, a mean.
        lost, rejected: per second of the series, (events lost or rejected, events sent): a share.
        events_per_s: the runs' ``throughput.events_per_s``, averaged.
        totals: counters summed over the runs: sent, lost, rejected, bad_acks (duplicate + unknown acks),
            and phantom_acks (acked but not stored) when every run was reconciled.
        saturated: the generator could not keep its plan in at least one run.
        cpu_us_per_event: client CPU µs per event sent, over all runs.
    """

    runs: int
    layout: Layout
    latency_seconds: dict[str, Seconds | None]
    whole: dict[str, Histogram]
    acked: Seconds
    lost: Seconds
    rejected: Seconds
    events_per_s: float
    totals: dict[str, int | None]
    saturated: bool
    cpu_us_per_event: float | None


def _latency_rows(result: TransportResult, name: str) -> Floats | None:
    """Each second's ``name`` latency as a row of bucket counts; None when the run has values of ``name``
    but its series kept none of them (it predates that per-second histogram)."""
    series = result.series
    rows = np.zeros((len(series), series.layout.size))
    for s in range(len(series)):
        rows[s] = series.histogram(name, s).buckets
    if not rows.any() and result.histograms[name].count:
        return None
    return rows


def _send_seconds(result: TransportResult) -> int:
    """Whole seconds of the send phase (less the plan's own tail), within the series: throughput's samples."""
    return max(1, min(len(result.series), int(result.send_s - result.plan_tail_s)))


def _columns(result: TransportResult, keys: tuple[str, ...], seconds: int | None = None) -> Floats:
    """Per second, the series' counters ``keys`` side by side ("one" is a column of ones)."""
    rows = result.series.rows()[:seconds]
    return np.asarray([[1 if k == "one" else row[k] for k in keys] for row in rows],
                      dtype=np.float64).reshape(len(rows), len(keys))


def _figure(run: Run, transport: str, *keys: str) -> Any:
    """``transports.<transport>.<keys...>`` of the run's summary.

    Raises:
        UsageError: the summary has no such figure (written by something else than nucleus-bench).
    """
    obj: Any = run.block(transport)
    for key in keys:
        if not isinstance(obj, Mapping) or key not in obj:
            where = f"transports.{transport}.{'.'.join(keys)}"
            raise UsageError(f"{run.path / 'summary.json'}: {where} is missing")
        obj = obj[key]
    return obj


def side_of(runs: Sequence[Run], transport: str) -> Side:
    """The samples and figures of ``transport`` over ``runs`` (each has it: see ``common_transports``).

    Raises:
        UsageError: a summary lacks a figure a comparison shows.
    """
    results = [run.results[transport] for run in runs]
    latency: dict[str, Seconds | None] = {}
    whole: dict[str, Histogram] = {}
    for name in LATENCIES:
        rows = [_latency_rows(r, name) for r in results]
        latency[name] = None if any(r is None for r in rows) else Seconds(
            tuple(r for r in rows if r is not None), sparse=True)
        total = results[0].histograms[name].copy()
        for r in results[1:]:
            total.merge(r.histograms[name])
        whole[name] = total
    sent = sum(r.tracker.sent for r in results)
    cpu_s = sum(r.cpu_s for r in results)
    reconciled = all(_figure(run, transport, "reconciliation", "done") for run in runs)
    return Side(
        runs=len(runs), layout=SECOND_LAYOUT,  # the one layout SecondSeries.from_json reads
        latency_seconds=latency, whole=whole,
        acked=Seconds(tuple(_columns(r, ("acked", "one"), _send_seconds(r)) for r in results), cut=True),
        lost=Seconds(tuple(_columns(r, ("lost", "sent")) for r in results)),
        rejected=Seconds(tuple(_columns(r, ("rejected", "sent")) for r in results)),
        events_per_s=float(np.mean([_figure(run, transport, "throughput", "events_per_s") for run in runs])),
        totals={"sent": sent, "lost": sum(r.tracker.lost for r in results),
                "rejected": sum(r.tracker.rejected for r in results),
                "bad_acks": sum(r.tracker.duplicate_acks + r.tracker.unknown_acks for r in results),
                "phantom_acks": (sum(int(_figure(run, transport, "reconciliation", "acked_not_stored") or 0)
                                     for run in runs) if reconciled else None)},
        saturated=any(bool(_figure(run, transport, "generator", "saturated")) for run in runs),
        cpu_us_per_event=cpu_s * 1e6 / sent if sent and cpu_s else None,
    )


def common_transports(base: Sequence[Run], new: Sequence[Run]) -> tuple[list[str], list[str]]:
    """The transports every run of both sides has (in the first baseline's order), and those left out."""
    everywhere = set.intersection(*(set(run.results) for run in (*base, *new)))
    seen: list[str] = []
    for run in (*base, *new):
        seen += [t for t in run.results if t not in seen]
    return [t for t in seen if t in everywhere], [t for t in seen if t not in everywhere]
