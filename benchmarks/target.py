"""How many events the reference target stores per CPU-second of its own (``make perf-target``).

Run: ``.venv/bin/python -m benchmarks.target [--seconds S] [--repeats N] [--only CASE[,CASE]]
[--against PATH]``.

For each case (WebSocket with 1-, 10- and 50-event messages, HTTP with 50-event batches; SQLite and memory
stores) a client in a separate process drives the target at full speed over several loopback connections,
and the target's CPU time (user + system, all its threads, from its PID) is read before and after. The
figure is events acknowledged (= stored) per target CPU-second; the median of the repeats is printed.

The client is built to cost little: raw asyncio protocols on uvloop, WebSocket frames and HTTP requests
assembled from byte templates, a few messages in flight per connection. Every event has its own id (a
re-sent id would be a duplicate, acknowledged but not stored again) and each connection starts its
device's session with an ``init``.

Floors (printed as met / not met): 50-event messages into SQLite >= 100,000 events per target CPU-second;
1-event messages into memory >= 25,000 messages per target CPU-second.

``--against PATH`` measures another checkout's target (its ``bench`` package, e.g. the last commit's from
``git worktree add``) alternately with this one's, repeat by repeat, with the same client: an A/B on the
same noisy machine at the same moments. Each row then gives both medians, each run's figure, and their
ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import orjson

from bench.protocol.errors import UsageError
from bench.protocol.message import Transport
from bench.target.embedded import EmbeddedTarget


@dataclass(frozen=True, slots=True)
class Case:
    transport: Transport
    events: int            # events per message
    store: str             # "sqlite" or "memory"
    connections: int
    window: int            # messages in flight per connection

    @property
    def label(self) -> str:
        return f"{self.transport.upper()} {self.events}-event"

    @property
    def key(self) -> str:
        """The case's name for ``--only``: ``ws-50-sqlite``."""
        return f"{self.transport}-{self.events}-{self.store}"


@dataclass(frozen=True, slots=True)
class Floor:
    case: tuple[Transport, int, str]
    per_cpu: float
    unit: Literal["events", "messages"]


_SHAPES: tuple[tuple[Transport, int, int, int], ...] = (
    ("ws", 1, 16, 32), ("ws", 10, 16, 8), ("ws", 50, 16, 4), ("http", 50, 32, 1))
CASES = tuple(Case(transport, events, store, conns, window)
              for store in ("sqlite", "memory") for transport, events, conns, window in _SHAPES)
FLOORS = (Floor(("ws", 50, "sqlite"), 100_000, "events"), Floor(("ws", 1, "memory"), 25_000, "messages"))


# ------------------------------------------------------------------------------------------------ client

_PAYLOAD = b'{"screen":"settings","button":"save","count":3}'


def _event(kind: bytes, eid: int, device: bytes, now_ms: int) -> bytes:
    name = b'"name":"click",' if kind == b"event" else b""
    extra = b',"platform":"linux","osVersion":"6.1","totalRam":16,"version":"1.2.3","locale":"en-US"' \
        if kind == b"init" else b',"payload":' + _PAYLOAD
    return (b'{"type":"' + kind + b'",' + name + b'"sessionId":4242,"date":' + str(now_ms).encode()
            + b',"id":' + str(eid).encode() + b',"deviceId":"' + device + b'"' + extra + b"}")


class _Source:
    """Messages of one connection (one device): unique ids, an init first."""

    def __init__(self, conn: int, events: int) -> None:
        self.device = f"perf-device-{conn:04d}".encode()
        self.events = events
        self.next_id = conn * 1_000_000_000
        self.started = False

    def message(self) -> bytes:
        now_ms = int(time.time() * 1000)
        parts = []
        for _ in range(self.events):
            kind = b"event" if self.started else b"init"
            self.started = True
            self.next_id += 1
            parts.append(_event(kind, self.next_id, self.device, now_ms))
        return b'{"data":[' + b",".join(parts) + b"]}"


def _ws_frame(payload: bytes) -> bytes:
    # A masked text frame (RFC 6455, 5.2) with the all-zero mask key, so the payload goes out as it is.
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    return head + b"\x00\x00\x00\x00" + payload


class _Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.acked = 0
        self.running = True
        self.errors: list[str] = []


class _ClientProtocol(asyncio.Protocol):
    """One connection: keeps ``window`` messages in flight while ``counter.running``; counts acked ids."""

    def __init__(self, case: Case, conn: int, counter: _Counter, request_head: bytes) -> None:
        self.case = case
        self.source = _Source(conn, case.events)
        self.counter = counter
        self.request_head = request_head
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.in_flight = 0
        self.upgraded = case.transport == "http"
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, but quacks alike
        if self.case.transport == "ws":
            self.transport.write(self.request_head)
        else:
            self.ready.set_result(None)

    def fill(self) -> None:
        assert self.transport is not None
        out = []
        while self.counter.running and self.in_flight < self.case.window:
            body = self.source.message()
            if self.case.transport == "ws":
                out.append(_ws_frame(body))
            else:
                out.append(self.request_head + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.in_flight += 1
        if out:
            self.transport.write(b"".join(out))
        elif self.in_flight == 0 and not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                self._fail(bytes(self.buf[:80]).decode(errors="replace"))
                return
            del self.buf[:end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        replies = self._ws_replies() if self.case.transport == "ws" else self._http_replies()
        for reply in replies:
            self.in_flight -= 1
            self.counter.messages += 1
            self.counter.acked += len(orjson.loads(reply)["reportedIds"])
        if replies:
            self.fill()

    def _ws_replies(self) -> list[bytes]:
        buf, out, pos = self.buf, [], 0
        while len(buf) - pos >= 2:
            size, head = buf[pos + 1] & 0x7F, 2
            if size == 126:
                if len(buf) - pos < 4:
                    break
                size, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif size == 127:
                if len(buf) - pos < 10:
                    break
                size, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if len(buf) - pos < head + size:
                break
            if buf[pos] & 0x0F == 0x1:
                out.append(bytes(buf[pos + head:pos + head + size]))
            elif buf[pos] & 0x0F == 0x8:
                self._fail("the target closed the WebSocket")
            pos += head + size
        del buf[:pos]
        return out

    def _http_replies(self) -> list[bytes]:
        buf, out = self.buf, []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end]).lower()
            start = head.find(b"content-length:")
            size = int(head[start + 15:].split(b"\r\n", 1)[0]) if start >= 0 else 0
            if len(buf) < end + 4 + size:
                break
            if not head.startswith(b"http/1.1 200"):
                self._fail(head[:40].decode(errors="replace"))
            out.append(bytes(buf[end + 4:end + 4 + size]))
            del buf[:end + 4 + size]
        return out

    def _fail(self, why: str) -> None:
        self.counter.errors.append(why)
        self.counter.running = False
        for future in (self.ready, self.done):
            if not future.done():
                future.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self._fail(f"connection lost: {exc}")


async def _drive(case: Case, url: str, app_id: str, seconds: float,
                 pipe: multiprocessing.connection.Connection) -> dict[str, float | int | list[str]]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = f"/app/{app_id}/track"
    if case.transport == "ws":
        head = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    else:
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                "Content-Length: ").encode()
    loop = asyncio.get_running_loop()
    counter = _Counter()
    protocols: list[_ClientProtocol] = []
    for conn in range(case.connections):
        _, proto = await loop.create_connection(
            lambda conn=conn: _ClientProtocol(case, conn, counter, head), host, port)  # type: ignore[misc]
        protocols.append(proto)
    await asyncio.gather(*(p.ready for p in protocols))
    pipe.send("ready")
    pipe.recv()  # the parent has read the target's CPU time: go
    started = time.perf_counter()
    for proto in protocols:
        proto.fill()
    await asyncio.sleep(seconds)
    counter.running = False
    for proto in protocols:
        proto.fill()  # a connection with nothing in flight is done at once
    await asyncio.wait_for(asyncio.gather(*(p.done for p in protocols)), timeout=60)
    elapsed = time.perf_counter() - started
    for proto in protocols:
        if proto.transport is not None:
            proto.transport.close()
    return {"messages": counter.messages, "acked": counter.acked, "seconds": elapsed,
            "errors": counter.errors}


def _client_main(case: Case, url: str, app_id: str, seconds: float,
                 pipe: multiprocessing.connection.Connection) -> None:
    import uvloop

    pipe.send(uvloop.run(_drive(case, url, app_id, seconds, pipe)))


# ------------------------------------------------------------------------------------------------ runner


class TreeTarget(EmbeddedTarget):
    """The target of another checkout: ``python -c`` puts its root first on ``sys.path``, then runs
    ``bench.target`` from there (``EmbeddedTarget`` runs this checkout's)."""

    _BOOT = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
             "runpy.run_module('bench.target', run_name='__main__', alter_sys=True)")

    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root

    @property
    def argv(self) -> list[str]:
        mine = super().argv
        return [mine[0], "-c", self._BOOT, self.root, *mine[3:]]  # mine[1:3] is "-m bench.target"


def _tree(path: str) -> str:
    """The root of a checkout given to ``--against`` (it must hold ``bench/target``)."""
    root = os.path.abspath(path)
    if not os.path.isfile(os.path.join(root, "bench", "target", "__main__.py")):
        raise UsageError(f"--against {path}: no bench/target/__main__.py there (give a checkout's root)")
    return root


def _commit(root: str) -> str:
    """The short commit of the checkout at ``root`` (``+`` when its tree differs from it), or ``?``."""
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return head + ("+" if dirty else "")


def select_cases(only: list[str] | None) -> list[Case]:
    """The cases ``--only`` names (comma lists, repeatable), in table order; all of them without it."""
    if not only:
        return list(CASES)
    wanted = {k.strip() for item in only for k in item.split(",") if k.strip()}
    known = [c.key for c in CASES]
    unknown = sorted(wanted - set(known))
    if unknown:
        raise UsageError(f"--only: unknown case {unknown[0]!r}; cases: {', '.join(known)}")
    return [c for c in CASES if c.key in wanted]


@dataclass(frozen=True, slots=True)
class Result:
    messages: int
    events: int
    seconds: float
    cpu_s: float


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of every thread of ``pid`` (proc(5): fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _recv(pipe: multiprocessing.connection.Connection, proc: multiprocessing.process.BaseProcess,
          timeout_s: float, what: str) -> Any:
    """The client's next message, or an error as soon as the client is gone or late."""
    ready = multiprocessing.connection.wait([pipe, proc.sentinel], timeout_s)
    if pipe in ready:
        return pipe.recv()
    raise RuntimeError(f"the perf client {what} (exit code {proc.exitcode})")


def run_case(case: Case, target: EmbeddedTarget, seconds: float) -> Result:
    """One timed run of ``case`` against ``target``; the target's CPU time is read around it."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    app_id = uuid.uuid4().hex[:24]
    proc = ctx.Process(target=_client_main, args=(case, target.url, app_id, seconds, child), daemon=True)
    proc.start()
    try:
        if _recv(parent, proc, 60, "did not connect") != "ready":
            raise RuntimeError("the perf client said something else than ready")
        cpu0 = _cpu_s(target.pid)
        parent.send("go")
        report = _recv(parent, proc, seconds + 90, "did not finish")
        cpu1 = _cpu_s(target.pid)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    if report["errors"]:
        raise RuntimeError(f"{case.label} {case.store}: {report['errors'][0]}")
    return Result(int(report["messages"]), int(report["acked"]), float(report["seconds"]), cpu1 - cpu0)


def _median(results: list[Result], key: str) -> float:
    values = {
        "msg_s": [r.messages / r.seconds for r in results],
        "ev_s": [r.events / r.seconds for r in results],
        "cpu": [r.cpu_s / r.seconds for r in results],
        "ev_cpu": [r.events / r.cpu_s for r in results],
        "msg_cpu": [r.messages / r.cpu_s for r in results],
    }[key]
    return statistics.median(values)


def _floor_cell(case: Case, results: list[Result]) -> str:
    for floor in FLOORS:
        if floor.case == (case.transport, case.events, case.store):
            value = _median(results, "ev_cpu" if floor.unit == "events" else "msg_cpu")
            verdict = "met" if value >= floor.per_cpu else "NOT MET"
            return f">= {floor.per_cpu:,.0f} {floor.unit}/CPU-s: {verdict}"
    return ""


def print_table(rows: list[tuple[Case, list[Result]]]) -> None:
    header = (f"{'case':<16} {'store':<7} {'msgs/s':>9} {'events/s':>10} {'target CPU':>10} "
              f"{'events/CPU-s':>13} {'msgs/CPU-s':>11}  floor")
    print(header)
    print("-" * len(header))
    for case, results in rows:
        print(f"{case.label:<16} {case.store:<7} {_median(results, 'msg_s'):>9,.0f} "
              f"{_median(results, 'ev_s'):>10,.0f} {_median(results, 'cpu'):>9.0%} "
              f"{_median(results, 'ev_cpu'):>13,.0f} {_median(results, 'msg_cpu'):>11,.0f}  "
              f"{_floor_cell(case, results)}")


def _runs(results: list[Result]) -> str:
    return ", ".join(f"{r.events / r.cpu_s / 1000:,.0f}k" for r in results)


def print_ab(rows: list[tuple[Case, list[Result], list[Result]]], this: str, that: str) -> None:
    """Events per target CPU-second of both checkouts, case by case: medians, each run, the ratio."""
    print(f"\nA/B, events per target CPU-second: this = {this}, that = {that} (runs in the order measured)")
    for case, mine, theirs in rows:
        a, b = _median(mine, "ev_cpu"), _median(theirs, "ev_cpu")
        print(f"  {case.label:<14} {case.store:<7} this {a:>9,.0f} [{_runs(mine)}]  that {b:>9,.0f} "
              f"[{_runs(theirs)}]  this/that {a / b:.2f}")


def _targets(store: str, path: str, sync: str, against: str | None) -> list[EmbeddedTarget]:
    """This checkout's target and, with ``--against``, the other one's (each with its own store file)."""
    targets = [EmbeddedTarget(store=path, extra_args=["--sync", sync])]
    if against is not None:
        other = path if path == "memory" else path + ".that"
        targets.append(TreeTarget(against, store=other, extra_args=["--sync", sync]))
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.target", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="length of each timed run (default 2.5)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per case; the median is shown (default 3)")
    parser.add_argument("--sync", default="full", choices=("full", "normal", "off"),
                        help="SQLite synchronous mode of the target (default full)")
    parser.add_argument("--only", action="append", metavar="CASE",
                        help="run only these cases (comma list, repeatable): "
                             + ", ".join(c.key for c in CASES))
    parser.add_argument("--against", metavar="PATH",
                        help="also measure the target of the checkout at PATH, alternately with this one's")
    args = parser.parse_args(argv)
    try:
        cases = select_cases(args.only)
        against = _tree(args.against) if args.against is not None else None
        if args.repeats < 1 or not 0 < args.seconds <= 600:
            raise UsageError("--repeats must be at least 1 and --seconds in (0, 600]")
    except UsageError as exc:
        print(f"benchmarks.target: error: {exc}", file=sys.stderr)
        return 2
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(f"reference target, {os.cpu_count()} CPUs, {args.repeats} x {args.seconds:g} s per case, "
          f"medians; SQLite synchronous={args.sync}; this = {here} ({_commit(here)})"
          + (f", that = {against} ({_commit(against)})" if against else ""), flush=True)
    rows: list[tuple[Case, list[Result]]] = []
    ab: list[tuple[Case, list[Result], list[Result]]] = []
    with tempfile.TemporaryDirectory(prefix="nucleus-perf-") as tmp, contextlib.ExitStack() as stack:
        for store in ("sqlite", "memory"):
            chosen = [c for c in cases if c.store == store]
            if not chosen:
                continue
            path = os.path.join(tmp, "perf.sqlite3") if store == "sqlite" else "memory"
            targets = [stack.enter_context(t) for t in _targets(store, path, args.sync, against)]
            for target in targets:
                run_case(Case("ws", 10, store, 4, 4), target, 0.5)  # warm-up: imports, caches, WAL file
            for case in chosen:
                results: list[list[Result]] = [[] for _ in targets]
                for repeat in range(args.repeats):
                    order = range(len(targets)) if repeat % 2 == 0 else reversed(range(len(targets)))
                    for index in order:  # ABBA...: neither checkout always runs first
                        results[index].append(run_case(case, targets[index], args.seconds))
                rows.append((case, results[0]))
                if against is not None:
                    ab.append((case, results[0], results[1]))
                print(f"  {case.label} {store}: {_median(results[0], 'ev_cpu'):,.0f} events/CPU-s"
                      + (f" (that: {_median(results[1], 'ev_cpu'):,.0f})" if against else ""),
                      file=sys.stderr, flush=True)
            for target in targets:
                target.stop()
    print_table(rows)
    if against is not None:
        print_ab(ab, _commit(here), _commit(against))
    return 0


if __name__ == "__main__":
    sys.exit(main())
