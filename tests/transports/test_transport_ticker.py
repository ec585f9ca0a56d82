"""The process's tick: ``Ticker`` on a timerfd (``bench._native``) and on a ``call_later`` chain, its twin."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

from bench.transports import ticker as ticker_module
from bench.transports.ticker import Ticker

native = pytest.importorskip("bench._native", reason="bench._native is not built (no C compiler at install)")
#: Every wait here is bounded by this (a tick is 1 ms: hundreds of ticks fit in it on any machine).
WAIT_S = 10.0


@pytest.fixture(params=["c", "python"])
def twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test once on the kernel timer and once on the ``call_later`` chain."""
    if request.param == "python":
        monkeypatch.setattr(ticker_module, "_timer_fd", None)
        monkeypatch.setattr(ticker_module, "_timer_read", None)
    yield request.param


async def _until(check: Any) -> None:
    async with asyncio.timeout(WAIT_S):
        while not check():
            await asyncio.sleep(0.001)


def test_callbacks_run_every_tick_in_the_order_added(twin: str) -> None:
    seen: list[str] = []

    async def main() -> Ticker:
        ticker = Ticker(0.001)
        ticker.add(lambda: seen.append("a"))
        ticker.add(lambda: seen.append("b"))
        assert ticker.kernel_timer == (twin == "c")
        await _until(lambda: ticker.ticks >= 20)
        ticker.close()
        return ticker

    ticker = asyncio.run(main())
    assert seen == ["a", "b"] * ticker.ticks and ticker.ticks >= 20


def test_the_tick_stops_with_the_last_callback_and_starts_again(twin: str) -> None:
    """Removing the last callback stops the tick (the timerfd closed); adding one starts it again; a
    callback may remove itself while it runs."""
    counts = {"a": 0, "b": 0}

    def a() -> None:
        counts["a"] += 1

    async def main() -> None:
        ticker = Ticker(0.001)

        def b() -> None:
            counts["b"] += 1
            if counts["b"] == 5:
                ticker.remove(b)

        ticker.add(a)
        ticker.add(b)
        fd = ticker._fd
        await _until(lambda: counts["b"] == 5 and counts["a"] >= 10)
        assert counts["b"] == 5  # removed itself at its fifth tick
        ticker.remove(a)
        assert not ticker.kernel_timer
        if twin == "c":
            with pytest.raises(OSError):
                os.fstat(fd)  # closed
        stopped = ticker.ticks
        await asyncio.sleep(0.03)
        assert ticker.ticks == stopped
        ticker.remove(a)  # not added any more: ignored
        ticker.add(a)
        await _until(lambda: ticker.ticks >= stopped + 3)
        ticker.close()

    asyncio.run(main())


def test_a_callback_that_raises_is_reported_and_the_others_run(twin: str) -> None:
    errors: list[BaseException] = []
    after = [0]

    def bad() -> None:
        raise ValueError("boom")

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx["exception"]))
        ticker = Ticker(0.001)
        ticker.add(bad)
        ticker.add(lambda: after.__setitem__(0, after[0] + 1))
        await _until(lambda: after[0] >= 3)
        ticker.close()

    asyncio.run(main())
    assert len(errors) >= 3 and all(isinstance(e, ValueError) for e in errors)


def test_a_bad_tick_is_refused() -> None:
    with pytest.raises(ValueError, match="tick_s must be > 0"):
        Ticker(0.0)
    with pytest.raises(ValueError):
        native.timer_fd(0)
