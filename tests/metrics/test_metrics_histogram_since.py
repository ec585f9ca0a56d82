"""Histogram.since: what was recorded after an earlier copy, as counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.metrics import Histogram
from bench.metrics.errors import MetricsFormatError

VALUES = st.lists(st.floats(min_value=0.0, max_value=1e10, allow_nan=False), max_size=200)


@given(VALUES, VALUES)
def test_since_holds_exactly_the_later_values(before: list[float], after: list[float]) -> None:
    h = Histogram()
    h.record_many(before)
    earlier = h.copy()
    h.record_many(after)
    later = Histogram()
    later.record_many(after)
    got = h.since(earlier)
    assert (got.buckets == later.buckets).all()
    assert (got.count, got.underflow, got.overflow) == (later.count, later.underflow, later.overflow)
    for q in (50.0, 99.0):
        assert got.percentile(q) == pytest.approx(later.percentile(q), rel=0.02)
    if later.count:
        assert got.min() <= later.min() and got.max() >= later.max()


def test_since_refuses_a_histogram_that_is_not_its_past() -> None:
    h, other = Histogram(), Histogram()
    other.record(5.0)
    with pytest.raises(MetricsFormatError, match="not a copy"):
        h.since(other)
