"""The shape of ``summary.json`` (schema ``nucleus-bench/summary/1``, results/README.md): header and blocks.

Both front ends, ``nucleus-bench run`` (bench.runner) and the Locust plugin (bench.locust_glue), build
their summaries here, so a report reads either without knowing which wrote it:

- ``RunHeader``: the header (scenario, target, times, processes, error, and the driver's own block);
- ``transport_summary``: one ``transports.<name>`` block from a ``TransportResult``;
- ``build_summary``: the whole document.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.fleet import Plan
from bench.metrics import COUNTERS, Histogram
from bench.results.transport import TransportResult
from bench.scenario import Scenario

SUMMARY_SCHEMA = "nucleus-bench/summary/1"
#: The ``scenario`` keys a driver fills from what it ran rather than from the scenario file: Locust
#: decides how many devices run (one per user, ``-u``) and its plan lasts as long as the Locust run.
DRIVEN_KEYS = ("devices", "duration_s")


@dataclass(frozen=True, slots=True)
class RunHeader:
    """The header of one run's summary: what ran, against what, when, and how it ended.

    Attributes:
        scenario: the scenario as run (command-line overrides applied).
        target_url: the server's base URL.
        embedded: the target is the harness's own embedded reference target.
        started: when the run started (UTC).
        finished: when the summary was written (UTC).
        processes: the processes that ran devices.
        error: one line when the run stopped on an error; None for a run that ended normally.
        devices: the devices that ran when the driver decides it (Locust: its users); None: the scenario's.
        duration_s: how long each device's plan ran when the driver decides it (Locust: the plan covers
            its run time); None: the scenario's.
        driver: the driver's name when it is not the hot path (whose summaries have no ``driver`` key).
        driver_block: what only that driver reports, written under its name (``"locust": {...}``).
        extra: more top-level blocks, after the others (a shard's run writes ``"shard": {...}``).
    """

    scenario: Scenario
    target_url: str
    embedded: bool
    started: datetime
    finished: datetime
    processes: int
    error: str | None = None
    devices: int | None = None
    duration_s: float | None = None
    driver: str | None = None
    driver_block: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def scenario_json(self) -> dict[str, Any]:
        """The ``scenario`` block: the scenario's figures, ``DRIVEN_KEYS`` as the driver ran them."""
        sc = self.scenario
        return {"name": sc.name, "path": sc.path, "seed": sc.seed,
                "duration_s": sc.duration_s if self.duration_s is None else self.duration_s,
                "devices": sc.devices if self.devices is None else self.devices,
                # what one device sends while in a session: a whole-fleet ``rate`` divided over the
                # scenario's devices, else the file's ``per_device_rate`` (Scenario.device_rate)
                "rate": sc.rate, "per_device_rate": sc.device_rate,
                "events_per_message": sc.events_per_message, "http_flush_s": sc.http_flush_s,
                "ack_timeout_s": sc.ack_timeout_s,
                # how long the fleet took to come online: the ramp, or devices / connect_rate if longer
                "ramp_s": sc.connect_ramp_s if self.devices is None else sc.ramp_s,
                "connect_rate": sc.connect_rate if math.isfinite(sc.connect_rate) else None,
                **({"clients": clients_json(sc)} if sc.clients is not None else {})}

    def target_json(self) -> dict[str, Any]:
        return {"url": self.target_url, "embedded": self.embedded}

    def to_json(self) -> dict[str, Any]:
        """Every header key of summary.json, in the schema's order."""
        out: dict[str, Any] = {
            "scenario": self.scenario_json(), "target": self.target_json(),
            "started_at": self.started.isoformat(), "finished_at": self.finished.isoformat(),
            "processes": self.processes, "error": self.error,
        }
        if self.driver is not None:
            out |= {"driver": self.driver, self.driver: dict(self.driver_block)}
        return out | dict(self.extra)


def clients_json(sc: Scenario) -> dict[str, Any]:
    """The ``scenario.clients`` block of a fleet with clients: the time scale (simulated seconds per real
    second: ``duration_s`` is simulated), the devices of each profile, the outage and the release."""
    clients = sc.clients
    assert clients is not None
    return {"time_scale": clients.time_scale, "epoch_ms": clients.epoch_ms,
            "profiles": Plan(sc).profile_counts(),
            "outage": dataclasses.asdict(clients.outage) if clients.outage is not None else None,
            "release": dataclasses.asdict(clients.release) if clients.release is not None else None}


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
                   "processes": r.processes, "max_rss_kb": r.max_rss_kb,
                   "lost_processes": list(r.lost_processes),
                   # the ramp as it went: devices online, when the last came, the connects/s achieved
                   "devices_online": r.devices_online, "all_online_s": r.all_online_s,
                   "online_per_s": r.devices_online / r.all_online_s if r.all_online_s > 0 else None},
        "generator": {"schedule_lag_us": quantiles(r.schedule_lag), "loop_lag_us": quantiles(r.loop_lag),
                      "cpu_share_max": r.cpu_share_max, "behind_max_us": r.behind_max_us,
                      "saturated": bool(reasons), "reasons": reasons},
        "wire": st.to_json(),
        "reconciliation": r.reconciliation.to_json(),
        "accounting": accounting.to_json() | {"line": accounting.line()},
    }


def build_summary(results: Mapping[str, TransportResult], app_ids: Mapping[str, str],
                  header: RunHeader) -> dict[str, Any]:
    """summary.json: the header, one block per transport that ran, and ``ok`` (every identity holds)."""
    return summary_document(header.to_json(), results, app_ids)


def summary_document(header: Mapping[str, Any], results: Mapping[str, TransportResult],
                     app_ids: Mapping[str, str]) -> dict[str, Any]:
    """summary.json from a header already in its JSON form (``RunHeader.to_json``, or the header that
    ``nucleus-bench merge`` takes over from the shards it merges), the transports' blocks and ``ok``."""
    transports = {}
    for name, result in results.items():
        transports[name] = {"app_id": app_ids.get(name)} | transport_summary(result)
    return {"schema": SUMMARY_SCHEMA, **header, "transports": transports,
            "ok": all(r.accounting().ok for r in results.values())}
