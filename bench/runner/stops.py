"""How a run was asked to stop early: the process's first SIGINT or SIGTERM, and the exit status it means.

SIGTERM is what ``timeout``, CI runners and ``docker stop`` send; a run treats it as the first Ctrl-C: the
send phase ends, the figures so far are written (marked ``interrupted``) and the exit status says which
signal it was, as a shell would (130 for SIGINT, 143 for SIGTERM). Signals belong to the process, so the
record does too (``STOPS``); the run's event loop, the parent of a sharded run and ``run``'s own front
door all write to it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_LABELS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class StopSignals:
    """The first stop signal this process received (None: none yet)."""

    def __init__(self) -> None:
        self.first: int | None = None

    def record(self, signum: int) -> None:
        if self.first is None:
            self.first = signum

    def reset(self) -> None:
        self.first = None

    @property
    def label(self) -> str:
        """``Ctrl-C`` or ``SIGTERM``: how the summary and the terminal name the stop."""
        return _LABELS.get(signal.Signals(self.first), "a signal") if self.first is not None else "Ctrl-C"

    def exit_status(self) -> int:
        """A shell's status for a command ended by the signal: 128 + its number (SIGINT, 130, if none)."""
        return 128 + (self.first if self.first is not None else signal.SIGINT)


#: This process's record.
STOPS = StopSignals()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside: SIGTERM raises KeyboardInterrupt, as the first Ctrl-C does, and is recorded.

    The run's event loop takes both signals over while it runs (``bench.runner.engine``); this covers the
    rest of ``run`` (starting the target, reconciliation, writing), so a SIGTERM there keeps the figures
    measured too. Only the main thread can own a signal: elsewhere this does nothing.
    """
    def on_term(signum: int, _frame: FrameType | None) -> None:
        STOPS.record(signum)
        raise KeyboardInterrupt

    try:
        before = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
