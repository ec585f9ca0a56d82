"""The ``nucleus-bench`` command: parse, build a config, call the library.

Each subcommand lives beside the code it drives and exposes two functions:
``add_arguments(parser)`` and ``run(args) -> int``, and may say its exit statuses in ``EXIT_STATUS`` (the end
of its --help). They are imported lazily, so ``nucleus-bench target`` never loads the load generator and vice
versa.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bench.protocol.errors import UsageError

DESCRIPTION = "Load generator and benchmark harness for Nucleus-compatible tracking APIs."

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "target": ("bench.target.cli", "serve the reference Nucleus-compatible target"),
    "run": ("bench.runner.cli", "drive a device fleet at a target and measure ack latency"),
    "compare": ("bench.compare.cli", "compare two runs: per metric, a regression verdict with confidence"),
    "export": ("bench.export.cli", "write a run's histograms for other tools (--hdr: HdrHistogram log)"),
    "merge": ("bench.results.merge_cli", "merge the shards of a distributed run (run --shard I/N) exactly"),
    "report": ("bench.report.cli", "write the HTML report and Markdown summary of one run or several"),
    "capacity": ("bench.capacity.cli", "step the load up to the knee: the most devices served within an "
                                       "objective"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line and exits 2, as every error of ours does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand's flags (what --help shows, and what the deploy manifests'
    command lines are checked against)."""
    parser = _Parser(prog="nucleus-bench", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text,
                                            epilog=getattr(module, "EXIT_STATUS", None)))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return int(module.run(args))
    except UsageError as exc:
        print(f"nucleus-bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
