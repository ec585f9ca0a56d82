"""The reference target's HTTP and WebSocket layer on aiohttp: thin, with routes at module level.

Everything the protocol decides happens in the sans-I/O parts: ``bench.protocol.parse_envelope`` parses,
``ingest.Ingest`` decides what is stored and acknowledged, ``faults.Faults`` and ``limits.TokenBuckets``
decide the faults and the rate limit. This module reads the clocks, moves bytes and awaits the store.

WebSocket acknowledgements leave through one choke point per connection (``_Conn._send_ack``), in the order
the messages came in: the harness matches a reply to the oldest unanswered message of its connection
(contract.md, "Acknowledgements"). A connection reads ahead while earlier messages wait for their commit,
up to ``--max-unsent-acks`` messages, so one busy connection still fills a group commit.

A peer that does not read its acks is not read either: once its acks cannot leave, the sender waits, the
read-ahead fills up and the reader stops. If the peer then takes none of what is queued for it for
``--slow-peer-timeout-s``, it is closed with 1008 (policy: a client must read its acks) and counted in
``slow_closes`` (``_Conn.cut``). Its messages not yet acked stay unacked: stored or not by the usual rule,
re-sent by a real client and then acked as duplicates. Shutdown cuts such peers the same way once its
drain timeout is over, so it never waits on them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_websocket import WebSocketError

from bench.protocol.errors import MalformedMessage, MessageTooLarge
from bench.protocol.events import EventId
from bench.protocol.message import Envelope, encode_ack, parse_envelope
from bench.target.clock import Clock, MonotonicClock
from bench.target.config import TargetConfig
from bench.target.faults import NO_FAULT, Decision, Faults
from bench.target.gate import Gate
from bench.target.ingest import FAILED, AppStats, Ingest, Outcome, stats_json
from bench.target.limits import Limits, TokenBuckets, retry_after_header
from bench.target.store import Store

#: contract.md, "Endpoints": 1-64 characters of [A-Za-z0-9_-].
APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Close codes (RFC 6455, 7.4.1).
CLOSE_GOING_AWAY = int(WSCloseCode.GOING_AWAY)      # shutdown, idle timeout, --close-ratio
CLOSE_INVALID = int(WSCloseCode.INVALID_TEXT)       # 1007: not JSON, no data array
CLOSE_POLICY = int(WSCloseCode.POLICY_VIOLATION)    # 1008: the peer reads none of its acks
CLOSE_TOO_BIG = int(WSCloseCode.MESSAGE_TOO_BIG)    # 1009: over a size cap
CLOSE_ERROR = int(WSCloseCode.INTERNAL_ERROR)       # 1011: the store failed
CLOSE_TRY_AGAIN = int(WSCloseCode.TRY_AGAIN_LATER)  # 1013: a new appId over --max-apps
CLOSE_PROTOCOL = int(WSCloseCode.PROTOCOL_ERROR)    # 1002: a close frame with a code no one may send

_NS = 1_000_000_000


def _now_ms() -> float:
    return time.time() * 1000.0


class TargetState:
    """Everything the handlers share: config, ingest, store, faults, rate limit, open connections."""

    def __init__(self, config: TargetConfig, store: Store, start_ns: int,
                 clock: Clock | None = None) -> None:
        """``start_ns``: the target's start on ``clock`` (``MonotonicClock`` unless a test gives its own)."""
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.config = config
        self.limits = config.limits
        self.store = store
        self.ingest = Ingest(dedup_window_ns=round(config.dedup_window_s * _NS),
                             session_timeout_ms=config.session_timeout_s * 1000.0, now_ns=start_ns,
                             max_apps=config.max_apps, max_sessions=config.max_sessions,
                             dedup_max_keys=config.dedup_max_keys, max_devices=config.max_devices)
        self.faults = Faults(config.faults, start_ns)
        rate = config.limits.http_rate
        self.buckets = TokenBuckets(rate, config.limits.http_burst) if rate > 0 else None
        self.conns: set[_Conn] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.sweeper: asyncio.Task[None] | None = None
        #: Requests aiohttp refused before any route saw them (a bad request line, header or chunk).
        self.bad_requests = 0
        #: WebSockets closed because their peer read none of its acks (``_Conn.cut``).
        self.slow_closes = 0
        #: HTTP bodies not whole within ``--body-timeout-s`` (answered 408).
        self.body_timeouts = 0
        #: The door of the listening socket (the server sets it): connection cap and header timeout.
        self.gate: Gate | None = None

    async def stall(self, st: AppStats | None) -> None:
        """Wait out a ``--stall-ms`` window, if one is open now; count it against ``st`` if given."""
        now_ns = self.clock.now_ns()
        wait_ns = self.faults.stall_remaining_ns(now_ns)
        if wait_ns > 0:
            if st is not None:
                st.faults["stalled_messages"] += 1
            await self.clock.sleep_until(now_ns + wait_ns)

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


STATE = web.AppKey("state", TargetState)


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json",
                        headers=headers)


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(status, {"error": text}, headers)


def _bad_app(app_id: str) -> web.Response | None:
    if APP_ID.fullmatch(app_id):
        return None
    return _error(404, f"unknown appId {app_id[:80]!r}: 1-64 characters of A-Z a-z 0-9 _ -")


def _too_many_apps(state: TargetState) -> str:
    """Why a request naming a new app is refused (``Ingest.admit``): the HTTP error, the WebSocket reason."""
    return f"too many apps: this target tracks {state.config.max_apps} appIds (--max-apps)"


def _parse(data: bytes, limits: Limits) -> Envelope:
    """``parse_envelope`` with the caps; any value the core cannot read makes the message malformed.

    Raises:
        MessageTooLarge: over a cap.
        MalformedMessage: not JSON, no ``data`` array, or a value the core chokes on (a ``sessionId`` of
            thousands of digits raises ValueError there): a server answers bad input, it does not crash.
    """
    try:
        return parse_envelope(data, max_bytes=limits.max_bytes, max_events=limits.max_events)
    except ValueError as exc:
        raise MalformedMessage(f"unreadable value: {exc}") from None


def _write(state: TargetState, outcome: Outcome) -> None:
    """Hand ``outcome.rows`` to the store and settle its keys when the write is done (or now, if it is).

    The settling is a callback of the store's future, not of the connection waiting for the ack: it
    happens once per write even when the client has gone (contract.md, "Acknowledgements": keys enter the
    duplicate index when their write commits, not before).
    """
    ingest = state.ingest
    waiter = state.store.write(outcome.rows)
    outcome.hold.waiter = waiter
    if waiter is None:
        ingest.settle(outcome, None)
    else:
        waiter.add_done_callback(lambda done: ingest.settle(
            outcome, asyncio.CancelledError() if done.cancelled() else done.exception()))


async def _durable_ids(outcome: Outcome) -> list[EventId]:
    """The ids to ack once stored: ``outcome``'s own write, then the originals its duplicates wait for.

    Raises:
        Exception: the message's own write failed (nothing of it is durable; no ack may go out).
    """
    waiter = outcome.hold.waiter
    if waiter is not None:
        await waiter
    if not outcome.waits:
        return outcome.ack_ids
    failed: set[int] = set()
    for index, hold in outcome.waits:
        other = hold.waiter
        if other is None:
            lost = hold.state == FAILED
        else:  # the future itself: its settle callback may not have run yet
            if not other.done():
                await asyncio.wait([other])
            lost = other.cancelled() or other.exception() is not None
        if lost:
            failed.add(index)  # its original was not stored: neither is it; the client keeps it queued
    if not failed:
        return outcome.ack_ids
    return [eid for index, eid in enumerate(outcome.ack_ids) if index not in failed]


def _count_decision(st: AppStats, decision: Decision, ids: list[EventId]) -> None:
    faults = st.faults
    if decision.delay_ns > 0:
        faults["delayed_messages"] += 1
    if decision.lie:
        faults["lied_messages"] += 1
        faults["lied_ids"] += len(ids)


# --------------------------------------------------------------------------------------------- WebSocket


class _Ack:
    __slots__ = ("deadline_ns", "drop", "outcome")

    def __init__(self, outcome: Outcome, deadline_ns: int, drop: bool) -> None:
        self.outcome = outcome
        self.deadline_ns = deadline_ns
        self.drop = drop


class _AcksFirstResponse(web.WebSocketResponse):
    """A WebSocket whose every close first waits for the acks its connection owes (``owed``).

    aiohttp closes a WebSocket itself, inside ``receive()``, when a frame breaks RFC 6455 (1002) or the size
    cap (1009). The acks of earlier messages still waiting on the store would then never leave, though their
    events are stored: replies go out in message order, the close being the reply to the last message
    (contract.md, "Acknowledgements").
    """

    __slots__ = ("owed",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owed: Callable[[], Awaitable[None]] | None = None

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        if self.owed is not None and not self.closed:
            await self.owed()
        return await super().close(code=code, message=message, drain=drain)


class _Conn:
    """One WebSocket: a reader loop (the handler) and, while acks wait on the store, a sender task."""

    __slots__ = ("app_id", "close_code", "closing", "cut_off", "last_rx_ns", "pending", "room", "sender",
                 "st", "state", "transport", "unread_since_ns", "unread_size", "ws")

    def __init__(self, state: TargetState, ws: _AcksFirstResponse, app_id: str,
                 transport: asyncio.Transport | None) -> None:
        self.state = state
        self.ws = ws
        ws.owed = self.owed
        self.transport = transport
        self.app_id = app_id
        self.st = state.ingest.stats(app_id)
        self.pending: deque[_Ack] = deque()
        self.sender: asyncio.Task[None] | None = None
        self.room = asyncio.Event()
        self.closing = False
        self.close_code = int(WSCloseCode.OK)
        #: Set by ``cut``: no more frames go out, the reader lingers until the socket is gone.
        self.cut_off = False
        self.last_rx_ns = state.clock.now_ns()
        # What the sweeper last saw queued for the peer, and since when (``unread_for``).
        self.unread_size = 0
        self.unread_since_ns = self.last_rx_ns

    async def serve(self) -> None:
        st = self.st
        st.conn_open += 1
        st.conn_total += 1
        self.state.conns.add(self)
        receive = self.ws.receive
        try:
            while not self.closing:
                msg = await receive()
                handler = _WS_HANDLERS.get(msg.type)
                if handler is None or not await handler(self, msg.data):
                    break
        except ConnectionError:  # the peer went away while an ack was being written
            pass
        finally:
            self.closing = True
            await self.finish()
            if self.cut_off:
                await self._linger()
            self.state.conns.discard(self)
            st.conn_open -= 1

    def stop(self, code: int) -> None:
        """Close after the acks already due have gone out (shutdown, idle timeout)."""
        if not self.closing:
            self.closing = True
            self.close_code = code
            self.state.spawn(self.finish())

    async def owed(self) -> None:
        """Wait until every ack still due has gone out (the sender ends when none is left)."""
        sender = self.sender
        if sender is not None:
            await asyncio.wait([sender])

    async def finish(self) -> None:
        """Send every ack still due, then close with ``close_code``."""
        await self.owed()
        if not self.ws.closed and not self.cut_off:
            await self.ws.close(code=self.close_code)

    def unread_for(self, now_ns: int) -> int:
        """How long the peer has taken none of the bytes queued for it: 0 when none are queued, or when the
        queue changed since the last look (the peer read some, or more acks could be written).

        The queue is the transport's write buffer, which holds bytes only once the kernel's send buffer is
        full: a peer that reads its acks, however slowly, keeps it moving or empty. The sweeper looks about
        once a second, so this costs the ack path nothing.
        """
        transport = self.transport
        size = 0 if transport is None or transport.is_closing() else transport.get_write_buffer_size()
        if size == 0 or size != self.unread_size:
            self.unread_size = size
            self.unread_since_ns = now_ns
            return 0
        return now_ns - self.unread_since_ns

    def cut(self, code: int, reason: bytes, grace_s: float) -> None:
        """Close a peer that reads nothing, without waiting on it (the sender may be stuck on its drain).

        A close frame with ``code`` goes after the acks already queued (aiohttp writes whole frames, so the
        stream stays well framed), then the end of our side of the stream (a FIN once the peer has taken
        all that). Acks not written yet are never written (``_send_ack`` refuses, as for a lost
        connection). The reader then reads and drops what the peer still sends (``_linger``): closing a
        socket with unread bytes resets it, which would destroy the close frame on its way. After
        ``grace_s`` the socket is aborted, read or not; at once if ``grace_s`` is 0 or the peer was cut
        already (shutdown, past its drain timeout).
        """
        self.closing = True
        self.close_code = code
        self.room.set()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.cut_off or grace_s <= 0 or not transport.can_write_eof():
            self.cut_off = True
            transport.abort()
            return
        self.cut_off = True
        # RFC 6455, 5.5.1: a server's close frame, unmasked: the code, then a reason of at most 123 bytes.
        payload = code.to_bytes(2, "big") + reason[:123]
        transport.write(bytes((0x88, len(payload))) + payload)
        transport.write_eof()
        # Even if the peer closes first: one that half-closes without reading would hold a closing socket.
        asyncio.get_running_loop().call_later(grace_s, transport.abort)

    async def _linger(self) -> None:
        """After ``cut``: read and drop until the peer closes, or the socket is aborted."""
        receive = self.ws.receive
        while (await receive()).type not in _ENDS:
            pass

    async def on_data(self, data: bytes) -> bool:
        """One text or binary message: parse, ingest, store, queue its ack. False: stop reading."""
        if self.closing:
            return False
        state, st = self.state, self.st
        self.last_rx_ns = now_ns = state.clock.now_ns()
        if state.faults.stalls:
            await state.stall(st)
            now_ns = state.clock.now_ns()
        try:
            envelope = _parse(data, state.limits)
        except MessageTooLarge:
            st.oversized_messages += 1
            self.close_code = CLOSE_TOO_BIG
            return False
        except MalformedMessage:
            st.malformed_messages += 1
            self.close_code = CLOSE_INVALID
            return False
        decision = state.faults.decide()
        outcome = state.ingest.accept(self.app_id, envelope, received_ms=_now_ms(), now_ns=now_ns,
                                      store=not decision.lie)
        _write(state, outcome)
        if decision is NO_FAULT and outcome.hold.waiter is None and not outcome.waits and not self.pending:
            await self._send_ack(outcome.ack_ids, False)  # the memory store's fast path: nothing to wait for
            return True
        _count_decision(st, decision, outcome.ack_ids)
        deadline = now_ns + decision.delay_ns if decision.delay_ns else 0
        self.pending.append(_Ack(outcome, deadline, decision.drop_ack))
        if self.sender is None:
            self.sender = asyncio.ensure_future(self._drain())
        if decision.close:
            self.close_code = CLOSE_GOING_AWAY
            st.faults["closed_connections"] += 1
            return False
        if len(self.pending) >= state.limits.max_unsent_acks:
            self.room.clear()
            await self.room.wait()
        return True

    async def _drain(self) -> None:
        """The sender: each pending ack in order, once stored, delayed and not stalled."""
        state, pending = self.state, self.pending
        room = state.limits.max_unsent_acks
        try:
            while pending:
                item = pending[0]
                ids = await _durable_ids(item.outcome)  # raises if the commit failed
                if item.deadline_ns:
                    await state.clock.sleep_until(item.deadline_ns)
                if state.faults.stalls:
                    await state.stall(None)  # acks wait too; the message was counted when it came in
                pending.popleft()
                await self._send_ack(ids, item.drop)
                if len(pending) < room:
                    self.room.set()
        except ConnectionError:
            pending.clear()
        except Exception as exc:  # the store failed: the events are not durable, so no ack goes out
            print(f"nucleus-bench target: store error: {exc}", file=sys.stderr, flush=True)
            pending.clear()
            self.stop(CLOSE_ERROR)
        finally:
            self.sender = None
            self.room.set()

    async def _send_ack(self, ids: list[EventId], drop: bool) -> None:
        """The one place a WebSocket ack is written (contract.md: exactly ``{"reportedIds": [...]}``)."""
        if self.cut_off:  # after the close frame, and after our end of the stream
            raise ConnectionResetError("the peer read none of its acks: cut off")
        if drop:
            faults = self.st.faults
            faults["dropped_ack_messages"] += 1
            faults["dropped_ack_ids"] += len(ids)
            return
        await self.ws.send_frame(encode_ack(ids), WSMsgType.TEXT)
        self.st.acked += len(ids)


def _echo_code(code: int) -> int:
    """The code to answer a client's close frame with (RFC 6455 7.4): its own, when it may be sent.

    0 is a close frame without a code: answered 1000. 1005, 1006 and 1015 must never be sent, and codes
    outside 1000-1003, 1007-1014 and 3000-4999 are not defined: a close frame carrying one is a protocol
    error (1002), never echoed (aiohttp passes 1006 and codes from 5000 on).
    """
    if code == 0:
        return int(WSCloseCode.OK)
    if 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999:
        return code
    return CLOSE_PROTOCOL


async def _on_close(conn: _Conn, data: Any) -> bool:
    # The client's close frame: its acks still due go out first (autoclose is off for that), then ours.
    conn.close_code = _echo_code(data) if isinstance(data, int) else int(WSCloseCode.OK)
    return False


async def _on_closed(conn: _Conn, data: Any) -> bool:
    return False


async def _on_error(conn: _Conn, data: Any) -> bool:
    # aiohttp refuses a frame over max_msg_size before buffering it, and closes with 1009 itself.
    if isinstance(data, WebSocketError) and data.code == WSCloseCode.MESSAGE_TOO_BIG:
        conn.st.oversized_messages += 1
    return False


#: What ends ``_Conn._linger``: the connection is gone, or the peer's close frame (it has read ours).
_ENDS = frozenset((WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR))

_WS_HANDLERS: dict[WSMsgType, Callable[[_Conn, Any], Awaitable[bool]]] = {
    WSMsgType.TEXT: _Conn.on_data,
    WSMsgType.BINARY: _Conn.on_data,  # the Swift module sends its JSON in binary frames
    WSMsgType.CLOSE: _on_close,
    WSMsgType.CLOSING: _on_closed,
    WSMsgType.CLOSED: _on_closed,
    WSMsgType.ERROR: _on_error,
}


async def track_ws(request: web.Request) -> web.StreamResponse:
    """``GET /app/{appId}/track``, ``/{appId}/``, ``/{appId}``: the WebSocket tracking endpoint."""
    return await _serve_ws(request, request.match_info["app_id"])


async def _serve_ws(request: web.Request, app_id: str) -> web.StreamResponse:
    refused = _bad_app(app_id)
    if refused is not None:
        return refused
    state = request.app[STATE]
    # +1: aiohttp refuses a frame of max_msg_size bytes or more; the cap allows max_bytes itself.
    ws = _AcksFirstResponse(autoclose=False, compress=False, decode_text=False,
                               max_msg_size=state.limits.max_bytes + 1)
    await ws.prepare(request)
    if state.ingest.admit(app_id) is None:
        await ws.close(code=CLOSE_TRY_AGAIN, message=_too_many_apps(state).encode())
        return ws
    await _Conn(state, ws, app_id, request.transport).serve()
    return ws


# ------------------------------------------------------------------------------------------------- HTTP


async def track_http(request: web.Request) -> web.StreamResponse:
    """``POST /app/{appId}/track``: one batch, answered ``200 {"reportedIds": [...]}`` once stored."""
    app_id = request.match_info["app_id"]
    refused = _bad_app(app_id)
    if refused is not None:
        return refused
    state = request.app[STATE]
    st = state.ingest.admit(app_id)
    if st is None:
        return _error(503, _too_many_apps(state))
    if state.buckets is not None:
        wait_s = state.buckets.take(request.remote or "", state.clock.now_ns())
        if wait_s > 0:
            st.rate_limited += 1
            return _error(429, "rate limited", {"Retry-After": retry_after_header(wait_s)})
    limits = state.limits
    size = request.content_length
    if size is not None and size > limits.max_bytes:
        st.oversized_messages += 1
        return _error(413, f"body is {size} bytes, the limit is {limits.max_bytes}")
    try:
        body = await _read_body(request, limits.body_timeout_s)
    except TimeoutError:
        state.body_timeouts += 1
        return _late_body(request, limits.body_timeout_s)
    except web.HTTPRequestEntityTooLarge:
        st.oversized_messages += 1
        return _error(413, f"body is over the limit of {limits.max_bytes} bytes")
    except (web.RequestPayloadError, ConnectionError) as exc:  # undecodable, or cut off mid-body
        st.malformed_messages += 1
        return _unreadable_body(request, exc)
    if state.faults.stalls:
        await state.stall(st)
    try:
        envelope = _parse(body, limits)
    except MessageTooLarge as exc:
        st.oversized_messages += 1
        return _error(413, str(exc))
    except MalformedMessage as exc:
        st.malformed_messages += 1
        return _error(400, str(exc))
    decision = state.faults.decide()
    arrived_ns = state.clock.now_ns()
    outcome = state.ingest.accept(app_id, envelope, received_ms=_now_ms(), now_ns=arrived_ns,
                                  store=not decision.lie)
    _write(state, outcome)
    if decision is not NO_FAULT:
        _count_decision(st, decision, outcome.ack_ids)
    return await _http_reply(request, state, st, outcome, decision, arrived_ns)


async def _read_body(request: web.Request, timeout_s: float) -> bytes:
    """The whole body. Raises TimeoutError when it is not whole within ``timeout_s`` (0: no limit).

    A body already whole (the usual case: it came with its head) is read without a timer.
    """
    if timeout_s <= 0 or request.content.is_eof():
        return await request.read()
    async with asyncio.timeout(timeout_s):
        return await request.read()


def _late_body(request: web.Request, timeout_s: float) -> web.Response:
    """408 for a body not whole within ``--body-timeout-s``; the connection closes after the reply.

    As for an unreadable body, the body stream is marked finished: the rest of it is never read.
    """
    request.content.feed_eof()
    response = _error(408, f"the body did not arrive within {timeout_s:g} s (--body-timeout-s)")
    response.force_close()
    return response


def _one_line(exc: BaseException) -> str:
    """An exception as one line: aiohttp's parser errors span several (the bad bytes and a caret)."""
    text = str(getattr(exc, "message", None) or exc).strip()
    return " ".join(text.splitlines()[0].split()).rstrip(":") if text else type(exc).__name__


def _unreadable_body(request: web.Request, exc: Exception) -> web.Response:
    """A body aiohttp cannot read (a Content-Encoding it cannot decode, a broken chunk): 400, one line.

    The connection is closed after the reply: what is left of the body cannot be read either. The body
    stream is marked finished, or aiohttp would try to drain it after the reply and log that failure
    with a traceback ("Unhandled exception").
    """
    detail = _one_line(exc.__cause__ or exc)
    print(f"nucleus-bench target: unreadable body from {request.remote}: {detail}", file=sys.stderr,
          flush=True)
    request.content.feed_eof()
    response = _error(400, f"unreadable body: {detail}")
    response.force_close()
    return response


async def _http_reply(request: web.Request, state: TargetState, st: AppStats, outcome: Outcome,
                      decision: Decision, arrived_ns: int) -> web.StreamResponse:
    try:
        ids = await _durable_ids(outcome)
    except Exception as exc:  # the store failed: nothing is durable, say so
        return _error(503, f"store error: {exc}")
    if decision.delay_ns:  # no sooner than the delay after the request arrived, as on a WebSocket
        await state.clock.sleep_until(arrived_ns + decision.delay_ns)
    if state.faults.stalls:
        await state.stall(None)
    if decision.drop_ack:
        # The ack is never sent: the connection is cut without a response (the client cannot tell
        # whether the batch was stored, as with a real network failure). Cancelling the handler is how
        # aiohttp drops a request without writing anything, and without logging it.
        st.faults["dropped_ack_messages"] += 1
        st.faults["dropped_ack_ids"] += len(ids)
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    response = _json(200, {"reportedIds": ids})
    if decision.close:
        st.faults["closed_connections"] += 1
        response.force_close()
    st.acked += len(ids)
    return response


# ------------------------------------------------------------------------------------------------ stats


def _stats_refused(request: web.Request) -> web.Response | None:
    """api.md: loopback clients only, unless ``--stats-token`` is set (then the bearer token, from anyone)."""
    token = request.app[STATE].config.stats_token
    if token is not None:
        if request.headers.get("Authorization") == f"Bearer {token}":
            return None
        return _error(401, "stats need Authorization: Bearer <token>")
    try:
        if ipaddress.ip_address(request.remote or "").is_loopback:
            return None
    except ValueError:
        pass
    return _error(403, "stats answer loopback clients only (start the target with --stats-token)")


async def all_stats(request: web.Request) -> web.StreamResponse:
    """``GET /stats``: the counters of every app, summed.

    A WebSocket handshake on ``/stats`` is the tracking endpoint of the appId "stats" (a valid appId: the
    ``/{appId}`` form of contract.md, "Endpoints", which this fixed route would otherwise shadow).
    """
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await _serve_ws(request, "stats")
    refused = _stats_refused(request)
    if refused is not None:
        return refused
    state = request.app[STATE]
    return _json(200, {**stats_json(state.ingest.apps.values()), **_target_counters(state),
                       "bounds": state.ingest.bounds()})


def _target_counters(state: TargetState) -> dict[str, int]:
    """Additions to api.md's shape for what no app owns: requests no route saw, and the connection limits
    (beside them, ``bounds``: what the target's bounded tables hold, ``Ingest.bounds``)."""
    gate = state.gate
    return {
        "bad_requests": state.bad_requests,
        "slow_closes": state.slow_closes,
        "body_timeouts": state.body_timeouts,
        "header_timeouts": gate.header_timeouts if gate is not None else 0,
        "refused_connections": gate.refused if gate is not None else 0,
    }


async def app_stats(request: web.Request) -> web.Response:
    """``GET /app/{appId}/stats``: the counters of one app (all zero for an app never seen)."""
    app_id = request.match_info["app_id"]
    refused = _bad_app(app_id) or _stats_refused(request)
    if refused is not None:
        return refused
    apps = request.app[STATE].ingest.apps
    return _json(200, stats_json([apps[app_id]] if app_id in apps else []))


async def stored_ids(request: web.Request) -> web.Response:
    """``GET /app/{appId}/stored-ids``: ``{"ids": [...]}``, one entry per stored event with an id.

    ``?by=event``: ``{"events": [[device, session, id, type, name, date], ...]}``, each stored event by its
    duplicate key (date: epoch ms, null when it had none): random ids collide, so reconciling them needs the
    whole key (contract.md, "Acknowledgements"). A store that keeps ids only answers 501.
    """
    app_id = request.match_info["app_id"]
    refused = _bad_app(app_id) or _stats_refused(request)
    if refused is not None:
        return refused
    store = request.app[STATE].store
    if request.query.get("by") == "event":
        events = await store.stored_events(app_id)
        if events is None:
            return _error(501, "this store keeps ids only (--store memory): events need a SQLite store")
        return _json(200, {"events": events})
    return _json(200, {"ids": await store.stored_ids(app_id)})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: (method, path, handler), registered in this order: fixed paths before ``/{app_id}``.
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/stats", all_stats),
    ("GET", "/app/{app_id}/stats", app_stats),
    ("GET", "/app/{app_id}/stored-ids", stored_ids),
    ("GET", "/app/{app_id}/track", track_ws),
    ("POST", "/app/{app_id}/track", track_http),
    ("GET", "/{app_id}/", track_ws),  # the form tracking-api.md gives (contract.md, "Endpoints")
    ("GET", "/{app_id}", track_ws),
)


# ------------------------------------------------------------------------------------------ life cycle


class RequestErrorLog(logging.Handler):
    """aiohttp's server log (``aiohttp.server``): a malformed request is one counted line, not a traceback.

    aiohttp answers a request its parser refuses (a bad request line, header or chunk) with 400 itself, and
    logs it with a traceback. Here that is a client's fault: one line, counted in ``GET /stats`` as
    ``bad_requests``. Anything else logged there is an error of the target and keeps its traceback.
    """

    def __init__(self, state: TargetState) -> None:
        super().__init__(logging.ERROR)
        self.state = state
        self.setFormatter(logging.Formatter("nucleus-bench target: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, web.RequestPayloadError):
            # A body left unread behind a reply (a 413 on its Content-Length), which aiohttp drains after it
            # and cannot decode (a corrupt Content-Encoding): the client's fault too, not an unhandled one.
            self.state.bad_requests += 1
            line = f"nucleus-bench target: unreadable body after the reply: {_one_line(exc.__cause__ or exc)}"
        elif isinstance(exc, HttpProcessingError | ConnectionError):
            self.state.bad_requests += 1
            line = f"nucleus-bench target: {record.getMessage()}: {_one_line(exc)}"
        else:
            line = self.format(record)
        print(line, file=sys.stderr, flush=True)


def install_request_log(state: TargetState) -> Callable[[], None]:
    """Route aiohttp's server log through ``RequestErrorLog``; returns the function that undoes it."""
    logger = logging.getLogger("aiohttp.server")
    handler = RequestErrorLog(state)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False

    def undo() -> None:
        logger.removeHandler(handler)
        logger.propagate = propagate

    return undo


async def _sweep(state: TargetState) -> None:
    """About once a second: close WebSockets whose peer read nothing queued for it for
    ``--slow-peer-timeout-s`` (1008), and those that received nothing (no events, no heartbeat) for
    ``--idle-timeout-s`` (1001)."""
    limits = state.limits
    slow_s, idle_s = limits.slow_peer_timeout_s, limits.idle_timeout_s
    slow_ns, idle_ns = round(slow_s * _NS), round(idle_s * _NS)
    period_s = min(1.0, slow_s / 4, idle_s / 4 if idle_s > 0 else 1.0)
    while True:
        await asyncio.sleep(period_s)
        now_ns = state.clock.now_ns()
        for conn in list(state.conns):
            if conn.closing:
                continue
            # Slow first: a stuck peer is silent too, and stop() would wait on its stuck sender.
            if conn.unread_for(now_ns) >= slow_ns:
                state.slow_closes += 1
                conn.cut(CLOSE_POLICY, b"acks not read", grace_s=slow_s)
            elif idle_ns and now_ns - conn.last_rx_ns > idle_ns:
                conn.st.idle_closed += 1
                conn.stop(CLOSE_GOING_AWAY)


async def _on_startup(app: web.Application) -> None:
    state = app[STATE]
    start = getattr(state.store, "start", None)
    if start is not None:
        start(asyncio.get_running_loop())
    state.sweeper = asyncio.ensure_future(_sweep(state))


async def _on_shutdown(app: web.Application) -> None:
    """Graceful shutdown: every WebSocket sends the acks it owes, then closes with 1001.

    Within ``--shutdown-timeout-s``: a WebSocket still open then (its peer reads neither its acks nor the
    close) is cut, so shutdown never waits on a peer that does not read.
    """
    state = app[STATE]
    if state.sweeper is not None:
        state.sweeper.cancel()
    for conn in list(state.conns):
        conn.stop(CLOSE_GOING_AWAY)
    timeout_s = state.config.shutdown_timeout_s
    await _closed(state, timeout_s)
    stuck = list(state.conns)
    for conn in stuck:
        conn.cut(CLOSE_GOING_AWAY, b"shutting down", grace_s=0)
    for task in list(state.tasks):
        task.cancel()  # a close still waiting for the peer's own close frame
    if stuck:
        print(f"nucleus-bench target: shutdown cut {len(stuck)} WebSocket(s) that took neither their acks "
              f"nor the close within {timeout_s:g} s", file=sys.stderr, flush=True)
    await _closed(state, timeout_s)  # cut or cancelled: they end at once


async def _closed(state: TargetState, timeout_s: float) -> None:
    """Wait until every WebSocket is closed and every close is done, or ``timeout_s`` is over.

    Shutdown only: it looks every 50 ms rather than hooking each connection's end.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (state.conns or state.tasks) and loop.time() < deadline:
        await asyncio.sleep(0.05)


async def _on_cleanup(app: web.Application) -> None:
    # After every handler is done: commit what is queued, close the file.
    await app[STATE].store.close()


def build_app(state: TargetState) -> web.Application:
    """The aiohttp application: the ``ROUTES`` table, the state and the life-cycle hooks."""
    app = web.Application(client_max_size=state.limits.max_bytes)
    app[STATE] = state
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app
