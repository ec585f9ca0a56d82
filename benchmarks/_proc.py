"""Process plumbing of ``make perf``: clean child processes, their measured windows, and kernel counters.

Every measured client runs in a child process of its own (multiprocessing *spawn*: a fresh interpreter,
nothing inherited), so one case's garbage, imports and sockets never weigh on the next. A child talks
to the parent over one pipe:

- ``("mark", name)``: the child is at a boundary of its measured window ("start", "end"); the parent
  reads the target's CPU time at once, so the target is measured over the same window as the client.
- ``("ask", what, value)``: the child needs an answer from the parent (the shared t=0 of a sharded
  run); the parent's handler replies on the same pipe.
- ``("result", obj)`` at the end, or ``("error", line)``.

CPU and memory of other processes come from ``/proc`` (proc(5)): ``stat`` fields 14 and 15 (user and
system clock ticks of every thread of the process) and ``status`` ``VmRSS``. The parent only ever ends
its own children, by their handles.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import resource
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")
#: How long a child gets to exit after it sent its result before it is killed (by its handle).
JOIN_S = 15.0


class PerfError(RuntimeError):
    """A case could not be measured (a child failed, timed out, or a tool is missing); one line."""


def cpu_s_of(pid: int) -> float:
    """User + system CPU seconds of every thread of ``pid`` (proc(5): fields 14 and 15 of stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_kb_of(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (proc(5): ``VmRSS`` of status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise PerfError(f"no VmRSS in /proc/{pid}/status")


def self_cpu_s() -> float:
    """This process's user + system CPU seconds (all threads), with microsecond resolution."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Link:
    """The child's end of the pipe."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._conn = conn

    def mark(self, name: str) -> None:
        """Tell the parent the measured window reached ``name`` ("start" or "end")."""
        self._conn.send(("mark", name))

    def ask(self, what: str, value: Any = None) -> Any:
        """Ask the parent something and wait for its answer."""
        self._conn.send(("ask", what, value))
        return self._conn.recv()

    def poll(self) -> bool:
        """Whether the parent said something that ``wait`` would return at once."""
        return self._conn.poll()

    def wait(self) -> Any:
        """Wait for the parent's next word (after the last ``ask``: nothing else reads the pipe then)."""
        return self._conn.recv()


ChildFn = Callable[..., Any]


def _entry(fn: ChildFn, args: tuple[Any, ...], conn: multiprocessing.connection.Connection) -> None:
    """The child's main: run ``fn(link, *args)`` and send its result or a one-line error."""
    try:
        result = fn(Link(conn), *args)
    except BaseException as exc:  # reported to the parent in one line; the child then exits 1
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    conn.send(("result", result))


@dataclass(slots=True)
class Child:
    """One child process of a ``Group`` and what it said."""

    name: str
    proc: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    result: Any = None
    done: bool = False
    marks: dict[str, float] = field(default_factory=dict)


#: Handles a child's "mark" or "ask" message: (child, message) -> None (answer asks on child.conn).
Handler = Callable[[Child, tuple[Any, ...]], None]


class Group:
    """Several children run at once and served until each has sent its result.

    Args:
        specs: (name, function, args) per child; the function runs as ``fn(link, *args)`` in the child.
    """

    def __init__(self, specs: Sequence[tuple[str, ChildFn, tuple[Any, ...]]]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.children: list[Child] = []
        for name, fn, args in specs:
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_entry, args=(fn, args, child_end), name=f"perf-{name}", daemon=True)
            self.children.append(Child(name, proc, parent_end))

    def __enter__(self) -> Group:
        for child in self.children:
            child.proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for child in self.children:
            child.proc.join(JOIN_S if child.done else 0.5)
            if child.proc.is_alive():
                child.proc.kill()  # our own child, by its handle
                child.proc.join(5.0)
            child.conn.close()

    def serve(self, handler: Handler, *, timeout_s: float, tick: Callable[[], None] | None = None,
              tick_s: float = 0.5) -> None:
        """Answer the children until every one has sent its result; ``tick()`` runs every ``tick_s``.

        Raises:
            PerfError: a child failed or died, or they did not all finish within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        next_tick = time.monotonic() + tick_s
        while not all(c.done for c in self.children):
            now = time.monotonic()
            if now > deadline:
                late = [c.name for c in self.children if not c.done]
                raise PerfError(f"{', '.join(late)} did not finish within {timeout_s:.0f} s")
            live = [c for c in self.children if not c.done]
            waits: list[Any] = [c.conn for c in live] + [c.proc.sentinel for c in live]
            ready = multiprocessing.connection.wait(waits, max(0.0, min(deadline, next_tick) - now))
            for child in live:
                if child.conn in ready:
                    self._receive(child, handler)
                elif child.proc.sentinel in ready and not child.conn.poll():
                    raise PerfError(f"{child.name} exited with code {child.proc.exitcode} before its result")
            if time.monotonic() >= next_tick:  # also without a tick: a past next_tick would make a 0 s wait
                if tick is not None:
                    tick()
                next_tick = time.monotonic() + tick_s

    @staticmethod
    def _receive(child: Child, handler: Handler) -> None:
        try:
            message = child.conn.recv()
        except EOFError:
            raise PerfError(f"{child.name} closed its pipe before its result") from None
        kind = message[0]
        if kind == "result":
            child.result, child.done = message[1], True
        elif kind == "error":
            raise PerfError(f"{child.name}: {message[1]}")
        else:
            handler(child, message)


def run_child(name: str, fn: ChildFn, args: tuple[Any, ...], *, target_pid: int | None,
              timeout_s: float, tick: Callable[[Child], None] | None = None) -> tuple[Any, float | None]:
    """Run one child to its result; the target's CPU seconds between its "start" and "end" marks.

    ``tick(child)``, when given, runs twice a second while the child runs (it may ``child.conn.send``).

    Returns:
        (the child's result, the target's CPU seconds over the window, or None without both marks or
        without a target).
    """
    def on_mark(child: Child, message: tuple[Any, ...]) -> None:
        if message[0] == "mark" and target_pid is not None:
            child.marks[message[1]] = cpu_s_of(target_pid)

    with Group([(name, fn, args)]) as group:
        child = group.children[0]
        group.serve(on_mark, timeout_s=timeout_s, tick=None if tick is None else lambda: tick(child))
    marks = child.marks
    target_cpu = marks["end"] - marks["start"] if "start" in marks and "end" in marks else None
    return child.result, target_cpu


def wait_child(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, float]:
    """Reap ``proc`` with ``os.wait4``: (exit code, its CPU seconds by the kernel's count).

    A timer kills it by its own handle if it outlives ``timeout_s`` (the exit code is then -SIGKILL).
    """
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    return code, usage.ru_utime + usage.ru_stime
