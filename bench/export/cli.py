"""``nucleus-bench export RESULT --hdr``: a run's latency histograms in the HdrHistogram log format.

Only stdlib and bench.protocol at module level: ``bench/cli.py`` imports this module to build --help.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from bench.protocol.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", metavar="RESULT", help="a run directory (or its summary.json)")
    parser.add_argument("--hdr", action="store_true",
                        help="write the HdrHistogram interval log (.hlog) of every histogram, whole-run and "
                             "per second, tagged <transport>.<histogram>")
    parser.add_argument("--out", metavar="FILE", help="where to write it (default RESULT/histograms.hlog)")


def run(args: argparse.Namespace) -> int:
    from bench.export.hdr import log_lines
    from bench.results.read import read_run

    if not args.hdr:
        raise UsageError("choose a format: --hdr (the HdrHistogram log; the only one so far)")
    run_ = read_run(args.result)
    started_at = run_.summary.get("started_at")
    try:
        started = datetime.fromisoformat(str(started_at))
    except ValueError:
        raise UsageError(f"{run_.path / 'summary.json'}: 'started_at' {started_at!r} is not an ISO time"
                         ) from None
    out = Path(args.out) if args.out else run_.path / "histograms.hlog"
    text = "".join(line + "\n" for line in log_lines(run_.results, started, run_.path.name))
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(text, encoding="ascii")
        tmp.replace(out)
    except OSError as exc:
        raise UsageError(f"{out}: cannot be written ({exc.strerror or exc})") from None
    print(f"nucleus-bench export: {out} ({text.count(chr(10)) - 5} interval histograms)")
    return 0
