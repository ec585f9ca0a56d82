"""Histogram: every value counted, merge exact, percentiles within 1 % of numpy, JSON lossless."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.metrics import DEFAULT_LAYOUT, HOUR_US, Histogram, Layout, MetricsFormatError
from bench.protocol.errors import UsageError

FAST = settings(max_examples=200, deadline=None)

#: In-range values, integers and fractions of a µs, spread over every octave.
in_range = st.one_of(
    st.integers(min_value=1, max_value=HOUR_US).map(float),
    st.floats(min_value=1.0, max_value=float(HOUR_US), allow_nan=False),
)
#: Anything but NaN: below, inside and above the range, infinities included.
any_value = st.one_of(in_range, st.floats(allow_nan=False), st.integers(-10, 10).map(float))
values = st.lists(any_value, max_size=60)
in_values = st.lists(in_range, min_size=1, max_size=60)


def hist(vals: list[float]) -> Histogram:
    h = Histogram()
    h.record_many(vals)
    return h


def merged(*hs: Histogram) -> Histogram:
    out = Histogram()
    for h in hs:
        out.merge(h)
    return out


@FAST
@given(values)
def test_every_value_is_counted(vals: list[float]) -> None:
    """count + underflow + overflow equals the number of values recorded, by where they fall."""
    h = hist(vals)
    assert h.count + h.underflow + h.overflow == len(vals) == h.total
    assert h.underflow == sum(v < 1 for v in vals)
    assert h.overflow == sum(v > HOUR_US for v in vals)
    assert int(h.buckets.sum()) == h.count


@FAST
@given(values, values, values)
def test_merge_is_associative_and_commutative(a: list[float], b: list[float], c: list[float]) -> None:
    """(a+b)+c == a+(b+c) and a+b == b+a, bucket arrays and counters equal."""
    ha, hb, hc = hist(a), hist(b), hist(c)
    left = merged(merged(ha, hb), hc)
    right = merged(ha, merged(hb, hc))
    assert np.array_equal(left.buckets, right.buckets)
    assert left == right
    assert merged(ha, hb) == merged(hb, ha)


@FAST
@given(values, values)
def test_merge_equals_recording_the_union(a: list[float], b: list[float]) -> None:
    """Merging two histograms gives exactly the histogram of all their values."""
    assert merged(hist(a), hist(b)) == hist(a + b)


@FAST
@given(in_values, st.lists(st.floats(min_value=0, max_value=100), min_size=2, max_size=12))
def test_percentiles_are_monotone_in_q(vals: list[float], qs: list[float]) -> None:
    """A higher q never gives a lower percentile; q=0 is the exact min and q=100 the exact max."""
    h = hist(vals)
    qs = sorted(qs)
    got = h.percentiles(qs)
    assert all(x <= y for x, y in itertools.pairwise(got))
    assert h.percentile(0) == min(vals)
    assert h.percentile(100) == max(vals)


@FAST
@given(in_values, st.floats(min_value=0, max_value=100))
def test_percentile_within_one_percent_of_numpy(vals: list[float], q: float) -> None:
    """Against numpy's exact nearest-rank percentile on the same data, the relative error is <= 1 %.

    numpy's default (linear) method interpolates between two samples, a value that may not exist in
    the data and that no histogram can know; the nearest-rank method ("inverted_cdf") picks a sample.
    """
    exact = float(np.percentile(np.array(vals), q, method="inverted_cdf"))
    got = hist(vals).percentile(q)
    assert abs(got - exact) <= 0.01 * exact
    assert abs(got - exact) <= exact / (2 * DEFAULT_LAYOUT.sub_buckets) * (1 + 1e-12)  # the design bound


@FAST
@given(in_values)
def test_mean_min_max(vals: list[float]) -> None:
    """min and max are exact; the mean is within the bucket resolution."""
    h = hist(vals)
    assert h.min() == min(vals) and h.max() == max(vals)
    exact = math.fsum(vals) / len(vals)
    assert abs(h.mean() - exact) <= 0.01 * exact


@FAST
@given(values)
def test_json_round_trip_is_lossless(vals: list[float]) -> None:
    """to_json -> JSON text -> from_json gives an equal histogram; the form is sparse."""
    h = hist(vals)
    obj = h.to_json()
    back = Histogram.from_json(json.loads(json.dumps(obj)))
    assert back == h
    assert np.array_equal(back.buckets, h.buckets)
    assert len(obj["index"]) == int(np.count_nonzero(h.buckets)) <= len(vals)


@FAST
@given(st.lists(in_range, max_size=30))
def test_scalar_record_matches_batch(vals: list[float]) -> None:
    """record() one at a time fills the same buckets as record_many()."""
    one = Histogram()
    for v in vals:
        one.record(v)
    assert one == hist(vals)


@FAST
@given(in_range)
def test_value_falls_inside_its_bucket(v: float) -> None:
    """The bucket a value lands in contains it, and is at most 1/128 of its low edge wide."""
    lay = DEFAULT_LAYOUT
    i = lay.index(v)
    s = lay.sub_buckets
    scale = lay.lowest_us * 2.0 ** (i // s)
    low = scale * (1 + (i % s) / s)
    assert low <= v < low + scale / s
    assert 0 <= i < lay.size


def test_empty_histogram() -> None:
    """An empty histogram reads 0 everywhere and serializes null min/max."""
    h = Histogram()
    assert h.percentile(50) == 0.0 and h.min() == 0.0 and h.max() == 0.0 and h.mean() == 0.0
    assert h.summary() == {"count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0,
                           "min": 0.0, "mean": 0.0, "underflow": 0, "overflow": 0}
    obj = h.to_json()
    assert obj["min"] is None and obj["index"] == [] and Histogram.from_json(obj) == h


def test_range_edges() -> None:
    """1 µs and one hour are in range; just outside them, and the infinities, are counted apart."""
    h = hist([1.0, float(HOUR_US), 0.999, HOUR_US + 1.0, -math.inf, math.inf, -5.0, 0.0])
    assert (h.count, h.underflow, h.overflow) == (2, 4, 2)
    assert h.min() == 1.0 and h.max() == HOUR_US


def test_summary_of_known_data() -> None:
    """Summary percentiles of 1..1000 µs are the nearest-rank samples to within 0.4 %."""
    h = hist(list(range(1, 1001)))
    s = h.summary()
    assert s["count"] == 1000 and s["min"] == 1 and s["max"] == 1000
    for key, exact in (("p50", 500), ("p90", 900), ("p99", 990), ("mean", 500.5)):
        assert abs(s[key] - exact) <= 0.004 * exact, key
    assert set(s) == {"count", "p50", "p90", "p99", "p999", "max", "min", "mean", "underflow", "overflow"}


def test_nan_raises_and_records_nothing() -> None:
    """A NaN latency is a harness bug: ValueError, and the batch is not half recorded."""
    h = Histogram()
    with pytest.raises(ValueError, match="NaN"):
        h.record_many([5.0, math.nan, 1e12])
    with pytest.raises(ValueError, match="NaN"):
        h.record(math.nan)
    assert h.total == 0


def test_percentile_out_of_range_raises() -> None:
    """q outside [0, 100] is refused."""
    with pytest.raises(ValueError):
        hist([1.0]).percentile(100.5)
    with pytest.raises(ValueError):
        hist([1.0]).percentile(-1)


def test_numpy_input_and_ints() -> None:
    """numpy arrays of ints or floats and plain int lists are all accepted."""
    assert hist(np.array([3, 4, 5])) == hist([3.0, 4.0, 5.0]) == hist([3, 4, 5])  # type: ignore[arg-type]


def test_merge_of_another_layout_is_refused() -> None:
    """Histograms of different layouts do not merge; the error names both layouts."""
    other = Histogram(Layout(sub_buckets=64))
    with pytest.raises(MetricsFormatError, match="different layouts"):
        Histogram().merge(other)


def test_from_json_of_another_layout_is_refused() -> None:
    """A document written with another layout is refused with a clear, one-line usage error."""
    doc = Histogram(Layout(highest_us=60_000_000)).to_json()
    with pytest.raises(UsageError, match=r"layout .* differs from this build's") as info:
        Histogram.from_json(doc, where="summary.json: corrected")
    assert "summary.json: corrected" in str(info.value) and "\n" not in str(info.value)
    assert Histogram.from_json(doc, layout=Layout(highest_us=60_000_000)).layout.highest_us == 60_000_000


def _doc(**changes: Any) -> dict[str, Any]:
    doc = hist([10.0, 20.0, 20.0, 3000.0]).to_json()
    doc.update(changes)
    return doc


@pytest.mark.parametrize("doc", [
    pytest.param([], id="not-an-object"),
    pytest.param(_doc(count=5), id="count-does-not-add-up"),
    pytest.param(_doc(count=True), id="bool-count"),
    pytest.param(_doc(underflow=-1), id="negative-underflow"),
    pytest.param(_doc(index=[5, 3, 9]), id="index-not-increasing"),
    pytest.param(_doc(counts=[1, 2]), id="lengths-differ"),
    pytest.param(_doc(min=None), id="null-min"),
    pytest.param(_doc(min=11.0), id="min-not-in-first-bucket"),
    pytest.param(_doc(max="3000"), id="string-max"),
    pytest.param(_doc(layout={"lowest_us": 1, "highest_us": 3_600_000_000}), id="layout-missing-key"),
    pytest.param(_doc(layout={"lowest_us": 1, "highest_us": 3_600_000_000, "sub_buckets": 100}),
                 id="layout-not-power-of-two"),
    pytest.param({k: v for k, v in _doc().items() if k != "index"}, id="no-index"),
    pytest.param(_doc(index=[1, 2, 10**6], counts=[1, 2, 1]), id="index-out-of-layout"),
])
def test_malformed_json_is_refused(doc: Any) -> None:
    """Broken or inconsistent documents raise MetricsFormatError, never something else."""
    with pytest.raises(MetricsFormatError):
        Histogram.from_json(doc)


def test_layout_validation() -> None:
    """A layout needs 1 <= lowest < highest and a power-of-two sub-bucket count."""
    for bad in ({"lowest_us": 0}, {"highest_us": 1}, {"sub_buckets": 100}, {"sub_buckets": 1}):
        with pytest.raises(ValueError):
            Layout(**bad)
    assert DEFAULT_LAYOUT.size == 32 * 128


def test_copy_is_independent() -> None:
    """copy() is equal and does not share the bucket array."""
    h = hist([5.0])
    c = h.copy()
    c.record(7.0)
    assert h.count == 1 and c.count == 2
