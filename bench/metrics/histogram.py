"""Log-linear latency histograms over microseconds, on numpy, that merge by adding arrays.

Theory of operation
-------------------
The layout is fixed (HdrHistogram's idea): the range ``[lowest_us, highest_us]`` is cut into octaves
``[lowest·2^e, lowest·2^(e+1))`` and each octave into ``sub_buckets`` equal linear buckets. Bucket ``i``
has octave ``e = i // S`` and sub-bucket ``s = i % S`` (``S = sub_buckets``)::

    low(i)  = lowest · 2^e · (1 + s/S)        width(i) = lowest · 2^e / S

A value reads back as its bucket's midpoint, so the relative error of any value is at most
``width / (2·low) <= 1/(2S)``: 0.39 % with the default ``S = 128``, well inside the 1 % promised. The
bucket of a value comes from ``frexp`` (mantissa ``m`` in [0.5, 1), exponent ``E``), which is exact for
a power-of-two ``S``: ``i = (E-1)·S + floor(2S·m) - S``, computed for a whole batch at once and counted
with ``np.bincount``. Per-sample numpy calls are ~20x slower than that, which is why the ack tracker
buffers latencies in plain lists and folds them in about once a second. ``record_many`` takes optional
integer weights (a value counted that many times, exactly as if repeated), so events that share a
latency (those of one WebSocket message) are one buffered value.

Since every histogram with the same layout has the same buckets, merging is adding the count arrays:
exact, associative and commutative, across processes and machines. The exact minimum and maximum are
kept beside the buckets (they merge by min/max), and every estimate is clamped into [min, max].

Values below ``lowest_us`` or above ``highest_us`` (and ``-inf``/``+inf``) are not dropped, as
HdrHistogram's Python port does: they are counted in ``underflow`` / ``overflow``. Percentiles, mean,
min and max describe the in-range values only; the summary reports the two counters beside them. A NaN
is a harness bug and raises ``ValueError``.

Percentiles use the nearest rank, ``rank = ceil(count · q/100)`` (numpy's ``method="inverted_cdf"``):
the estimate is the recorded value of that rank, to within the bucket resolution.

The JSON form is sparse (indices and counts of the non-zero buckets), lossless, and carries the layout
so that a file written with another layout is refused with a clear error instead of misread.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.metrics.errors import MetricsFormatError, req_dict, req_int, req_int_list

#: One hour in microseconds: the default top of the range (an ack later than that is an overflow).
HOUR_US = 3_600_000_000

Counts = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Layout:
    """The bucket layout of a histogram. Two histograms merge only when their layouts are equal.

    Attributes:
        lowest_us: the smallest value counted in range; smaller ones are underflow.
        highest_us: the largest value counted in range; larger ones are overflow.
        sub_buckets: linear buckets per octave, a power of two; the relative error is <= 1/(2·sub_buckets).
    """

    lowest_us: int = 1
    highest_us: int = HOUR_US
    sub_buckets: int = 128

    def __post_init__(self) -> None:
        s = self.sub_buckets
        if self.lowest_us < 1 or self.highest_us <= self.lowest_us:
            raise ValueError(f"layout needs 1 <= lowest_us < highest_us, not {self}")
        if s < 2 or s & (s - 1):
            raise ValueError(f"layout sub_buckets must be a power of two >= 2, not {s}")

    @property
    def octaves(self) -> int:
        return (self.highest_us // self.lowest_us).bit_length()

    @property
    def size(self) -> int:
        """Number of buckets."""
        return self.octaves * self.sub_buckets

    def to_json(self) -> dict[str, int]:
        return {"lowest_us": self.lowest_us, "highest_us": self.highest_us, "sub_buckets": self.sub_buckets}

    @classmethod
    def from_json(cls, obj: Any, where: str = "histogram layout") -> Layout:
        obj = req_dict(obj, where)
        try:
            return cls(req_int(obj, "lowest_us", where, minimum=1), req_int(obj, "highest_us", where),
                       req_int(obj, "sub_buckets", where))
        except ValueError as exc:
            raise MetricsFormatError(f"{where}: {exc}") from None

    def index(self, value_us: float) -> int:
        """Bucket index of one in-range value (the scalar form of the batch computation)."""
        mant, exp = math.frexp(value_us / self.lowest_us)
        s = self.sub_buckets
        return (exp - 1) * s + int(mant * 2 * s) - s


DEFAULT_LAYOUT = Layout()


@lru_cache(maxsize=8)
def _edges(layout: Layout) -> tuple[Floats, Floats]:
    """(low edge, midpoint) of every bucket of ``layout``."""
    s = layout.sub_buckets
    i = np.arange(layout.size, dtype=np.int64)
    scale = layout.lowest_us * np.exp2((i // s).astype(np.float64))
    low = scale * (1.0 + (i % s) / s)
    mid = low + scale / (2 * s)
    low.setflags(write=False)
    mid.setflags(write=False)
    return low, mid


class Histogram:
    """Counts of latencies in µs over a fixed log-linear layout (see the module docstring).

    Attributes:
        layout: the bucket layout (equal layouts merge).
        count: values recorded in range.
        underflow: values recorded below ``layout.lowest_us`` (or ``-inf``).
        overflow: values recorded above ``layout.highest_us`` (or ``+inf``).
    """

    __slots__ = ("_counts", "_max", "_min", "count", "layout", "overflow", "underflow")

    def __init__(self, layout: Layout = DEFAULT_LAYOUT) -> None:
        self.layout = layout
        self._counts: Counts = np.zeros(layout.size, dtype=np.int64)
        self.count = 0
        self.underflow = 0
        self.overflow = 0
        self._min = math.inf
        self._max = -math.inf

    # -- recording -----------------------------------------------------------------------------------
    def record_many(self, values_us: npt.ArrayLike | Sequence[float],
                    weights: npt.ArrayLike | Sequence[int] | None = None) -> None:
        """Count a batch of values (µs). Vectorised: one ``bincount`` per call.

        Args:
            values_us: the values.
            weights: optional non-negative integers parallel to ``values_us``: each value is counted
                that many times (in range, underflow or overflow alike; a weight of 0 counts nothing),
                exactly as if it had been repeated. The ack tracker passes one value for the events
                of a message that share it, weighted by their number.

        Raises:
            ValueError: a value is NaN (whatever its weight), or the weights are not non-negative
                integers as many as the values (nothing of the batch is recorded then).
        """
        v: Floats = np.asarray(values_us, dtype=np.float64).ravel()
        w = None if weights is None else _check_weights(weights, v.size)
        n = v.size
        if n == 0:
            return
        lay = self.layout
        inside = (v >= lay.lowest_us) & (v <= lay.highest_us)
        k = int(np.count_nonzero(inside))
        if k != n:
            if np.isnan(v).any():
                raise ValueError("histogram: a NaN latency was recorded (a harness bug)")
            below = v < lay.lowest_us
            if w is None:
                n_below = int(np.count_nonzero(below))
                self.underflow += n_below
                self.overflow += n - k - n_below
            else:
                self.underflow += int(w[below].sum())
                self.overflow += int(w[~(inside | below)].sum())
                w = w[inside]
            v = v[inside]
            if k == 0:
                return
        if w is not None and not w.all():  # a weight of 0 counts nothing, not even in min/max
            nonzero = w != 0
            v, w = v[nonzero], w[nonzero]
            if v.size == 0:
                return
        mant, exp = np.frexp(v if lay.lowest_us == 1 else v / lay.lowest_us)
        s = lay.sub_buckets
        idx = (exp.astype(np.int64) - 1) * s + (mant * (2 * s)).astype(np.int64) - s
        if w is None:
            self._counts += np.bincount(idx, minlength=lay.size)
            self.count += v.size
        else:
            _add_weighted(self._counts, idx, w)
            self.count += int(w.sum())
        self._min = min(self._min, float(v.min()))
        self._max = max(self._max, float(v.max()))

    def record(self, value_us: float) -> None:
        """Count one value (µs). For the cold path; batches go through ``record_many``."""
        lay = self.layout
        if value_us != value_us:
            raise ValueError("histogram: a NaN latency was recorded (a harness bug)")
        if value_us < lay.lowest_us:
            self.underflow += 1
        elif value_us > lay.highest_us:
            self.overflow += 1
        else:
            self._counts[lay.index(value_us)] += 1
            self.count += 1
            self._min = min(self._min, float(value_us))
            self._max = max(self._max, float(value_us))

    def merge(self, other: Histogram) -> None:
        """Add ``other`` into this histogram (exact).

        Raises:
            MetricsFormatError: the layouts differ.
        """
        if other.layout != self.layout:
            raise MetricsFormatError(
                f"cannot merge histograms of different layouts: {other.layout} into {self.layout}")
        self._counts += other._counts
        self.count += other.count
        self.underflow += other.underflow
        self.overflow += other.overflow
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def copy(self) -> Histogram:
        out = Histogram(self.layout)
        out.merge(self)
        return out

    def since(self, earlier: Histogram) -> Histogram:
        """What was recorded after ``earlier``, a copy of this histogram taken before: counts subtracted.

        Exact min and max of that stretch are not known: they are the bounds of its lowest and highest
        non-empty buckets (within the layout's relative error).

        Raises:
            MetricsFormatError: other layouts, or ``earlier`` holds values this histogram does not.
        """
        if earlier.layout != self.layout:
            raise MetricsFormatError("since: the histograms have different layouts")
        counts = self._counts - earlier._counts
        if (counts < 0).any() or earlier.underflow > self.underflow or earlier.overflow > self.overflow:
            raise MetricsFormatError("since: the earlier histogram is not a copy of this one's past")
        return _of_counts(self.layout, counts, self.underflow - earlier.underflow,
                          self.overflow - earlier.overflow)

    def coarsened(self, layout: Layout) -> Histogram:
        """This histogram in a coarser ``layout`` of the same range: each of its buckets is the exact union
        of ``self.layout.sub_buckets // layout.sub_buckets`` buckets of this one, so counts add up exactly
        (extremes: the bounds of the outer non-empty buckets, as ``since`` gives them).

        Raises:
            ValueError: another range, or sub-buckets that do not divide this layout's.
        """
        if (layout.lowest_us, layout.highest_us) != (self.layout.lowest_us, self.layout.highest_us) or (
                self.layout.sub_buckets % layout.sub_buckets):
            raise ValueError(f"coarsened: {layout} is not a coarser layout of {self.layout}")
        index, counts = self.nonzero()
        return Histogram.from_buckets(index // (self.layout.sub_buckets // layout.sub_buckets), counts,
                                      underflow=self.underflow, overflow=self.overflow, layout=layout)

    def nonzero(self) -> tuple[npt.NDArray[np.int32], Counts]:
        """The non-empty buckets: their indices, increasing, and their counts (a compact copy)."""
        nz = np.flatnonzero(self._counts)
        return nz.astype(np.int32), self._counts[nz]

    @classmethod
    def from_buckets(cls, index: npt.ArrayLike, counts: npt.ArrayLike, *, underflow: int = 0,
                     overflow: int = 0, layout: Layout = DEFAULT_LAYOUT) -> Histogram:
        """The histogram of these bucket counts (``nonzero``'s form), as ``since`` makes one: its min and
        max are the bounds of its lowest and highest non-empty buckets.

        Raises:
            ValueError: an index outside the layout, a negative count, or lengths that differ.
        """
        idx = np.asarray(index, dtype=np.int64)
        got = np.asarray(counts, dtype=np.int64)
        if idx.shape != got.shape or idx.ndim != 1:
            raise ValueError("from_buckets: index and counts must be flat and as long as each other")
        if idx.size and (idx.min() < 0 or idx.max() >= layout.size or got.min() < 0):
            raise ValueError(f"from_buckets: indices must be in [0, {layout.size}) and counts >= 0")
        dense: Counts = np.zeros(layout.size, dtype=np.int64)
        np.add.at(dense, idx, got)
        return _of_counts(layout, dense, underflow, overflow)

    # -- reading -------------------------------------------------------------------------------------
    @property
    def buckets(self) -> Counts:
        """A read-only view of the bucket counts (index -> count)."""
        view = self._counts.view()
        view.setflags(write=False)
        return view

    @property
    def total(self) -> int:
        """Every value ever recorded: ``count + underflow + overflow``."""
        return self.count + self.underflow + self.overflow

    def min(self) -> float:
        """The smallest in-range value recorded (exact); 0.0 when empty."""
        return self._min if self.count else 0.0

    def max(self) -> float:
        """The largest in-range value recorded (exact); 0.0 when empty."""
        return self._max if self.count else 0.0

    def mean(self) -> float:
        """Mean of the in-range values, from bucket midpoints (same resolution as percentiles)."""
        if not self.count:
            return 0.0
        _, mid = _edges(self.layout)
        total = float(np.dot(self._counts.astype(np.float64), mid))
        return min(max(total / self.count, self._min), self._max)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (``q`` in [0, 100]) of the in-range values, in µs; 0.0 when empty."""
        return self.percentiles((q,))[0]

    def percentiles(self, qs: Sequence[float]) -> list[float]:
        """Several percentiles with one cumulative sum (see ``percentile``)."""
        for q in qs:
            if not 0.0 <= q <= 100.0:
                raise ValueError(f"percentile must be in [0, 100], not {q!r}")
        n = self.count
        if not n:
            return [0.0 for _ in qs]
        cum = np.cumsum(self._counts)
        _, mid = _edges(self.layout)
        out: list[float] = []
        for q in qs:
            if q <= 0.0:
                out.append(self._min)
            elif q >= 100.0:
                out.append(self._max)
            else:
                rank = min(n, max(1, math.ceil(n * (q / 100.0))))
                value = float(mid[int(np.searchsorted(cum, rank))])
                out.append(min(max(value, self._min), self._max))
        return out

    def summary(self) -> dict[str, float | int]:
        """``{count, p50, p90, p99, p999, max, min, mean, underflow, overflow}`` (µs; 0 when empty)."""
        p50, p90, p99, p999 = self.percentiles((50.0, 90.0, 99.0, 99.9))
        return {"count": self.count, "p50": p50, "p90": p90, "p99": p99, "p999": p999,
                "max": self.max(), "min": self.min(), "mean": self.mean(),
                "underflow": self.underflow, "overflow": self.overflow}

    # -- JSON ----------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Sparse, lossless JSON: the layout, the counters, exact min/max, non-zero buckets."""
        nz = np.flatnonzero(self._counts)
        return {
            "layout": self.layout.to_json(),
            "count": self.count,
            "underflow": self.underflow,
            "overflow": self.overflow,
            "min": self._min if self.count else None,
            "max": self._max if self.count else None,
            "index": nz.tolist(),
            "counts": self._counts[nz].tolist(),
        }

    @classmethod
    def from_json(cls, obj: Any, *, layout: Layout = DEFAULT_LAYOUT, where: str = "histogram") -> Histogram:
        """Read ``to_json``'s form back, checking it whole.

        Args:
            obj: the decoded JSON object.
            layout: the layout this build expects; a document of another layout is refused.
            where: names the document in error messages (e.g. ``"summary.json: corrected"``).

        Raises:
            MetricsFormatError: malformed, inconsistent, or of another layout.
        """
        obj = req_dict(obj, where)
        got = Layout.from_json(obj.get("layout"), f"{where}: layout")
        if got != layout:
            raise MetricsFormatError(f"{where}: layout {got.to_json()} differs from this build's "
                                     f"{layout.to_json()}; it cannot be read or merged")
        h = cls(layout)
        h.count = req_int(obj, "count", where)
        h.underflow = req_int(obj, "underflow", where)
        h.overflow = req_int(obj, "overflow", where)
        index = req_int_list(obj, "index", where)
        counts = req_int_list(obj, "counts", where)
        if len(index) != len(counts) or any(b <= a for a, b in itertools.pairwise(index)):
            raise MetricsFormatError(f"{where}: 'index' must be increasing and as long as 'counts'")
        if (index and index[-1] >= layout.size) or 0 in counts or sum(counts) != h.count:
            raise MetricsFormatError(f"{where}: buckets do not add up to 'count' {h.count} in {layout.size}"
                                     " buckets")
        h._counts[index] = counts
        h._min, h._max = _read_extremes(obj, h, where)
        return h

    # -- value semantics -----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (self.layout == other.layout and self.count == other.count
                and self.underflow == other.underflow and self.overflow == other.overflow
                and self.min() == other.min() and self.max() == other.max()
                and bool(np.array_equal(self._counts, other._counts)))

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (f"Histogram(count={self.count}, underflow={self.underflow}, overflow={self.overflow}, "
                f"min={self.min():g}, max={self.max():g})")


#: Float sums of integers up to 2**53 are exact, so weighted ``bincount`` counts convert back exactly.
_EXACT_FLOAT_INT = 2**53


def _of_counts(layout: Layout, counts: Counts, underflow: int, overflow: int) -> Histogram:
    """A histogram owning ``counts`` (dense), its extremes the bounds of its outer non-empty buckets."""
    out = Histogram(layout)
    out._counts = counts
    out.count = int(counts.sum())
    out.underflow = underflow
    out.overflow = overflow
    nz = np.flatnonzero(counts)
    if nz.size:
        low, mid = _edges(layout)
        out._min = float(low[nz[0]])
        out._max = float(2 * mid[nz[-1]] - low[nz[-1]])  # the top bucket's upper edge
    return out


def _check_weights(weights: npt.ArrayLike | Sequence[int], n: int) -> Counts:
    """``weights`` as an int64 array of ``n`` non-negative integers (integral floats accepted).

    Raises:
        ValueError: another length, a negative, fractional or non-finite weight, or not numbers.
    """
    w = np.asarray(weights).ravel()
    if w.size != n:
        raise ValueError(f"histogram: {w.size} weights for {n} values")
    if w.size == 0:
        return np.zeros(0, dtype=np.int64)
    kind = w.dtype.kind
    if kind not in "iuf":
        raise ValueError(f"histogram: weights must be integers, not {w.dtype}")
    if kind == "f" and not (np.isfinite(w).all() and (np.floor(w) == w).all()):
        raise ValueError("histogram: weights must be whole numbers")
    if w.min() < 0:
        raise ValueError(f"histogram: weights must be >= 0, not {w.min()}")
    if kind != "i" and w.max() >= 2**63:  # uint64 or float beyond int64 would not convert exactly
        raise ValueError(f"histogram: weight {w.max()} is too large")
    return w.astype(np.int64, copy=False)


def _add_weighted(counts: Counts, idx: Counts, w: Counts) -> None:
    """``counts[idx] += w`` summed per bucket, exactly."""
    if int(w.max()) * w.size <= _EXACT_FLOAT_INT:  # every bucket's float sum is an exact integer
        counts += np.bincount(idx, weights=w, minlength=counts.size).astype(np.int64)
    else:
        np.add.at(counts, idx, w)  # slower, integer arithmetic throughout


def _read_extremes(obj: dict[str, Any], h: Histogram, where: str) -> tuple[float, float]:
    """Exact min/max of a document, checked against its first and last non-zero buckets."""
    if not h.count:
        if obj.get("min") is not None or obj.get("max") is not None:
            raise MetricsFormatError(f"{where}: an empty histogram has null 'min' and 'max'")
        return math.inf, -math.inf
    lo, hi = _req_number(obj, "min", where), _req_number(obj, "max", where)
    lay = h.layout
    nz = np.flatnonzero(h._counts)
    if not (lay.lowest_us <= lo <= hi <= lay.highest_us
            and lay.index(lo) == nz[0] and lay.index(hi) == nz[-1]):
        raise MetricsFormatError(f"{where}: 'min' {lo!r} and 'max' {hi!r} do not match the buckets")
    return lo, hi


def _req_number(obj: dict[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetricsFormatError(f"{where}: {key!r} must be a number, not {value!r}")
    return float(value)
