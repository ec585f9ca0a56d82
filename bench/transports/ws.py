"""WebSocket transport: many devices' connections in one process, one write choke point.

Theory of operation: each device owns at most one live connection, an ``asyncio.Protocol`` that drives
the sans-I/O ``websockets.client.ClientProtocol`` for the opening handshake, control frames (automatic
pongs), the closing handshake and any frame out of the ordinary. No task and no queue per connection.

One way out and one way in per connection. Every byte a connection sends leaves through ``_WsConn.write``,
the only caller of the transport's ``write`` and ``write_text``, which counts them: a message is framed
once (``frame_text``: RFC 6455, 5.2, masked with a fresh key as 5.3 requires; on a polled socket framed and
sent in one C step) and written without awaiting. Every server message enters through ``_WsConn.on_reply``,
whichever reader took it: the protocol, the fast readers in ``data_received`` (complete data frames), or
the poller's C pass, which hands a routed compact reply's ids and receive time to the connection's
``on_reply`` (see ``bench.transports.polled``); ``on_reply`` applies the reply rules and hands the ids to the
ack sink. That keeps the per-message cost to one frame build, one write and one ack parse, and an idle
device to a few kilobytes.

A message for a device whose connection is not open waits in the device's backlog and is written when
the connection opens, keeping its intended time (so the corrected latency includes the wait). A closed
connection is not re-opened by itself: the next send does it, as the official modules do on their next
report tick (contract.md, "Client behaviour worth simulating"). Events pending on a closed connection
stay pending in the tracker until the ack timeout decides (they are not lost at once).

A client device (``bench.fleet.clients``: a profile of the official modules) sends through
``send_client``: its events wait in its ``ClientQueue`` (``bench.transports.clients``), which decides what
each write carries (the whole unacked queue, for a resending profile), the open delay, how it reconnects
and the frame type; its messages go to the sink with their wire ids (``on_send_wire``), and its replies come
back through ``on_ws_ack_wire``, which maps the ids it names onto the events of that connection.

Heartbeats are written untracked. A server may answer them with an empty ``reportedIds``; such an
empty reply is taken as the heartbeat's answer while heartbeats are outstanding, so it never stands in
for a tracked message whose ack was dropped.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections import deque
from collections.abc import Callable
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol, State
from websockets.typing import BytesLike
from websockets.uri import WebSocketURI, parse_uri

try:
    from websockets.speedups import apply_mask  # C, built with the wheel
except ImportError:  # pragma: no cover - a source install without a compiler
    from websockets.utils import apply_mask

from bench.fleet.clients import BEAT, DROP, EVENTS, ClientSend
from bench.fleet.send import encode_parts
from bench.native import twins
from bench.protocol.errors import ConnectFailed, UsageError
from bench.protocol.events import EventId
from bench.transports.clients import ClientQueue, frame_binary_py
from bench.transports.common import (
    AckSink,
    Clock,
    TransportOptions,
    TransportStats,
    abort_after,
    client_ssl_context,
    read_ws_reply,
    source_addr,
    spawn,
    ws_reply_ids,
)
from bench.transports.polled import PolledSocket, Poller, Route, timestamps_supported

# The C twins used here (``bench.native.twins``): ``frame_masked`` (else frame_text_py) and ``read_frames``
# (else _read_fast_py).

#: Largest server message accepted; replies are small, a runaway one closes the connection (1009).
MAX_REPLY_BYTES = 16 << 20

# phases of a connection
_CONNECTING, _OPEN, _DONE = 0, 1, 2

#: (payload, ids, intended_ns, created_ns); ids empty = untracked heartbeat
_Message = tuple[bytes, tuple[EventId, ...], int, tuple[int, ...]]


#: A failed connect is tried again after CONNECT_BACKOFF_S * 2^(failures in a row - 1), at most
#: CONNECT_BACKOFF_MAX_S, times a jitter in [0.5, 1.5): a fleet whose connects failed together (the target
#: was restarting, its backlog was full) does not come back in one burst that fails again.
CONNECT_BACKOFF_S = 0.25
CONNECT_BACKOFF_MAX_S = 30.0


def connect_backoff_s(failures: int, jitter: float) -> float:
    """The wait before the next connect of a device after ``failures`` failed connects in a row."""
    return min(CONNECT_BACKOFF_MAX_S, CONNECT_BACKOFF_S * 2.0 ** max(0, failures - 1)) * (0.5 + jitter)


class HandshakeRefused(ConnectFailed, ConnectionError):
    """The server answered the WebSocket upgrade with an HTTP status other than 101."""


class _Device:
    __slots__ = ("backlog", "client", "conn", "failures", "index", "online", "retry")

    def __init__(self, index: int, client: ClientQueue | None = None) -> None:
        self.index = index
        self.client = client  # a client device's queue (bench.transports.clients); None: a plain device
        self.conn: _WsConn | None = None
        self.backlog: list[_Message] = []
        self.failures = 0  # failed connects in a row
        self.online = False  # a connection of this device has opened at least once
        self.retry: asyncio.TimerHandle | None = None  # the next connect after a failure, while waiting


class _Masks:
    """Masking keys for client frames (RFC 6455, 5.3: a fresh unpredictable key per frame).

    Drawn from an ``os.urandom`` pool refilled every 16,384 frames: one syscall per pool, not per frame.
    """

    __slots__ = ("_at", "_pool")
    POOL = 1 << 16

    def __init__(self) -> None:
        self._pool = os.urandom(self.POOL)
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at >= self.POOL:
            self._pool, at = os.urandom(self.POOL), 0
        self._at = at + 4
        return self._pool[at:at + 4]


_MASKS = _Masks()


def frame_text(payload: bytes) -> bytes:
    """One masked, final text frame (RFC 6455, 5.2) around ``payload``: what ``send_text`` would write.

    ``bench._native.frame_masked`` builds it in one allocation, with a key from its own pool, when it is
    built; ``frame_text_py`` is its twin."""
    frame_masked = twins.frame_masked
    if frame_masked is not None and type(payload) is bytes:
        return frame_masked(payload)
    return frame_text_py(payload)


def frame_text_py(payload: bytes, mask: bytes | None = None) -> bytes:
    """``frame_text`` in Python (``mask``: the masking key, else a fresh one)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = b"\x81\xfe" + n.to_bytes(2, "big")
    else:
        head = b"\x81\xff" + n.to_bytes(8, "big")
    if mask is None:
        mask = _MASKS.next()
    return head + mask + apply_mask(payload, mask)


#: First header byte of a frame the fast reader takes: FIN, no RSV bits, text (0x1) or binary (0x2).
_FAST_FIRST = frozenset((0x81, 0x82))


class _WsConn(asyncio.Protocol):
    """One WebSocket connection of one device.

    Reading has two modes. The sans-I/O protocol parses the opening handshake and anything unusual
    (control frames, fragments, oversized or broken frames). Between those, when the protocol holds no
    partial data, the fast reader takes complete final text/binary frames straight from the bytes
    (servers never mask, RFC 6455, 5.1) and hands anything else back to the protocol at a frame boundary.
    """

    __slots__ = ("_route", "_write_text", "conn_id", "device", "established", "fast", "fragments",
                 "heartbeats_out", "inbuf", "opened", "owner", "phase", "proto", "rx_ns", "transport",
                 "wired")

    def __init__(self, owner: WsTransport, device: _Device, conn_id: int) -> None:
        self.owner = owner
        self.device = device
        self.conn_id = conn_id
        self.wired = device.client is not None  # a client device's: replies name wire ids (on_ws_ack_wire)
        self.proto = ClientProtocol(owner.uri, max_size=MAX_REPLY_BYTES)
        self.transport: asyncio.Transport | None = None
        self.phase = _CONNECTING
        self.established = False
        self.fast = False
        self.inbuf = b""
        self.heartbeats_out = 0
        self.fragments: list[BytesLike] | None = None
        # When the bytes being read reached the socket (run clock), if the transport knows (a polled socket's
        # kernel timestamp); None: the bytes are read as they arrive, and the time is read from the clock.
        self.rx_ns: int | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A polled socket's ``route`` when its poller can take compact replies itself and hand them to
        # ``on_reply`` (see ``data_received``).
        self._route: Callable[[Route | None], None] | None = None
        # A polled socket's ``write_text`` when ``bench._native`` frames and sends in one step.
        self._write_text: Callable[[bytes], int] | None = None

    # -- the write choke point ---------------------------------------------------------------------
    def write(self, data: bytes, text: bool = False) -> None:
        """The one way out: every byte this connection sends leaves here, and is counted here.

        ``text``: ``data`` is a message's payload, sent as one masked, final text frame (RFC 6455, 5.2-5.3):
        framed and sent in one C step by a polled socket's ``write_text`` when it has one (which takes
        nothing while closing), else framed here and written. Otherwise ``data`` is the protocol's own bytes
        (handshake, pongs, close frames). Nothing is written once the transport is closing.
        """
        if text:
            write_text = self._write_text
            if write_text is not None and type(data) is bytes:
                self.owner.stats.bytes_sent += write_text(data)
                return
            # frame_text, inline: this runs once per message
            frame_masked = twins.frame_masked
            data = (frame_masked(data) if frame_masked is not None and type(data) is bytes
                    else frame_text_py(data))
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        self.owner.stats.bytes_sent += len(data)

    def _flush(self) -> None:
        """Write what the protocol has queued (handshake, pongs, close frames)."""
        for data in self.proto.data_to_send():
            if data:
                self.write(data)
            elif self.transport is not None:  # SEND_EOF: the protocol is done with the stream
                if self.transport.can_write_eof():
                    self.transport.write_eof()
                else:
                    self.transport.close()

    # -- asyncio.Protocol callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport is not a subclass
        if isinstance(transport, PolledSocket):
            if transport.routes:
                self._route = transport.route
            if transport.writes_text:
                self._write_text = transport.write_text
        self.owner.live.add(self)
        self.proto.send_request(self.proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.owner.stats.bytes_received += len(data)
        if self.fast:
            self._read_fast(data)
        else:
            self._read_protocol(data)
        route = self._route
        if route is not None:
            # The poller's C pass hands this connection's compact replies (ids and receive time) straight to
            # on_reply exactly while the fast reader is on with nothing buffered: what _read_fast would then
            # do with a read of only such replies. It counts their bytes in the transport's stats and leaves
            # every other read to data_received.
            route(self.on_reply if self.fast and not self.inbuf and self.phase == _OPEN else None)

    def _read_fast(self, data: bytes) -> None:
        """Take complete final data frames; hand the rest to the protocol from the first other frame.

        ``bench._native.read_frames`` reads the frames, and parses the compact replies, when it is built;
        ``_read_fast_py`` is its twin."""
        buf = self.inbuf + data if self.inbuf else data
        read_frames = twins.read_frames
        if read_frames is None or type(buf) is not bytes:
            self._read_fast_py(buf)
            return
        items, pos, other = read_frames(buf, MAX_REPLY_BYTES)
        on_reply, rx_ns = self.on_reply, self.rx_ns
        for item in items:  # a compact reply's ids, or another reply's bytes
            on_reply(item, rx_ns)
        if other:
            self.fast, self.inbuf = False, b""
            self._read_protocol(buf[pos:])
            return
        self.inbuf = buf[pos:] if pos < len(buf) else b""
        if len(items) > 1 and self.rx_ns is not None:
            self.owner.stats.coalesced_replies += len(items) - 1  # timed by the last one's arrival

    def _read_fast_py(self, buf: bytes) -> None:
        """``_read_fast`` in Python."""
        pos, end = 0, len(buf)
        replies = 0
        rx_ns = self.rx_ns
        while end - pos >= 2:
            length = buf[pos + 1]
            if buf[pos] not in _FAST_FIRST or length & 0x80:
                self.fast, self.inbuf = False, b""
                self._read_protocol(buf[pos:])
                return
            head = 2
            if length == 126:
                head, length = 4, int.from_bytes(buf[pos + 2:pos + 4], "big")
            elif length == 127:
                head, length = 10, int.from_bytes(buf[pos + 2:pos + 10], "big")
            if end - pos < head:
                break
            if length > MAX_REPLY_BYTES:  # the protocol closes with 1009
                self.fast, self.inbuf = False, b""
                self._read_protocol(buf[pos:])
                return
            if end - pos < head + length:
                break
            start = pos + head
            pos = start + length
            self.on_reply(buf[start:pos], rx_ns)
            replies += 1
        self.inbuf = buf[pos:] if pos < end else b""
        if replies > 1 and self.rx_ns is not None:
            self.owner.stats.coalesced_replies += replies - 1  # timed by the last one's arrival

    def _read_protocol(self, data: bytes) -> None:
        proto = self.proto
        proto.receive_data(data)
        for event in proto.events_received():
            if type(event) is Frame:
                handler = _FRAME_HANDLERS.get(event.opcode)
                if handler is not None:
                    handler(self, event)
            elif isinstance(event, Response):
                self._on_handshake()
        self._flush()
        if self.phase == _OPEN and proto.state is not State.OPEN:
            self.phase = _DONE  # a close frame arrived: the next send opens a new connection
        if proto.state is State.CLOSED and self.transport is not None:
            self.transport.close()
        # back to the fast reader once the protocol holds no partial frame or message
        self.fast = self.phase == _OPEN and self.fragments is None and not proto.reader.buffer

    def eof_received(self) -> bool | None:
        self.proto.receive_eof()
        self._flush()
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.on_lost(self)

    # -- incoming ------------------------------------------------------------------------------------
    def _on_handshake(self) -> None:
        exc = self.proto.handshake_exc
        if exc is not None:  # e.g. HTTP 404 for a bad appId (contract.md, "Endpoints")
            if not self.opened.done():
                self.opened.set_exception(HandshakeRefused(f"handshake refused: {exc}"))
            return
        self.phase = _OPEN
        self.established = True
        _forget_handshake(self.proto)
        if not self.opened.done():
            self.opened.set_result(None)
        self.owner.on_open(self)

    def on_data(self, frame: Frame) -> None:
        if not frame.fin:
            self.fragments = [frame.data]
            return
        self.on_reply(frame.data, self.rx_ns)

    def on_continuation(self, frame: Frame) -> None:
        if self.fragments is None:
            return  # the protocol already failed the connection on a stray continuation
        self.fragments.append(frame.data)
        if frame.fin:
            data, self.fragments = b"".join(self.fragments), None
            self.on_reply(data, self.rx_ns)

    def on_reply(self, reply: BytesLike | tuple[EventId, ...], rx_ns: int | None) -> None:
        """The one way in: every complete server message of this connection, whichever reader took it.

        ``reply`` is the message's bytes, or the ids of a compact ``{"reportedIds":[...]}`` a C reader
        parsed already; ``rx_ns`` is when its bytes reached the socket (run clock), None when unknown (the
        clock is read now). The rules of ``read_ws_reply``: a reply that is not ``{"reportedIds": [...]}``
        is a measurement of the server, counted; an empty one while heartbeats are unanswered is theirs.
        The ids of any other go to the ack sink.
        """
        owner = self.owner
        if isinstance(reply, tuple):
            if not reply and self.heartbeats_out:
                ws_reply_ids(self, reply, owner.stats)  # the heartbeat's answer, counted
                return
            reported = reply
        else:
            found = read_ws_reply(self, reply, owner.stats)
            if found is None:
                return
            reported = found
        if rx_ns is None:
            rx_ns = owner.clock()
            if owner.polled:
                owner.stats.untimed_replies += 1  # the kernel gave no receive time: read time instead
        if self.wired:
            reported = owner.sink.on_ws_ack_wire(self.conn_id, reported, rx_ns)  # the events' keys
        else:
            owner.sink.on_ws_ack(self.conn_id, reported, rx_ns)
        if owner.reported is not None:
            owner.reported.extend(reported)


#: Table dispatch of data frames; control frames (ping, pong, close) are answered by the protocol itself.
_FRAME_HANDLERS: dict[Opcode, Callable[[_WsConn, Frame], None]] = {
    Opcode.TEXT: _WsConn.on_data,
    Opcode.BINARY: _WsConn.on_data,  # the Swift module's binary frames (contract.md, "Messages")
    Opcode.CONT: _WsConn.on_continuation,
}


def _forget_handshake(proto: ClientProtocol) -> None:
    """Let go of the handshake's response (its headers, ~1.9 KiB) for the rest of the connection.

    websockets' client parser is one generator that parses the response and then loops over frames; its
    frame keeps the response alive as long as the connection lives. Once the connection is open and no
    byte of a frame has been read, a fresh frame loop (the base protocol's own parser, which the client's
    runs after the handshake) is the same parser without the response. With bytes already buffered (a
    frame that came with the response) the parser is left as it is.
    """
    if not proto.reader.buffer and proto.state is State.OPEN:
        proto.parser = Protocol.parse(proto)
        next(proto.parser)  # start the coroutine, as websockets does


def ws_url(base_url: str, app_id: str) -> str:
    """The tracking WebSocket URL of a target base URL: ``http(s)://h:p`` -> ``ws(s)://h:p/app/{appId}/track``."""
    base = base_url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(http):
            base = ws + base[len(http):]
            break
    return f"{base}/app/{app_id}/track"


class WsTransport:
    """The WebSocket connections of every device of one process.

    Args:
        url: the tracking URL, ``ws(s)://host:port/app/{appId}/track`` (see ``ws_url``).
        sink: the ack tracker; ``conn`` ids it sees are unique per connection, never reused.
        clock: monotonic ns since the run's start.
        options: TLS, source addresses, connect limits.
        clients: device -> its ``ClientQueue`` when it is a client device (``send_client``), else None.
    """

    def __init__(self, url: str, sink: AckSink, clock: Clock, options: TransportOptions | None = None,
                 clients: Callable[[int], ClientQueue | None] | None = None) -> None:
        try:
            self.uri: WebSocketURI = parse_uri(url)
        except InvalidURI as exc:
            raise UsageError(f"target: {url!r} is not a WebSocket URL: {exc}") from None
        self.sink = sink
        self.clock = clock
        self.options = options or TransportOptions()
        self.stats = TransportStats()
        self.reported: list[EventId] | None = [] if self.options.record_reported else None
        self.live: set[_WsConn] = set()
        self._devices: dict[int, _Device] = {}
        self._clients = clients
        self._client_unsent = 0  # events in client devices' queues never written
        self._next_conn = 0
        self._backlogged = 0
        self._connecting = 0
        self._waiting: deque[_WsConn] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._jitter = random.Random(0x6E75636C).random  # the backoff's jitter: timing only, never the plan
        #: Devices whose first connection has opened, and when the last of them did (ns since the start).
        self.devices_online = 0
        self.all_online_ns = 0
        self._closing = False
        self._all_closed: asyncio.Event | None = None
        self._ssl = client_ssl_context(self.options.insecure) if self.uri.secure else None
        io = self.options.ws_io
        if io == "polled" and (self.uri.secure or not timestamps_supported()):
            raise UsageError("--ws-io polled: needs plain ws:// on a system with TCP receive timestamps "
                             "(Linux); use --ws-io stream or auto")
        self.polled = io == "polled" or (io == "auto" and not self.uri.secure and timestamps_supported())
        self._poller: Poller | None = None

    # -- what the scheduler calls ---------------------------------------------------------------------
    def connect(self, device: int) -> None:
        """Bring a device online (its ramp time has come). No-op when it already has a connection."""
        dev = self._device(device)
        if dev.conn is None or dev.conn.phase == _DONE:
            self._start_connect(dev)

    def send(self, device: int, payload: bytes, ids: tuple[EventId, ...], intended_ns: int,
             created_ns: tuple[int, ...]) -> None:
        """Send one message now, or as soon as the device's connection is open. Never blocks."""
        dev = self._devices.get(device) or self._device(device)
        conn = dev.conn
        if conn is not None and conn.phase == _OPEN:
            # the actual send time, read just before the connection's one way out frames and writes it
            actual_ns = self.clock()
            conn.write(payload, True)
            if ids:
                self.stats.messages_sent += 1
                self.sink.on_send(conn.conn_id, ids, intended_ns, actual_ns, created_ns)
            else:
                self.stats.heartbeats_sent += 1
                conn.heartbeats_out += 1
            return
        dev.backlog.append((payload, ids, intended_ns, created_ns))
        self._backlogged += 1
        if (conn is None or conn.phase == _DONE) and dev.retry is None:
            # reconnect on the next send, like the official modules; after a failed connect, the backoff
            # decides when (the backlog waits for it)
            self._start_connect(dev)

    def send_untracked(self, device: int, payload: bytes) -> None:
        """A heartbeat: written and counted, never tracked."""
        self.send(device, payload, (), 0, ())

    # -- client devices (bench.transports.clients) --------------------------------------------------------
    def send_client(self, send: ClientSend) -> None:
        """What a client device does now: queue its new events, write what its queue says when its
        connection is ready, else (re)connect as its profile does; or drop its connection (an outage)."""
        dev = self._devices.get(send.device) or self._device(send.device)
        client = dev.client
        if client is None:
            raise ValueError(f"device {send.device} is not a client device")  # a harness bug, never input
        conn = dev.conn
        if send.action == DROP:  # the device loses the server: its socket goes, its events stay queued
            dev.conn = None  # not wanted any more: its close is not the peer's (closed_by_peer)
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            return
        if send.action == EVENTS:
            self._client_unsent += client.add(send)
        if conn is not None and conn.phase == _OPEN and client.ready:
            self._write_client(dev, conn, send.parts if send.action == BEAT else None)
        elif client.tick_reconnect:
            # a new socket each tick while not open; the old one is left as it is
            if conn is None or conn.phase == _DONE or client.new_socket(conn.phase == _CONNECTING,
                                                                         self.clock()):
                self._start_connect(dev)
        elif (conn is None or conn.phase == _DONE) and dev.retry is None:
            self._start_connect(dev)

    def _write_client(self, dev: _Device, conn: _WsConn, beat: tuple[bytes, ...] | None) -> None:
        """Write what the device's queue composes, else its heartbeat (or empty batch) when it has one."""
        client = dev.client
        assert client is not None
        made = client.compose(self.sink.is_pending)
        if made is None:
            if beat is not None:
                self._write_frame(conn, encode_parts(beat), client.binary)
                self.stats.heartbeats_sent += 1
                conn.heartbeats_out += 1
            return
        parts, keys, wire, created, intended, first = made
        self._client_unsent -= first
        actual = self.clock()
        self._write_frame(conn, encode_parts(parts), client.binary)
        self.stats.messages_sent += 1
        self.sink.on_send_wire(conn.conn_id, keys, wire, intended, actual, created)

    @staticmethod
    def _write_frame(conn: _WsConn, payload: bytes, binary: bool) -> None:
        if binary:  # the Swift module's frames (contract.md, "Messages")
            conn.write(frame_binary_py(payload, _MASKS.next(), apply_mask))
        else:
            conn.write(payload, True)

    def _client_ready(self, dev: _Device, conn: _WsConn) -> None:
        """The open delay is over: the device writes its queue (what waited for the connection)."""
        client = dev.client
        if client is None or dev.conn is not conn or conn.phase != _OPEN:
            return
        client.ready = True
        if client.entries:
            self._write_client(dev, conn, None)

    @property
    def pending_writes(self) -> int:
        """Messages waiting for a connection to open (not yet on the wire), and client devices' unwritten
        events."""
        return self._backlogged + self._client_unsent

    def abandon_unsent(self) -> int:
        """End of the run: give every never-written event to the sink as sent now, so it ends as lost.

        Returns:
            How many events were abandoned (also in ``stats.unsent_events``).
        """
        conn_id = self._new_conn_id()  # a connection that never existed: no reply can match it
        now = self.clock()
        total = 0
        for dev in self._devices.values():
            for _payload, ids, intended_ns, created_ns in dev.backlog:
                if ids:
                    self.sink.on_send(conn_id, ids, intended_ns, now, created_ns)
                    total += len(ids)
            dev.backlog.clear()
            if dev.client is not None:
                for key, wire, created, intended in dev.client.take_unsent():
                    self.sink.on_send_wire(conn_id, (key,), (wire,), intended, now, (created,))
                    total += 1
        self._backlogged = 0
        self._client_unsent = 0
        self.stats.unsent_events += total
        return total

    async def wait_connects(self) -> None:
        """Wait until no connect or handshake is in progress (each ends open or counted as failed)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self, timeout_s: float = 2.0) -> None:
        """Close every connection (a close frame when open) and wait up to ``timeout_s`` for them to go."""
        self._closing = True
        self._waiting.clear()
        for dev in self._devices.values():
            if dev.retry is not None:
                dev.retry.cancel()
                dev.retry = None
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.live):
            if conn.transport is None:
                continue
            if conn.phase == _OPEN and conn.proto.state is State.OPEN:
                conn.proto.send_close()
                conn._flush()
            conn.transport.close()
        if self.live:
            self._all_closed = asyncio.Event()
            await abort_after(self._all_closed, timeout_s, self.live)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._poller is not None:
            self._poller.close()

    # -- connection life ------------------------------------------------------------------------------
    def _device(self, device: int) -> _Device:
        dev = self._devices.get(device)
        if dev is None:
            client = self._clients(device) if self._clients is not None else None
            dev = self._devices[device] = _Device(device, client)
        return dev

    def _new_conn_id(self) -> int:
        self._next_conn += 1
        return self._next_conn

    def _start_connect(self, dev: _Device) -> None:
        if self._closing:
            return
        if dev.client is not None:
            dev.client.ready = False  # until the new connection is open and past the open delay
            dev.client.connecting_since = self.clock()
        dev.conn = conn = _WsConn(self, dev, self._new_conn_id())
        if self._connecting >= self.options.max_connecting:
            self._waiting.append(conn)
            return
        self._launch(conn)

    def _launch(self, conn: _WsConn) -> None:
        self._connecting += 1
        spawn(self._tasks, self._open(conn))

    async def _open(self, conn: _WsConn) -> None:
        """Connect and handshake one connection; a failure is counted and leaves the backlog waiting."""
        loop = asyncio.get_running_loop()
        uri = self.uri
        try:
            async with asyncio.timeout(self.options.connect_timeout_s):
                local = source_addr(self.options, conn.device.index)
                if self.polled:
                    await self._connect_polled(conn, local)
                else:
                    await loop.create_connection(
                        lambda: conn, uri.host, uri.port, ssl=self._ssl,
                        server_hostname=uri.host if self._ssl else None, local_addr=local)
                await conn.opened
        except (OSError, TimeoutError) as exc:  # their fault (refused, reset, TLS, handshake): counted
            self._on_connect_failed(conn, exc)
        finally:
            self._connecting -= 1
            while self._waiting and self._connecting < self.options.max_connecting:
                waiting = self._waiting.popleft()
                if waiting.device.conn is waiting:
                    self._launch(waiting)

    async def _connect_polled(self, conn: _WsConn, local: tuple[str, int] | None) -> None:
        """Open a TCP connection for ``conn`` and hand it to the poller (started with the first one)."""
        loop = asyncio.get_running_loop()
        if self._poller is None:
            self._poller = Poller(self.clock, stats=self.stats)
            self._poller.start()
        poller = self._poller
        infos = await loop.getaddrinfo(self.uri.host, self.uri.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            if local is not None:
                sock.bind(local)
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        PolledSocket(poller, sock, conn)  # connection_made: the handshake request goes out

    def _on_connect_failed(self, conn: _WsConn, exc: BaseException) -> None:
        """Count the failure by its cause and try the device again after a jittered exponential backoff."""
        stats = self.stats
        stats.connect_errors += 1
        if isinstance(exc, TimeoutError):
            stats.connect_timeouts += 1
        elif isinstance(exc, ConnectionRefusedError):
            stats.connect_refused += 1
        elif isinstance(exc, HandshakeRefused):
            stats.connect_rejected += 1
        elif isinstance(exc, ConnectionError):  # reset, aborted, or closed during the handshake
            stats.connect_resets += 1
        conn.phase = _DONE
        if conn.transport is not None:
            conn.transport.abort()
        dev = conn.device
        if self._closing or dev.conn is not conn:
            return
        if dev.client is not None and dev.client.tick_reconnect:
            return  # the modules try again on their next tick, without backoff
        dev.failures += 1
        delay = connect_backoff_s(dev.failures, self._jitter())
        dev.retry = asyncio.get_running_loop().call_later(delay, self._retry, dev, conn)

    def _retry(self, dev: _Device, failed: _WsConn) -> None:
        """The backoff is over: connect again, unless a send has started a connection meanwhile."""
        dev.retry = None
        if self._closing or dev.conn is not failed:
            return
        self.stats.connect_retries += 1
        self._start_connect(dev)

    def on_open(self, conn: _WsConn) -> None:
        """Handshake done: count it and write the device's backlog, oldest first."""
        self.stats.connects += 1
        dev = conn.device
        if dev.conn is not conn:
            return
        dev.failures = 0
        if not dev.online:  # its first connection: the ramp's progress
            dev.online = True
            self.devices_online += 1
            self.all_online_ns = self.clock()
        backlog, dev.backlog = dev.backlog, []
        self._backlogged -= len(backlog)
        for payload, ids, intended_ns, created_ns in backlog:
            self.send(dev.index, payload, ids, intended_ns, created_ns)  # the connection is open: written now
        client = dev.client
        if client is not None:
            if client.delay_s > 0:  # v4, v5: a second after the socket opens
                asyncio.get_running_loop().call_later(client.delay_s, self._client_ready, dev, conn)
            else:
                self._client_ready(dev, conn)

    def on_lost(self, conn: _WsConn) -> None:
        """The TCP connection is gone. Its pending events stay pending; the ack timeout decides."""
        self.live.discard(conn)
        conn.phase = _DONE
        if not conn.opened.done():
            conn.opened.set_exception(ConnectionError("connection closed during the handshake"))
        if conn.established:
            if not self._closing and conn.device.conn is conn:  # still wanted (not replaced, not dropped)
                self.stats.closed_by_peer += 1
            self.sink.on_conn_closed(conn.conn_id, self.clock())
        if self._closing and not self.live and self._all_closed is not None:
            self._all_closed.set()

