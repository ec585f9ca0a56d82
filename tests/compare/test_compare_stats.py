"""The bootstrap's parts: weights that draw what they should, quantiles that agree with numpy, intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.compare import stats
from bench.metrics import SECOND_LAYOUT, Histogram


def test_one_run_draws_as_many_seconds_as_it_has() -> None:
    """One run: every replicate draws exactly its seconds, with replacement (some twice, some not at all)."""
    w = stats.resample_weights(np.random.default_rng(1), [40], 500)
    assert w.shape == (500, 40) and (w.sum(axis=1) == 40).all()
    assert (w == 0).any() and (w >= 2).any()


def test_several_runs_draw_whole_runs_then_their_seconds() -> None:
    """Several runs: each replicate draws runs with replacement, so a run's seconds are drawn a multiple of
    its length in all (0 when the run was not drawn), and the runs drawn add up to how many there are."""
    sizes = [5, 8, 13]
    w = stats.resample_weights(np.random.default_rng(2), sizes, 1000)
    per_run = np.stack([part.sum(axis=1) for part in np.split(w, np.cumsum(sizes)[:-1], axis=1)], axis=1)
    copies = per_run / np.asarray(sizes)
    assert (copies == np.round(copies)).all() and (copies.sum(axis=1) == len(sizes)).all()
    assert (copies == 0).any()  # a run left out of some replicates: the spread between runs shows


def test_weights_refuse_a_run_without_seconds() -> None:
    with pytest.raises(ValueError, match="every run needs seconds"):
        stats.resample_weights(np.random.default_rng(0), [3, 0], 10)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1.0, 1e6), min_size=50, max_size=400), st.sampled_from([50.0, 90.0, 99.0]))
def test_interpolated_quantile_is_within_a_bucket_of_numpy(values: list[float], q: float) -> None:
    """A quantile read from bucket counts is within one bucket (1/16 of an octave) of numpy's quantile."""
    h = Histogram(SECOND_LAYOUT)
    h.record_many(values)
    low, width = stats.bucket_bounds(SECOND_LAYOUT)
    got = stats.interpolated_quantiles(h.buckets.astype(np.float64)[None, :], low, width, [q])[0, 0]
    want = float(np.quantile(values, q / 100.0, method="inverted_cdf"))
    assert abs(got - want) <= want / 16 + 1e-9


def test_interpolation_moves_smoothly_inside_a_bucket() -> None:
    """Values spread evenly over one bucket: the median is the bucket's middle, not one of its edges."""
    low, width = stats.bucket_bounds(SECOND_LAYOUT)
    counts = np.zeros((1, SECOND_LAYOUT.size))
    i = SECOND_LAYOUT.index(1000.0)
    counts[0, i] = 100
    median = stats.interpolated_quantiles(counts, low, width, [50.0])[0, 0]
    assert median == pytest.approx(low[i] + width[i] / 2)


def test_an_empty_row_has_no_quantile() -> None:
    low, width = stats.bucket_bounds(SECOND_LAYOUT)
    assert np.isnan(stats.interpolated_quantiles(np.zeros((1, SECOND_LAYOUT.size)), low, width, [50.0])).all()


def test_change_interval_of_identical_replicates_is_zero_and_of_a_shift_is_the_shift() -> None:
    base = np.linspace(90.0, 110.0, 1000)
    assert stats.change_interval(base, base.copy(), 0.95) == (0.0, 0.0)
    lo, hi = stats.change_interval(base, base * 1.3, 0.95) or (0.0, 0.0)
    assert lo == pytest.approx(0.3) and hi == pytest.approx(0.3)


def test_change_interval_leaves_out_replicates_that_say_nothing() -> None:
    """0/0 replicates are dropped; too many of them and there is no interval at all."""
    base, new = np.zeros(100), np.zeros(100)
    assert stats.change_interval(base, new, 0.95) is None
    base[:80], new[:80] = 1.0, 2.0
    assert stats.change_interval(base, new, 0.95) == (1.0, 1.0)


def test_paired_replicates_cancel_what_both_sides_share() -> None:
    """Seconds that vary alike on both sides (the plan's load) give a tight paired interval of their
    ratio, and a wide independent one."""
    rng = np.random.default_rng(3)
    load = rng.uniform(100, 1000, size=(20, 1))
    base = np.hstack([load, np.ones((20, 1))])
    new = np.hstack([load * 1.02, np.ones((20, 1))])

    def mean(w: stats.Floats, v: stats.Floats) -> stats.Floats:
        return stats.pooled_ratios(w, v[:, 0], v[:, 1])

    sides = (base, (20,)), (new, (20,))
    pb, pn = stats.replicates(np.random.default_rng(4), mean, *sides, 1000, paired=True)
    ib, i_n = stats.replicates(np.random.default_rng(4), mean, *sides, 1000, paired=False)
    paired, independent = stats.change_interval(pb, pn, 0.95), stats.change_interval(ib, i_n, 0.95)
    assert paired is not None and independent is not None
    assert paired[0] == pytest.approx(0.02) and paired[1] == pytest.approx(0.02)
    assert independent[0] < 0.0 < 0.04 < independent[1]
