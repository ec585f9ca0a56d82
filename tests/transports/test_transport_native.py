"""bench._native's framing, frame reader and reply parse (C) do what their Python twins do, byte for byte.

The WebSocket transport frames with ``frame_masked`` and reads with ``read_frames`` when ``bench._native`` is
built; ``frame_text_py`` and ``_WsConn._read_fast_py`` are the Python it stands in for, and
``parse_compact_ack`` answers only replies that orjson's strict parse reads to the same ids.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transport_helpers import loopback_pair, read_frame

from bench.native import switched
from bench.protocol.errors import MalformedAck
from bench.protocol.message import parse_ack_ids
from bench.transports import polled, ws
from bench.transports.common import TransportStats

native = pytest.importorskip("bench._native", reason="bench._native is not built (no C compiler at install)")


@pytest.fixture(scope="module", autouse=True)
def kernel_stamps() -> Iterator[None]:
    """The kernel stamps receives only while some socket asks for it, and turns that on a moment after the
    first one does (socket(7)), and off a moment after the last one closes: a socket that asks for the whole
    module, and a first stamped read, so that the tests' reads are stamped whatever ran before them."""
    ours, peer = loopback_pair()
    with ours, peer:
        ours.setsockopt(socket.SOL_SOCKET, polled.SO_TIMESTAMPNS, 1)
        deadline = time.monotonic() + 10.0
        stamp = -1
        while stamp < 0 and time.monotonic() < deadline:
            peer.sendall(b"x")
            wait_readable(ours)
            stamp = native.recv_stamped(ours.fileno(), 100)[1]
            time.sleep(0.005)
        assert stamp >= 0, "the kernel gave no receive time in 10 s"
        yield


def orjson_ids(data: bytes) -> tuple[Any, ...] | str:
    """parse_ack_ids with the C twin off: the ids, or "malformed"."""
    with switched("python"):
        try:
            return parse_ack_ids(data)
        except MalformedAck:
            return "malformed"


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 70001])
def test_frame_masked_is_frame_text_py(size: int) -> None:
    payload, mask = os.urandom(size), os.urandom(4)
    assert native.frame_masked(payload, mask) == ws.frame_text_py(payload, mask)


def test_frame_masked_draws_a_fresh_key_per_frame_when_given_none() -> None:
    """Without a key, each frame carries its own (RFC 6455, 5.3), past a refill of the pool (16,384 frames),
    and unmasking with it gives the payload back: the frame is ``frame_text_py`` with that key."""
    payload = b'{"data":[{"type":"event"}]}'
    keys = set()
    for _ in range(20_000):
        frame = native.frame_masked(payload)
        key = frame[2:6]
        assert frame == ws.frame_text_py(payload, key)
        keys.add(key)
    assert len(keys) > 19_000  # 32-bit keys: a few repeats by chance at most, never a fixed key


def test_frame_masked_refuses_a_bad_key() -> None:
    with pytest.raises(ValueError, match="mask must be 4 bytes"):
        native.frame_masked(b"x", b"abc")
    with pytest.raises(TypeError):
        native.frame_masked("x", b"abcd")
    with pytest.raises(TypeError):
        native.frame_masked()
    with pytest.raises(TypeError):
        native.frame_masked(b"x", b"abcd", b"")


ids_lists = st.lists(st.integers(0, 10**15 - 1), max_size=70)


@settings(max_examples=300, deadline=None)
@given(ids=ids_lists)
def test_compact_replies_parse_to_the_same_ids(ids: list[int]) -> None:
    data = b'{"reportedIds":[' + b",".join(b"%d" % i for i in ids) + b"]}"
    assert orjson_ids(data) == tuple(ids)
    assert native.parse_compact_ack(data) in (tuple(ids), None)
    if len(ids) <= 64:
        assert native.parse_compact_ack(data) == tuple(ids)
    assert parse_ack_ids(data) == tuple(ids)


REPLY_PIECES = [b'{"reportedIds":[', b"]}", b"1", b"0", b"01", b"-1", b",", b" ", b'"7"', b"1e3", b"1.0",
                b"9999999999999999", b"12345678901234567890", b"}", b"]", b"true", b'"reportedIds"', b":",
                b"\x00", b"\xff", b"[", b"{"]


@settings(max_examples=1000, deadline=None)
@given(parts=st.lists(st.sampled_from(REPLY_PIECES), max_size=12), head=st.booleans())
def test_any_reply_the_c_twin_accepts_orjson_reads_alike(parts: list[bytes], head: bool) -> None:
    """Over near-misses of the compact form: what the C twin answers, the strict parse answers the same."""
    data = (b'{"reportedIds":[' if head else b"") + b"".join(parts)
    fast = native.parse_compact_ack(data)
    if fast is not None:
        assert orjson_ids(data) == fast
    try:
        with_c: tuple[Any, ...] | str = parse_ack_ids(data)
    except MalformedAck:
        with_c = "malformed"
    assert with_c == orjson_ids(data)


# -- the fast reader ------------------------------------------------------------------------------------
def frame(payload: bytes, first: int = 0x81, masked: bool = False, length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    bit = 0x80 if masked else 0
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = bytes((first, bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, bit | 127)) + n.to_bytes(8, "big")
    return head + (b"\x00\x00\x00\x00" if masked else b"") + payload


class Recorder:
    """What ``_WsConn``'s fast reader calls, recorded: replies as parsed ids (or "malformed"), and the
    bytes handed to the protocol."""

    def __init__(self) -> None:
        self.inbuf = b""
        self.fast = True
        self.rx_ns: int | None = 5
        self.heartbeats_out = 0
        self.owner = SimpleNamespace(stats=TransportStats())
        self.calls: list[tuple[str, Any]] = []

    def on_reply(self, reply: bytes | tuple[int, ...], rx_ns: int | None) -> None:
        assert rx_ns == self.rx_ns  # every reply of a read carries the read's receive time
        self.calls.append(("reply", reply if isinstance(reply, tuple) else orjson_ids(bytes(reply))))

    def _read_protocol(self, data: bytes) -> None:
        self.calls.append(("protocol", bytes(data)))

    def state(self) -> tuple[Any, ...]:
        return self.calls, self.inbuf, self.fast, self.owner.stats.coalesced_replies


payloads = st.one_of(
    ids_lists.map(lambda ids: b'{"reportedIds":[' + b",".join(b"%d" % i for i in ids) + b"]}"),
    st.sampled_from([b'{"reportedIds": [1]}', b'{"reportedIds":["a"]}', b"not json", b"",
                     b'{"reportedIds":[1],"x":2}', b"x" * 200, b"y" * 70000]),
)
frames = st.one_of(
    payloads.map(frame),
    payloads.map(lambda p: frame(p, first=0x82)),
    st.sampled_from([frame(b"", first=0x89), frame(b"ab", first=0x01), frame(b"z", masked=True),
                     frame(b"q" * 10, length=1 << 40)]),
)


@settings(max_examples=400, deadline=None)
@given(chunks=st.lists(frames, max_size=6), cut=st.integers(0, 12), max_len=st.sampled_from((1 << 24, 150)))
def test_read_frames_is_the_python_fast_reader(chunks: list[bytes], cut: int, max_len: int) -> None:
    """The same replies, the same hand-over to the protocol, the same leftover, over whole and cut buffers
    (a partial frame at the end), frames of every length form, and frames of other kinds."""
    data = b"".join(chunks)
    data = data[:max(0, len(data) - cut)]
    c, py = Recorder(), Recorder()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(ws, "MAX_REPLY_BYTES", max_len)
        ws._WsConn._read_fast(c, data)  # type: ignore[arg-type]
        ws._WsConn._read_fast_py(py, data)  # type: ignore[arg-type]
    assert c.state() == py.state()


def test_read_frames_takes_a_split_frame_when_the_rest_comes() -> None:
    conn = Recorder()
    data = frame(b'{"reportedIds":[4,5]}') + frame(b'{"reportedIds":[6]}')
    ws._WsConn._read_fast(conn, data[:5])  # type: ignore[arg-type]
    assert conn.calls == [] and conn.inbuf == data[:5]
    ws._WsConn._read_fast(conn, data[5:])  # type: ignore[arg-type]
    assert conn.calls == [("reply", (4, 5)), ("reply", (6,))] and conn.inbuf == b""
    assert conn.owner.stats.coalesced_replies == 1


# -- the stamped read ---------------------------------------------------------------------------------
def wait_readable(sock: socket.socket) -> None:
    assert select.select([sock], [], [], 10.0)[0], "nothing arrived in 10 s"


def test_recv_stamped_reads_with_the_kernels_receive_time() -> None:
    ours, peer = loopback_pair()
    with ours, peer:
        ours.setsockopt(socket.SOL_SOCKET, polled.SO_TIMESTAMPNS, 1)
        with pytest.raises(BlockingIOError):
            native.recv_stamped(ours.fileno(), 100)
        before = time.time_ns()
        peer.sendall(b"hello")
        wait_readable(ours)
        after = time.time_ns()
        data, stamp = native.recv_stamped(ours.fileno(), 100)
        assert data == b"hello" and before <= stamp <= after
        peer.sendall(b"x" * 50)
        wait_readable(ours)
        assert native.recv_stamped(ours.fileno(), 20)[0] == b"x" * 20  # at most nbytes; the rest stays
        assert native.recv_stamped(ours.fileno(), 100)[0] == b"x" * 30
        peer.close()
        wait_readable(ours)
        assert native.recv_stamped(ours.fileno(), 100) == (b"", -1)  # end of stream


def test_recv_stamped_without_timestamps_says_so() -> None:
    ours, peer = loopback_pair()
    with ours, peer:
        peer.sendall(b"abc")
        wait_readable(ours)
        assert native.recv_stamped(ours.fileno(), 100) == (b"abc", -1)


def test_recv_stamped_refuses_bad_arguments() -> None:
    with pytest.raises(OSError):
        native.recv_stamped(10**6, 10)  # no such descriptor: EBADF, as recvmsg raises it
    with pytest.raises(ValueError):
        native.recv_stamped(-1, 10)
    with pytest.raises(ValueError):
        native.recv_stamped(0, 0)


# -- the C pass over ready sockets ------------------------------------------------------------------------
def server_frame(payload: bytes) -> bytes:
    """A server's frame (unmasked, final, text) around ``payload``."""
    n = len(payload)
    head = bytes((0x81, n)) if n < 126 else b"\x81\x7e" + n.to_bytes(2, "big")
    return head + payload


def ack(*ids: int) -> bytes:
    return server_frame(b'{"reportedIds":[' + b",".join(b"%d" % i for i in ids) + b"]}")


class Pass:
    """One epoll over loopback pairs, and poll_replies over it with a fixed clock."""

    NOW = 10**12

    def __init__(self, pairs: int, stamped: bool = True) -> None:
        self.epoll = select.epoll()
        self.pairs = [loopback_pair() for _ in range(pairs)]
        for ours, _ in self.pairs:
            if stamped:
                ours.setsockopt(socket.SOL_SOCKET, polled.SO_TIMESTAMPNS, 1)
            self.epoll.register(ours.fileno(), polled._IN)
        self.calls: list[tuple[int, tuple[int, ...], int]] = []
        self.routes: dict[int, Any] = {}

    def fd(self, k: int) -> int:
        return self.pairs[k][0].fileno()

    def route(self, k: int) -> None:
        fd = self.fd(k)
        self.routes[fd] = lambda ids, rx: self.calls.append((fd, ids, rx))

    def send(self, k: int, data: bytes) -> None:
        ours, peer = self.pairs[k]
        peer.sendall(data)
        wait_readable(ours)
        time.sleep(0.01)  # every segment of data is in

    def run(self, read_bytes: int = 8192, max_reads: int = 16) -> tuple[int, list[Any], int, int, int, int]:
        got: tuple[int, list[Any], int, int, int, int] = native.poll_replies(
            self.epoll.fileno(), self.routes, lambda: self.NOW, 64, read_bytes, max_reads)
        return got

    def close(self) -> None:
        self.epoll.close()
        for ours, peer in self.pairs:
            ours.close()
            peer.close()


def test_poll_replies_hands_routed_compact_replies_to_their_route_with_the_kernels_time() -> None:
    p = Pass(2)
    try:
        p.route(0)
        before = time.time_ns()
        p.send(0, ack(1, 2) + ack(3))
        seen, slow, offset, now, nbytes, coalesced = p.run()
        assert (seen, slow, now) == (1, [], Pass.NOW)
        assert offset + now >= before  # the realtime clock at the pass, mapped onto the run's clock
        (fd0, ids0, rx0), (fd1, ids1, rx1) = p.calls
        assert (fd0, ids0, fd1, ids1) == (p.fd(0), (1, 2), p.fd(0), (3,))
        assert rx0 == rx1 and before - offset <= rx0 <= now  # one read, one kernel time, never in the future
        assert (nbytes, coalesced) == (len(ack(1, 2) + ack(3)), 1)  # the first was read with a later one
        p.calls.clear()
        p.send(1, ack(4))  # not routed: left to the Python, unread
        seen, slow, _, _, nbytes, coalesced = p.run()
        assert seen == 1 and slow == [(p.fd(1), select.EPOLLIN, None, -1)] and not p.calls
        assert nbytes == coalesced == 0
        assert native.recv_stamped(p.fd(1), 100)[0] == ack(4)
    finally:
        p.close()


@pytest.mark.parametrize("data", [
    ack(1)[:-3],                                  # a partial frame: the protocol's reader keeps it
    ack(1) + ack(2)[:4],                          # complete replies, then a partial one
    ack(),                                        # an empty reply: the heartbeat rule is the Python's
    server_frame(b'{"reportedIds":[1],"x":2}'),   # not the compact reply: the Python parse
    b"\x88\x02\x03\xe8",                          # a close frame
    ack(5) + b"\x89\x00",                         # a reply, then a ping
    bytes((0x01, 2)) + b"ab",                     # a fragment
], ids=["partial", "then-partial", "empty", "not-compact", "close", "then-ping", "fragment"])
def test_poll_replies_gives_any_other_read_to_the_python_whole(data: bytes) -> None:
    p = Pass(1)
    try:
        p.route(0)
        p.send(0, data)
        seen, slow, offset, now, nbytes, _ = p.run()
        assert seen == 1 and not p.calls and nbytes == 0  # nothing of that read taken here
        [(fd, events, got, stamp)] = slow
        assert (fd, events, got) == (p.fd(0), select.EPOLLIN, data) and stamp - offset <= now + 10**9
        assert stamp > 0
    finally:
        p.close()


def test_poll_replies_leaves_an_untimed_read_and_the_end_of_stream_to_the_python() -> None:
    p = Pass(1, stamped=False)
    try:
        p.route(0)
        p.send(0, ack(1))
        assert p.run()[1] == [(p.fd(0), select.EPOLLIN, ack(1), -1)] and not p.calls  # untimed: the Python's
        p.pairs[0][1].shutdown(socket.SHUT_WR)
        wait_readable(p.pairs[0][0])
        [(fd, events, got, _)] = p.run()[1]
        assert (fd, got) == (p.fd(0), None) and events & select.EPOLLRDHUP  # the peer's end: not read here
    finally:
        p.close()


def test_poll_replies_reads_until_the_buffer_is_not_filled_and_stops_when_unrouted() -> None:
    p = Pass(1)
    try:
        fd = p.fd(0)
        calls: list[tuple[int, ...]] = []
        p.routes[fd] = lambda ids, rx: calls.append(ids)
        one = ack(7)
        p.send(0, one * 4)
        got = p.run(read_bytes=2 * len(one))
        assert got[1] == [] and calls == [(7,)] * 4  # two full reads, one empty
        assert got[4:] == (4 * len(one), 2)
        calls.clear()

        def unroute(ids: tuple[int, ...], rx: int) -> None:
            calls.append(ids)
            p.routes.pop(fd, None)  # the connection's reader takes over

        p.routes[fd] = unroute
        p.send(0, one * 4)
        slow = p.run(read_bytes=2 * len(one))[1]
        assert calls == [(7,)] * 2 and slow == [(fd, select.EPOLLIN, None, -1)]  # the Python reads the rest
        assert native.recv_stamped(fd, 100)[0] == one * 2
        p.routes[fd] = lambda ids, rx: calls.append(ids)
        p.send(0, one * 4)
        assert p.run(read_bytes=len(one), max_reads=2)[1] == [] and len(calls) == 4  # max_reads per pass
        assert native.recv_stamped(fd, 100)[0] == one * 2  # the rest waits for the next pass
    finally:
        p.close()


def test_poll_replies_passes_a_routes_exception_and_refuses_bad_arguments() -> None:
    p = Pass(1)
    try:
        def broken(ids: tuple[int, ...], rx: int) -> None:
            raise RuntimeError("a bug in the route")

        p.routes[p.fd(0)] = broken
        p.send(0, ack(1))
        with pytest.raises(RuntimeError, match="a bug in the route"):
            p.run()
        epfd = p.epoll.fileno()
        with pytest.raises(TypeError):
            native.poll_replies(epfd, [], lambda: 0, 64, 8192, 16)
        with pytest.raises(TypeError):
            native.poll_replies(epfd, {}, None, 64, 8192, 16)
        for bad in ((0, 8192, 16), (2000, 8192, 16), (64, 0, 16), (64, 1 << 20, 16), (64, 8192, 0)):
            with pytest.raises(ValueError):
                native.poll_replies(epfd, {}, lambda: 0, *bad)
        with pytest.raises(OSError):
            native.poll_replies(10**6, {}, lambda: 0, 64, 8192, 16)  # no such descriptor
    finally:
        p.close()


# -- frame and send in one step -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 125, 126, 4000, 65535, 65536])
def test_send_frame_writes_what_frame_text_builds(n: int) -> None:
    """The bytes on the wire are frame_text_py's with the same (fresh) key: header, key, masked payload."""
    ours, peer = loopback_pair()
    with ours, peer:
        payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        got = native.send_frame(ours.fileno(), payload)
        if isinstance(got, bytes):  # the kernel took part of a long frame: the rest is the caller's to write
            ours.setblocking(True)
            ours.sendall(got)
        frame, unmasked = read_frame(peer)
        key = frame[len(frame) - n - 4:len(frame) - n]
        assert frame == ws.frame_text_py(payload, key) and unmasked == payload
        assert len(frame) == polled.frame_length(n) and (got == len(frame) or isinstance(got, bytes))


def test_send_frame_returns_what_the_kernel_did_not_take_and_raises_other_failures() -> None:
    ours, peer = loopback_pair()
    with ours, peer:
        payload = b"x" * 60_000
        for _ in range(1000):  # the peer reads nothing: the socket's buffers fill
            got = native.send_frame(ours.fileno(), payload)
            if isinstance(got, bytes):
                break
        assert isinstance(got, bytes) and 0 < len(got) <= polled.frame_length(len(payload))
    broken, gone = loopback_pair()
    with broken:
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()  # a reset
        wait_readable(broken)
        with pytest.raises(OSError):
            native.send_frame(broken.fileno(), b"x")
    with pytest.raises(OSError):
        native.send_frame(10**6, b"x")  # no such descriptor
    with pytest.raises(ValueError):
        native.send_frame(-1, b"x")
    with pytest.raises(TypeError):
        native.send_frame(0, "text")
