"""``TransportResult``: exact, pure merge (inputs never change, counts associate) and lossless JSON."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from results_helpers import make_result

from bench.results.transport import TransportResult, merge_all

#: Float sums (CPU seconds) associate only up to rounding; every other figure is a count or a maximum.
FLOAT_SUMS = ("cpu_s", "send_cpu_s")


def _exact(r: TransportResult) -> dict[str, Any]:
    """Everything a result writes out but its float sums, and its reported ids."""
    obj = {k: v for k, v in r.to_json().items() if k not in FLOAT_SUMS}
    return obj | {"reported_ids": r.reported_ids}


def test_results_merge_exactly_and_round_trip_through_json() -> None:
    """Counters add, histograms add, series add; JSON loses nothing but the reported ids."""
    merged = merge_all([make_result(10, 8, 100.0), make_result(6, 6, 200.0)])
    assert (merged.tracker.sent, merged.tracker.acked, merged.tracker.rejected) == (16, 14, 2)
    assert merged.processes == 2 and merged.planned_events == 16 and merged.cpu_s == 2.0
    assert merged.schedule_lag.count == 200 and merged.series.totals()["acked"] == 14
    assert merged.reported_ids is not None and len(merged.reported_ids) == 14
    again = TransportResult.from_json(merged.to_json())
    assert again.to_json() == merged.to_json() and again.accounting().ok


def test_an_interrupted_process_makes_the_planned_count_unknown_and_json_keeps_it() -> None:
    """An interrupted process does not count its plan (None): the merge says unknown, not a partial sum."""
    cut = replace(make_result(6, 6, 200.0), planned_events=None, interrupted=True)
    merged = merge_all([make_result(10, 8, 100.0), cut])
    assert merged.planned_events is None and merged.interrupted
    assert merged.tracker.sent == 16  # everything that was counted still adds
    assert TransportResult.from_json(merged.to_json()).planned_events is None


def test_merging_leaves_its_inputs_unchanged_and_shares_no_part_with_them() -> None:
    """merge and merge_all build new results: the inputs read the same after, and changing every
    mutable part of the merged result (counters, histograms, series, ids) changes no input."""
    inputs = [make_result(10, 8, 100.0, bytes_sent=500), make_result(6, 6, 200.0, first_id=100)]
    before = [_exact(r) for r in inputs]
    for merged in (inputs[0].merge(inputs[1]), merge_all(inputs), merge_all(inputs[:1])):
        assert [_exact(r) for r in inputs] == before
        merged.schedule_lag.record_many([5.0])
        merged.loop_lag.record_many([5.0])
        merged.tracker.corrected.record_many([5.0])
        merged.stats.bytes_sent += 1
        merged.series.add(0, sent=1)
        merged.series.add(7, acked=1)
        assert merged.reported_ids is not None
        merged.reported_ids.append(999)
        assert [_exact(r) for r in inputs] == before


def test_merge_all_of_one_result_is_an_equal_copy() -> None:
    """One process's result merged alone reads back as that result (processes stay 1)."""
    one = make_result(5, 4, 300.0)
    assert _exact(merge_all([one])) == _exact(one) and merge_all([one]).cpu_s == one.cpu_s


def test_merge_refuses_another_transport_and_nothing() -> None:
    """ws cannot merge into http, and there is no merge of no result."""
    with pytest.raises(ValueError, match="cannot merge"):
        make_result(1, 1, 1.0).merge(replace(make_result(1, 1, 1.0), transport="http"))
    with pytest.raises(ValueError, match="nothing to merge"):
        merge_all([])


_SHARDS = st.tuples(st.integers(0, 40), st.integers(0, 40), st.floats(1.0, 5e6), st.floats(0.0, 1.0),
                    st.floats(0.0, 10.0), st.integers(0, 10_000)).map(
    lambda t: make_result(t[0], min(t[1], t[0]), t[2], t[3], first_id=t[5], cpu_s=t[4], bytes_sent=t[5]))


@given(_SHARDS, _SHARDS, _SHARDS)
def test_merge_is_associative_on_counts(a: TransportResult, b: TransportResult, c: TransportResult) -> None:
    """(a + b) + c and a + (b + c) agree on every count, histogram, series, maximum and id; CPU sums agree
    to rounding."""
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    assert _exact(left) == _exact(right)
    for name in FLOAT_SUMS:
        assert getattr(left, name) == pytest.approx(getattr(right, name))
    assert _exact(merge_all([a, b, c])) == _exact(left)
