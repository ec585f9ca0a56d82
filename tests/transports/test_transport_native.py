"""bench._native's framing, frame reader and reply parse (C) do what their Python twins do, byte for byte.

The WebSocket transport frames with ``frame_masked`` and reads with ``read_frames`` when ``bench._native`` is
built; ``frame_text_py`` and ``_WsConn._read_fast_py`` are the Python it stands in for, and
``parse_compact_ack`` answers only replies that orjson's strict parse reads to the same ids.
"""

from __future__ import annotations

import os
import select
import socket
import time
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transport_helpers import loopback_pair

import bench.protocol.message as ws_message
from bench.protocol.errors import MalformedAck
from bench.protocol.message import parse_ack_ids
from bench.transports import polled, ws
from bench.transports.common import TransportStats

native = pytest.importorskip("bench._native", reason="bench._native is not built (no C compiler at install)")


def orjson_ids(data: bytes) -> tuple[Any, ...] | str:
    """parse_ack_ids with the C twin off: the ids, or "malformed"."""
    saved = ws_message._compact
    ws_message._compact = None
    try:
        return parse_ack_ids(data)
    except MalformedAck:
        return "malformed"
    finally:
        ws_message._compact = saved


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

    def on_reply(self, data: bytes) -> None:
        self.calls.append(("reply", orjson_ids(bytes(data))))

    def on_ids(self, ids: tuple[int, ...]) -> None:
        self.calls.append(("reply", ids))

    _on_reported = on_ids

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
