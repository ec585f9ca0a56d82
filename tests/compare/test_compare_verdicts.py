"""Verdicts on runs of known per-second latencies: same law, no change; shifted 30 %, regressed or improved;
losses from none, regressed without statistics; too few seconds, inconclusive; the seed fixes the result."""

from __future__ import annotations

from dataclasses import replace

import pytest
from compare_helpers import SCENARIO, synthetic_run

from bench.compare.report import Report, compare_runs, markdown
from bench.compare.verdict import Allowance, Options, Row, verdict_of

#: Fewer replicates than the command's default: these tests judge effects far from the allowance.
OPTIONS = Options(resamples=500)
LATENCY = ("p50", "p99", "raw-p50", "raw-p99")


def rows(report: Report) -> dict[str, Row]:
    return {row.key: row for row in report.rows}


@pytest.mark.parametrize(("lo", "hi", "better", "verdict"), [
    (0.06, 0.2, "lower", "regressed"), (-0.2, -0.06, "lower", "improved"),
    (-0.04, 0.04, "lower", "no change"), (0.02, 0.2, "lower", "inconclusive"),
    (-0.2, -0.06, "higher", "regressed"), (0.06, 0.2, "higher", "improved"),
    (-0.06, 0.04, "higher", "inconclusive"),
])
def test_verdict_of_an_interval(lo: float, hi: float, better: str, verdict: str) -> None:
    """Regressed only when the whole interval is worse than the 5 % allowance, in the metric's direction."""
    assert verdict_of((lo, hi), better, 0.05) == verdict  # type: ignore[arg-type]


def test_two_runs_of_one_law_show_no_change() -> None:
    """Two runs whose seconds are drawn from the same latency law: no change, and no regression."""
    report = compare_runs([synthetic_run(1)], [synthetic_run(2)], OPTIONS)
    got = rows(report)
    for key in (*LATENCY, "throughput", "lost"):
        assert got[key].verdict == "no change", got[key]
    assert not report.regressed and report.conclusion().startswith("no regression")


def test_latency_shifted_by_30_percent_is_a_regression_and_back_an_improvement() -> None:
    """Every latency 30 % higher in NEW: each percentile regressed, its interval about +30 %; swapped,
    improved."""
    base, slow = synthetic_run(1), synthetic_run(2, scale=1.3)
    worse = rows(compare_runs([base], [slow], OPTIONS))
    for key in (*LATENCY, "p99.9", "raw-p99.9"):
        row = worse[key]
        assert row.verdict == "regressed" and row.interval is not None, row
        assert row.interval[0] < 0.35 and row.interval[1] > 0.25, row  # about the law's +30 %
    assert worse["throughput"].verdict == "no change"
    better = rows(compare_runs([slow], [base], OPTIONS))
    assert all(better[key].verdict == "improved" for key in LATENCY)


def test_the_conclusion_and_markdown_name_what_regressed() -> None:
    report = compare_runs([synthetic_run(1)], [synthetic_run(2, scale=1.3)], OPTIONS)
    assert report.conclusion().startswith("REGRESSION: ws p50 +")
    text = markdown(report)
    assert "| ws | ack p50 (corrected) [p50] | lower |" in text and "**regressed**" in text
    assert text.rstrip().endswith(f"**{report.conclusion()}**")


def test_an_allowance_per_metric_overrides_the_default() -> None:
    """--max-regression 'p*=50%': a 30 % slower corrected latency is within it; raw-* keeps 5 %, regresses."""
    options = replace(OPTIONS, allowance=Allowance(0.05, (("p*", 0.5),)))
    got = rows(compare_runs([synthetic_run(1)], [synthetic_run(2, scale=1.3)], options))
    assert got["p50"].verdict == "no change" and got["p50"].allowance == 0.5
    assert got["raw-p50"].verdict == "regressed" and got["raw-p50"].allowance == 0.05


def test_the_same_seed_gives_the_same_intervals() -> None:
    """Deterministic: the same runs and seed, the same rows to the last digit; another seed, same verdicts."""
    base, new = synthetic_run(1), synthetic_run(2, scale=1.04)
    first = compare_runs([base], [new], OPTIONS).rows
    assert compare_runs([base], [new], OPTIONS).rows == first
    other = compare_runs([base], [new], replace(OPTIONS, seed=7)).rows
    assert [r.interval for r in other] != [r.interval for r in first]
    assert [r.verdict for r in other] == [r.verdict for r in first]


def test_losses_where_there_were_none_are_a_regression_without_statistics() -> None:
    """BASELINE lost nothing, NEW lost one event a second: lost regressed; the other way round, improved."""
    clean, lossy = synthetic_run(1), synthetic_run(2, lost_per_second=1)
    got = rows(compare_runs([clean], [lossy], OPTIONS))["lost"]
    assert got.verdict == "regressed" and got.interval is None and "none in BASELINE" in got.note
    assert rows(compare_runs([lossy], [clean], OPTIONS))["lost"].verdict == "improved"


def test_losses_on_both_sides_are_compared_as_shares() -> None:
    """Some loss on both sides: ten times the share lost is a regression, by the resampled share."""
    got = rows(compare_runs([synthetic_run(1, lost_per_second=1)], [synthetic_run(2, lost_per_second=10)],
                            OPTIONS))["lost"]
    assert got.verdict == "regressed" and got.interval is not None and got.interval[0] > 5.0


def test_too_few_seconds_are_inconclusive() -> None:
    """Three seconds a side: no interval, no verdict on latency, whatever the figures say."""
    got = rows(compare_runs([synthetic_run(1, seconds=3)], [synthetic_run(2, seconds=3, scale=2.0)], OPTIONS))
    for key in LATENCY:
        assert got[key].verdict == "inconclusive" and "fewer than 5" in got[key].note
        change = got[key].change
        assert change is not None and change > 0.5  # the figures are still shown


def test_repeated_runs_on_each_side_include_the_spread_between_runs() -> None:
    """Three runs a side, one law: no regression, and the note about one run a side is gone."""
    base = [synthetic_run(seed, name="base") for seed in (1, 2, 3)]
    new = [synthetic_run(seed, name="new") for seed in (4, 5, 6)]
    report = compare_runs(base, new, OPTIONS)
    assert not report.regressed and report.base[1] == 3
    assert not any("one run" in note for note in report.notes)
    slow = compare_runs(base, [synthetic_run(s, scale=1.3) for s in (4, 5, 6)], OPTIONS)
    assert rows(slow)["p50"].verdict == "regressed"


def test_different_scenarios_are_noted_and_not_paired() -> None:
    other = synthetic_run(2, scenario={**SCENARIO, "rate": 2000.0})
    report = compare_runs([synthetic_run(1)], [other], OPTIONS)
    assert any(note.startswith("scenario rate differs") for note in report.notes)
    assert not any("in pairs" in note for note in report.notes)
