"""SecondSeries and Accounting: exact merges, lossless JSON, one clear line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.metrics import (
    COLUMNS,
    LATENCY_COLUMNS,
    SECOND_HISTOGRAMS,
    SECOND_LAYOUT,
    Accounting,
    AccountingMismatch,
    Histogram,
    MetricsFormatError,
    SecondSeries,
)

adds = st.lists(st.tuples(st.integers(0, 30), st.lists(st.integers(0, 10**6), min_size=5, max_size=5)),
                max_size=40)


def series(rows: list[tuple[int, list[int]]]) -> SecondSeries:
    s = SecondSeries()
    for second, (sent, acked, rejected, lost, nbytes) in rows:
        s.add(second, sent=sent, acked=acked, rejected=rejected, lost=lost, bytes_sent=nbytes)
    return s


@settings(max_examples=200, deadline=None)
@given(adds, adds, adds)
def test_series_merge_is_exact(a: list[Any], b: list[Any], c: list[Any]) -> None:
    """Merging is associative and commutative and equals adding everything into one series."""
    def m(*parts: SecondSeries) -> SecondSeries:
        out = SecondSeries()
        for p in parts:
            out.merge(p)
        return out
    sa, sb, sc = series(a), series(b), series(c)
    assert m(m(sa, sb), sc) == m(sa, m(sb, sc)) == m(sc, sb, sa) == series(a + b + c)


@settings(max_examples=200, deadline=None)
@given(adds)
def test_series_json_round_trip_and_rows(a: list[Any]) -> None:
    """JSON round trip is exact; rows() is dense from second 0 and sums to totals()."""
    s = series(a)
    assert SecondSeries.from_json(json.loads(json.dumps(s.to_json()))) == s
    rows = s.rows()
    assert [r["second"] for r in rows] == list(range(len(s)))
    for col in COLUMNS:
        assert sum(r[col] for r in rows) == s.totals()[col] == sum(v[COLUMNS.index(col)] for _, v in a)


def test_series_rows_fill_gaps() -> None:
    """Seconds without data read as zeros."""
    s = SecondSeries()
    s.add(2, sent=3, bytes_sent=100)
    s.add(0, acked=1)
    assert s.rows() == [
        {"second": 0, "sent": 0, "acked": 1, "rejected": 0, "lost": 0, "bytes_sent": 0},
        {"second": 1, "sent": 0, "acked": 0, "rejected": 0, "lost": 0, "bytes_sent": 0},
        {"second": 2, "sent": 3, "acked": 0, "rejected": 0, "lost": 0, "bytes_sent": 100},
    ]
    assert SecondSeries().rows() == [] and len(SecondSeries()) == 0


def test_series_negative_second_is_refused() -> None:
    """A second before the run's start is a harness bug."""
    with pytest.raises(ValueError):
        SecondSeries().add(-1, sent=1)


@pytest.mark.parametrize("doc", [
    pytest.param(None, id="null"),
    pytest.param({"columns": ["second", "sent"], "rows": []}, id="other-columns"),
    pytest.param({"columns": ["second", *COLUMNS], "rows": {}}, id="rows-not-a-list"),
    pytest.param({"columns": ["second", *COLUMNS], "rows": [[0, 1, 2]]}, id="short-row"),
    pytest.param({"columns": ["second", *COLUMNS], "rows": [[0, 1, 2, 3, 4, -5]]}, id="negative"),
    pytest.param({"columns": ["second", *COLUMNS], "rows": [[0, 1, 2, 3, 4, 5.0]]}, id="float"),
    pytest.param({"columns": ["second", *COLUMNS], "rows": [[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]},
                 id="second-twice"),
])
def test_series_malformed_json_is_refused(doc: Any) -> None:
    """A broken series document raises MetricsFormatError."""
    with pytest.raises(MetricsFormatError):
        SecondSeries.from_json(doc)


def test_accounting_line_and_check() -> None:
    """The identity reads as one line; a mismatch names itself and check() fails loudly."""
    good = Accounting(sent=1000, acked=990, rejected=0, lost=10, in_flight=0)
    assert good.ok and good.unaccounted == 0
    assert good.line() == "sent 1000 = acked 990 + rejected 0 + lost 10 + in flight 0  OK"
    good.check()
    bad = Accounting(sent=1000, acked=990, rejected=0, lost=5, in_flight=0)
    assert not bad.ok and bad.unaccounted == 5
    assert "MISMATCH by +5" in bad.line()
    with pytest.raises(AccountingMismatch, match="sent 1000"):
        bad.check()


@given(st.lists(st.tuples(*[st.integers(0, 1000)] * 4), min_size=1, max_size=5))
def test_accounting_merge_keeps_the_identity(parts: list[tuple[int, int, int, int]]) -> None:
    """Merging balanced accountings gives a balanced one whose counts are the sums."""
    accs = [Accounting(a + r + lo + f, a, r, lo, f) for a, r, lo, f in parts]
    total = accs[0]
    for acc in accs[1:]:
        total = total.merge(acc)
    assert total.ok and total.sent == sum(x.sent for x in accs)
    assert total.to_json()["ok"] is True


def test_series_rows_record_what_changed_since_the_last_call() -> None:
    """SeriesRows turns cumulative totals into per-second deltas and adds no row for a quiet second."""
    from bench.metrics import SeriesRows

    series = SecondSeries()
    rows = SeriesRows(series)
    rows.record(0, sent=10, acked=8, rejected=1, lost=0, bytes_sent=500)
    rows.record(1, sent=10, acked=8, rejected=1, lost=0, bytes_sent=500)
    rows.record(2, sent=15, acked=14, rejected=1, lost=1, bytes_sent=750)
    assert series.to_json()["rows"] == [[0, 10, 8, 1, 0, 500], [2, 5, 6, 0, 1, 250]]


# -- per-second histograms -------------------------------------------------------------------------------
hist_adds = st.lists(st.tuples(st.integers(0, 20), st.sampled_from(SECOND_HISTOGRAMS),
                               st.lists(st.floats(0.0, 2e10, allow_nan=False), max_size=30)), max_size=20)


def with_histograms(rows: list[tuple[int, list[int]]], hadds: list[Any]) -> SecondSeries:
    s = series(rows)
    for second, name, values in hadds:
        h = Histogram()
        h.record_many(values)
        s.add_histogram(name, second, h)
    return s


def buckets(h: Histogram) -> tuple[list[int], list[int], int, int]:
    index, counts = h.nonzero()
    return index.tolist(), counts.tolist(), h.underflow, h.overflow


@settings(max_examples=150, deadline=None)
@given(adds, hist_adds, adds, hist_adds)
def test_series_histograms_merge_exactly_and_round_trip(a: list[Any], ha: list[Any], b: list[Any],
                                                        hb: list[Any]) -> None:
    """Per-second histograms merge like the counters (into one series of everything) and survive JSON."""
    sa, sb = with_histograms(a, ha), with_histograms(b, hb)
    merged = SecondSeries()
    merged.merge(sb)
    merged.merge(sa)
    assert merged == with_histograms(a + b, ha + hb)
    assert SecondSeries.from_json(json.loads(json.dumps(merged.to_json()))) == merged
    for name in SECOND_HISTOGRAMS:
        values = [v for _, n, vs in ha + hb if n == name for v in vs]
        whole = Histogram()
        whole.record_many(values)
        assert buckets(merged.histogram_total(name)) == buckets(whole.coarsened(SECOND_LAYOUT))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.lists(st.floats(1.0, 1e7), max_size=40),
                          st.lists(st.floats(0.0, 1e5), max_size=10)), max_size=12))
def test_series_rows_put_what_each_histogram_gained_in_its_second(steps: list[Any]) -> None:
    """SeriesRows: each second gets exactly what the cumulative histograms gained since the last call,
    and ``latency`` reads that second's own percentiles."""
    from bench.metrics import SeriesRows

    series_ = SecondSeries()
    rows = SeriesRows(series_)
    corrected, lag = Histogram(), Histogram()
    second = 0
    expected: dict[int, tuple[Histogram, Histogram]] = {}
    for gap, acks, lags in steps:
        second += gap
        corrected.record_many(acks)
        lag.record_many(lags)
        rows.record(second, sent=0, acked=0, rejected=0, lost=0, bytes_sent=0,
                    histograms={"corrected": corrected, "schedule_lag": lag})
        mine = expected.setdefault(second, (Histogram(), Histogram()))
        mine[0].record_many(acks)
        mine[1].record_many(lags)
    for s, (ack_h, lag_h) in expected.items():
        assert buckets(series_.histogram("corrected", s)) == buckets(ack_h.coarsened(SECOND_LAYOUT))
        assert buckets(series_.histogram("schedule_lag", s)) == buckets(lag_h.coarsened(SECOND_LAYOUT))
        got = series_.latency(s)
        if ack_h.count:
            p50, p99 = series_.histogram("corrected", s).percentiles((50.0, 99.0))
            assert (got["ack_p50_us"], got["ack_p99_us"]) == (p50, p99)
            top = got["ack_max_us"]
            # the upper bound of its top bucket, 1/16 of an octave wide
            assert top is not None and ack_h.max() <= top <= ack_h.max() * (1 + 1 / 16)
        else:
            assert got["ack_p50_us"] is got["ack_p99_us"] is got["ack_max_us"] is None
        assert (got["lag_p99_us"] is None) == (lag_h.count == 0)
    assert buckets(series_.histogram_total("corrected")) == buckets(corrected.coarsened(SECOND_LAYOUT))
    assert buckets(series_.histogram_total("schedule_lag")) == buckets(lag.coarsened(SECOND_LAYOUT))


def test_series_without_histograms_reads_as_empty() -> None:
    """A result written before the series kept histograms still reads: its seconds have none."""
    s = series([(1, [3, 2, 0, 1, 99])])
    doc = s.to_json()
    del doc["histograms"]
    back = SecondSeries.from_json(doc)
    assert back == s and back.latency(1) == dict.fromkeys(LATENCY_COLUMNS)


def test_series_without_one_histogram_reads_with_none_of_it() -> None:
    """A result written before the series kept ``raw`` still reads: its seconds have no raw histogram, and
    the others are as written."""
    h = Histogram()
    h.record_many([5.0, 50.0, 500.0])
    s = SecondSeries()
    s.add_histogram("corrected", 2, h)
    doc = s.to_json()
    del doc["histograms"]["raw"]
    back = SecondSeries.from_json(doc)
    assert back == s and back.histogram_total("raw").total == 0 and back.histogram("corrected", 2).count == 3


def test_series_add_histogram_refuses_unknown_names_and_negative_seconds() -> None:
    with pytest.raises(ValueError, match="no per-second histogram"):
        SecondSeries().add_histogram("delivery", 0, Histogram())
    with pytest.raises(ValueError, match="second must be >= 0"):
        SecondSeries().add_histogram("corrected", -1, Histogram())


def _hist_doc(**changes: Any) -> dict[str, Any]:
    h = Histogram()
    h.record_many([5.0, 50.0, 500.0])
    s = SecondSeries()
    s.add_histogram("corrected", 2, h)
    doc = s.to_json()
    doc["histograms"].update(changes)
    return doc


@pytest.mark.parametrize("doc", [
    pytest.param(_hist_doc(layout={"lowest_us": 1, "highest_us": 1000, "sub_buckets": 128}), id="layout"),
    pytest.param(_hist_doc(corrected={}), id="not-a-list"),
    pytest.param(_hist_doc(schedule_lag=None), id="missing-name"),
    pytest.param(_hist_doc(corrected=[[2, 0, 0, [5], [1, 1]]]), id="lengths"),
    pytest.param(_hist_doc(corrected=[[2, 0, 0, [9, 5], [1, 1]]]), id="not-increasing"),
    pytest.param(_hist_doc(corrected=[[2, 0, 0, [5], [0]]]), id="zero-count"),
    pytest.param(_hist_doc(corrected=[[2, 0, 0, [1 << 20], [1]]]), id="outside-layout"),
    pytest.param(_hist_doc(corrected=[[2, 0, 0, [5], [1]], [2, 0, 0, [6], [1]]]), id="second-twice"),
    pytest.param(_hist_doc(corrected=[[2, -1, 0, [5], [1]]]), id="negative"),
    pytest.param(_hist_doc(corrected=[[2, 0, 0, [5]]]), id="short"),
])
def test_series_malformed_histograms_are_refused(doc: Any) -> None:
    """A broken per-second histogram raises MetricsFormatError, naming where."""
    with pytest.raises(MetricsFormatError, match="histograms"):
        SecondSeries.from_json(doc)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0.0, 2e10, allow_nan=False), max_size=200), st.sampled_from([1, 2, 8, 16, 128]))
def test_coarsened_is_what_the_coarser_layout_records(values: list[float], sub: int) -> None:
    """Each bucket of a coarser layout is the exact union of buckets of the finer one: coarsening a
    histogram gives what the coarser layout records of the same values, bucket for bucket."""
    from bench.metrics import DEFAULT_LAYOUT, Layout

    coarse = Layout(DEFAULT_LAYOUT.lowest_us, DEFAULT_LAYOUT.highest_us, sub_buckets=max(2, sub))
    fine, direct = Histogram(), Histogram(coarse)
    fine.record_many(values)
    direct.record_many(values)
    assert buckets(fine.coarsened(coarse)) == buckets(direct)


def test_coarsened_refuses_layouts_that_are_not_coarser() -> None:
    from bench.metrics import Layout

    with pytest.raises(ValueError, match="not a coarser layout"):
        Histogram().coarsened(Layout(sub_buckets=256))
    with pytest.raises(ValueError, match="not a coarser layout"):
        Histogram().coarsened(Layout(highest_us=1000, sub_buckets=16))
