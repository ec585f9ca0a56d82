"""``nucleus-bench export RESULT --hdr``: the HdrHistogram log reads back through the ``hdrhistogram`` package
with every count, and every value within the two histograms' precision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from bench.cli import main
from bench.export.hdr import log_lines, to_hdr
from bench.metrics import SECOND_LAYOUT, Histogram, SecondSeries, TrackerResult
from bench.results.files import write_results
from bench.results.summary import SUMMARY_SCHEMA, transport_summary
from bench.results.transport import TransportResult

STARTED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
#: The whole-run histograms of a result, and those its series keeps per second.
WHOLE = ("corrected", "raw", "delivery", "schedule_lag", "loop_lag")
PER_SECOND = ("corrected", "raw", "schedule_lag")


def _values(seed: int, n: int = 20_000) -> np.ndarray:
    """Latencies over five decades (µs), from sub-millisecond to seconds, as real runs have them."""
    return np.random.default_rng(seed).lognormal(np.log(2000.0), 1.6, size=n).clip(1.0, 3.6e9)


def _result(transport: str, seconds: int = 4) -> TransportResult:
    """A result whose histograms hold known values, whole and second by second."""
    hists = {name: Histogram() for name in WHOLE}
    series = SecondSeries()
    for s in range(seconds):
        for k, name in enumerate(WHOLE):
            h = Histogram()
            h.record_many(_values(100 * s + k, 2000))
            hists[name].merge(h)
            if name in PER_SECOND:
                series.add_histogram(name, s, h)
    hists["corrected"].record_many([0.2, 7.2e9])  # one under, one over the range: counted, not in buckets
    tracker = TrackerResult(sent=8000, acked=8000, corrected=hists["corrected"], raw=hists["raw"],
                            delivery=hists["delivery"])
    return TransportResult(transport=transport, tracker=tracker, schedule_lag=hists["schedule_lag"],
                           loop_lag=hists["loop_lag"], series=series, send_s=float(seconds),
                           wall_s=seconds + 0.5)


def _read(path: Path) -> dict[str, list[HdrHistogram]]:
    """Every interval of the log through the hdrhistogram package's own reader, by tag."""
    reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000, 2))
    out: dict[str, list[HdrHistogram]] = {}
    try:
        while (h := reader.get_next_interval_histogram()) is not None:
            out.setdefault(h.get_tag(), []).append(h)
    finally:
        reader.close()
    return out


def _hdr_bucket_counts(ours: Histogram, hdr: HdrHistogram) -> tuple[dict[int, int], dict[int, int]]:
    """Our counts gathered by the HdrHistogram bucket each of our buckets' midpoint falls in, and the
    HdrHistogram's own counts by bucket (both keyed by the bucket's lowest value)."""
    index, counts = ours.nonzero()
    s = ours.layout.sub_buckets
    scale = ours.layout.lowest_us * np.exp2((index // s).astype(np.float64))
    mids = scale * (1.0 + (index % s) / s) + scale / (2 * s)
    mine: dict[int, int] = {}
    for mid, count in zip(mids.tolist(), counts.tolist(), strict=True):
        key = hdr.get_lowest_equivalent_value(int(mid))
        mine[key] = mine.get(key, 0) + count
    theirs = {hdr.get_lowest_equivalent_value(v.value_iterated_to): v.count_at_value_iterated_to
              for v in hdr.get_recorded_iterator()}
    return mine, theirs


def test_one_histogram_round_trips_through_hdrhistogram_within_its_precision() -> None:
    """Encoded and decoded by the hdrhistogram package: the same total, every bucket's count in the HDR bucket
    of its midpoint, and each percentile within one bucket (0.8 %) or 1 µs of ours."""
    ours = Histogram()
    ours.record_many(_values(1))
    back = HdrHistogram.decode(to_hdr(ours).encode())
    assert back.get_total_count() == ours.count
    mine, theirs = _hdr_bucket_counts(ours, back)
    assert mine == theirs
    for q in (1.0, 50.0, 90.0, 99.0, 99.9):
        want = ours.percentile(q)
        assert abs(back.get_value_at_percentile(q) - want) <= max(1.0, want / 128), q


def test_from_128_us_up_the_buckets_are_ours_edge_for_edge() -> None:
    """2 significant digits: one HdrHistogram bucket per bucket of ours from 128 µs up, none merged."""
    ours = Histogram()
    ours.record_many(_values(2)[_values(2) >= 128.0])
    mine, theirs = _hdr_bucket_counts(ours, to_hdr(ours))
    assert len(theirs) == len(ours.nonzero()[0]) and mine == theirs


def test_the_log_holds_every_histogram_whole_and_per_second(tmp_path: Path) -> None:
    """Each transport's five histograms as one interval each, its three per-second ones as an interval per
    second, counts equal to ours; what lies outside the range is said in a comment."""
    results = {"ws": _result("ws"), "http": _result("http", seconds=3)}
    path = tmp_path / "run.hlog"
    path.write_text("".join(line + "\n" for line in log_lines(results, STARTED, "run")), encoding="ascii")
    logged = _read(path)
    expected = {f"{t}.{n}" for t in results for n in WHOLE} | {f"{t}.{n}.per-second" for t in results
                                                               for n in PER_SECOND}
    assert set(logged) == expected
    for t, result in results.items():
        for name in WHOLE:
            (whole,) = logged[f"{t}.{name}"]
            assert whole.get_total_count() == result.histograms[name].count
            assert whole.get_start_time_stamp() == pytest.approx(STARTED.timestamp() * 1000)
        for name in PER_SECOND:
            seconds = logged[f"{t}.{name}.per-second"]
            assert [h.get_total_count() for h in seconds] == [
                result.series.histogram(name, s).count for s in range(len(result.series))]
    text = path.read_text(encoding="ascii")
    assert "#[ws.corrected: 1 value(s) below 1 us and 1 above 3600000000 us" in text


def test_per_second_histograms_keep_the_series_resolution() -> None:
    """A second of the series (16 buckets an octave) reads back with its counts in its own buckets."""
    h = Histogram(SECOND_LAYOUT)
    h.record_many(_values(3, 500))
    back = HdrHistogram.decode(to_hdr(h).encode())
    assert back.get_total_count() == h.count
    assert abs(back.get_value_at_percentile(50.0) - h.percentile(50.0)) <= max(1.0, h.percentile(50.0) / 128)


def _write_run(directory: Path) -> Path:
    result = _result("ws")
    summary = {"schema": SUMMARY_SCHEMA, "started_at": STARTED.isoformat(),
               "transports": {"ws": transport_summary(result)}}
    directory.mkdir()
    write_results(directory, summary, {"ws": result}, {})
    return directory


def test_the_command_writes_the_log_beside_the_run(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _write_run(tmp_path / "run")
    assert main(["export", str(run_dir), "--hdr"]) == 0
    assert str(run_dir / "histograms.hlog") in capsys.readouterr().out
    assert set(_read(run_dir / "histograms.hlog")) >= {"ws.corrected", "ws.raw", "ws.corrected.per-second"}
    assert main(["export", str(run_dir / "summary.json"), "--hdr", "--out", str(tmp_path / "x.hlog")]) == 0
    assert (tmp_path / "x.hlog").read_text() == (run_dir / "histograms.hlog").read_text()


@pytest.mark.parametrize(("args", "expected"), [
    (["{run}"], "choose a format: --hdr"),
    (["{tmp}/nowhere", "--hdr"], "no such run directory"),
    (["{run}", "--hdr", "--out", "{tmp}/no-such-dir/x.hlog"], "cannot be written"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], expected: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _write_run(tmp_path / "run")
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in args]
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nucleus-bench export: error: ") and expected in err
