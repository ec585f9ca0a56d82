"""Metrics: the ack tracker, latency histograms, the accounting identity and per-second series.

Pure: numpy and the standard library, no sockets, no event loop, no clock (time comes in as ints of
monotonic nanoseconds). Everything that crosses a process boundary has ``to_json``/``from_json`` and
merges exactly (sums of counters, added bucket arrays).
"""

from bench.metrics.accounting import Accounting, AccountingMismatch
from bench.metrics.errors import MetricsFormatError
from bench.metrics.histogram import DEFAULT_LAYOUT, HOUR_US, Histogram, Layout
from bench.metrics.result import COUNTERS, HISTOGRAMS, TrackerResult
from bench.metrics.series import (
    COLUMNS,
    LATENCY_COLUMNS,
    SECOND_HISTOGRAMS,
    SECOND_LAYOUT,
    SecondSeries,
    SeriesRows,
)
from bench.metrics.tracker import AckTracker

__all__ = [
    "COLUMNS",
    "COUNTERS",
    "DEFAULT_LAYOUT",
    "HISTOGRAMS",
    "HOUR_US",
    "LATENCY_COLUMNS",
    "SECOND_HISTOGRAMS",
    "SECOND_LAYOUT",
    "Accounting",
    "AccountingMismatch",
    "AckTracker",
    "Histogram",
    "Layout",
    "MetricsFormatError",
    "SecondSeries",
    "SeriesRows",
    "TrackerResult",
]
