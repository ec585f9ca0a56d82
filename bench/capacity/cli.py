"""``nucleus-bench capacity SCENARIO --slo-p99 250ms``: the most devices a target serves within an objective.

Parses and checks the flags, builds a ``CapacityRequest`` and hands it to ``bench.capacity.app.execute``.
Only stdlib and bench.protocol at module level: ``bench/cli.py`` imports this module to build --help.
"""

from __future__ import annotations

import argparse
import math
import sys

from bench.protocol.errors import UsageError
from bench.protocol.message import Transport
from bench.results import objective_flags

TRANSPORT_CHOICES: dict[str, tuple[Transport, ...]] = {"ws": ("ws",), "http": ("http",),
                                                       "both": ("ws", "http")}

#: The end of ``capacity --help`` (docs/ci.md has every command's).
EXIT_STATUS = ("exit status: 0 the search ended (its answer, met or not, is in capacity.json); 1 a step's "
               "accounting identity does not hold; 2 bad input; 130 Ctrl-C (the steps done are written).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO",
                        help="scenario file (TOML): scenarios/desktop-fleet.toml")
    objective_flags.add_arguments(parser, judged="each step",
                                  source="the scenario's [objective]",
                                  missed="the search finds the most load that meets it (this flag or the "
                                         "scenario's [objective] is needed)",
                                  warmup="per step, the time its fleet takes to come online + 2s, at most "
                                         "half the step")
    parser.add_argument("--transport", choices=tuple(TRANSPORT_CHOICES), default="ws",
                        help="ws, http, or both (a search each, ws first); default ws")
    parser.add_argument("--vary", choices=("devices", "rate"), default="devices",
                        help="what the steps change: devices (default: each device as the scenario's, so "
                             "its connection counts too) or rate (the fleet's events/s over the scenario's "
                             "devices)")
    parser.add_argument("--start", type=float, metavar="N",
                        help="load of the first step (devices or events/s). Default: the scenario's own")
    parser.add_argument("--min", type=float, dest="low", metavar="N",
                        help="lowest load tried when the first step already fails (default 1)")
    parser.add_argument("--max", type=float, dest="high", metavar="N",
                        help="highest load tried. Default: none for rate and HTTP; for devices over "
                             "WebSocket, the open-files limit (one socket per device)")
    parser.add_argument("--step-duration", default="20s", metavar="D",
                        help="how long each step sends: 20s (default), 2m")
    parser.add_argument("--resolution", type=float, default=0.05, metavar="R",
                        help="stop when the knee is bracketed within R of its load (default 0.05: 5%%)")
    parser.add_argument("--factor", type=float, default=2.0, metavar="F",
                        help="each climbing step multiplies the load by F (default 2)")
    parser.add_argument("--max-steps", type=int, default=12, metavar="N",
                        help="the most steps per transport (default 12)")
    parser.add_argument("--target", metavar="URL",
                        help="the server's base URL, http(s)://host:port. Default: start the embedded "
                             "reference target once; every step runs against it")
    parser.add_argument("--target-arg", action="append", default=[], metavar="ARG",
                        help="extra flag for the embedded target, repeatable: "
                             "--target-arg=--ack-delay-ms=exp:20")
    parser.add_argument("--target-store", metavar="STORE",
                        help="embedded target store: memory or a file path (default: SQLite in a temp dir)")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="shard each step's fleet over N processes (default 1)")
    parser.add_argument("--seed", type=int, metavar="S", help="override the scenario's seed")
    parser.add_argument("--out", metavar="DIR", default="results",
                        help="results go to DIR/<UTC timestamp>-capacity-<scenario>/ (default results)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress line on stderr")
    parser.add_argument("--insecure", action="store_true", help="skip TLS certificate checks (wss/https)")
    parser.add_argument("--http-concurrency", type=int, default=128, metavar="N",
                        help="HTTP requests in flight per process (default 128)")


def _positive(name: str, value: float | int | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{name} must be positive, not {value}")


def _check(args: argparse.Namespace) -> None:
    for name, value in (("--start", args.start), ("--min", args.low), ("--max", args.high),
                        ("--resolution", args.resolution), ("--max-steps", args.max_steps),
                        ("--processes", args.processes), ("--http-concurrency", args.http_concurrency)):
        _positive(name, value)
    if not args.factor > 1:
        raise UsageError(f"--factor must be above 1, not {args.factor}")
    if args.low is not None and args.high is not None and args.high < args.low:
        raise UsageError(f"--max {args.high:g} is below --min {args.low:g}")


def run(args: argparse.Namespace) -> int:
    from bench.capacity.app import CapacityRequest, execute
    from bench.runner.cli import check_target
    from bench.scenario import parse_duration
    from bench.transports.common import TransportOptions

    _check(args)
    flags = objective_flags.read(args)
    step = parse_duration(args.step_duration)
    _positive("--step-duration", step)
    request = CapacityRequest(
        scenario_path=args.scenario, slo_p99_s=flags.p99_s, max_loss=flags.max_loss,
        transports=TRANSPORT_CHOICES[args.transport], vary=args.vary,
        start=args.start, low=args.low, high=args.high, factor=args.factor, resolution=args.resolution,
        max_steps=args.max_steps, step_duration_s=step,
        warmup_s=flags.warmup_s,
        target_url=check_target(args.target) if args.target else None, target_args=tuple(args.target_arg),
        target_store=args.target_store, processes=args.processes, seed=args.seed, out_dir=args.out,
        progress=not args.no_progress,
        options=TransportOptions(insecure=args.insecure, http_concurrency=args.http_concurrency),
        argv=tuple(sys.argv),
    )
    return execute(request)
