"""The run's figures while it runs, from every process, merged exactly: what the web UI's Nucleus tab reads.

Pure: no gevent, no locust.

Theory of operation
-------------------
At the end of a run every process ships its books whole to the master (bench.locust_glue.messages). While
it runs, the same books are what the Nucleus tab shows: each worker sends a *snapshot* of them every
``LIVE_S`` seconds (Locust custom message ``LIVE_MSG``), the master keeps the latest one of each worker and
merges them on demand, as the end of the run will (counters summed, histograms added bucket by bucket). A
standalone process reads its own books. A snapshot is a ``TransportResult`` per transport without its
per-second series and reported ids (they only grow, and only the end needs them) plus the transport's
``Detail`` (latency per event type, rejections by reason), all plain JSON-safe values.

``figures`` turns merged results into blocks of the summary's own schema (bench.results.summary), so the
tab draws live figures and the finished run's summary.json with the same code.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.locust_glue import detail
from bench.locust_glue.runstate import NS, RunState
from bench.results.saturation import process_reasons
from bench.results.summary import transport_summary
from bench.results.transport import TransportResult, merge_all

#: worker -> master: ``snapshot()`` of the worker's run, every ``LIVE_S`` seconds while it sends.
LIVE_MSG = "nucleus_live"
#: Seconds between two snapshots of a worker (Locust's page asks for its statistics every 2 s).
LIVE_S = 2.0


def live_results(run: RunState) -> dict[str, TransportResult]:
    """This process's books as ``TransportResult`` s so far: ``RunState.results`` without the series and the
    reported ids (the end of the run ships those), and without closing anything."""
    end_ns = run.clock()
    send_ns = run.send_end_ns if run.send_end_ns is not None else end_ns
    cpu_s = time.process_time() - run.cpu0
    send_cpu_s = run.send_cpu_s if run.send_end_ns is not None else cpu_s
    share = send_cpu_s / (send_ns / NS) if send_ns > 0 else 0.0
    behind_us = max((b.schedule_lag.max() for b in run.books.values() if b.schedule_lag.total), default=0.0)
    total_sent = sum(b.tracker.sent for b in run.books.values()) or 1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out: dict[str, TransportResult] = {}
    for name, books in run.books.items():
        books.fold()
        tracked = books.tracker.result()
        part = tracked.sent / total_sent if len(run.books) > 1 else 1.0
        out[name] = TransportResult(
            transport=name, planned_events=books.planned, processes=1, tracker=tracked, stats=books.stats,
            schedule_lag=books.schedule_lag.copy(), loop_lag=run.loop_lag.copy(), cpu_s=cpu_s * part,
            send_cpu_s=send_cpu_s * part, send_s=send_ns / NS, wall_s=end_ns / NS, max_rss_kb=rss,
            cpu_share_max=share, behind_max_us=behind_us, reasons=process_reasons(share, behind_us))
    return out


def snapshot(run: RunState, worker: int) -> dict[str, Any]:
    """The ``LIVE_MSG`` payload of a run in progress (JSON/msgpack-safe)."""
    results = live_results(run)
    return {"run_id": run.spec.run_id, "worker": worker, "at": time.time(),
            "results": {name: r.to_json() for name, r in results.items()},
            "detail": details_json(run)}


@dataclass(frozen=True, slots=True)
class Figures:
    """Every process's figures merged: per transport, a summary block and its detail.

    Attributes:
        blocks: ``transports.<name>`` blocks in the summary's schema (results/README.md).
        details: per transport, ``detail.merge_json``'s form (histograms per event type, refused events).
        processes: how many processes' figures are in them.
    """

    blocks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    details: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    processes: int = 0


def merge_details(messages: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``detail`` of several processes' messages (snapshots or end-of-run results), per transport."""
    per: dict[str, list[Mapping[str, Any]]] = {}
    for msg in messages:
        for name, part in (msg.get("detail") or {}).items():
            per.setdefault(str(name), []).append(part)
    return {name: detail.merge_json(parts) for name, parts in sorted(per.items())}


def figures(snapshots: Iterable[Mapping[str, Any]]) -> Figures:
    """The merged figures of the latest snapshot of each process."""
    snaps = list(snapshots)
    per: dict[str, list[TransportResult]] = {}
    for snap in snaps:
        for name, obj in snap["results"].items():
            per.setdefault(str(name), []).append(TransportResult.from_json(obj))
    blocks = {name: transport_summary(merge_all(results)) for name, results in sorted(per.items())}
    return Figures(blocks=blocks, details=merge_details(snaps), processes=len(snaps))


def details_json(run: RunState) -> dict[str, dict[str, Any]]:
    """Each transport's ``Detail`` of this process, folded (the ``detail`` key of its end-of-run result)."""
    out = {}
    for name, books in run.books.items():
        books.detail.fold()
        out[name] = books.detail.to_json()
    return out
