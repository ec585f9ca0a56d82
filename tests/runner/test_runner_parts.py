"""The runner's pure parts: scheduler, monitor, progress line (results: tests/results)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_helpers import write_scenario

from bench.fleet import Plan, Send
from bench.protocol.events import EventId
from bench.runner import scheduler as scheduler_module
from bench.runner.scheduler import LOW_STAGE, STAGE, Monitor, Scheduler
from bench.scenario import load_scenario


class _Recorder:
    """A transport that records what the scheduler hands it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, tuple[EventId, ...]]] = []

    def connect(self, device: int) -> None:
        self.calls.append(("connect", device, ()))

    def send(self, device: int, payload: bytes, ids: tuple[EventId, ...], intended_ns: int,
             created_ns: tuple[int, ...]) -> None:
        assert payload.startswith(b'{"data":[') and len(created_ns) == len(ids)
        self.calls.append(("send", device, ids))

    def send_untracked(self, device: int, payload: bytes) -> None:
        assert b'"heartbeat"' in payload
        self.calls.append(("beat", device, ()))


def test_scheduler_executes_the_whole_plan_in_order(tmp_path: Path) -> None:
    """Every send of the plan, each device connected first, heartbeats untracked, lag recorded per send."""
    plan = Plan(load_scenario(write_scenario(tmp_path)))
    recorder = _Recorder()
    late = 10**15  # a clock far past the plan: everything is due at once, nothing sleeps
    connects = sorted((plan.connect_at_ns(d), d) for d in plan.devices)
    scheduler = Scheduler(plan.sends("ws"), connects, recorder, lambda: late)
    asyncio.run(scheduler.run())
    sends = list(plan.sends("ws"))
    assert scheduler.dispatched == len(sends) == len(scheduler.lags_ns)
    tracked = [ids for kind, _, ids in recorder.calls if kind == "send"]
    assert sum(len(ids) for ids in tracked) == plan.expected_events()
    assert sum(1 for kind, _, _ in recorder.calls if kind == "beat") == sum(s.is_heartbeat for s in sends)
    first_seen: dict[int, str] = {}
    for kind, device, _ in recorder.calls:
        first_seen.setdefault(device, kind)
    assert set(first_seen.values()) == {"connect"}
    assert scheduler.behind_ns == late - min(s.at_ns for s in sends)


def test_scheduler_pulls_the_plan_a_bounded_stage_ahead(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan is pulled ahead in stages, never more than STAGE + LOW_STAGE sends past what went out,
    over many wake-ups, and every send still goes out in the plan's order."""
    monkeypatch.setattr(scheduler_module, "MAX_BATCH", 5)  # everything is due: 5 sends per wake-up
    planned = list(Plan(load_scenario(write_scenario(tmp_path))).sends("ws"))
    assert len(planned) > 3 * STAGE  # long enough to need several stages
    pulled = [0]

    def counted() -> Iterator[Send]:
        for send in planned:
            pulled[0] += 1
            yield send

    ahead: list[int] = []  # per send: pulled from the plan, less what went out before it

    class _Watching(_Recorder):
        def send(self, device: int, payload: bytes, ids: tuple[EventId, ...], intended_ns: int,
                 created_ns: tuple[int, ...]) -> None:
            ahead.append(pulled[0] - len(ahead))
            super().send(device, payload, ids, intended_ns, created_ns)

        def send_untracked(self, device: int, payload: bytes) -> None:
            ahead.append(pulled[0] - len(ahead))
            super().send_untracked(device, payload)

    recorder = _Watching()
    scheduler = Scheduler(counted(), [], recorder, lambda: 10**15)
    asyncio.run(scheduler.run())
    assert scheduler.dispatched == len(planned) == len(ahead)
    assert STAGE <= max(ahead) <= STAGE + LOW_STAGE < len(planned)
    assert [ids for _, _, ids in recorder.calls] == [s.ids for s in planned]


class _Failing(_Recorder):
    """Refuses the third message it is handed."""

    def send(self, device: int, payload: bytes, ids: tuple[EventId, ...], intended_ns: int,
             created_ns: tuple[int, ...]) -> None:
        if sum(1 for kind, _, _ in self.calls if kind == "send") == 2:
            raise RuntimeError("refused")
        super().send(device, payload, ids, intended_ns, created_ns)


def test_scheduler_raises_what_a_send_raises_and_counts_what_went(tmp_path: Path) -> None:
    """An error below the scheduler ends its run with that error; the sends before it are counted."""
    plan = Plan(load_scenario(write_scenario(tmp_path)))
    recorder = _Failing()
    scheduler = Scheduler(plan.sends("ws"), [], recorder, lambda: 10**15)
    with pytest.raises(RuntimeError, match="refused"):
        asyncio.run(scheduler.run())
    sent = [c for c in recorder.calls if c[0] != "connect"]
    assert scheduler.dispatched == len(sent) >= 2


def test_a_cancelled_scheduler_sends_nothing_more(tmp_path: Path) -> None:
    """Cancelling the run while it waits for the next send cancels its wake-up: nothing is sent after."""
    plan = Plan(load_scenario(write_scenario(tmp_path)))
    first = min(s.at_ns for s in plan.sends("ws"))
    now = [first]  # the first send is due, the rest wait for a clock that the test moves
    recorder = _Recorder()
    scheduler = Scheduler(plan.sends("ws"), [], recorder, lambda: now[0])

    async def main() -> None:
        task = asyncio.create_task(scheduler.run())
        while not scheduler.dispatched:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        before = len(recorder.calls)
        now[0] = 10**15  # everything is due now: a live wake-up would send it all
        await asyncio.sleep(0.05)
        assert len(recorder.calls) == before

    asyncio.run(main())
    assert 0 < scheduler.dispatched < sum(1 for _ in plan.sends("ws"))


def test_monitor_closes_each_whole_second_once() -> None:
    """Seconds are closed in order, each once, as time passes them."""
    closed: list[int] = []
    monitor = Monitor(lambda: 0, closed.append)
    for now in (10, 999_999_999, 1_000_000_000, 3_500_000_000, 3_600_000_000):
        monitor.tick(now)
    assert closed == [0, 1, 2]


def test_progress_line_shows_the_last_second_beside_the_run() -> None:
    """The live line shows the last second's p50/p99 (the run's p99 beside it); before a second with acks
    has closed, the run's so far."""
    from bench.runner.progress import Progress

    snap = {"t": 3.0, "sent": 100, "acked": 90, "lost": 1, "errors": 0, "p50": 2000.0, "p99": 600_000.0,
            "lag_p99": 1500.0, "p50_1s": 800.0, "p99_1s": 1600.0}
    progress = Progress("ws", enabled=False)
    assert "p50 0.80 p99 1.60 ms now, run p99 600.00  lost 1" in progress.line(snap)
    assert "p50 2.00 p99 600.00 ms  lost 1" in progress.line({**snap, "p50_1s": None, "p99_1s": None})


def test_merged_progress_takes_the_worst_shard_of_those_with_acks() -> None:
    """--processes N: the last second's percentiles are the worst shard's; a shard without acks in its last
    second does not count, and none with acks gives None."""
    from bench.runner.procs import merge_snapshots

    base = {"t": 1.0, "sent": 1, "acked": 1, "lost": 0, "rejected": 0, "in_flight": 0, "errors": 0,
            "p50": 1.0, "p99": 2.0, "lag_p99": 3.0}
    busy = {**base, "p50_1s": 500.0, "p99_1s": 900.0}
    quiet = {**base, "p50_1s": None, "p99_1s": None}
    worse = {**base, "p50_1s": 700.0, "p99_1s": 800.0}
    merged = merge_snapshots([busy, quiet, worse])
    assert (merged["p50_1s"], merged["p99_1s"], merged["acked"]) == (700.0, 900.0, 3)
    assert merge_snapshots([quiet, quiet])["p99_1s"] is None
