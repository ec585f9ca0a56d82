"""What one transport's run produced, in one process or merged over many, and its summary.

Everything here merges exactly (sums of counters, histograms added bucket by bucket, series added
second by second) and round-trips through JSON, so shards from several processes, and later several
machines, combine into the same figures one process would have reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.metrics import COUNTERS, Accounting, Histogram, SecondSeries, TrackerResult
from bench.protocol.events import EventId
from bench.runner.reconcile import Reconciliation, not_done
from bench.transports.common import TransportStats

#: The generator's own histograms (µs), beside the tracker's latency histograms.
GENERATOR_HISTOGRAMS = ("schedule_lag", "loop_lag")

# When the generator could not keep its plan (issue 7). Any one of these marks the run saturated.
#: schedule lag p99 above this: sends went out late often enough to distort the tail.
SATURATION_LAG_P99_US = 10_000.0
#: the scheduler fell this far behind at least once.
SATURATION_BEHIND_US = 1_000_000.0
#: the process used this share of one core while sending (one event loop runs on one core).
SATURATION_CPU_SHARE = 0.9


@dataclass(slots=True)
class TransportResult:
    """One transport's measurements, from one process or merged from several.

    ``reported_ids`` (every id the server acknowledged) feeds reconciliation and is not written out.
    """

    transport: str
    planned_events: int = 0
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
    interrupted: bool = False   # stopped by the user (Ctrl-C): the figures cover the run up to then
    reported_ids: list[EventId] | None = None
    reconciliation: Reconciliation = field(default_factory=lambda: not_done("not attempted"))

    def merge(self, other: TransportResult) -> None:
        """Add another process's result into this one (exact)."""
        if other.transport != self.transport:
            raise ValueError(f"cannot merge {other.transport} into {self.transport}")
        self.planned_events += other.planned_events
        self.processes += other.processes
        self.tracker = self.tracker.merge(other.tracker)
        self.stats.merge(other.stats)
        self.schedule_lag.merge(other.schedule_lag)
        self.loop_lag.merge(other.loop_lag)
        self.series.merge(other.series)
        self.cpu_s += other.cpu_s
        self.send_cpu_s += other.send_cpu_s
        self.send_s = max(self.send_s, other.send_s)
        self.wall_s = max(self.wall_s, other.wall_s)
        self.plan_tail_s = max(self.plan_tail_s, other.plan_tail_s)
        self.max_rss_kb = max(self.max_rss_kb, other.max_rss_kb)
        self.cpu_share_max = max(self.cpu_share_max, other.cpu_share_max)
        self.behind_max_us = max(self.behind_max_us, other.behind_max_us)
        self.reasons = sorted(set(self.reasons) | set(other.reasons))
        self.interrupted = self.interrupted or other.interrupted
        if other.reported_ids is not None:
            self.reported_ids = (self.reported_ids or []) + other.reported_ids

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
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TransportResult:
        return cls(
            transport=obj["transport"], planned_events=int(obj["planned_events"]),
            processes=int(obj["processes"]), tracker=TrackerResult.from_json(obj["tracker"]),
            stats=TransportStats.from_json(obj["stats"]),
            schedule_lag=Histogram.from_json(obj["schedule_lag"]),
            loop_lag=Histogram.from_json(obj["loop_lag"]),
            series=SecondSeries.from_json(obj["series"]), cpu_s=float(obj["cpu_s"]),
            send_cpu_s=float(obj["send_cpu_s"]), send_s=float(obj["send_s"]), wall_s=float(obj["wall_s"]),
            plan_tail_s=float(obj.get("plan_tail_s", 0.0)),
            max_rss_kb=int(obj["max_rss_kb"]), cpu_share_max=float(obj["cpu_share_max"]),
            behind_max_us=float(obj["behind_max_us"]), reasons=list(obj["reasons"]),
            interrupted=bool(obj.get("interrupted", False)),
        )

    # -- derived figures ---------------------------------------------------------------------------
    def accounting(self) -> Accounting:
        return self.tracker.accounting()

    def saturation_reasons(self) -> list[str]:
        """Why the generator could not keep its plan (empty: it kept it)."""
        reasons = set(self.reasons)
        lag_p99 = self.schedule_lag.percentile(99.0)
        if lag_p99 > SATURATION_LAG_P99_US:
            reasons.add(f"schedule lag p99 {lag_p99 / 1000:.1f} ms > {SATURATION_LAG_P99_US / 1000:g} ms")
        return sorted(reasons)


def process_reasons(cpu_share: float, behind_us: float) -> list[str]:
    """The per-process saturation signals (lag p99 is judged on the merged histogram)."""
    out: list[str] = []
    if cpu_share >= SATURATION_CPU_SHARE:
        out.append(f"generator CPU at {cpu_share:.0%} of a core (limit {SATURATION_CPU_SHARE:.0%})")
    if behind_us > SATURATION_BEHIND_US:
        out.append(f"scheduler fell {behind_us / 1e6:.2f} s behind its plan "
                   f"(limit {SATURATION_BEHIND_US / 1e6:g} s)")
    return out


def quantiles(h: Histogram) -> dict[str, float | int]:
    """``{count, p50, p90, p99, p999, max, underflow, overflow}`` in µs (the summary's latency shape).

    ``count`` and the quantiles cover the values in the histogram's range (1 µs to 1 h); values below or
    above are counted in ``underflow`` / ``overflow``, never dropped silently.
    """
    s = h.summary()
    return {k: s[k] for k in ("count", "p50", "p90", "p99", "p999", "max", "underflow", "overflow")}


def transport_summary(r: TransportResult) -> dict[str, Any]:
    """The ``transports.<name>`` object of summary.json (schema: results/README.md)."""
    t, st = r.tracker, r.stats
    counters = t.counters()
    # the rate over the send phase, less what the plan itself schedules after the duration (HTTP's final
    # flush): both transports' events/s then cover the same seconds of the same events
    send_s = max(r.send_s - r.plan_tail_s, 1e-9) if r.send_s else 1e-9
    reasons = r.saturation_reasons()
    accounting = t.accounting()
    return {
        "events": {k: counters[k] for k in COUNTERS} | {"planned": r.planned_events},
        "throughput": {"events_per_s": t.acked / send_s, "sent_events_per_s": t.sent / send_s,
                       "messages_per_s": st.messages_sent / send_s, "send_s": r.send_s, "wall_s": r.wall_s,
                       "plan_tail_s": r.plan_tail_s},
        "interrupted": r.interrupted,
        "ack_latency_us": {"corrected": quantiles(t.corrected), "raw": quantiles(t.raw),
                           "flagged": bool(reasons)},
        "delivery_delay_us": quantiles(t.delivery),
        "client": {"cpu_s": r.cpu_s, "send_cpu_s": r.send_cpu_s,
                   "events_per_cpu_s": t.sent / r.cpu_s if r.cpu_s else 0.0,
                   "cpu_us_per_event": r.cpu_s * 1e6 / t.sent if t.sent else 0.0,
                   "bytes_sent": st.bytes_sent, "bytes_received": st.bytes_received,
                   "bytes_per_event": st.bytes_sent / t.sent if t.sent else 0.0,
                   "processes": r.processes, "max_rss_kb": r.max_rss_kb},
        "generator": {"schedule_lag_us": quantiles(r.schedule_lag), "loop_lag_us": quantiles(r.loop_lag),
                      "cpu_share_max": r.cpu_share_max, "behind_max_us": r.behind_max_us,
                      "saturated": bool(reasons), "reasons": reasons},
        "wire": st.to_json(),
        "reconciliation": r.reconciliation.to_json(),
        "accounting": accounting.to_json() | {"line": accounting.line()},
    }


def merge_all(results: Sequence[TransportResult]) -> TransportResult:
    """Merge per-process results (in shard order) into one."""
    if not results:
        raise ValueError("nothing to merge")
    out = TransportResult.from_json(results[0].to_json())
    out.reported_ids = list(results[0].reported_ids) if results[0].reported_ids is not None else None
    for r in results[1:]:
        out.merge(r)
    return out
