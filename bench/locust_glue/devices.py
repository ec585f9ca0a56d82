"""One simulated device per Locust user: it follows its plan and reports every send and reply.

Theory of operation
-------------------
A device takes its sends from ``Plan.iter_device`` (the same events the hot path sends for that device
and seed), shifted so that its plan starts when Locust starts its user. Its user calls ``tick()``, which
sends everything whose intended time has come, then sleeps ``wait_s()`` until the next intended time
(Locust's ``wait_time``): open loop per device, no waiting for acks. Lateness (actual - intended) is
the schedule lag; latency is measured from both the intended and the actual send time by the shared
``AckTracker`` (bench.metrics), which every device of the process reports to.

Locust's own statistics get one ``request`` event per acknowledged event (the tracker's counters say how
many a reply acknowledged; the device remembers each in-flight event's type and first send time to name
and time it, with sub-millisecond precision), one failure named ``rejected`` per refused event and one
named ``lost`` per event the tracker times out (fired by the run's housekeeping). The exact figures are
the tracker's histograms; Locust's rows are the live view.

- WebSocket (``WsDevice``): connects when its user starts, on either endpoint form (contract.md,
  "Endpoints"). A message due while the connection is down waits in a backlog, keeping its intended time,
  and the device reconnects on its next send without backoff, as the official modules do on their next
  report tick (contract.md, "Client behaviour worth simulating"). Events pending on a connection that
  closed stay pending until the ack timeout decides. An empty ``reportedIds`` answers an outstanding
  heartbeat, never a tracked message (as bench.transports.ws). A client device (a scenario's profiles,
  bench.fleet.clients) sends its profile's messages on its ticks, each event once (re-sending the unacked
  queue is the hot path's), drops its socket for an outage, and its acks are matched by wire id
  (``on_send_wire``, ``on_ws_ack_wire``).
- HTTP (``HttpDevice``): the plan already condenses the device's events into one request every
  ``http_flush_s``. Replies are handled by status class like bench.transports.http: 2xx acks by
  ``reportedIds``; 429 (or 503 with Retry-After) backs off and re-sends the same bytes; other statuses
  reject the batch; a connection error leaves it pending. When the run stops, the device posts the events
  it has created but not yet flushed, so every created event is accounted for.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import gevent

from bench.fleet import ClientSend, Send
from bench.fleet.clients import DROP, TICK
from bench.locust_glue.runstate import RunState, TransportBooks
from bench.locust_glue.wsclient import WsConnection
from bench.protocol.errors import ConnectFailed, EventRejected, MalformedAck, UsageError
from bench.protocol.events import Event, EventId
from bench.protocol.message import encode_events, parse_ack_ids
from bench.transports.common import read_ws_reply
from bench.transports.http import http_url, request_overhead, retry_after_s
from bench.transports.ws import ws_url

#: Longest sleep of an idle device between two looks at its plan.
IDLE_S = 1.0
MS = 1_000_000

#: A WebSocket message: (payload, ids, intended_ns, created_ns, events, wire ids of a client device or None).
_Item = tuple[bytes, tuple[EventId, ...], int, tuple[int, ...], tuple[Event, ...], tuple[EventId, ...] | None]
#: (request_type, name, response_time_ms, exception or None): one Locust ``request`` event.
Report = Callable[[str, str, float, BaseException | None], None]


def check_base_url(base_url: str | None) -> str:
    """The target's base URL, or UsageError when it is not ``http(s)://host[:port]``."""
    ok = bool(base_url) and str(base_url).startswith(("http://", "https://"))
    if ok:
        try:
            parts = urlsplit(str(base_url))
            ok = bool(parts.hostname) and (parts.port is None or parts.port > 0)  # .port: ValueError if bad
        except ValueError:
            ok = False
    if not ok or base_url is None:
        raise UsageError(f"host {base_url!r} is not a base URL http(s)://host[:port]: give --host (or the "
                         "web UI's host field) the target's, e.g. http://127.0.0.1:8000")
    return base_url


def endpoint_url(base_url: str, app_id: str, form: str) -> str:
    """The WebSocket URL of a target: ``/app/{appId}/track`` ("app") or ``/{appId}/`` ("short")."""
    url = ws_url(check_base_url(base_url), app_id)
    return url if form == "app" else url[: -len(f"/app/{app_id}/track")] + f"/{app_id}/"


def _ids(events: tuple[Event, ...]) -> tuple[EventId, ...]:
    return tuple(e.id for e in events if e.id is not None)


class _Device:
    """What both transports share: the plan walk, the clock offset and the ack reporting."""

    transport = ""

    def __init__(self, run: RunState, report: Report) -> None:
        self.run = run
        self.books: TransportBooks = run.book(self.transport)
        self.report = report
        self.index = run.new_device()
        # The plan's t=0 is this user's start (the fleet has no ramp: connect_at_ns is 0).
        self.offset_ns = run.clock() - run.plan.connect_at_ns(self.index)
        self._sends: Iterator[Send | ClientSend] = run.plan.mixed_device_sends(
            self.index, self.transport)  # type: ignore[arg-type]
        self._next: Send | ClientSend | None = next(self._sends, None)
        # id (a client device's: key) -> (type, first write ns, intended send ns), in send order
        self._inflight: dict[EventId, tuple[str, int, int]] = {}
        run.devices.append(self)

    def wait_s(self) -> float:
        """Seconds until the next intended send (at most ``IDLE_S``): Locust's ``wait_time``."""
        nxt = self._next
        if nxt is None or self.run.draining:
            return IDLE_S
        return min(IDLE_S, max(0.0, (nxt.at_ns + self.offset_ns - self.run.clock()) / 1e9))

    def _due(self) -> Iterator[Send | ClientSend]:
        """The sends whose intended time has come, each recorded in the schedule lag and the plan count."""
        books, off = self.books, self.offset_ns
        while (nxt := self._next) is not None and not self.run.draining:
            now = self.run.clock()
            if nxt.at_ns + off > now:
                return
            self._next = next(self._sends, None)
            books.lags_ns.append(now - nxt.at_ns - off)
            books.planned += len(nxt.ids)
            yield nxt

    def _remember(self, ids: tuple[EventId, ...], events: tuple[Event, ...], sent_ns: int,
                  intended_ns: int) -> None:
        """Note each tracked event by its id (a client device's: its key): type, first write, intended."""
        inflight = self._inflight
        for i, e in zip(ids, [e for e in events if e.id is not None], strict=True):
            inflight.setdefault(i, (e.TYPE.value, sent_ns, intended_ns))

    def _report_acks(self, kind: str, reported: tuple[EventId, ...], acked: int, rejected: int, now_ns: int,
                     created: Mapping[EventId, int] | None = None) -> None:
        """Fire ``acked`` successes (named by event type) and ``rejected`` failures for one reply.

        A success is timed from the event's first send, or from its creation when ``created`` has it; its
        raw and corrected latencies also go to its event type's histograms (bench.locust_glue.detail).
        """
        inflight, fired, detail = self._inflight, 0, self.books.detail
        for i in reported:
            entry = inflight.pop(i, None)
            if entry is None or fired >= acked:
                continue
            fired += 1
            detail.acked(entry[0], now_ns - entry[1], now_ns - entry[2])
            start = created.get(i, entry[1]) if created is not None else entry[1]
            self.report(kind, entry[0], (now_ns - start) / MS, None)
        for _ in range(rejected):
            self.report(kind, "rejected", 0.0, EventRejected("left out of reportedIds or refused"))

    def _prune(self, now_ns: int) -> None:
        """Forget in-flight entries older than the ack timeout (the tracker has counted them lost)."""
        inflight, horizon = self._inflight, now_ns - self.run.timeout_ns
        while inflight:
            first = next(iter(inflight))
            if inflight[first][1] > horizon:
                return
            del inflight[first]

    def final_flush(self) -> None:
        """The run stops: send what must still go (HTTP). Nothing to do by default."""

    def abandon_unsent(self, now_ns: int) -> int:
        """Hand never-written events to the tracker as sent now, so they end as lost. Returns how many."""
        return 0


class WsDevice(_Device):
    """A device streaming its events over one WebSocket connection at a time."""

    transport = "ws"

    def __init__(self, run: RunState, base_url: str, report: Report) -> None:
        # the URL first: a bad one must not leave a half-built device in the run's list
        url = endpoint_url(base_url, run.spec.app_id("ws"), run.spec.endpoint)
        super().__init__(run, report)
        self.url = url
        self._conn: WsConnection | None = None
        self._conn_id = 0
        self.wired = False  # a client device: replies name wire ids
        self.heartbeats_out = 0
        # (payload, ids, intended_ns, created_ns, events, wire ids or None): due while the connection was down
        self._backlog: list[_Item] = []

    def tick(self) -> None:
        """Connect if needed, send every due message (or backlog it), forget timed-out entries."""
        if self.run.draining:
            return
        # One connect attempt per tick: reconnect on the next send, without backoff, like the modules.
        tried = False
        if self._conn is None and (self._backlog or self._first_due()):
            self._connect()
            tried = True
        off = self.offset_ns
        for send in self._due():
            wire = None
            if type(send) is ClientSend:
                if send.action == DROP:  # an outage: the socket goes; the next send reconnects
                    if self._conn is not None:
                        self._conn.close()
                    continue
                if send.action == TICK:  # nothing new; the Locust user does not re-send its queue
                    continue
                wire = send.wire
            created = tuple(c + off for c in send.created_ns)
            item: _Item = (send.encoded, send.ids, send.at_ns + off, created, send.events, wire)
            if self._conn is None and not tried:
                self._connect()
                tried = True
            if self._conn is not None:
                self._write(*item)
            else:
                self._backlog.append(item)
        self._prune(self.run.clock())

    def _first_due(self) -> bool:
        nxt = self._next
        return nxt is not None and nxt.at_ns + self.offset_ns <= self.run.clock()

    def _connect(self) -> None:
        run, stats = self.run, self.books.stats
        conn_id = run.new_conn_id()
        conn = WsConnection(self.url, clock=run.clock, insecure=run.spec.insecure,
                            on_reply=lambda data, now: self._on_reply(conn_id, data, now),
                            on_closed=lambda: self._on_closed(conn_id, conn))
        started = run.clock()
        try:
            conn.open()
        except ConnectFailed as exc:
            stats.connect_errors += 1
            self.report("WS", "connect", (run.clock() - started) / MS, exc)
            return
        stats.connects += 1
        self.report("WS", "connect", (run.clock() - started) / MS, None)
        self._conn, self._conn_id, self.heartbeats_out = conn, conn_id, 0
        backlog, self._backlog = self._backlog, []
        for item in backlog:
            if self._conn is None:  # lost again while flushing: keep the rest for the next connection
                self._backlog.append(item)
            else:
                self._write(*item)

    def _write(self, payload: bytes, ids: tuple[EventId, ...], intended_ns: int, created_ns: tuple[int, ...],
               events: tuple[Event, ...], wire: tuple[EventId, ...] | None) -> None:
        """Register the message with the tracker, then write it (an ack cannot overtake its send)."""
        conn, books = self._conn, self.books
        assert conn is not None
        if ids:
            actual = self.run.clock()
            if wire is None:
                books.tracker.on_send(self._conn_id, ids, intended_ns, actual, created_ns)
            else:  # a client device: its ids on the wire may collide (bench.metrics.tracker)
                self.wired = True
                books.tracker.on_send_wire(self._conn_id, ids, wire, intended_ns, actual, created_ns)
            books.stats.messages_sent += 1
            self._remember(ids, events, actual, intended_ns)
        else:
            books.stats.heartbeats_sent += 1
            self.heartbeats_out += 1
        with contextlib.suppress(OSError):  # the receiver sees the connection end; the timeout decides
            books.stats.bytes_sent += conn.send_text(payload)

    def _on_reply(self, conn_id: int, data: bytes, now_ns: int) -> None:
        """One reply: an ack, a heartbeat's answer, or a measurement of a broken server."""
        books = self.books
        books.stats.bytes_received += len(data)
        reported = read_ws_reply(self, data, books.stats)
        if reported is None:
            return
        tracker = books.tracker
        acked, rejected = tracker.acked, tracker.rejected
        if self.wired:
            reported = tracker.on_ws_ack_wire(conn_id, reported, now_ns)  # the events' keys
        else:
            tracker.on_ws_ack(conn_id, reported, now_ns)
        books.reported.extend(reported)
        self._report_acks("WS", reported, tracker.acked - acked, tracker.rejected - rejected, now_ns)

    def _on_closed(self, conn_id: int, conn: WsConnection) -> None:
        if self._conn is conn:
            self._conn = None
        if not conn.closing:
            self.books.stats.closed_by_peer += 1
        self.books.tracker.on_conn_closed(conn_id, self.run.clock())

    def abandon_unsent(self, now_ns: int) -> int:
        total = 0
        if self._backlog:
            conn_id = self.run.new_conn_id()  # a connection that never existed: no reply can match it
            for _payload, ids, intended, created, _events, wire in self._backlog:
                if ids and wire is not None:
                    self.books.tracker.on_send_wire(conn_id, ids, wire, intended, now_ns, created)
                elif ids:
                    self.books.tracker.on_send(conn_id, ids, intended, now_ns, created)
                total += len(ids)
            self._backlog.clear()
        return total

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@dataclass(frozen=True, slots=True)
class HttpReply:
    """What came back for one POST. ``status`` 0: no answer (connection error or timeout)."""

    status: int
    body: bytes
    retry_after: str | None


@dataclass(slots=True)
class _Batch:
    """One POST of a batch: its tracker token, its events, and the handler's back-off verdict."""

    token: int
    events: tuple[Event, ...]
    created_ns: tuple[int, ...]
    retry_in: float | None = None


#: Posts one body to the tracking endpoint and calls ``handle`` with the reply inside the request's
#: measurement (the Locust user marks the request a failure when ``handle`` returns a reason).
Post = Callable[[bytes, Callable[[HttpReply], str | None]], None]


class HttpDevice(_Device):
    """A device that condenses its events in memory and posts them every ``http_flush_s``."""

    transport = "http"

    def __init__(self, run: RunState, base_url: str, post: Post, report: Report) -> None:
        url = http_url(check_base_url(base_url), run.spec.app_id("http"))  # before the run lists the device
        super().__init__(run, report)
        self.url = url
        self._post = post
        self._overhead = request_overhead(self.url, 0) - 1
        self._conn = run.new_conn_id()  # the tracker's connection for this device's requests

    def tick(self) -> None:
        off = self.offset_ns
        for send in self._due():
            created = tuple(c + off for c in send.created_ns)
            self._post_batch(send.events, send.at_ns + off, created)
        self._prune(self.run.clock())

    def final_flush(self) -> None:
        """Post the events created up to now that no flush has carried yet (called once, at the drain)."""
        now, off = self.run.clock(), self.offset_ns
        while (nxt := self._next) is not None:
            self._next = next(self._sends, None)
            keep = sum(1 for c in nxt.created_ns if c + off <= now)  # creation times are in order
            if keep == 0:
                break
            self.books.planned += len(_ids(nxt.events[:keep]))
            self._post_batch(nxt.events[:keep], min(nxt.at_ns + off, now),
                             tuple(c + off for c in nxt.created_ns[:keep]))
        self._next = None

    def _post_batch(self, events: tuple[Event, ...], intended_ns: int, created_ns: tuple[int, ...]) -> None:
        """POST one batch; on 429 back off by Retry-After and re-send, until the ack timeout would pass."""
        payload, books = encode_events(events), self.books
        ids = _ids(events)
        first_ns: int | None = None
        while True:
            actual = self.run.clock()
            first_ns = actual if first_ns is None else first_ns
            batch = _Batch(books.tracker.on_send(self._conn, ids, intended_ns, actual, created_ns),
                           events, created_ns)
            books.stats.messages_sent += 1
            books.stats.bytes_sent += len(payload) + self._overhead + len(str(len(payload)))
            self._remember(ids, events, actual, intended_ns)
            self._post(payload, functools.partial(self._handle, batch=batch))
            wait = batch.retry_in
            if wait is None or self.run.clock() + wait * 1e9 >= first_ns + self.run.timeout_ns:
                return  # done, or no retry can beat the ack timeout: the events stay pending
            gevent.sleep(wait)
            books.stats.retries += 1

    def _handle(self, reply: HttpReply, batch: _Batch) -> str | None:
        """Dispatch one reply by status class (``_STATUS``); returns why the request failed, or None."""
        self.books.stats.bytes_received += len(reply.body)
        if reply.status == 0:
            self.books.stats.request_errors += 1  # the server may have stored them: the timeout decides
            return "no answer (connection error or timeout)"
        return _STATUS.get(reply.status // 100, HttpDevice._on_refused)(self, reply, batch)

    def _on_ok(self, reply: HttpReply, batch: _Batch) -> str | None:
        books = self.books
        try:
            reported = parse_ack_ids(reply.body)
        except MalformedAck as exc:
            books.stats.malformed_replies += 1  # a measurement; the batch stays pending
            return f"malformed reply: {exc}"
        tracker, now = books.tracker, self.run.clock()
        acked, rejected = tracker.acked, tracker.rejected
        tracker.on_http_reply(self._conn, batch.token, reported, now)
        books.reported.extend(reported)
        created = {e.id: c for e, c in zip(batch.events, batch.created_ns, strict=True) if e.id is not None}
        # Locust rows of an HTTP event: its delivery delay (created -> acknowledged).
        self._report_acks("HTTP", reported, tracker.acked - acked, tracker.rejected - rejected, now, created)
        return None

    def _on_client_error(self, reply: HttpReply, batch: _Batch) -> str | None:
        if reply.status == 429:
            return self._back_off(reply, batch)
        self.books.stats.http_4xx += 1
        return self._refuse(reply, batch)

    def _on_server_error(self, reply: HttpReply, batch: _Batch) -> str | None:
        if reply.status == 503 and reply.retry_after is not None:
            return self._back_off(reply, batch)
        self.books.stats.http_5xx += 1
        return self._refuse(reply, batch)

    def _on_refused(self, reply: HttpReply, batch: _Batch) -> str | None:
        """1xx/3xx: not an answer the contract allows; the batch counts as refused."""
        self.books.stats.http_4xx += 1
        return self._refuse(reply, batch)

    def _refuse(self, reply: HttpReply, batch: _Batch) -> str:
        tracker = self.books.tracker
        rejected = tracker.rejected
        tracker.on_http_failure(self._conn, batch.token, self.run.clock(), retry=False)
        self.books.detail.refuse(reply.status, tracker.rejected - rejected)
        for _ in range(tracker.rejected - rejected):
            self.report("HTTP", "rejected", 0.0, EventRejected(f"batch refused with HTTP {reply.status}"))
        return f"HTTP {reply.status}"

    def _back_off(self, reply: HttpReply, batch: _Batch) -> str:
        """contract.md, "Limits": keep the events pending and re-send after Retry-After."""
        self.books.stats.http_429 += 1
        self.books.tracker.on_http_failure(self._conn, batch.token, self.run.clock(), retry=True)
        batch.retry_in = retry_after_s(reply.retry_after)
        return f"HTTP {reply.status}: retry after {batch.retry_in:g} s"


_Handler = Callable[[HttpDevice, HttpReply, _Batch], "str | None"]
#: Table dispatch by status class, as bench.transports.http.
_STATUS: dict[int, _Handler] = {
    2: HttpDevice._on_ok,
    4: HttpDevice._on_client_error,
    5: HttpDevice._on_server_error,
}
