"""Helpers of the results tests: small, real ``TransportResult`` values built by a real ack tracker."""

from __future__ import annotations

from bench.metrics import AckTracker, Histogram, SecondSeries
from bench.results.saturation import process_reasons
from bench.results.transport import TransportResult
from bench.transports.common import TransportStats


def make_result(sent: int, acked: int, lag_us: float, cpu_share: float = 0.1, *, first_id: int = 0,
                cpu_s: float = 1.0, bytes_sent: int = 0) -> TransportResult:
    """One process's ws result: ``sent`` events (ids from ``first_id``), the first ``acked`` of them
    acknowledged after 1 ms, the rest left out of the reply (rejected); 100 sends late by ``lag_us``."""
    tracker = AckTracker(timeout_ns=10**9)
    ids = tuple(range(first_id, first_id + sent))
    tracker.on_send(1, ids, 0, 10, (0,) * sent)
    tracker.on_ws_ack(1, ids[:acked], 1_000_000)
    tracker.finish(2_000_000)
    lag = Histogram()
    lag.record_many([lag_us] * 100)
    series = SecondSeries()
    series.add(0, sent=sent, acked=acked, bytes_sent=bytes_sent)
    stats = TransportStats()
    stats.messages_sent, stats.bytes_sent = 1, bytes_sent
    return TransportResult(transport="ws", planned_events=sent, tracker=tracker.result(), stats=stats,
                           schedule_lag=lag, series=series, cpu_s=cpu_s, send_s=2.0, wall_s=3.0,
                           cpu_share_max=cpu_share, reasons=process_reasons(cpu_share, lag_us),
                           reported_ids=list(ids[:acked]))
