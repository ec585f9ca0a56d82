"""Per-second time series of a run: counters and latency histograms indexed by whole seconds since its start.

A row is a handful of ints, added to in place; the hot path can call ``add`` per message, though the
cheaper use is to add counter deltas once a second (e.g. the tracker's ``sent``/``acked``/``lost``
since the last tick). Series from several processes merge by adding second by second (exact).

Beside the counters, each second keeps what three histograms gained in it (``SECOND_HISTOGRAMS``): the ack
latency of the events acknowledged in that second, from their intended send (the tracker's ``corrected``) and
from their actual write (``raw``), and the schedule lag of the sends of that second. The seconds are the
samples ``nucleus-bench compare`` resamples (bench.compare), hence both latencies: a verdict on
the raw tail needs the raw tail's seconds. They are kept in ``SECOND_LAYOUT``, the run's layout with
16 instead of 128 buckets per octave (each of its buckets the exact union of 8 of the run's: relative error
<= 3.2 %, below what one second's few thousand samples can tell of a p99), as their non-empty buckets only:
a few dozen to a few hundred per second, so that an hours-long run keeps tens of megabytes, not gigabytes.
They merge by adding bucket counts second by second (exact, so shards of one plan give one process's
percentiles), and add up, over all seconds, to the run's whole histograms in that layout: nothing
recorded is left out of the series. Percentiles of one second (``latency``) are read from its buckets; its
max is the upper bound of its highest non-empty bucket, as ``Histogram.since`` gives it.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.metrics.errors import MetricsFormatError, req_dict
from bench.metrics.histogram import DEFAULT_LAYOUT, Histogram, Layout

#: The counters of a row, in JSON column order (after "second").
COLUMNS: tuple[str, ...] = ("sent", "acked", "rejected", "lost", "bytes_sent")
#: The histograms kept per second: ack latency from the intended send and from the actual write, and schedule
#: lag (µs).
SECOND_HISTOGRAMS: tuple[str, ...] = ("corrected", "raw", "schedule_lag")
#: What ``latency`` reads from them for one second (µs; None when the second recorded nothing).
LATENCY_COLUMNS: tuple[str, ...] = ("ack_p50_us", "ack_p99_us", "ack_max_us", "lag_p99_us")

#: The layout of the per-second histograms (see the module docstring).
SECOND_LAYOUT = Layout(DEFAULT_LAYOUT.lowest_us, DEFAULT_LAYOUT.highest_us, sub_buckets=16)

#: One second of one histogram: non-empty bucket indices (increasing), their counts, underflow, overflow.
_Buckets = tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], int, int]


class SecondSeries:
    """Counters, and what ``SECOND_HISTOGRAMS`` gained, per whole second since the run's start (second 0 is
    ``[0 s, 1 s)``)."""

    __slots__ = ("_hists", "_rows", "layout")

    def __init__(self, layout: Layout = SECOND_LAYOUT) -> None:
        self._rows: dict[int, list[int]] = {}
        self.layout = layout
        self._hists: dict[str, dict[int, _Buckets]] = {name: {} for name in SECOND_HISTOGRAMS}

    def add(self, second: int, *, sent: int = 0, acked: int = 0, lost: int = 0, bytes_sent: int = 0,
            rejected: int = 0) -> None:
        """Add counts to second ``second`` (>= 0).

        Raises:
            ValueError: ``second`` is negative (a clock not based on the run's start: a harness bug).
        """
        row = self._rows.get(second)
        if row is None:
            if second < 0:
                raise ValueError(f"second must be >= 0, not {second}")
            row = self._rows[second] = [0, 0, 0, 0, 0]
        row[0] += sent
        row[1] += acked
        row[2] += rejected
        row[3] += lost
        row[4] += bytes_sent

    def merge(self, other: SecondSeries) -> None:
        """Add ``other`` into this series, second by second."""
        if other.layout != self.layout:
            raise MetricsFormatError("series merge: the histograms have different layouts")
        rows = self._rows
        for second, theirs in other._rows.items():
            mine = rows.get(second)
            if mine is None:
                rows[second] = list(theirs)
            else:
                for k, value in enumerate(theirs):
                    mine[k] += value
        for name, seconds in other._hists.items():
            for second, buckets in seconds.items():
                self._add_buckets(name, second, buckets)

    def add_histogram(self, name: str, second: int, h: Histogram) -> None:
        """Add what ``h`` holds (e.g. what a histogram gained in that second) to second ``second``, in the
        series' layout (``h`` may be finer: its buckets are added up, exactly).

        Raises:
            ValueError: an unknown name, a negative second, or a histogram of a layout that is neither the
                series' nor a finer one of the same range.
        """
        if name not in self._hists:
            raise ValueError(f"no per-second histogram {name!r}: use one of {', '.join(SECOND_HISTOGRAMS)}")
        if second < 0:
            raise ValueError(f"second must be >= 0, not {second}")
        if h.layout != self.layout:
            h = h.coarsened(self.layout)
        if h.count or h.underflow or h.overflow:
            index, counts = h.nonzero()
            self._add_buckets(name, second, (index, counts, h.underflow, h.overflow))

    def _add_buckets(self, name: str, second: int, buckets: _Buckets) -> None:
        seconds = self._hists[name]
        mine = seconds.get(second)
        if mine is None:
            seconds[second] = buckets
            return
        h = self._histogram(mine)
        h.merge(self._histogram(buckets))
        index, counts = h.nonzero()
        seconds[second] = (index, counts, h.underflow, h.overflow)

    def _histogram(self, buckets: _Buckets) -> Histogram:
        index, counts, underflow, overflow = buckets
        return Histogram.from_buckets(index, counts, underflow=underflow, overflow=overflow,
                                      layout=self.layout)

    def histogram(self, name: str, second: int) -> Histogram:
        """What histogram ``name`` gained in second ``second`` (empty when nothing)."""
        buckets = self._hists[name].get(second)
        return Histogram(self.layout) if buckets is None else self._histogram(buckets)

    def histogram_total(self, name: str) -> Histogram:
        """Histogram ``name`` summed over every second: the run's whole one in the series' layout."""
        total = Histogram(self.layout)
        for buckets in self._hists[name].values():
            total.merge(self._histogram(buckets))
        return total

    def latency(self, second: int) -> dict[str, float | None]:
        """``LATENCY_COLUMNS`` of one second: ack latency p50, p99 and max, schedule lag p99 (µs)."""
        ack, lag = self.histogram("corrected", second), self.histogram("schedule_lag", second)
        p50, p99, top = ack.percentiles((50.0, 99.0, 100.0)) if ack.count else (None, None, None)
        return {"ack_p50_us": p50, "ack_p99_us": p99, "ack_max_us": top,
                "lag_p99_us": lag.percentile(99.0) if lag.count else None}

    def __len__(self) -> int:
        """Number of seconds from 0 to the last second with a row or a histogram (0 when empty)."""
        last = max((max(seconds) for seconds in self._hists.values() if seconds), default=-1)
        return max(max(self._rows) if self._rows else -1, last) + 1

    def totals(self) -> dict[str, int]:
        """Each counter summed over the whole series."""
        sums = [0] * len(COLUMNS)
        for row in self._rows.values():
            for k, value in enumerate(row):
                sums[k] += value
        return dict(zip(COLUMNS, sums, strict=True))

    def rows(self) -> list[dict[str, int]]:
        """One dict per second from 0 to the last, gaps filled with zeros: ``{"second", "sent", ...}``."""
        zero = [0] * len(COLUMNS)
        return [{"second": s, **dict(zip(COLUMNS, self._rows.get(s, zero), strict=True))}
                for s in range(len(self))]

    def to_json(self) -> dict[str, Any]:
        """Sparse: ``{"columns": ["second", ...], "rows": [[second, sent, ...], ...], "histograms": {"layout":
        ..., name: [[second, underflow, overflow, [index, ...], [count, ...]], ...]}}``, seconds with data."""
        hists: dict[str, Any] = {"layout": self.layout.to_json()}
        for name, seconds in self._hists.items():
            hists[name] = [[s, seconds[s][2], seconds[s][3], seconds[s][0].tolist(), seconds[s][1].tolist()]
                           for s in sorted(seconds)]
        return {"columns": ["second", *COLUMNS],
                "rows": [[s, *self._rows[s]] for s in sorted(self._rows)], "histograms": hists}

    @classmethod
    def from_json(cls, obj: Any, *, where: str = "series") -> SecondSeries:
        """Read ``to_json``'s form back.

        Raises:
            MetricsFormatError: malformed, other columns, or a second listed twice.
        """
        obj = req_dict(obj, where)
        columns = ["second", *COLUMNS]
        if obj.get("columns") != columns:
            raise MetricsFormatError(f"{where}: columns must be {columns}, not {obj.get('columns')!r}")
        rows = obj.get("rows")
        if not isinstance(rows, list):
            raise MetricsFormatError(f"{where}: 'rows' must be a list")
        out = cls()
        for n, row in enumerate(rows):
            if (not isinstance(row, list) or len(row) != len(columns)
                    or any(type(v) is not int or v < 0 for v in row)):
                raise MetricsFormatError(f"{where}: row {n} must be {len(columns)} integers >= 0")
            if row[0] in out._rows:
                raise MetricsFormatError(f"{where}: row {n}: second {row[0]} is listed twice")
            out._rows[row[0]] = row[1:]
        if "histograms" in obj:  # results written before the series kept histograms have none
            out._read_histograms(obj["histograms"], f"{where}: histograms")
        return out

    def _read_histograms(self, obj: Any, where: str) -> None:
        obj = req_dict(obj, where)
        layout = Layout.from_json(obj.get("layout"), f"{where}: layout")
        if layout != self.layout:
            raise MetricsFormatError(f"{where}: layout {layout.to_json()} differs from this build's "
                                     f"{self.layout.to_json()}; it cannot be read or merged")
        for name, seconds in self._hists.items():
            if name not in obj:  # results written before the series kept this one have none of it
                continue
            entries = obj[name]
            if not isinstance(entries, list):
                raise MetricsFormatError(f"{where}: {name!r} must be a list (of its seconds)")
            for n, entry in enumerate(entries):
                second, buckets = _read_buckets(entry, f"{where}: {name} entry {n}", layout.size)
                if second in seconds:
                    raise MetricsFormatError(f"{where}: {name} entry {n}: second {second} is listed twice")
                seconds[second] = buckets

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecondSeries):
            return NotImplemented
        return self.rows() == other.rows() and self._hist_key() == other._hist_key()

    def _hist_key(self) -> dict[str, dict[int, tuple[list[int], list[int], int, int]]]:
        return {name: {s: (b[0].tolist(), b[1].tolist(), b[2], b[3]) for s, b in seconds.items()}
                for name, seconds in self._hists.items()}

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"SecondSeries(seconds={len(self)}, totals={self.totals()})"


def _read_buckets(entry: Any, at: str, size: int) -> tuple[int, _Buckets]:
    """One second of a per-second histogram in ``to_json``'s form, checked whole."""
    if (not isinstance(entry, list) or len(entry) != 5 or any(type(v) is not int or v < 0 for v in entry[:3])
            or not all(isinstance(v, list) for v in entry[3:])):
        raise MetricsFormatError(f"{at} must be [second, underflow, overflow, [index...], [count...]] with "
                                 "integers >= 0")
    second, underflow, overflow, index, counts = entry
    if any(type(v) is not int for v in index + counts) or len(index) != len(counts):
        raise MetricsFormatError(f"{at}: index and counts must be integer lists of one length")
    inside = not index or (index[0] >= 0 and index[-1] < size)
    if any(b <= a for a, b in itertools.pairwise(index)) or not inside or any(c <= 0 for c in counts):
        raise MetricsFormatError(f"{at}: index must increase within [0, {size}) and counts be > 0")
    return second, (np.asarray(index, dtype=np.int32), np.asarray(counts, dtype=np.int64), underflow,
                    overflow)


class SeriesRows:
    """Feeds a ``SecondSeries`` from cumulative totals: each call adds what changed since the last one."""

    __slots__ = ("_last", "_last_hists", "series")

    def __init__(self, series: SecondSeries) -> None:
        self.series = series
        self._last = (0, 0, 0, 0, 0)
        self._last_hists: dict[str, Histogram] = {}

    def record(self, second: int, *, sent: int, acked: int, rejected: int, lost: int,
               bytes_sent: int, histograms: dict[str, Histogram] | None = None) -> None:
        """Add the deltas of these totals to second ``second``; a second where nothing changed adds no row.

        ``histograms``: the cumulative histograms of ``SECOND_HISTOGRAMS`` by name (only ever added to);
        what each gained since the last call goes to this second.
        """
        now = (sent, acked, rejected, lost, bytes_sent)
        d_sent, d_acked, d_rejected, d_lost, d_bytes = (a - b for a, b in zip(now, self._last, strict=True))
        self._last = now
        if d_sent or d_acked or d_rejected or d_lost or d_bytes:
            self.series.add(second, sent=d_sent, acked=d_acked, rejected=d_rejected, lost=d_lost,
                            bytes_sent=d_bytes)
        for name, h in (histograms or {}).items():
            last = self._last_hists.get(name)
            self.series.add_histogram(name, second, h if last is None else h.since(last))
            self._last_hists[name] = h.copy()
