"""The statistics of a comparison: a seeded bootstrap over per-second samples, and percentile intervals.

Theory of operation
-------------------
A run is not a bag of independent latencies: a slow second (a GC pause, a busy neighbour, a stalled disk)
slows every event in it. Resampling single events would ignore that and give intervals far too narrow. The
unit resampled here is therefore the *second*, the block the series stores (``bench.metrics.SecondSeries``):
each bootstrap replicate draws a run's seconds with replacement and pools what they hold, a block bootstrap
with one-second blocks. With several runs on a side, a replicate first draws runs with replacement and then
seconds within each drawn run (a two-level bootstrap), so the run-to-run spread, which one run cannot show,
widens the interval as it should.

Drawing is expressed as *weights*: replicate ``b`` counts second ``j`` ``W[b, j]`` times. A statistic of the
pooled seconds is then a matrix product: per-second histograms ``M`` (seconds x buckets) pool into
``W @ M``; per-second counts ``x`` into ``W @ x``. Two-level weights are exact: drawing run ``r`` ``c`` times
and ``n`` seconds from it each time is one multinomial draw of ``c·n`` seconds from it.

When each side is one run of the same plan (same scenario and seed), second ``j`` of one run carried the same
planned sends as second ``j`` of the other, so the two are *paired*: one set of weights is drawn and applied
to both runs' seconds, aligned by their number. What the plan itself makes vary from second to second (a ramp,
Poisson arrivals, sessions) then moves both sides alike and cancels out of their ratio, as a paired test's
differences do; otherwise each side draws its own weights.

Quantiles of a pooled histogram are interpolated linearly inside their bucket (the values of a bucket taken as
spread evenly over it), so that a quantile moves smoothly with the counts: read as bucket midpoints, a shift
of one bucket of the per-second layout (up to 6 % wide) would look like a 6 % change.

Everything is a pure function of its arrays and a ``numpy.random.Generator``: the caller seeds it, so the same
inputs and seed give the same interval, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from bench.metrics import Layout

Floats = npt.NDArray[np.float64]
#: How many replicates are pooled at once: bounds the weight matrix to CHUNK x seconds floats.
CHUNK = 256


def resample_weights(rng: np.random.Generator, sizes: Sequence[int], n: int) -> Floats:
    """Bootstrap weights of ``n`` replicates over runs of ``sizes[r]`` seconds each (concatenated in order).

    One run: each replicate draws its seconds with replacement (row sums: the run's seconds). Several runs:
    each replicate draws the runs with replacement, then each drawn run's seconds (row sums vary with the
    runs drawn). Returns an ``n x sum(sizes)`` float array of counts.

    Raises:
        ValueError: no run, or a run without seconds.
    """
    if not sizes or min(sizes) < 1:
        raise ValueError(f"resample_weights: every run needs seconds, got sizes {list(sizes)}")
    runs = len(sizes)
    copies = (np.ones((n, 1), dtype=np.int64) if runs == 1
              else rng.multinomial(runs, np.full(runs, 1.0 / runs), size=n))
    parts = [rng.multinomial(copies[:, r] * size, np.full(size, 1.0 / size)) for r, size in enumerate(sizes)]
    return np.concatenate(parts, axis=1).astype(np.float64)


def bucket_bounds(layout: Layout) -> tuple[Floats, Floats]:
    """(low edge, width) of every bucket of ``layout`` (bench.metrics.histogram's formula)."""
    s = layout.sub_buckets
    i = np.arange(layout.size, dtype=np.int64)
    scale = layout.lowest_us * np.exp2((i // s).astype(np.float64))
    return scale * (1.0 + (i % s) / s), scale / s


def interpolated_quantiles(counts: Floats, low: Floats, width: Floats, qs: Sequence[float]) -> Floats:
    """Quantiles ``qs`` (percent) of each row of ``counts`` (rows x buckets), interpolated in their bucket.

    The ``q``-th quantile of ``n`` values lies at rank ``q/100 · n``: in the first bucket whose cumulative
    count reaches it, as far into the bucket as the rank is into its count. A row with no values gives NaN.
    Returns a ``rows x len(qs)`` array.
    """
    cum = np.cumsum(counts, axis=1)
    total = cum[:, -1]
    out = np.full((counts.shape[0], len(qs)), np.nan)
    rows = np.flatnonzero(total > 0)
    if rows.size == 0:
        return out
    cum, total, counts = cum[rows], total[rows], counts[rows]
    for k, q in enumerate(qs):
        rank = total * (q / 100.0)
        j = np.minimum((cum < rank[:, None]).sum(axis=1), counts.shape[1] - 1)
        before = np.take_along_axis(cum, j[:, None], axis=1)[:, 0] - np.take_along_axis(counts, j[:, None],
                                                                                          axis=1)[:, 0]
        inside = np.take_along_axis(counts, j[:, None], axis=1)[:, 0]
        frac = np.clip((rank - before) / np.maximum(inside, 1.0), 0.0, 1.0)
        out[rows, k] = low[j] + width[j] * frac
    return out


def weight_chunks(rng: np.random.Generator, sizes: Sequence[int], n: int) -> Iterator[Floats]:
    """``resample_weights`` of ``n`` replicates, ``CHUNK`` at a time (bounds the memory of long runs)."""
    for start in range(0, n, CHUNK):
        yield resample_weights(rng, sizes, min(n, start + CHUNK) - start)


def trim(*matrices: Floats) -> tuple[list[Floats], npt.NDArray[np.intp]]:
    """The columns (buckets) any of ``matrices`` uses, kept, and their indices: a pooled histogram of
    seconds fills a few dozen of the layout's hundreds of buckets."""
    used = np.flatnonzero(sum(m.sum(axis=0) for m in matrices))
    return [m[:, used] for m in matrices], used


def pooled_quantiles(weights: Floats, matrix: Floats, low: Floats, width: Floats,
                     qs: Sequence[float]) -> Floats:
    """Quantiles ``qs`` (percent) of per-second histograms ``matrix`` (seconds x buckets, bucket bounds
    ``low`` and ``width``) pooled by each row of ``weights``: a ``replicates x len(qs)`` array (µs)."""
    return interpolated_quantiles(weights @ matrix, low, width, qs)


def pooled_ratios(weights: Floats, numerator: Floats, denominator: Floats) -> Floats:
    """``sum(numerator) / sum(denominator)`` over the seconds pooled by each row of ``weights``.

    With ``denominator`` all ones this is the mean per second (events acked per second); with the events
    sent per second it is a share (events lost per event sent). A replicate whose denominator pools to 0 is
    NaN.
    """
    num, den = weights @ numerator, weights @ denominator
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Floats = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


#: A statistic of pooled seconds: (weights, per-second values: one row per second) -> one value per replicate.
Statistic = Callable[[Floats, Floats], Floats]


def replicates(rng: np.random.Generator, statistic: Statistic, base: tuple[Floats, Sequence[int]],
               new: tuple[Floats, Sequence[int]], n: int, *, paired: bool) -> tuple[Floats, Floats]:
    """``n`` bootstrap replicates of ``statistic`` on each side: (per-second values, seconds per run).

    ``paired``: both sides are one run of the same plan, their seconds aligned (same count): one set of
    weights for both (see the module docstring). Otherwise each side draws its own.

    Raises:
        ValueError: paired sides of different lengths.
    """
    if paired:
        if base[0].shape[0] != new[0].shape[0]:
            raise ValueError("paired replicates need as many seconds on both sides")
        b_parts, n_parts = [], []
        for w in weight_chunks(rng, base[1], n):
            b_parts.append(statistic(w, base[0]))
            n_parts.append(statistic(w, new[0]))
        return np.concatenate(b_parts), np.concatenate(n_parts)
    b, nw = ([statistic(w, values) for w in weight_chunks(rng, sizes, n)] for values, sizes in (base, new))
    return np.concatenate(b), np.concatenate(nw)


def poisson_rates(rng: np.random.Generator, count: int, exposure: float, n: int) -> Floats:
    """``n`` parametric bootstrap replicates of a rate ``count / exposure``, the count drawn from a Poisson
    law of mean ``count``: for counters kept only as a run's total (duplicate acks, say), not per second."""
    return rng.poisson(float(count), size=n).astype(np.float64) / exposure


def change_interval(base: Floats, new: Floats, confidence: float) -> tuple[float, float] | None:
    """The percentile interval of ``new / base - 1`` over paired replicates (drawn independently per side).

    A replicate where both are 0 says nothing and is left out; ``x / 0`` is an infinite change. None when
    fewer than half of the replicates are usable (the interval would describe an accident of the drawing).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        change = new / base - 1.0
    change = change[~np.isnan(change)]
    if change.size < max(1, base.size // 2):
        return None
    tail = (1.0 - confidence) / 2.0
    # ranks, not interpolation: an infinite change must not turn into inf - inf
    lo, hi = np.quantile(change, (tail, 1.0 - tail), method="inverted_cdf")
    return float(lo), float(hi)
