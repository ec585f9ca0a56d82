"""``TrackerResult``: what one ack tracker measured, frozen, shipped between processes and merged exactly."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from bench.metrics.accounting import Accounting
from bench.metrics.errors import MetricsFormatError, req_dict, req_int
from bench.metrics.histogram import DEFAULT_LAYOUT, Histogram, Layout

#: The counters of a result, in JSON order.
COUNTERS: tuple[str, ...] = ("sent", "acked", "rejected", "lost", "in_flight", "duplicate_acks",
                             "unknown_acks", "late_acks", "resent", "stray_replies")
#: The latency histograms of a result (µs).
HISTOGRAMS: tuple[str, ...] = ("corrected", "raw", "delivery")


@dataclass(frozen=True, slots=True)
class TrackerResult:
    """The counters and histograms of an ``AckTracker`` (see its docstring for what each counts).

    The histograms are owned by the result: treat them as read-only (``merge`` builds new ones).
    """

    sent: int = 0
    acked: int = 0
    rejected: int = 0
    lost: int = 0
    in_flight: int = 0
    duplicate_acks: int = 0
    unknown_acks: int = 0
    late_acks: int = 0
    resent: int = 0
    stray_replies: int = 0
    corrected: Histogram = field(default_factory=Histogram)
    raw: Histogram = field(default_factory=Histogram)
    delivery: Histogram = field(default_factory=Histogram)

    def accounting(self) -> Accounting:
        return Accounting(self.sent, self.acked, self.rejected, self.lost, self.in_flight)

    def counters(self) -> dict[str, int]:
        """The counters by name."""
        return {name: getattr(self, name) for name in COUNTERS}

    def merge(self, other: TrackerResult) -> TrackerResult:
        """The result of both trackers (sums and added histograms; neither input changes).

        Raises:
            MetricsFormatError: the histogram layouts differ.
        """
        hists: dict[str, Histogram] = {}
        for name in HISTOGRAMS:
            h = getattr(self, name).copy()
            h.merge(getattr(other, name))
            hists[name] = h
        sums = {name: getattr(self, name) + getattr(other, name) for name in COUNTERS}
        return _make(sums, hists)

    @classmethod
    def merge_all(cls, results: list[TrackerResult] | tuple[TrackerResult, ...]) -> TrackerResult:
        """Merge any number of results (an empty list gives the empty result)."""
        out = cls()
        for r in results:
            out = out.merge(r)
        return out

    def to_json(self) -> dict[str, Any]:
        """Lossless JSON: the counters, then each histogram's sparse form."""
        obj: dict[str, Any] = self.counters()
        for name in HISTOGRAMS:
            obj[name] = getattr(self, name).to_json()
        return obj

    @classmethod
    def from_json(cls, obj: Any, *, layout: Layout = DEFAULT_LAYOUT,
                  where: str = "tracker result") -> TrackerResult:
        """Read ``to_json``'s form back.

        Raises:
            MetricsFormatError: malformed, or a histogram of another layout.
        """
        obj = req_dict(obj, where)
        unknown = set(obj) - set(COUNTERS) - set(HISTOGRAMS)
        if unknown:
            raise MetricsFormatError(f"{where}: unknown keys {sorted(unknown)}")
        counts = {name: req_int(obj, name, where) for name in COUNTERS}
        hists = {name: Histogram.from_json(obj.get(name), layout=layout, where=f"{where}: {name}")
                 for name in HISTOGRAMS}
        return _make(counts, hists)


def _make(c: dict[str, int], h: dict[str, Histogram]) -> TrackerResult:
    return TrackerResult(
        sent=c["sent"], acked=c["acked"], rejected=c["rejected"], lost=c["lost"], in_flight=c["in_flight"],
        duplicate_acks=c["duplicate_acks"], unknown_acks=c["unknown_acks"], late_acks=c["late_acks"],
        resent=c["resent"], stray_replies=c["stray_replies"],
        corrected=h["corrected"], raw=h["raw"], delivery=h["delivery"])


assert tuple(f.name for f in fields(TrackerResult)) == COUNTERS + HISTOGRAMS
