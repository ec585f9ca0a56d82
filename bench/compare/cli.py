"""``nucleus-bench compare BASELINE NEW``: per metric, whether NEW regressed against BASELINE, confidently.

Exit status: 1 when a metric regressed beyond its allowance with confidence, 0 otherwise (no change, improved
or inconclusive), 2 on unusable input (one line naming what and where). Only stdlib and bench.protocol at
module level: ``bench/cli.py`` imports this module to build --help.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.protocol.errors import UsageError

DEFAULT_ALLOWANCE = "5%"

#: The end of ``compare --help`` (docs/ci.md has every command's).
EXIT_STATUS = ("exit status: 0 no regression (no change, improved or inconclusive); 1 a metric regressed "
               "beyond its allowance with confidence; 2 unusable input.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", metavar="BASELINE",
                        help="a run directory (or its summary.json), or a directory of repeated runs")
    parser.add_argument("new", metavar="NEW", help="the same, for the build or setting under test")
    parser.add_argument("--max-regression", action="append", default=[], metavar="[METRIC=]N%",
                        help="how much worse a metric may get before it counts as a regression: N%% for "
                             f"every metric (default {DEFAULT_ALLOWANCE.replace('%', '%%')}), METRIC=N%% for "
                             "some (repeatable; METRIC is a name or a pattern: p99, raw-*, throughput, lost)")
    parser.add_argument("--confidence", default="95%", metavar="C",
                        help="confidence of the intervals: 95%%, 0.99... (default 95%%)")
    parser.add_argument("--resamples", type=int, default=2000, metavar="N",
                        help="bootstrap replicates per metric (default 2000)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="the bootstrap's seed: the same runs and seed, the same verdicts (default 0)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown to FILE")


def parse_percent(text: str, flag: str) -> float:
    """``"5%"`` (or ``"5"``, also percent) -> 0.05.

    Raises:
        UsageError: not a number, or negative.
    """
    body = text.strip().removesuffix("%")
    try:
        value = float(body) / 100.0
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a percentage such as 5%") from None
    if not value >= 0.0 or value == float("inf"):
        raise UsageError(f"{flag} {text!r}: expected a percentage >= 0")
    return value


def parse_allowances(values: list[str]) -> tuple[float, tuple[tuple[str, float], ...]]:
    """The default allowance and the per-metric ones of the repeated ``--max-regression`` flags.

    Raises:
        UsageError: a malformed value, or a metric pattern that names no metric.
    """
    import fnmatch

    from bench.compare.verdict import metric_keys

    default = parse_percent(DEFAULT_ALLOWANCE, "--max-regression")
    overrides: list[tuple[str, float]] = []
    keys = metric_keys()
    for value in values:
        pattern, sep, amount = value.rpartition("=")
        if not sep:
            default = parse_percent(amount, "--max-regression")
            continue
        if not any(fnmatch.fnmatchcase(k, pattern) for k in keys):
            raise UsageError(f"--max-regression {value!r}: {pattern!r} names no metric (metrics: "
                             f"{', '.join(keys)})")
        overrides.append((pattern, parse_percent(amount, "--max-regression")))
    return default, tuple(overrides)


def _confidence(text: str) -> float:
    value = parse_percent(text, "--confidence") if text.strip().endswith("%") else _float(text)
    if not 0.5 <= value < 1.0:
        raise UsageError(f"--confidence {text!r}: expected between 50% and 100% (excluded)")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--confidence {text!r}: expected a number such as 0.95 or 95%") from None


def run(args: argparse.Namespace) -> int:
    from bench.compare.report import compare_runs, header_lines, markdown, terminal_table
    from bench.compare.verdict import Allowance, Options
    from bench.results.read import read_runs

    default, overrides = parse_allowances(args.max_regression)
    if args.resamples < 100:
        raise UsageError(f"--resamples {args.resamples}: at least 100 (an interval's ends need the tails)")
    options = Options(allowance=Allowance(default, overrides), confidence=_confidence(args.confidence),
                      resamples=args.resamples, seed=args.seed)
    base, new = read_runs(args.baseline), read_runs(args.new)
    report = compare_runs(base, new, options, where=(args.baseline, args.new))
    if args.markdown:
        _write(Path(args.markdown), markdown(report))
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    for line in header_lines(report):
        console.print(line, markup=False, soft_wrap=True)
    console.print(terminal_table(report))
    for note in report.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    console.print(report.conclusion(), markup=False, soft_wrap=True)  # the last line, whole: scripts read it
    return 1 if report.regressed else 0


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise UsageError(f"--markdown {path}: cannot be written ({exc.strerror or exc})") from None
