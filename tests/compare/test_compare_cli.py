"""``nucleus-bench compare`` as a command: exit 0 or 1 by the verdicts, 2 and one line on unusable input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compare_helpers import synthetic_run, write_run

from bench.cli import main


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    """A baseline, another run of the same law, and one 30 % slower, written as run directories."""
    return {"base": write_run(tmp_path / "base", synthetic_run(1, seconds=10)),
            "same": write_run(tmp_path / "same", synthetic_run(2, seconds=10)),
            "slow": write_run(tmp_path / "slow", synthetic_run(3, seconds=10, scale=1.3))}


def test_exit_0_without_regression_and_1_with_one(runs: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(runs["base"]), str(runs["same"]), "--resamples", "300"]) == 0
    assert "no regression" in capsys.readouterr().out
    assert main(["compare", str(runs["base"]), str(runs["slow"]), "--resamples", "300"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION: ws p50" in out and "regressed" in out


def test_a_large_enough_allowance_lets_the_slower_run_pass(runs: dict[str, Path]) -> None:
    """--max-regression 50%: a 30 % slower run is within it."""
    assert main(["compare", str(runs["base"]), str(runs["slow"]), "--resamples", "300",
                 "--max-regression", "50%"]) == 0


def test_markdown_goes_to_the_file_it_names(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    code = main(["compare", str(runs["base"]), str(runs["slow"] / "summary.json"), "--resamples", "300",
                 "--markdown", str(out)])
    text = out.read_text(encoding="utf-8")
    assert code == 1 and text.startswith("# nucleus-bench compare") and "**REGRESSION: ws p50" in text


def test_a_directory_of_runs_is_one_side(runs: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    side = tmp_path / "repeated"
    for seed in (4, 5):
        write_run(side / f"run-{seed}", synthetic_run(seed, seconds=10))
    assert main(["compare", str(side), str(runs["same"]), "--resamples", "300"]) == 0
    assert "(2 run(s))" in capsys.readouterr().out


def test_each_sides_objective_verdicts_are_noted(runs: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Runs judged against an objective (summary.json's ``objective``): the comparison notes how many of
    each side's runs met it, per transport; runs never judged get no such note."""
    for name, met in (("base", True), ("slow", False)):
        path = runs[name] / "summary.json"
        doc = json.loads(path.read_text())
        verdict = {"met": met, "reason": "...", "limit": None if met else "target"}
        doc["objective"] = {"p99_us": 250_000.0, "max_loss": 0.0, "warmup_s": 1.0, "met": met,
                            "transports": {"ws": verdict}}
        path.write_text(json.dumps(doc))
    main(["compare", str(runs["base"]), str(runs["slow"]), "--resamples", "300"])
    out = " ".join(capsys.readouterr().out.split())
    assert "ws objective: met in 1 of 1 run(s) (BASELINE), met in 0 of 1 run(s) (NEW)" in out, out
    main(["compare", str(runs["same"]), str(runs["same"]), "--resamples", "300"])
    assert "ws objective:" not in capsys.readouterr().out


def _broken_summary(tmp_path: Path, runs: dict[str, Path]) -> str:
    target = tmp_path / "broken"
    write_run(target, synthetic_run(9, seconds=10))
    (target / "summary.json").write_text("{not json", encoding="utf-8")
    return str(target)


def _other_schema(tmp_path: Path, runs: dict[str, Path]) -> str:
    target = write_run(tmp_path / "other", synthetic_run(9, seconds=10))
    summary = json.loads((target / "summary.json").read_text())
    (target / "summary.json").write_text(json.dumps(summary | {"schema": "other/1"}), encoding="utf-8")
    return str(target)


def _missing_result(tmp_path: Path, runs: dict[str, Path]) -> str:
    target = write_run(tmp_path / "missing", synthetic_run(9, seconds=10))
    (target / "result-ws.json").unlink()
    return str(target)


def _bad_histogram(tmp_path: Path, runs: dict[str, Path]) -> str:
    target = write_run(tmp_path / "badhist", synthetic_run(9, seconds=10))
    result = json.loads((target / "result-ws.json").read_text())
    result["tracker"]["corrected"]["counts"][0] += 1
    (target / "result-ws.json").write_text(json.dumps(result), encoding="utf-8")
    return str(target)


def _no_generator_block(tmp_path: Path, runs: dict[str, Path]) -> str:
    target = write_run(tmp_path / "nogen", synthetic_run(9, seconds=10))
    summary = json.loads((target / "summary.json").read_text())
    del summary["transports"]["ws"]["generator"]
    (target / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return str(target)


def _http_only(tmp_path: Path, runs: dict[str, Path]) -> str:
    return str(write_run(tmp_path / "http", synthetic_run(9, seconds=10, transport="http")))


@pytest.mark.parametrize(("make", "expected"), [
    (lambda tmp, runs: str(tmp / "nowhere"), "no such run directory"),
    (lambda tmp, runs: str(tmp), "neither a run directory nor a directory of runs"),
    (_broken_summary, "summary.json: not JSON"),
    (_other_schema, "schema 'other/1'"),
    (_missing_result, "result-ws.json: no such file"),
    (_bad_histogram, "result-ws.json: tracker result: corrected"),
    (_no_generator_block, "transports.ws.generator.saturated is missing"),
    (_http_only, "no transport in common"),
])
def test_unusable_input_is_one_line_and_exit_2(make: object, expected: str, runs: dict[str, Path],
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing or malformed run: exit 2 and one line that names the file and what is wrong with it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    new = make(empty if expected.startswith("neither") else tmp_path, runs)  # type: ignore[operator]
    assert main(["compare", str(runs["base"]), new]) == 2
    line = _error_line(capsys)
    assert line.startswith("nucleus-bench compare: error: ") and expected in line, line


@pytest.mark.parametrize(("flags", "expected"), [
    (["--max-regression", "five"], "expected a percentage"),
    (["--max-regression=-5%"], "expected a percentage >= 0"),
    (["--max-regression", "p42=10%"], "'p42' names no metric"),
    (["--confidence", "120%"], "between 50% and 100%"),
    (["--resamples", "10"], "at least 100"),
])
def test_bad_flags_are_one_line_and_exit_2(flags: list[str], expected: str, runs: dict[str, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(runs["base"]), str(runs["same"]), *flags]) == 2
    assert expected in _error_line(capsys)


def test_an_unwritable_markdown_file_is_one_line_and_exit_2(runs: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no-such-dir" / "report.md"
    assert main(["compare", str(runs["base"]), str(runs["same"]), "--markdown", str(target)]) == 2
    assert "--markdown" in _error_line(capsys)
