"""A run's histograms in the HdrHistogram interval log format (``.hlog``, log format version 1.3).

Theory of operation
-------------------
Our histograms (bench.metrics.histogram) cut each octave of microseconds into 128 linear buckets. An
HdrHistogram of 2 significant digits cuts the upper half of its sub-bucket range into 128 as well, so from
128 µs up its buckets are ours, edge for edge; below 128 µs it counts whole microseconds. Each of our buckets
is recorded once, at its midpoint, with its count: from 128 µs up nothing is lost (the same count in the same
bucket), below it the resolution is 1 µs instead of ours. The encoding (V2, deflate, base64) is the
``hdrhistogram`` package's, the reference Python port of HdrHistogram, so we do not re-implement it.

Values below our range (1 µs) or above it (1 hour) are counted by our histograms, not placed in a bucket: an
HdrHistogram cannot hold them either, so the log says how many in a comment line.

The log (results/README.md, "histograms.hlog"), one line per interval histogram, each with a tag:

- ``<transport>.<histogram>``: the whole run's histogram (``corrected``, ``raw``, ``delivery``,
  ``schedule_lag``, ``loop_lag``), one interval from the transport's start to the end of its drain;
- ``<transport>.<histogram>.per-second``: each second's histogram of the series (``corrected``, ``raw``,
  ``schedule_lag``), one interval per second that holds values, in the series' coarser layout.

Timestamps are seconds since the ``BaseTime`` (the run's start, UTC); each transport counts from its own
start.
Values are microseconds; ``Interval_Max`` is in milliseconds (unit ratio 1000).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from bench.metrics import SECOND_HISTOGRAMS, Histogram
from bench.results.transport import TransportResult

#: 2 digits: 128 linear buckets per octave, our layout's (see the module docstring).
SIGNIFICANT_DIGITS = 2
#: Interval_Max is written in milliseconds: values are µs.
MAX_VALUE_UNIT_RATIO = 1000.0
LOG_FORMAT_VERSION = "1.3"
LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'


def to_hdr(h: Histogram) -> Any:
    """``h`` as an ``hdrh.histogram.HdrHistogram`` over [1 µs, the layout's top], 2 significant digits:
    each non-empty bucket recorded at its midpoint, with its count."""
    from hdrh.histogram import HdrHistogram

    hdr = HdrHistogram(1, h.layout.highest_us, SIGNIFICANT_DIGITS)
    index, counts = h.nonzero()
    s, lowest = h.layout.sub_buckets, h.layout.lowest_us
    scale = lowest * np.exp2((index // s).astype(np.float64))
    mids = scale * (1.0 + (index % s) / s) + scale / (2 * s)
    for mid, count in zip(mids.tolist(), counts.tolist(), strict=True):
        hdr.record_value(int(mid), int(count))
    return hdr


def interval_line(tag: str, start_s: float, length_s: float, h: Histogram) -> str:
    """One tagged interval line: ``Tag=<tag>,<start>,<length>,<max>,<histogram>``."""
    hdr = to_hdr(h)
    payload = hdr.encode().decode("ascii")
    top = hdr.get_max_value() / MAX_VALUE_UNIT_RATIO
    return f"Tag={tag},{start_s:.3f},{length_s:.3f},{top:.3f},{payload}"


def _outside(tag: str, h: Histogram) -> Iterator[str]:
    if h.underflow or h.overflow:
        yield (f"#[{tag}: {h.underflow} value(s) below {h.layout.lowest_us} us and {h.overflow} above "
               f"{h.layout.highest_us} us are counted by nucleus-bench, not in this histogram]")


def log_lines(results: Mapping[str, TransportResult], started: datetime, name: str) -> Iterator[str]:
    """Every line of the log of one run (see the module docstring), without line ends.

    Args:
        results: each transport's result.
        started: when the run started (its summary's ``started_at``): the log's StartTime and BaseTime.
        name: the run's name, for the comment that says what the log holds.
    """
    epoch = started.timestamp()
    yield f"#[Histogram log format version {LOG_FORMAT_VERSION}]"
    yield f"#[StartTime: {epoch:.3f} (seconds since epoch), {started.isoformat()}]"
    yield f"#[BaseTime: {epoch:.3f} (seconds since epoch)]"
    yield (f"#[nucleus-bench run {name}: values in microseconds, Interval_Max in milliseconds; tags "
           "<transport>.<histogram> (whole run) and <transport>.<histogram>.per-second]")
    yield LEGEND
    for transport, result in results.items():
        for hist_name, h in result.histograms.items():
            tag = f"{transport}.{hist_name}"
            yield from _outside(tag, h)
            yield interval_line(tag, 0.0, result.wall_s, h)
    per_second = [(s, transport, name_) for transport, result in results.items()
                  for name_ in SECOND_HISTOGRAMS for s in range(len(result.series))]
    for second, transport, hist_name in sorted(per_second):
        h = results[transport].series.histogram(hist_name, second)
        if h.total:
            tag = f"{transport}.{hist_name}.per-second"
            yield from _outside(f"{tag} second {second}", h)
            yield interval_line(tag, float(second), 1.0, h)
