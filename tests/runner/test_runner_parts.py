"""The runner's pure parts: scheduler, results and their merge, saturation, reconciliation, output."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from runner_helpers import write_scenario

from bench.fleet import Plan, Send
from bench.metrics import AckTracker, Histogram, SecondSeries
from bench.protocol.errors import UsageError
from bench.protocol.events import EventId
from bench.runner import scheduler as scheduler_module
from bench.runner.output import build_summary, make_run_dir, transport_lines
from bench.runner.reconcile import (
    compare_ids,
    parse_stored_count,
    reconcile_counts,
    reconcile_reference,
    verify_url_for,
)
from bench.runner.result import TransportResult, merge_all, process_reasons, transport_summary
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


def _result(sent: int, acked: int, lag_us: float, cpu_share: float = 0.1) -> TransportResult:
    tracker = AckTracker(timeout_ns=10**9)
    ids = tuple(range(sent))
    tracker.on_send(1, ids, 0, 10, (0,) * sent)
    tracker.on_ws_ack(1, ids[:acked], 1_000_000)
    tracker.finish(2_000_000)
    lag = Histogram()
    lag.record_many([lag_us] * 100)
    series = SecondSeries()
    series.add(0, sent=sent, acked=acked)
    return TransportResult(transport="ws", planned_events=sent, tracker=tracker.result(), schedule_lag=lag,
                           series=series, cpu_s=1.0, send_s=2.0, wall_s=3.0, cpu_share_max=cpu_share,
                           reasons=process_reasons(cpu_share, lag_us), reported_ids=list(ids[:acked]))


def test_results_merge_exactly_and_round_trip_through_json() -> None:
    """Counters add, histograms add, series add; JSON loses nothing but the reported ids."""
    merged = merge_all([_result(10, 8, 100.0), _result(6, 6, 200.0)])
    assert (merged.tracker.sent, merged.tracker.acked, merged.tracker.rejected) == (16, 14, 2)
    assert merged.processes == 2 and merged.planned_events == 16 and merged.cpu_s == 2.0
    assert merged.schedule_lag.count == 200 and merged.series.totals()["acked"] == 14
    assert merged.reported_ids is not None and len(merged.reported_ids) == 14
    again = TransportResult.from_json(merged.to_json())
    assert again.to_json() == merged.to_json() and again.accounting().ok


def test_a_saturated_generator_is_flagged_in_plain_words() -> None:
    """Schedule lag p99 over 10 ms (or a busy core) marks the run saturated and flags the latencies."""
    calm, late, busy = _result(5, 5, 500.0), _result(5, 5, 20_000.0), _result(5, 5, 500.0, cpu_share=0.97)
    assert calm.saturation_reasons() == []
    assert "schedule lag p99" in late.saturation_reasons()[0]
    assert "CPU" in busy.saturation_reasons()[0]
    block = transport_summary(late)
    assert block["generator"]["saturated"] and block["ack_latency_us"]["flagged"]
    lines = transport_lines("ws", {"app_id": "x"} | block)
    assert any("could not keep its plan" in line and "not the server's" in line for line in lines)
    assert not transport_summary(calm)["generator"]["saturated"]
    assert process_reasons(0.1, 2_000_000.0)[0].startswith("scheduler fell 2.00 s behind")


def test_summary_holds_the_schema_and_the_accounting() -> None:
    """summary.json: the schema name, one block per transport, ok when every identity holds."""
    summary = build_summary({"ws": _result(4, 3, 10.0)}, {"ws": "a" * 24}, {"scenario": {"name": "t"}})
    assert summary["schema"] == "nucleus-bench/summary/1" and summary["ok"]
    block = summary["transports"]["ws"]
    assert block["app_id"] == "a" * 24
    assert block["accounting"]["line"].endswith("OK")
    assert (block["events"]["acked"], block["events"]["rejected"]) == (3, 1)  # left out of the reply


def test_compare_ids_counts_phantoms_drops_and_duplicates() -> None:
    """Reported-but-not-stored, stored-but-not-reported and extra rows, id by id."""
    rec = compare_ids([1, 2, 3, 3], 5, [2, 3, 4, 4])
    assert (rec.stored, rec.acked_not_stored, rec.stored_not_acked, rec.duplicates_stored) == (3, 1, 1, 2)
    assert rec.done and rec.method == "reference"


@pytest.mark.parametrize("doc, stored", [(12, 12), ({"stored": 7}, 7), ({"count": 3}, 3),
                                         ({"stored": {"total": 9, "by_type": {}}, "acked": 9}, 9)])
def test_verify_url_accepts_the_documented_shapes(doc: object, stored: int) -> None:
    """A number, {"stored": n}, {"count": n} or the reference target's stats shape."""
    assert parse_stored_count(doc, "u") == stored


@pytest.mark.parametrize("doc", [{"total": 1}, "12", -1, True, [1]])
def test_verify_url_refuses_other_shapes_in_one_line(doc: object) -> None:
    """Anything else is named, in one line."""
    with pytest.raises(UsageError, match="--verify-url u"):
        parse_stored_count(doc, "u")


def test_count_reconciliation_is_the_net_difference() -> None:
    """Stored is after - before; an unreadable count means not done, with the reason."""
    rec = reconcile_counts(100, 180, 90)
    assert (rec.stored, rec.acked_not_stored, rec.stored_not_acked) == (80, 10, 0)
    assert not reconcile_counts("down", 5, 5).done
    assert verify_url_for("http://h/count?app={appId}", "abc") == "http://h/count?app=abc"


def test_reconciliation_without_a_reference_target_is_not_done() -> None:
    """Nothing listening: not done, and the note says why (never an exception)."""
    rec = reconcile_reference("http://127.0.0.1:9", "abc", [1, 2])
    assert not rec.done and "reference target" in rec.note


def test_run_directories_never_collide(tmp_path: Path) -> None:
    """Two runs in the same second get -2 appended; names are filesystem-safe."""
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    first, second = make_run_dir(tmp_path, "my run/x", now), make_run_dir(tmp_path, "my run/x", now)
    assert first.name == "20250102T030405Z-my_run_x" and second.name == first.name + "-2"


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
