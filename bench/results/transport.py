"""``TransportResult``: what one transport's run produced, in one process or merged over many.

Everything in it merges exactly (sums of counters, histograms added bucket by bucket, series added
second by second, the largest of the per-process peaks) and round-trips through JSON, so shards from
several processes, and later several machines, combine into the same figures one process would have
reported. Merging is pure: ``merge`` and ``merge_all`` build new results and leave their inputs as
they were (the parts they are made of, ``TransportStats``, ``Histogram`` and ``SecondSeries``, merge in
place, so each sum starts from a fresh part).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench.metrics import Accounting, Histogram, SecondSeries, TrackerResult
from bench.protocol.events import EventId
from bench.results.reconcile import Reconciliation, not_done
from bench.results.saturation import saturation_reasons
from bench.transports.common import TransportStats

#: The generator's own histograms (µs), beside the tracker's latency histograms.
GENERATOR_HISTOGRAMS = ("schedule_lag", "loop_lag")


@dataclass(frozen=True, slots=True)
class TransportResult:
    """One transport's measurements, from one process or merged from several.

    The histograms, series and counters are owned by the result: treat them as read-only (``merge``
    builds new ones). ``reported_ids`` (every id the server acknowledged) feeds reconciliation and is not
    written out; ``reconciliation`` is set on the final result with ``dataclasses.replace``.
    """

    transport: str
    #: Trackable events in the plan; None when the run was interrupted: counting the part never reached
    #: would replay the whole plan, so a Ctrl-C would wait in proportion to the plan's size.
    planned_events: int | None = 0
    processes: int = 1
    tracker: TrackerResult = field(default_factory=TrackerResult)
    stats: TransportStats = field(default_factory=TransportStats)
    schedule_lag: Histogram = field(default_factory=Histogram)
    loop_lag: Histogram = field(default_factory=Histogram)
    series: SecondSeries = field(default_factory=SecondSeries)
    cpu_s: float = 0.0          # process CPU over the whole run (send + drain), summed over processes
    send_cpu_s: float = 0.0     # process CPU while the plan was being sent
    send_s: float = 0.0         # wall time of the send phase (the longest process)
    wall_s: float = 0.0         # wall time from start to the end of the drain (the longest process)
    plan_tail_s: float = 0.0    # how far past the run's duration the plan itself sends (HTTP's final flush)
    max_rss_kb: int = 0         # the largest process's peak RSS
    cpu_share_max: float = 0.0  # the busiest process's CPU share of one core while sending
    behind_max_us: float = 0.0  # the largest schedule lag in any process
    reasons: list[str] = field(default_factory=list)
    interrupted: bool = False   # stopped early (Ctrl-C, SIGTERM, a lost shard): figures up to then
    #: One line per process of the run that ended before it sent its figures (they are not in this result).
    lost_processes: list[str] = field(default_factory=list)
    devices_online: int = 0     # WS devices whose first connection opened (summed over processes)
    all_online_s: float = 0.0   # when the last of them did, from the run's start (the latest process)
    reported_ids: list[EventId] | None = None
    reconciliation: Reconciliation = field(default_factory=lambda: not_done("not attempted"))

    @classmethod
    def empty(cls, transport: str) -> TransportResult:
        """The result of no process at all: merging it into another changes nothing."""
        return cls(transport=transport, processes=0)

    def merge(self, other: TransportResult) -> TransportResult:
        """The result of both processes (exact; neither input changes).

        The merged result is not reconciled yet: reconciliation compares the store with the merged ids.

        Raises:
            ValueError: the results are of different transports.
            MetricsFormatError: histogram layouts differ.
        """
        if other.transport != self.transport:
            raise ValueError(f"cannot merge {other.transport} into {self.transport}")
        return TransportResult(
            transport=self.transport, planned_events=_sum_planned(self.planned_events, other.planned_events),
            processes=self.processes + other.processes, tracker=self.tracker.merge(other.tracker),
            stats=_sum_stats(self.stats, other.stats),
            schedule_lag=_sum_histograms(self.schedule_lag, other.schedule_lag),
            loop_lag=_sum_histograms(self.loop_lag, other.loop_lag),
            series=_sum_series(self.series, other.series),
            cpu_s=self.cpu_s + other.cpu_s, send_cpu_s=self.send_cpu_s + other.send_cpu_s,
            send_s=max(self.send_s, other.send_s), wall_s=max(self.wall_s, other.wall_s),
            plan_tail_s=max(self.plan_tail_s, other.plan_tail_s),
            max_rss_kb=max(self.max_rss_kb, other.max_rss_kb),
            cpu_share_max=max(self.cpu_share_max, other.cpu_share_max),
            behind_max_us=max(self.behind_max_us, other.behind_max_us),
            reasons=sorted(set(self.reasons) | set(other.reasons)),
            interrupted=self.interrupted or other.interrupted,
            lost_processes=[*self.lost_processes, *other.lost_processes],
            devices_online=self.devices_online + other.devices_online,
            all_online_s=max(self.all_online_s, other.all_online_s),
            reported_ids=_concat_ids((self.reported_ids, other.reported_ids)),
        )

    @property
    def histograms(self) -> dict[str, Histogram]:
        """Every histogram of the result by name (µs): the tracker's three and the generator's two."""
        t = self.tracker
        return {"corrected": t.corrected, "raw": t.raw, "delivery": t.delivery,
                "schedule_lag": self.schedule_lag, "loop_lag": self.loop_lag}

    def to_json(self) -> dict[str, Any]:
        """Lossless JSON of everything but ``reported_ids`` and the reconciliation."""
        return {
            "transport": self.transport, "planned_events": self.planned_events, "processes": self.processes,
            "tracker": self.tracker.to_json(), "stats": self.stats.to_json(),
            "schedule_lag": self.schedule_lag.to_json(), "loop_lag": self.loop_lag.to_json(),
            "series": self.series.to_json(), "cpu_s": self.cpu_s, "send_cpu_s": self.send_cpu_s,
            "send_s": self.send_s, "wall_s": self.wall_s, "plan_tail_s": self.plan_tail_s,
            "max_rss_kb": self.max_rss_kb,
            "cpu_share_max": self.cpu_share_max, "behind_max_us": self.behind_max_us,
            "reasons": list(self.reasons), "interrupted": self.interrupted,
            "lost_processes": list(self.lost_processes),
            "devices_online": self.devices_online, "all_online_s": self.all_online_s,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], *, reported_ids: list[EventId] | None = None) -> TransportResult:
        """Read ``to_json``'s form back; ``reported_ids`` travel beside it (they are not in the JSON)."""
        return cls(
            transport=obj["transport"], planned_events=_planned(obj["planned_events"]),
            processes=int(obj["processes"]), tracker=TrackerResult.from_json(obj["tracker"]),
            stats=TransportStats.from_json(obj["stats"]),
            schedule_lag=Histogram.from_json(obj["schedule_lag"]),
            loop_lag=Histogram.from_json(obj["loop_lag"]),
            series=SecondSeries.from_json(obj["series"]), cpu_s=float(obj["cpu_s"]),
            send_cpu_s=float(obj["send_cpu_s"]), send_s=float(obj["send_s"]), wall_s=float(obj["wall_s"]),
            plan_tail_s=float(obj.get("plan_tail_s", 0.0)),
            max_rss_kb=int(obj["max_rss_kb"]), cpu_share_max=float(obj["cpu_share_max"]),
            behind_max_us=float(obj["behind_max_us"]), reasons=list(obj["reasons"]),
            interrupted=bool(obj.get("interrupted", False)), reported_ids=reported_ids,
            lost_processes=[str(x) for x in obj.get("lost_processes", [])],
            devices_online=int(obj.get("devices_online", 0)),
            all_online_s=float(obj.get("all_online_s", 0.0)),
        )

    # -- derived figures ---------------------------------------------------------------------------
    def accounting(self) -> Accounting:
        return self.tracker.accounting()

    def saturation_reasons(self) -> list[str]:
        """Why the generator could not keep its plan (empty: it kept it)."""
        return saturation_reasons(self.reasons, self.schedule_lag)


def merge_all(results: Sequence[TransportResult]) -> TransportResult:
    """Merge per-process results (in shard order) into a new one; the inputs do not change.

    Raises:
        ValueError: nothing to merge, or results of different transports.
    """
    if not results:
        raise ValueError("nothing to merge")
    # the ids are joined once at the end: folded pair by pair, the list would be copied once per process
    merged = functools.reduce(TransportResult.merge, (replace(r, reported_ids=None) for r in results),
                              TransportResult.empty(results[0].transport))
    return replace(merged, reported_ids=_concat_ids(r.reported_ids for r in results))


def _concat_ids(parts: Iterable[list[EventId] | None]) -> list[EventId] | None:
    """Every process's reported ids in one new list; None when no process kept them."""
    kept = [ids for ids in parts if ids is not None]
    return list(itertools.chain.from_iterable(kept)) if kept else None


def _sum_stats(a: TransportStats, b: TransportStats) -> TransportStats:
    out = TransportStats()
    out.merge(a)
    out.merge(b)
    return out


def _sum_histograms(a: Histogram, b: Histogram) -> Histogram:
    out = a.copy()
    out.merge(b)
    return out


def _sum_series(a: SecondSeries, b: SecondSeries) -> SecondSeries:
    out = SecondSeries(a.layout)
    out.merge(a)
    out.merge(b)
    return out


def _sum_planned(a: int | None, b: int | None) -> int | None:
    """Planned events of two processes: unknown when either is (an interrupted process)."""
    return None if a is None or b is None else a + b


def _planned(value: Any) -> int | None:
    return None if value is None else int(value)
