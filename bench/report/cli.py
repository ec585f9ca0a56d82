"""``nucleus-bench report RESULT...``: the HTML report and Markdown summary of one run or several.

Only stdlib and bench.protocol at module level: ``bench/cli.py`` imports this module to build --help, and
matplotlib is loaded only when a report is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT",
                        help="a run directory (results/<UTC timestamp>-<scenario>/); several are reported "
                             "side by side")
    parser.add_argument("--out", metavar="FILE",
                        help="the HTML report (default: RESULT/report.html for one run, report.html here for "
                             "several); the Markdown summary goes beside it as .md")
    parser.add_argument("--latest", action="store_true",
                        help="each RESULT is a folder of runs (like results/): report its latest run, by the "
                             "UTC timestamp its directory's name starts with")


def run(args: argparse.Namespace) -> int:
    from bench.report.load import latest_run
    from bench.report.write import write_report

    dirs = [latest_run(r) if args.latest else Path(r) for r in args.results]
    html_path, md_path = write_report(dirs, args.out)
    print(f"report: {html_path}")
    print(f"summary: {md_path}")
    return 0
