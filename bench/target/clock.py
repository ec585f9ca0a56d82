"""The target's clock: what its fault injection and its timers read and wait on.

Every wait of the target's faults (``--ack-delay-ms``, ``--stall-ms``) goes through one ``Clock``, so a test
can hand the target a clock it moves by hand and see an ack held until its deadline, with no wall clock
involved. The target itself runs on ``MonotonicClock``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic nanoseconds, and a wait until a time of the same clock."""

    def now_ns(self) -> int:
        """Now, in nanoseconds of this clock."""

    async def sleep_until(self, deadline_ns: int) -> None:
        """Return once ``now_ns()`` has reached ``deadline_ns`` (at once if it has)."""


class MonotonicClock:
    """``time.monotonic_ns`` and ``asyncio.sleep``: the target's own clock."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep_until(self, deadline_ns: int) -> None:
        wait_ns = deadline_ns - time.monotonic_ns()
        if wait_ns > 0:
            await asyncio.sleep(wait_ns / 1e9)
