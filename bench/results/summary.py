"""The shape of ``summary.json`` (schema ``nucleus-bench/summary/1``, results/README.md).

- ``transport_summary``: one ``transports.<name>`` block from a ``TransportResult``;
- ``build_summary``: the whole document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.metrics import COUNTERS, Histogram
from bench.results.transport import TransportResult

SUMMARY_SCHEMA = "nucleus-bench/summary/1"
def quantiles(h: Histogram) -> dict[str, float | int]:
    """``{count, p50, p90, p99, p999, max, underflow, overflow}`` in µs (the summary's latency shape).

    ``count`` and the quantiles cover the values in the histogram's range (1 µs to 1 h); values below or
    above are counted in ``underflow`` / ``overflow``, never dropped silently.
    """
    s = h.summary()
    return {k: s[k] for k in ("count", "p50", "p90", "p99", "p999", "max", "underflow", "overflow")}


def transport_summary(r: TransportResult) -> dict[str, Any]:
    """The ``transports.<name>`` object of summary.json (schema: results/README.md)."""
    t, st = r.tracker, r.stats
    counters = t.counters()
    # the rate over the send phase, less what the plan itself schedules after the duration (HTTP's final
    # flush): both transports' events/s then cover the same seconds of the same events
    send_s = max(r.send_s - r.plan_tail_s, 1e-9) if r.send_s else 1e-9
    reasons = r.saturation_reasons()
    accounting = t.accounting()
    return {
        "events": {k: counters[k] for k in COUNTERS} | {"planned": r.planned_events},
        "throughput": {"events_per_s": t.acked / send_s, "sent_events_per_s": t.sent / send_s,
                       "messages_per_s": st.messages_sent / send_s, "send_s": r.send_s, "wall_s": r.wall_s,
                       "plan_tail_s": r.plan_tail_s},
        "interrupted": r.interrupted,
        "ack_latency_us": {"corrected": quantiles(t.corrected), "raw": quantiles(t.raw),
                           "flagged": bool(reasons)},
        "delivery_delay_us": quantiles(t.delivery),
        "client": {"cpu_s": r.cpu_s, "send_cpu_s": r.send_cpu_s,
                   "events_per_cpu_s": t.sent / r.cpu_s if r.cpu_s else 0.0,
                   "cpu_us_per_event": r.cpu_s * 1e6 / t.sent if t.sent else 0.0,
                   "bytes_sent": st.bytes_sent, "bytes_received": st.bytes_received,
                   "bytes_per_event": st.bytes_sent / t.sent if t.sent else 0.0,
                   "processes": r.processes, "max_rss_kb": r.max_rss_kb},
        "generator": {"schedule_lag_us": quantiles(r.schedule_lag), "loop_lag_us": quantiles(r.loop_lag),
                      "cpu_share_max": r.cpu_share_max, "behind_max_us": r.behind_max_us,
                      "saturated": bool(reasons), "reasons": reasons},
        "wire": st.to_json(),
        "reconciliation": r.reconciliation.to_json(),
        "accounting": accounting.to_json() | {"line": accounting.line()},
    }


def build_summary(results: Mapping[str, TransportResult], app_ids: Mapping[str, str],
                  header: Mapping[str, Any]) -> dict[str, Any]:
    """summary.json: the header (scenario, target, times) and one block per transport that ran."""
    transports = {}
    for name, result in results.items():
        transports[name] = {"app_id": app_ids.get(name)} | transport_summary(result)
    return {"schema": SUMMARY_SCHEMA, **header, "transports": transports,
            "ok": all(r.accounting().ok for r in results.values())}
