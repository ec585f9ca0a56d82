"""What the WebSocket and HTTP transports share: options, the ack sink, counters, source addresses, TLS.

Theory of operation: a transport executes sends it is handed (it never decides *when* to send; the
runner's scheduler does) and reports every write and every reply to an ``AckSink`` (the metrics
``AckTracker``). Each transport has exactly one write choke point that stamps the actual send time,
counts the bytes and tells the sink. A reply that breaks the contract is a measurement of the server
(``TransportStats.malformed_replies``), never an exception (contract.md, "Acknowledgements").
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bench.protocol.errors import MalformedAck, UsageError
from bench.protocol.events import EventId
from bench.protocol.message import parse_ack_ids

#: Returns monotonic nanoseconds since the run's start (t=0): the time base of every Send.at_ns.
Clock = Callable[[], int]


class AckSink(Protocol):
    """The part of ``bench.metrics.AckTracker`` a transport calls (api.md, "bench.metrics")."""

    def on_send(self, conn: int, ids: Sequence[EventId], intended_ns: int, actual_ns: int,
                created_ns: Sequence[int]) -> int: ...

    def on_ws_ack(self, conn: int, reported: Sequence[EventId], now_ns: int) -> None: ...

    def on_http_reply(self, conn: int, token: int, reported: Sequence[EventId], now_ns: int) -> None: ...

    def on_http_failure(self, conn: int, token: int, now_ns: int, *, retry: bool) -> None: ...

    def on_conn_closed(self, conn: int, now_ns: int) -> None: ...

    # client devices, whose wire ids may collide (bench.fleet.clients)
    def on_send_wire(self, conn: int, ids: tuple[EventId, ...], wire: tuple[EventId, ...], intended_ns: int,
                     actual_ns: int, created_ns: tuple[int, ...]) -> int: ...

    def on_ws_ack_wire(self, conn: int, reported: Sequence[EventId], now_ns: int) -> tuple[EventId, ...]: ...

    def is_pending(self, key: EventId) -> bool: ...

    @property
    def in_flight(self) -> int: ...


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How a transport reaches the target.

    Attributes:
        insecure: skip TLS certificate and host name checks (self-signed test servers).
        source_addrs: local addresses to bind; empty: any. WebSocket: device ``d`` connects from
            ``source_addrs[d % len]``; each address allows ~28k connections to one target port, so big
            fleets need several. HTTP: one connector per address, the worker pool spread over them.
        connect_timeout_s: a WebSocket connect + handshake (or an HTTP request) slower than this fails.
        max_connecting: WebSocket handshakes in progress at once; more wait their turn (a 10k-device
            fleet without ramp would otherwise overflow the server's accept queue).
        http_concurrency: HTTP requests in flight at once (worker tasks and connector limit).
        record_reported: keep every id the server reported, for reconciliation against the store.
        ws_io: how WebSocket replies are read. "polled": the sockets are read once per millisecond tick and
            each reply is timed by the kernel's receive timestamp (``bench.transports.polled``: the process
            is woken once per tick, not once per reply); "stream": the event loop reads each socket as data
            arrives and the reply is timed then; "auto": polled where it works (plain ws:// on Linux),
            else stream (wss://).
    """

    insecure: bool = False
    source_addrs: tuple[str, ...] = ()
    connect_timeout_s: float = 10.0
    max_connecting: int = 500
    http_concurrency: int = 128
    record_reported: bool = True
    ws_io: Literal["auto", "polled", "stream"] = "auto"


class TransportStats:
    """Counters of one transport in one process. Plain ints on a slotted object: the hot path adds to them.

    Every field is a count that merges by addition across processes and machines.
    """

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "closed_by_peer",
        "coalesced_replies",
        "connect_errors",
        "connect_refused",
        "connect_rejected",
        "connect_resets",
        "connect_retries",
        "connect_timeouts",
        "connects",
        "heartbeat_replies",
        "heartbeats_sent",
        "http_4xx",
        "http_5xx",
        "http_429",
        "malformed_replies",
        "messages_sent",
        "request_errors",
        "retries",
        "unsent_events",
        "untimed_replies",
    )

    def __init__(self) -> None:
        self.messages_sent = 0      # tracked messages written (WS frames / HTTP requests, re-sends included)
        self.heartbeats_sent = 0    # untracked heartbeat messages written (WS only)
        self.bytes_sent = 0         # see results/README.md for what is counted per transport
        self.bytes_received = 0
        self.connects = 0           # WS handshakes that succeeded; HTTP connections opened
        self.connect_errors = 0     # WS connects or handshakes that failed, by cause below (the rest: other)
        self.connect_timeouts = 0   # ... not connected and upgraded within the connect timeout
        self.connect_refused = 0    # ... refused (nothing listening, or a full backlog)
        self.connect_resets = 0     # ... reset or closed by the peer during the connect or the handshake
        self.connect_rejected = 0   # ... answered with an HTTP status other than 101 (a bad appId: 404)
        self.connect_retries = 0    # WS connects started again after a failure (jittered exponential backoff)
        self.closed_by_peer = 0     # WS connections that closed while we still wanted them
        self.malformed_replies = 0  # replies that are not exactly {"reportedIds": [...]}
        self.heartbeat_replies = 0  # empty WS replies taken as answers to heartbeats
        self.coalesced_replies = 0  # polled WS replies read with a later one (timed by its arrival)
        self.untimed_replies = 0    # polled WS replies without a kernel receive time (timed when read)
        self.http_429 = 0           # HTTP 429 (and 503 with Retry-After): backed off and re-sent
        self.http_4xx = 0           # other 4xx: the events count as rejected
        self.http_5xx = 0           # 5xx: the events count as rejected
        self.request_errors = 0     # HTTP connection errors / timeouts: the events stay pending
        self.retries = 0            # HTTP re-sends after a 429
        self.unsent_events = 0      # due events that never reached the wire (connection down at the end)

    def to_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, obj: dict[str, int]) -> TransportStats:
        out = cls()
        for name in cls.__slots__:
            setattr(out, name, int(obj.get(name, 0)))
        return out

    def merge(self, other: TransportStats) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def errors(self) -> int:
        """Everything that went wrong on the wire, summed (for the progress line)."""
        return (self.connect_errors + self.closed_by_peer + self.malformed_replies + self.http_4xx
                + self.http_5xx + self.request_errors)


class OwesHeartbeats(Protocol):
    """A WebSocket connection that counts its heartbeats still waiting for an answer."""

    heartbeats_out: int


def read_ws_reply(conn: OwesHeartbeats, data: bytes | bytearray | memoryview,
                  stats: TransportStats) -> tuple[EventId, ...] | None:
    """The ids one WebSocket reply acknowledges; None when it acknowledges no event.

    The one reply rule of every WebSocket client here (the hot path's and the Locust user's): a reply that
    is not ``{"reportedIds": [...]}`` is a measurement of the server, counted and never fatal (contract.md,
    "Acknowledgements"); a heartbeat carries no id, so an empty reply while a heartbeat is unanswered is
    that heartbeat's answer, counted and not tracked.
    """
    try:
        reported = parse_ack_ids(data)
    except MalformedAck:
        stats.malformed_replies += 1
        return None
    return ws_reply_ids(conn, reported, stats)


def ws_reply_ids(conn: OwesHeartbeats, reported: tuple[EventId, ...],
                 stats: TransportStats) -> tuple[EventId, ...] | None:
    """``read_ws_reply`` of a reply already parsed: None when it is an unanswered heartbeat's answer."""
    if not reported and conn.heartbeats_out:
        conn.heartbeats_out -= 1
        stats.heartbeat_replies += 1
        return None
    return reported


def parse_source_addrs(text: str) -> tuple[str, ...]:
    """Parse ``--source-addrs``: a comma list of IPv4/IPv6 addresses and ``A-B`` IPv4 ranges.

    ``127.0.0.1-127.0.0.8`` gives eight addresses; ``127.0.0.1,127.0.0.2`` two.

    Raises:
        UsageError: an address or range does not parse, or a range runs backwards or over 65,536 addresses.
    """
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                first_s, last_s = part.split("-", 1)
                first, last = ipaddress.IPv4Address(first_s.strip()), ipaddress.IPv4Address(last_s.strip())
                if int(last) < int(first) or int(last) - int(first) >= 65536:
                    raise UsageError(f"--source-addrs: range {part!r} is backwards or too long")
                out.extend(str(ipaddress.IPv4Address(n)) for n in range(int(first), int(last) + 1))
            else:
                out.append(str(ipaddress.ip_address(part)))
        except ValueError as exc:
            raise UsageError(f"--source-addrs: {part!r} is not an address or range: {exc}") from None
    if not out:
        raise UsageError("--source-addrs: no address given")
    return tuple(out)


def spawn(tasks: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run ``coro`` as a task held in ``tasks`` until it ends (the loop keeps only a weak reference)."""
    task = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


class HasTransport(Protocol):
    """A connection object holding its asyncio transport (None before it connects)."""

    @property
    def transport(self) -> asyncio.Transport | None: ...


async def abort_after(closed: asyncio.Event, timeout_s: float, conns: Collection[HasTransport]) -> None:
    """Wait up to ``timeout_s`` for ``closed`` (set once the last connection is gone), then abort the rest."""
    try:
        await asyncio.wait_for(closed.wait(), timeout_s)
    except TimeoutError:
        for conn in list(conns):
            if conn.transport is not None:
                conn.transport.abort()


def source_addr(options: TransportOptions, device: int) -> tuple[str, int] | None:
    """The local address (port 0: any) a device binds, or None to let the OS choose."""
    addrs = options.source_addrs
    return (addrs[device % len(addrs)], 0) if addrs else None


def client_ssl_context(insecure: bool) -> ssl.SSLContext:
    """A TLS client context; ``insecure`` skips certificate and host checks (contract.md, "Endpoints")."""
    ctx = ssl.create_default_context()
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def stats_fields() -> tuple[str, ...]:
    """The counter names of ``TransportStats``, in a stable order (the summary and the docs use it)."""
    return TransportStats.__slots__


__all__ = [
    "AckSink",
    "Clock",
    "TransportOptions",
    "TransportStats",
    "abort_after",
    "client_ssl_context",
    "parse_source_addrs",
    "source_addr",
    "spawn",
    "stats_fields",
]
