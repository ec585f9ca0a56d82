"""One periodic tick per process, shared by the polled sockets and the central scheduler.

Why: a paced fleet's process wakes about once per millisecond to read the replies that came (``Poller``) and
to send what has fallen due (``bench.runner.scheduler``). Each on its own timer would wake it twice when the
two drift apart, and a timer callback re-armed every tick costs the event loop a timer handle per tick. The
``Ticker`` runs its callbacks, in the order they were added, every ``tick_s`` from one source:

- a timerfd (timerfd_create(2), ``bench._native.timer_fd``) that the loop watches like a socket, when
  ``bench._native`` is built: the kernel re-arms it, each tick costs one read (an idle 1 ms tick measured
  ~20 CPU-µs on uvloop here against ~30 for a re-armed ``call_later``);
- else a ``loop.call_later`` chain, its twin: the same callbacks, a tick every ``tick_s`` or a little more.

The tick starts with the first callback added, on the loop running then, and stops (its descriptor closed)
when the last is removed. A callback that raises is reported to the loop's exception handler; the others
still run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from bench import native

#: The C twin's timer (``bench.native``); None: a ``call_later`` chain.
_timer_fd: Callable[[int], int] | None = getattr(native.load(), "timer_fd", None)
_timer_read: Callable[[int], int] | None = getattr(native.load(), "timer_read", None)


class Ticker:
    """Runs callbacks every ``tick_s`` on the running loop (see the module docstring).

    Attributes:
        ticks: how many ticks have run.
    """

    def __init__(self, tick_s: float = 0.001) -> None:
        if tick_s <= 0:
            raise ValueError(f"tick_s must be > 0, not {tick_s}")
        self.loop: asyncio.AbstractEventLoop | None = None  # the running loop, from the first callback on
        self.tick_s = tick_s
        self.ticks = 0
        self._calls: list[Callable[[], None]] = []
        self._fd = -1
        self._timer: asyncio.TimerHandle | None = None

    @property
    def kernel_timer(self) -> bool:
        """Whether the ticks come from a timerfd (else from a ``call_later`` chain)."""
        return self._fd >= 0

    def add(self, call: Callable[[], None]) -> None:
        """Run ``call()`` every tick from now on (the tick starts with the first callback)."""
        self._calls.append(call)
        if len(self._calls) == 1:
            self._start()

    def remove(self, call: Callable[[], None]) -> None:
        """Stop running ``call`` (the tick stops with the last callback); a callback not added is ignored."""
        if call in self._calls:
            self._calls.remove(call)
            if not self._calls:
                self._stop()

    def close(self) -> None:
        """Remove every callback and stop."""
        self._calls.clear()
        self._stop()

    def _start(self) -> None:
        self.loop = loop = asyncio.get_running_loop()
        if _timer_fd is not None:
            self._fd = _timer_fd(max(1, round(self.tick_s * 1e9)))
            loop.add_reader(self._fd, self._on_fd)
        else:
            self._timer = loop.call_later(self.tick_s, self._on_timer)

    def _stop(self) -> None:
        if self._fd >= 0:
            assert self.loop is not None  # set by _start with the fd
            self.loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_fd(self) -> None:
        assert _timer_read is not None  # the fd exists only with it
        if _timer_read(self._fd):  # 0: woken without an expiration (nothing to do yet)
            self._run()

    def _on_timer(self) -> None:
        self._timer = None
        self._run()
        if self._calls and self._timer is None and self._fd < 0 and self.loop is not None:
            self._timer = self.loop.call_later(self.tick_s, self._on_timer)

    def _run(self) -> None:
        self.ticks += 1
        calls = self._calls
        for call in calls[:] if len(calls) > 1 else calls:  # a copy: a callback may remove itself
            try:
                call()
            except Exception as exc:  # one callback's bug is the loop's to report; the others still run
                assert self.loop is not None  # ticks run on it
                self.loop.call_exception_handler({"message": "a Ticker callback raised", "exception": exc})
