"""Polled sockets: many connections read once per tick, each reply timed by the kernel.

Why: on this kind of machine a process that sleeps and is woken costs ~10-30 µs of CPU per wake-up (caches
and the virtual CPU come back cold), and an event loop that watches every socket is woken once per reply:
at a few thousand replies per second that is most of a load generator's CPU, and it grows as the offered
rate falls. A ``Poller`` keeps the connections out of the event loop. A timer callback wakes it every
tick (1 ms, on the loop's timer, which the central scheduler's wake-ups share); each tick reads every
socket that has data (one ``epoll_wait``), so a process wakes about once per millisecond however many
replies come.

Latency stays exact: each socket asks the kernel for receive timestamps (``SO_TIMESTAMPNS``, see
socket(7)), and a read reports the time its data reached the socket, not the time the tick read it. A read
that holds several replies carries the time of the last one (TCP keeps one timestamp per read): the
earlier ones are then timed late by at most the tick (the WebSocket transport counts them:
``coalesced_replies``). The kernel stamps receives only while some socket asks for it, and turns that on
a moment after the first one does: a read without a stamp is timed when it is read, and counted
(``untimed_replies``).

``PolledSocket`` is the ``asyncio.Transport`` subset an ``asyncio.Protocol`` (``bench.transports.ws``'s
``_WsConn``) writes to, and drives the protocol's callbacks from the ticks. Writes go straight to the
socket; what the kernel does not take at once waits and is written when the socket can take it. Plain
TCP only: TLS connections keep the event loop's own transport.

Two shortcuts for the WebSocket transport's common case, where ``bench._native`` is built: a tick's pass
over the ready sockets runs in C (``poll_replies``), and a socket whose protocol has set a *route* (its fast
reader is on with nothing buffered) is read there: a read that holds only complete compact replies
``{"reportedIds":[...]}`` goes to the route (the protocol's own reply method: ``_WsConn.on_reply``), one
call per reply with its ids and receive time, instead of through ``data_received`` and the protocol's
reader (every other read still goes there, whole); and
``write_text`` frames and writes a message in one C step (``send_frame``). Both do exactly what the
Python they skip would do (tests/transports run every behaviour both ways); what they save is the Python
calls between the C steps, several per message, which are most of a paced fleet's client CPU after the
kernel's (``make perf``).
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import cast

from bench.native import twins
from bench.transports.common import TransportStats

#: SO_TIMESTAMPNS (and its control message SCM_TIMESTAMPNS), asm-generic/socket.h; the socket module does
#: not export it.
SO_TIMESTAMPNS = 35
#: Bytes of one read; replies are small, a longer one takes several reads within the same tick (and a
#: smaller buffer is cheaper to allocate per read).
READ_BYTES = 1 << 13
#: Reads per socket per tick before the others get their turn (the rest is read on the next tick).
MAX_READS = 16
#: A tick reads for at most its own period: a burst of replies (a server that stalled, then answered all at
#: once) would otherwise hold the loop for tens of milliseconds and delay the sends due meanwhile, which the
#: run would then report as the generator's own lag. The rest is read on the loop's next turn; its receive
#: times are the kernel's, so reading it later changes no latency (replies that meanwhile join others in one
#: read are counted: ``coalesced_replies``). The clock is read every this many sockets.
BUDGET_EVERY = 8
_TIMESPEC = struct.Struct("qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_SOL_SOCKET = socket.SOL_SOCKET
_IN = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_OUT = select.EPOLLOUT


# The C twins used here (``bench.native.twins``): ``recv_stamped`` (else ``socket.recvmsg`` and the control
# message parsed in Python), ``poll_replies`` (else ``Poller.poll``'s loop in Python, through each protocol's
# ``data_received``), ``send_frame`` (else ``PolledSocket.write`` of the framed bytes).
#: The reads a poll hands to the Python: (fd, events, data, stamp_ns), see ``Poller._handle``.
_Slow = list[tuple[int, int, bytes | int | None, int]]
#: Sockets one C pass takes at most (then the loop's next turn takes the rest; see ``BUDGET_EVERY``).
PASS_EVENTS = 256

#: What a route is handed per reply: (ids, rx_ns); see ``PolledSocket.route``.
Route = Callable[[tuple[int, ...], int], None]


def frame_length(n: int) -> int:
    """The length of a client's (masked) WebSocket frame around ``n`` bytes of payload (RFC 6455, 5.2)."""
    return n + (6 if n < 126 else 8 if n < 65536 else 14)


def timestamps_supported() -> bool:
    """Whether this system gives TCP sockets receive timestamps (Linux does)."""
    with socket.socket() as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            return False
    return hasattr(select, "epoll")


class PolledSocket:
    """One connected TCP socket under a ``Poller``, seen by its protocol as an ``asyncio.Transport``.

    Args:
        poller: the poller that reads it.
        sock: a connected, non-blocking socket.
        protocol: gets ``connection_made`` (at once), ``data_received``, ``eof_received`` and
            ``connection_lost``; ``rx_ns`` is set on it before each ``data_received``.
    """

    __slots__ = ("_closing", "_eof_after", "_out", "_poller", "_protocol", "_sock", "fd")

    @property
    def routes(self) -> bool:
        """Whether ``route`` takes effect: the poller's pass is the C one (else every read goes through
        ``data_received``)."""
        return twins.poll_replies is not None

    def __init__(self, poller: Poller, sock: socket.socket, protocol: asyncio.Protocol) -> None:
        self._poller = poller
        self._sock = sock
        self._protocol = protocol
        self.fd = sock.fileno()
        self._out = bytearray()
        self._closing = False
        self._eof_after = False
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the loop's transports do
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        poller.add(self)
        protocol.connection_made(self)  # type: ignore[arg-type]  # the Transport subset it uses

    # -- what the protocol calls (asyncio.Transport's names) ------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._out:
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._lost(exc)
                return
            if sent == len(data):
                return
            data = data[sent:]
            self._poller.want_write(self, True)
        self._out += data

    @property
    def writes_text(self) -> bool:
        """Whether ``write_text`` may be used: ``bench._native`` frames and sends in one step."""
        return twins.send_frame is not None

    def write_text(self, payload: bytes) -> int:
        """``write(frame_text(payload))``, with the frame built and sent by ``bench._native.send_frame``
        (no bytes object for it) when nothing waits to be written: one masked, final text frame (RFC 6455,
        5.2) around ``payload``. Returns the frame's length (0 while closing: nothing is taken, as
        ``write`` takes nothing then). Only where ``writes_text``; ``write`` of the framed bytes is its
        twin."""
        if self._closing:
            return 0
        # both are built where writes_text holds (no assert: this runs once per message)
        if self._out:  # earlier bytes wait: this frame queues behind them
            frame = twins.frame_masked(payload)  # type: ignore[misc]
            self.write(frame)
            return len(frame)
        try:
            rest = twins.send_frame(self.fd, payload)  # type: ignore[misc]
        except OSError as exc:
            self._lost(exc)
            return frame_length(len(payload))
        if isinstance(rest, int):
            return rest
        self._out += rest
        self._poller.want_write(self, True)
        return frame_length(len(payload))

    def is_closing(self) -> bool:
        return self._closing

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._out:
            self._eof_after = True
        else:
            self._shutdown()

    def close(self) -> None:
        """Close once what is queued is written (at once when nothing is)."""
        if self._closing:
            return
        self._closing = True
        if not self._out:
            self._lost(None)

    def abort(self) -> None:
        self._closing = True
        self._lost(None)

    def get_extra_info(self, name: str, default: object = None) -> object:
        """``socket``, ``sockname`` and ``peername``, as asyncio's transports give them."""
        if self.fd < 0:
            return default
        if name == "sockname":
            return self._sock.getsockname()
        if name == "peername":
            return self._sock.getpeername()
        return self._sock if name == "socket" else default

    def route(self, callback: Route | None) -> None:
        """From now on, while ``callback`` is set, the poller's C pass reads this socket itself and hands
        each complete WebSocket reply ``{"reportedIds":[...]}`` (at least one id, received with a kernel
        time) straight to ``callback(ids, rx_ns)``, without ``data_received``, and counts its bytes (and the
        replies read with a later one, timed by its arrival) in the poller's ``stats``; any other read
        still goes to ``data_received``. The protocol sets it only while that is what its own reader
        would do with such a reply (``bench.transports.ws._WsConn``). None: every read goes to
        ``data_received``."""
        if self.fd >= 0:
            self._poller.route(self, callback)

    # -- what the poller calls ----------------------------------------------------------------------------
    def on_readable(self, offset_ns: int, now_ns: int, first: bytes | int | None = None,
                    first_stamp: int = -1) -> None:
        """Read what has arrived; ``offset_ns`` maps the kernel's realtime stamps onto the run's clock, and
        none is later than ``now_ns`` (the run's clock at this tick: a realtime step cannot move a reply
        into the future). Each read is ``bench._native.recv_stamped`` (C) when it is built, else its twin:
        the socket's ``recvmsg`` and the control message parsed here. ``first``, when given, is the result
        of a read the poller's C pass already made (bytes and ``first_stamp``, or a failed read's errno)."""
        sock, protocol, fd = self._sock, self._protocol, self.fd
        recv, recvmsg, unpack = twins.recv_stamped, sock.recvmsg, _TIMESPEC.unpack_from
        for _ in range(MAX_READS):
            try:
                if first is not None:
                    if type(first) is int:
                        raise OSError(first, os.strerror(first))
                    data, stamp, first = cast(bytes, first), first_stamp, None
                elif recv is not None:
                    data, stamp = recv(fd, READ_BYTES)
                else:
                    data, ancillary, _flags, _addr = recvmsg(READ_BYTES, _CMSG_SPACE)
                    stamp = -1
                    if ancillary:  # SO_TIMESTAMPNS is the one control message these sockets ask for
                        level, kind, value = ancillary[0]
                        if kind == SO_TIMESTAMPNS and level == _SOL_SOCKET and len(value) >= 16:
                            sec, nsec = unpack(value)
                            stamp = sec * 1_000_000_000 + nsec
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(exc)
                return
            if not data:
                protocol.eof_received()
                self._lost(None)
                return
            # read by the protocol's reply handler
            protocol.rx_ns = min(stamp - offset_ns, now_ns) if stamp >= 0 else None  # type: ignore[attr-defined]
            protocol.data_received(data)
            if self._closing or len(data) < READ_BYTES:
                return

    def on_writable(self) -> None:
        out = self._out
        try:
            sent = self._sock.send(out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        del out[:sent]
        if out:
            return
        self._poller.want_write(self, False)
        if self._eof_after:
            self._shutdown()
        if self._closing:
            self._lost(None)

    def _shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        """The socket is done: close it, and tell the protocol on the loop's next turn (as asyncio does)."""
        if self.fd < 0:
            return
        self._closing = True
        self._poller.remove(self)
        self.fd = -1
        self._out.clear()
        self._sock.close()
        self._poller.loop.call_soon(self._protocol.connection_lost, exc)


class Poller:
    """The polled sockets of one process, read every tick by one task (``run``).

    Args:
        clock: the run's clock (monotonic ns since its start), what receive times are mapped onto.
        tick_s: how often the sockets are read.
        budget_s: how long one tick may read (default: ``tick_s``; see ``BUDGET_EVERY``).
        stats: where the routed replies are counted (``bytes_received``, ``coalesced_replies``; see
            ``PolledSocket.route``); default: a counter of its own.
    """

    def __init__(self, clock: Callable[[], int], tick_s: float = 0.001,
                 budget_s: float | None = None, stats: TransportStats | None = None) -> None:
        self.clock = clock
        self.stats = TransportStats() if stats is None else stats
        self.tick_s = tick_s
        self.loop = asyncio.get_running_loop()
        self._epoll = select.epoll()
        self._sockets: dict[int, PolledSocket] = {}
        self._routes: dict[int, Route] = {}  # fd -> its route (see PolledSocket.route), read by the C pass
        self.ticks = 0
        self.behind = False  # the last poll ran out of its budget with sockets still ready
        self.cut_ticks = 0  # ticks that did so
        self._closed = False
        self._tick: asyncio.Handle | None = None
        self._budget_ns = int((tick_s if budget_s is None else budget_s) * 1e9)

    def add(self, ps: PolledSocket) -> None:
        self._sockets[ps.fd] = ps
        self._epoll.register(ps.fd, _IN)

    def remove(self, ps: PolledSocket) -> None:
        self._routes.pop(ps.fd, None)
        if self._sockets.pop(ps.fd, None) is not None and not self._closed:
            self._epoll.unregister(ps.fd)

    def route(self, ps: PolledSocket, callback: Route | None) -> None:
        if callback is None:
            self._routes.pop(ps.fd, None)
        elif ps.fd in self._sockets:
            self._routes[ps.fd] = callback

    def want_write(self, ps: PolledSocket, on: bool) -> None:
        self._epoll.modify(ps.fd, _IN | _OUT if on else _IN)

    def poll(self, budget_ns: int | None = None) -> int:
        """Read every socket with data, write what waits on writable ones; returns the sockets seen.

        With ``budget_ns``, stop once that long has gone (checked every ``BUDGET_EVERY`` sockets) and set
        ``behind``: the sockets not seen stay ready, for the next call. With the C pass
        (``bench._native.poll_replies``), routed sockets are read there (``PASS_EVENTS`` sockets a pass at
        most, then ``behind``) and every other ready socket, and every read the pass made but did not take,
        comes back here in epoll's order; without it, this reads them all.
        """
        self.behind = False
        poll_replies = twins.poll_replies
        if poll_replies is not None:
            seen, ready, offset, now, routed_bytes, coalesced = poll_replies(
                self._epoll.fileno(), self._routes, self.clock, PASS_EVENTS, READ_BYTES, MAX_READS)
            if routed_bytes:
                stats = self.stats
                stats.bytes_received += routed_bytes
                stats.coalesced_replies += coalesced
            if seen >= PASS_EVENTS:
                self.behind = True
        else:
            events = self._epoll.poll(0)
            seen = len(events)
            ready = [(fd, mask, None, -1) for fd, mask in events]
            if ready:
                # realtime - run clock, read once per tick: the kernel stamps receive times in CLOCK_REALTIME
                now = self.clock()
                offset = time.time_ns() - now
        if not ready:
            return seen
        return seen - self._handle(ready, offset, now, budget_ns)

    def _handle(self, ready: _Slow, offset: int, now: int, budget_ns: int | None) -> int:
        """The ready sockets ``poll`` reads here, as ``(fd, events, data, stamp_ns)`` (``data``: a read the C
        pass already made, or None); returns how many the budget left ready for the next call."""
        clock = self.clock
        deadline = now + budget_ns if budget_ns is not None else None
        sockets = self._sockets
        last = len(ready) - 1
        unread = left = 0
        cut = False
        for k, (fd, mask, data, stamp) in enumerate(ready):
            ps = sockets.get(fd)
            if data is not None:  # read already: handled now, whatever the budget
                if ps is not None:
                    ps.on_readable(offset, now, data, stamp)
                continue
            if cut:
                left += 1  # it stays ready: the next call reads it
                continue
            if ps is not None:
                if mask & _OUT:
                    ps.on_writable()
                if mask & _IN and ps.fd >= 0:
                    ps.on_readable(offset, now)
            unread += 1
            if deadline is not None and not unread % BUDGET_EVERY and k < last and clock() >= deadline:
                cut = self.behind = True
                self.cut_ticks += 1
        return left

    def start(self) -> None:
        """Poll every tick from now until ``close``: a timer callback, not a task (a sleeping task costs a
        future and a second turn of the loop per tick, a thousand times a second)."""
        if self._tick is None and not self._closed:
            self._tick = self.loop.call_later(self.tick_s, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        try:
            self.poll(self._budget_ns)
        finally:  # a protocol's bug is the loop's to report; the other sockets are still read
            self.ticks += 1
            if not self._closed:
                # Behind (a burst of replies, say after the server stalled): carry on at the loop's next
                # turn, after the timers due meanwhile (the scheduler's sends), not a tick later.
                self._tick = (self.loop.call_soon(self._on_tick) if self.behind
                              else self.loop.call_later(self.tick_s, self._on_tick))

    def close(self) -> None:
        """Stop the ticks, abort every socket still open and release the epoll descriptor."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        for ps in list(self._sockets.values()):
            ps.abort()
        self._closed = True
        self._epoll.close()
