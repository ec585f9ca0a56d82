"""`python -m benchmarks.plan_cost`: it prints a row per plan (nothing is judged here: a benchmark)."""

from __future__ import annotations

import pytest

from bench.native import twins
from benchmarks import plan_cost

pytest.importorskip("bench._native", reason="bench._native is not built (no C compiler at install)")


def test_it_prints_each_plan_with_both_twins_and_restores_the_c_one(
        capsys: pytest.CaptureFixture[str]) -> None:
    before = twins.Ticks
    assert plan_cost.main(["--quick", "--rounds", "1"]) == 0
    assert twins.Ticks is before
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r[:34].strip() for r in rows] == [c.label for c in plan_cost.CASES]
    for row in rows:
        sends, c, py, ratio = row[34:].split()
        assert int(sends.replace(",", "")) > 0 and float(c) > 0 and float(py) > 0 and float(ratio) > 0


def test_a_bad_round_count_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        plan_cost.main(["--rounds", "0"])
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("--rounds: at least 1, not 0")


def test_without_the_c_timeline_it_says_so(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(twins, "Ticks", None)
    assert plan_cost.main(["--quick"]) == 1
    assert "bench._native is not built" in capsys.readouterr().err
