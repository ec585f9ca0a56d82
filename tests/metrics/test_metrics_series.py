"""SecondSeries and Accounting: exact merges, lossless JSON, one clear line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.metrics import COLUMNS, Accounting, AccountingMismatch, MetricsFormatError, SecondSeries

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
