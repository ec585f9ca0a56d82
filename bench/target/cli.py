"""``nucleus-bench target``: serve the reference Nucleus-compatible target.

Prints its base URL (``http://HOST:PORT``) as the first line of standard output, serves until SIGINT or
SIGTERM, then sends the acks it owes, flushes the store and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.protocol.errors import UsageError
from bench.protocol.message import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS

if TYPE_CHECKING:
    from bench.target.config import TargetConfig

# The defaults are repeated here so that --help never imports the target itself (bench/cli.py builds every
# subcommand's parser); tests/target/test_cli.py checks they agree with the library's.
DEFAULT_STORE = "nucleus-target.sqlite3"
DEFAULT_PORT = 8000
DEFAULT_HTTP_RATE = 20_000.0
DEFAULT_HTTP_BURST = 20_000
DEFAULT_IDLE_TIMEOUT_S = 300.0
DEFAULT_DEDUP_WINDOW_S = 600.0
DEFAULT_SESSION_TIMEOUT_S = 1800.0
DEFAULT_MAX_CONNECTIONS = 0
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_MAX_UNSENT_ACKS = 256
DEFAULT_SLOW_PEER_TIMEOUT_S = 10.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0
DEFAULT_MAX_APPS = 10_000
DEFAULT_MAX_SESSIONS = 1_000_000
DEFAULT_DEDUP_MAX_KEYS = 2_000_000
DEFAULT_MAX_DEVICES = 2_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``nucleus-bench target``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="TCP port, 0 = any free one (default: %(default)s)")
    parser.add_argument("--store", default=DEFAULT_STORE, metavar="PATH|memory",
                        help="SQLite file to store events in, or 'memory' for ids only "
                             "(default: %(default)s in the working directory)")
    parser.add_argument("--sync", choices=("full", "normal", "off"), default="full",
                        help="SQLite synchronous mode: full = each group commit is on disk before its acks "
                             "(default: %(default)s)")
    limits = parser.add_argument_group("limits (contract.md, 'Limits')")
    limits.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_BYTES, metavar="N",
                        help="largest message or HTTP body: HTTP 413, WebSocket close 1009 "
                             "(default: %(default)s)")
    limits.add_argument("--max-events", type=int, default=DEFAULT_MAX_EVENTS, metavar="N",
                        help="most events in one message: HTTP 413, WebSocket close 1009 "
                             "(default: %(default)s)")
    limits.add_argument("--http-rate", type=float, default=DEFAULT_HTTP_RATE, metavar="R",
                        help="HTTP requests per second per client IP, 0 = no limit; over it: 429 with "
                             "Retry-After (default: %(default)g)")
    limits.add_argument("--http-burst", type=int, default=DEFAULT_HTTP_BURST, metavar="N",
                        help="requests an IP may make at once before --http-rate applies "
                             "(default: %(default)s)")
    limits.add_argument("--idle-timeout-s", type=float, default=DEFAULT_IDLE_TIMEOUT_S, metavar="S",
                        help="close a WebSocket that sent nothing (no event, no heartbeat) this long, "
                             "0 = never (default: %(default)g)")
    limits.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                        help="connections (HTTP and WebSocket) served at once; over it a new one is answered "
                             "503 with Retry-After and a one-line reason. 0 = as many as the open-file limit "
                             "leaves room for, which also caps any N (default: %(default)s)")
    limits.add_argument("--header-timeout-s", type=float, default=DEFAULT_HEADER_TIMEOUT_S, metavar="S",
                        help="close a connection whose request head (request line and headers) is not "
                             "whole S after it began (a connection's first head: after it opened); against "
                             "slowloris; 0 = no limit (default: %(default)g)")
    limits.add_argument("--body-timeout-s", type=float, default=DEFAULT_BODY_TIMEOUT_S, metavar="S",
                        help="answer 408 and close when an HTTP body is not whole S after its head; "
                             "0 = no limit (default: %(default)g)")
    limits.add_argument("--max-unsent-acks", type=int, default=DEFAULT_MAX_UNSENT_ACKS, metavar="N",
                        help="messages a WebSocket may have sent whose acks are not out yet; at N the target "
                             "stops reading from it until its acks leave (default: %(default)s)")
    limits.add_argument("--slow-peer-timeout-s", type=float, default=DEFAULT_SLOW_PEER_TIMEOUT_S, metavar="S",
                        help="close with 1008 a WebSocket whose peer reads none of the acks queued for it "
                             "for S; its unsent acks are not sent (default: %(default)g)")
    limits.add_argument("--dedup-window-s", type=float, default=DEFAULT_DEDUP_WINDOW_S, metavar="S",
                        help="a re-sent event is acked again and stored once if it comes back within at "
                             "least this long (default: %(default)g)")
    limits.add_argument("--session-timeout-s", type=float, default=DEFAULT_SESSION_TIMEOUT_S, metavar="S",
                        help="silence (in event time) that ends a session (default: %(default)g)")
    limits.add_argument("--dedup-max-keys", type=int, default=DEFAULT_DEDUP_MAX_KEYS, metavar="N",
                        help="most duplicate keys remembered (about 180 bytes each); past half of them the "
                             "window turns over early, GET /stats says how short it got "
                             "(default: %(default)s)")
    limits.add_argument("--max-apps", type=int, default=DEFAULT_MAX_APPS, metavar="N",
                        help="most appIds tracked; a request naming another one gets HTTP 503 or WebSocket "
                             "close 1013 (default: %(default)s)")
    limits.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS, metavar="N",
                        help="most sessions remembered; the least recently used are forgotten past it, "
                             "counted in GET /stats (default: %(default)s)")
    limits.add_argument("--max-devices", type=int, default=DEFAULT_MAX_DEVICES, metavar="N",
                        help="most distinct devices counted; past it the devices counters are lower bounds, "
                             "as GET /stats says (default: %(default)s)")
    parser.add_argument("--shutdown-timeout-s", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT_S, metavar="S",
                        help="on SIGINT/SIGTERM, how long open connections get to take their acks and close "
                             "before they are cut (default: %(default)g)")
    parser.add_argument("--stats-token", metavar="T",
                        help="let anyone with 'Authorization: Bearer T' read /stats and stored-ids "
                             "(default: loopback clients only)")
    faults = parser.add_argument_group("fault injection (all off by default; ratios are per message)")
    faults.add_argument("--ack-delay-ms", metavar="MS|uniform:A:B|exp:MEAN",
                        help="hold each ack until this long after its message arrived")
    faults.add_argument("--drop-ack-ratio", type=float, default=0.0, metavar="R",
                        help="store, but never acknowledge, this share of messages")
    faults.add_argument("--lie-ack-ratio", type=float, default=0.0, metavar="R",
                        help="acknowledge, but do not store, this share of messages")
    faults.add_argument("--close-ratio", type=float, default=0.0, metavar="R",
                        help="close the connection after this share of messages (after their ack)")
    faults.add_argument("--stall-ms", type=float, default=0.0, metavar="N",
                        help="stop all tracking traffic for N ms ...")
    faults.add_argument("--stall-every-ms", type=float, default=0.0, metavar="M", help="... every M ms")
    faults.add_argument("--fault-seed", type=int, default=0, metavar="S",
                        help="seed of the fault decisions (default: %(default)s)")
    parser.add_argument("--stop-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)


def config_from_args(args: argparse.Namespace) -> TargetConfig:
    """Build the ``TargetConfig`` (raises ``UsageError`` on a bad value)."""
    from bench.target.config import TargetConfig
    from bench.target.faults import FaultConfig, parse_delay
    from bench.target.limits import Limits

    return TargetConfig(
        host=args.host, port=args.port, store=args.store, sync=args.sync,
        limits=Limits(max_bytes=args.max_message_bytes, max_events=args.max_events, http_rate=args.http_rate,
                      http_burst=args.http_burst, idle_timeout_s=args.idle_timeout_s,
                      max_connections=args.max_connections, header_timeout_s=args.header_timeout_s,
                      body_timeout_s=args.body_timeout_s, max_unsent_acks=args.max_unsent_acks,
                      slow_peer_timeout_s=args.slow_peer_timeout_s),
        faults=FaultConfig(
            ack_delay=parse_delay(args.ack_delay_ms) if args.ack_delay_ms is not None else None,
            drop_ack_ratio=args.drop_ack_ratio, lie_ack_ratio=args.lie_ack_ratio,
            close_ratio=args.close_ratio, stall_ms=args.stall_ms, stall_every_ms=args.stall_every_ms,
            seed=args.fault_seed),
        stats_token=args.stats_token, dedup_window_s=args.dedup_window_s,
        session_timeout_s=args.session_timeout_s, max_apps=args.max_apps, max_sessions=args.max_sessions,
        dedup_max_keys=args.dedup_max_keys, max_devices=args.max_devices,
        stop_on_stdin_eof=args.stop_on_stdin_eof, shutdown_timeout_s=args.shutdown_timeout_s,
    )


def _announce(url: str) -> None:
    # The first line of standard output is the contract with EmbeddedTarget and scripts (api.md).
    sys.stdout.write(url + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a clean shutdown. Raises ``UsageError`` on bad flags."""
    import uvloop

    from bench.target.server import serve

    config = config_from_args(args)
    uvloop.run(serve(config, _announce))
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.target``: the same as ``nucleus-bench target``."""
    parser = _Parser(prog="nucleus-bench target", description="serve the reference Nucleus-compatible target")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UsageError as exc:
        print(f"nucleus-bench target: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
