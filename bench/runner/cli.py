"""``nucleus-bench run SCENARIO``: drive a device fleet at a target and measure ack latency.

Parses and checks the flags, builds a ``RunRequest`` and hands it to ``bench.runner.app.execute``.
Only stdlib and bench.protocol at module level: ``bench/cli.py`` imports this module to build --help.
"""

from __future__ import annotations

import argparse
import re
import sys
from urllib.parse import urlsplit

from bench.protocol.errors import UsageError
from bench.results import objective_flags

#: contract.md, "Endpoints": 1-64 characters of [A-Za-z0-9_-].
_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TRANSPORT_CHOICES = {"ws": ("ws",), "http": ("http",), "both": ("ws", "http")}

#: The end of ``run --help`` (docs/ci.md has every command's).
EXIT_STATUS = ("exit status: 0 finished, every identity holding (and the objective met, if one was given); 1 "
               "the accounting identity does not hold; 2 bad input; 3 the objective was missed; 4 a process "
               "of --processes died; 130 / 143 Ctrl-C / SIGTERM. Whatever was measured is written.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML): scenarios/smoke.toml")
    parser.add_argument("--transport", choices=tuple(TRANSPORT_CHOICES), default="ws",
                        help="ws, http, or both (ws then http on the same seeded events); default ws")
    parser.add_argument("--target", metavar="URL",
                        help="the server's base URL, http(s)://host:port (WebSocket: ws(s)://host:port/app/"
                             "{appId}/track). Default: start the embedded reference target")
    parser.add_argument("--app-id", metavar="ID",
                        help="appId to send to (with --transport both: WS_ID,HTTP_ID). Default: a fresh "
                             "24-hex-character id per transport")
    parser.add_argument("--duration", metavar="D", help="how long to send: 90s, 2m, or seconds")
    parser.add_argument("--rate", type=float, metavar="R", help="total open-loop events/s of the fleet")
    parser.add_argument("--devices", type=int, metavar="N", help="fleet size")
    parser.add_argument("--time-scale", type=float, metavar="X",
                        help="simulated seconds per real second: the scenario's clock runs X times faster "
                             "(its time_scale; durations, ticks, outages and dates stay simulated)")
    parser.add_argument("--connect-rate", type=float, metavar="R",
                        help="devices that come online per second: the ramp lasts at least devices / R "
                             "(default: the scenario's [fleet] connect_rate, else 1500)")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="shard the fleet over N processes (default 1)")
    parser.add_argument("--out", metavar="DIR", default="results",
                        help="results go to DIR/<UTC timestamp>-<scenario>/ (default results)")
    parser.add_argument("--seed", type=int, metavar="S", help="override the scenario's seed")
    parser.add_argument("--insecure", action="store_true", help="skip TLS certificate checks (wss/https)")
    parser.add_argument("--source-addrs", metavar="ADDRS",
                        help="local addresses to spread connections over: 127.0.0.1-127.0.0.8 or a list")
    parser.add_argument("--no-progress", action="store_true", help="no live progress on stderr")
    parser.add_argument("--verify-url", metavar="URL",
                        help="a URL answering the stored count as JSON (n, {\"stored\": n}, {\"count\": n} "
                             "or the target's stats); {appId} in it is replaced. Enables reconciliation")
    parser.add_argument("--reconcile-timeout", type=float, default=10.0, metavar="S",
                        help="how long reconciliation waits for each answer of the target or --verify-url "
                             "before it is reported not done (default 10)")
    parser.add_argument("--stats-token", metavar="T",
                        help="bearer token for a remote reference target's stats")
    parser.add_argument("--target-arg", action="append", default=[], metavar="ARG",
                        help="extra flag for the embedded target, repeatable: --target-arg=--ack-delay-ms=5")
    parser.add_argument("--target-store", metavar="STORE",
                        help="embedded target store: memory or a file path (default: SQLite in a temp dir)")
    parser.add_argument("--http-concurrency", type=int, default=128, metavar="N",
                        help="HTTP requests in flight per process (default 128)")
    parser.add_argument("--ws-io", choices=("auto", "polled", "stream"), default="auto",
                        help="how WebSocket replies are read: polled (every 1 ms tick, each reply timed by "
                             "the kernel's receive timestamp), stream (as they arrive), auto (polled for "
                             "ws://, stream for wss://; default)")
    objective_flags.add_arguments(parser, judged="each transport's run",
                                  source="the scenario's [objective], else none", missed="a miss exits 3",
                                  warmup="the fleet's ramp + 2s, at most half the run")
    parser.add_argument("--shard", metavar="I/N",
                        help="drive shard I (0-based) of N of the fleet, the devices d with d %% N == I, for "
                             "`nucleus-bench merge`; needs --target and --app-id shared by every shard")
    parser.add_argument("--metrics-port", type=int, metavar="P",
                        help="serve live counters and latency quantiles for Prometheus at "
                             "http://HOST:P/metrics during the run (0: a free port); default off")
    parser.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                        help="address the metrics endpoint listens on (default 127.0.0.1)")
    parser.add_argument("--metrics-hold", type=float, default=0.0, metavar="S",
                        help="after the run, keep serving until the final figures are scraped once, at "
                             "most S seconds (default 0)")


def check_target(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--target {url!r}: expected the server's base URL, http(s)://host:port")
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise UsageError(f"--target {url!r}: {exc}") from None
    return url.rstrip("/")


def _check_app_ids(text: str | None, transports: tuple[str, ...]) -> tuple[str, ...] | None:
    if text is None:
        return None
    ids = tuple(p.strip() for p in text.split(","))
    for app_id in ids:
        if not _APP_ID.fullmatch(app_id):
            raise UsageError(f"--app-id {app_id!r}: 1-64 characters of A-Z a-z 0-9 _ - (contract.md)")
    if len(ids) != len(transports):
        raise UsageError(f"--app-id: give {len(transports)} id(s) for {'/'.join(transports)}; the same "
                         "seeded events sent twice into one app would be stored once")
    return ids


def _positive(name: str, value: float | int | None) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{name} must be positive, not {value}")


def _check_shard(args: argparse.Namespace) -> tuple[int, int] | None:
    """``--shard I/N`` in form (what a shard's run needs beside it is checked by ``app.check_shard``)."""
    if args.shard is None:
        return None
    from bench.results.shards import parse_shard

    return parse_shard(args.shard)


def _check_metrics(args: argparse.Namespace) -> None:
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise UsageError(f"--metrics-port {args.metrics_port}: a TCP port is 0-65535 (0: a free one)")
    if not args.metrics_hold >= 0:
        raise UsageError(f"--metrics-hold must be 0 or more seconds, not {args.metrics_hold}")


def run(args: argparse.Namespace) -> int:
    from bench.runner.app import RunRequest, execute

    transports = TRANSPORT_CHOICES[args.transport]
    _positive("--rate", args.rate)
    _positive("--devices", args.devices)
    _positive("--connect-rate", args.connect_rate)
    _positive("--time-scale", args.time_scale)
    _positive("--processes", args.processes)
    _positive("--http-concurrency", args.http_concurrency)
    _positive("--reconcile-timeout", args.reconcile_timeout)
    shard = _check_shard(args)
    _check_metrics(args)
    flags = objective_flags.read(args)
    request = RunRequest(
        scenario_path=args.scenario, transports=transports,
        target_url=check_target(args.target) if args.target else None,
        app_ids=_check_app_ids(args.app_id, transports), duration=args.duration, rate=args.rate,
        devices=args.devices, connect_rate=args.connect_rate, time_scale=args.time_scale,
        processes=args.processes, out_dir=args.out,
        seed=args.seed,
        insecure=args.insecure, source_addrs=args.source_addrs, progress=not args.no_progress,
        verify_url=args.verify_url, reconcile_timeout_s=args.reconcile_timeout,
        stats_token=args.stats_token, target_args=tuple(args.target_arg),
        target_store=args.target_store, http_concurrency=args.http_concurrency, ws_io=args.ws_io,
        argv=tuple(sys.argv), shard=shard, metrics_port=args.metrics_port, metrics_host=args.metrics_host,
        metrics_hold_s=args.metrics_hold, slo_p99_s=flags.p99_s, max_loss=flags.max_loss,
        warmup_s=flags.warmup_s,
    )
    from bench.runner.procs import ShardLostError
    from bench.runner.stops import STOPS

    try:
        return execute(request)
    except KeyboardInterrupt:  # before anything was measured (the run itself keeps what it measured)
        return STOPS.exit_status()
    except ShardLostError as exc:
        print(f"nucleus-bench run: error: {exc}", file=sys.stderr)
        return 4
