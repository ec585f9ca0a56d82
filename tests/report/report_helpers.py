"""Helpers of the report tests: run directories written by hand with known numbers, and the page taken apart.

``write_known_run`` writes what a run writes (results/README.md), with figures chosen so that each one is
recognisable in the report: summary.json as a dict literal, each transport's result-<t>.json with
histograms and per-second rows of known values, and optionally a capacity.json of known steps. ``Page``
parses a report with the standard library's ``html.parser`` and keeps what the tests look at: the plots,
every address the page names, its tables' text.
"""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from bench.metrics import Histogram, SecondSeries, TrackerResult
from bench.results.transport import TransportResult


def latency(p50: float, p90: float, p99: float, p999: float, top: float, count: int = 1000) -> dict[str, Any]:
    return {"count": count, "p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": top, "underflow": 0,
            "overflow": 0}


def block(*, sent: int, acked: int, rejected: int, lost: int, events_per_s: float, corrected: dict[str, Any],
          raw: dict[str, Any], delivery: dict[str, Any], events_per_cpu_s: float, bytes_per_event: float,
          saturated: bool = False) -> dict[str, Any]:
    """One ``transports.<t>`` block of summary.json, every key the schema has."""
    return {
        "app_id": "0123456789abcdef01234567",
        "events": {"sent": sent, "acked": acked, "rejected": rejected, "lost": lost, "in_flight": 0,
                   "duplicate_acks": 0, "unknown_acks": 0, "late_acks": 0, "resent": 0, "stray_replies": 0,
                   "planned": sent},
        "throughput": {"events_per_s": events_per_s, "sent_events_per_s": events_per_s,
                       "messages_per_s": 100.0, "send_s": 3.0, "wall_s": 3.5, "plan_tail_s": 0.0},
        "interrupted": False,
        "ack_latency_us": {"corrected": corrected, "raw": raw, "flagged": saturated},
        "delivery_delay_us": delivery,
        "client": {"cpu_s": 2.0, "send_cpu_s": 1.9, "events_per_cpu_s": events_per_cpu_s,
                   "cpu_us_per_event": 1e6 / events_per_cpu_s, "bytes_sent": int(bytes_per_event * sent),
                   "bytes_received": 1000, "bytes_per_event": bytes_per_event, "processes": 1,
                   "max_rss_kb": 50000},
        "generator": {"schedule_lag_us": latency(100.0, 200.0, 300.0, 400.0, 500.0),
                      "loop_lag_us": latency(100.0, 200.0, 300.0, 400.0, 500.0), "cpu_share_max": 0.5,
                      "behind_max_us": 500.0, "saturated": saturated,
                      "reasons": ["schedule lag p99 12.0 ms > 10 ms"] if saturated else []},
        "wire": {"messages_sent": 100, "connects": 5, "connect_errors": 0, "http_429": 0},
        "reconciliation": {"done": True, "method": "reference", "stored": acked, "acked_not_stored": 0,
                           "stored_not_acked": 0, "duplicates_stored": 0, "note": ""},
        "accounting": {"sent": sent, "acked": acked, "rejected": rejected, "lost": lost, "in_flight": 0,
                       "ok": True, "line": f"sent {sent} = acked {acked} + rejected {rejected} + lost {lost} "
                                           "+ in flight 0  OK"},
    }


#: WebSocket: 300 lost and 45 rejected of 12,345; HTTP: every event acked, slower (it batches).
KNOWN_WS = block(sent=12345, acked=12000, rejected=45, lost=300, events_per_s=4115.3,
                 corrected=latency(1234.0, 4321.0, 56780.0, 98760.0, 123450.0),
                 raw=latency(987.0, 2345.0, 23450.0, 45670.0, 67890.0),
                 delivery=latency(1234.0, 4321.0, 56780.0, 98760.0, 123450.0),
                 events_per_cpu_s=1548.4, bytes_per_event=406.6)
KNOWN_HTTP = block(sent=12345, acked=12345, rejected=0, lost=0, events_per_s=4098.7,
                   corrected=latency(345600.0, 555500.0, 777700.0, 888800.0, 999900.0),
                   raw=latency(2100.0, 3200.0, 4300.0, 5400.0, 6500.0),
                   delivery=latency(579580.0, 1232900.0, 1781760.0, 1789950.0, 1790860.0),
                   events_per_cpu_s=6837.2, bytes_per_event=395.2)

KNOWN_SUMMARY: dict[str, Any] = {
    "schema": "nucleus-bench/summary/1",
    "scenario": {"name": "known-figures", "path": "scenarios/known.toml", "seed": 42, "duration_s": 3.0,
                 "devices": 77, "rate": 4000.0, "per_device_rate": 51.9, "events_per_message": 1,
                 "http_flush_s": 1.0, "ack_timeout_s": 5.0},
    "target": {"url": "http://127.0.0.1:41234", "embedded": True},
    "started_at": "2026-12-06T10:20:30.000000+00:00", "finished_at": "2026-12-06T10:20:40.000000+00:00",
    "processes": 1, "error": None, "ok": True,
    "transports": {"ws": KNOWN_WS, "http": KNOWN_HTTP},
}

#: Per-second rows: (second, sent, acked, rejected, lost, bytes_sent). Second s's acks took 1..1000·(s+1) µs
#: (so its p99 is about 990·(s+1) µs); its sends' schedule lag was 300 µs, but none in the last second.
KNOWN_SERIES: list[tuple[int, ...]] = [
    (0, 4000, 3900, 15, 0, 1600000),
    (1, 4100, 4000, 15, 0, 1640000),
    (2, 4245, 4100, 15, 300, 1700000),
]

def step(n: int, rate: float, devices: int, p99_us: float) -> dict[str, Any]:
    """One step of capacity.json that kept the objective."""
    return {"step": n, "rate": rate, "devices": devices, "p99_us": p99_us, "lost": 0, "rejected": 0,
            "errors": 0, "ok": True, "reason": f"p99 {p99_us / 1000:.1f} ms, lost 0"}


#: A capacity search over WebSocket (the shape of results/README.md, "Capacity search"): four steps, the
#: last over the objective; the knee at 4,000 events/s.
KNOWN_CAPACITY: dict[str, Any] = {
    "schema": "nucleus-bench/capacity/1",
    "scenario": {"name": "known-figures", "path": "scenarios/known.toml", "seed": 42},
    "slo": {"p99_us": 50000.0, "max_loss": 0.001},
    "started_at": "2026-12-06T11:00:00+00:00", "finished_at": "2026-12-06T11:05:00+00:00",
    "interrupted": False, "error": None,
    "transports": {"ws": {
        "steps": [step(1, 1000.0, 100, 2000.0), step(3, 4000.0, 400, 5200.0), step(2, 2000.0, 200, 3100.0),
                  {**step(4, 8000.0, 800, 81230.0), "lost": 17, "rejected": 2, "errors": 1, "ok": False,
                   "reason": "p99 81.2 ms over 50.0 ms"}],
        "knee": {"rate": 4000.0, "devices": 400, "limit": "target",
                 "reason": "the target is the limit: it met the objective at 400 devices"},
    }},
}


def known_histograms() -> dict[str, Histogram]:
    """Histograms of known values: corrected 1..10,000 µs once each, raw half of that."""
    corrected, raw = Histogram(), Histogram()
    corrected.record_many([float(v) for v in range(1, 10001)])
    raw.record_many([v / 2.0 for v in range(2, 20001)])
    return {"corrected": corrected, "raw": raw, "delivery": corrected.copy(), "schedule_lag": Histogram(),
            "loop_lag": Histogram()}


def known_series() -> SecondSeries:
    """``KNOWN_SERIES`` with its per-second histograms."""
    series = SecondSeries()
    for second, sent, acked, rejected, lost, bytes_sent in KNOWN_SERIES:
        series.add(second, sent=sent, acked=acked, rejected=rejected, lost=lost, bytes_sent=bytes_sent)
        ack = Histogram()
        ack.record_many([float(v) for v in range(1, 1000 * (second + 1) + 1)])
        series.add_histogram("corrected", second, ack)
        if second < len(KNOWN_SERIES) - 1:
            lag = Histogram()
            lag.record_many([300.0] * 100)
            series.add_histogram("schedule_lag", second, lag)
    return series


def known_result(transport: str) -> TransportResult:
    """A transport's lossless result with the known histograms and per-second rows."""
    h = known_histograms()
    tracker = TrackerResult(sent=12345, acked=12345, corrected=h["corrected"], raw=h["raw"],
                            delivery=h["delivery"])
    return TransportResult(transport=transport, planned_events=12345, tracker=tracker, series=known_series(),
                           send_s=3.0, wall_s=3.5)


def write_known_run(run_dir: Path, *, summary: dict[str, Any] | None = None, capacity: bool = False,
                    transports: tuple[str, ...] = ("ws", "http")) -> Path:
    """A run directory with the known figures (``summary`` replaces the summary; ``capacity``: add the
    known capacity.json); returns it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = copy.deepcopy(summary if summary is not None else KNOWN_SUMMARY)
    doc["transports"] = {t: doc["transports"][t] for t in transports}
    (run_dir / "summary.json").write_text(json.dumps(doc, indent=2))
    for t in transports:
        (run_dir / f"result-{t}.json").write_text(json.dumps(known_result(t).to_json()))
    (run_dir / "meta.json").write_text(json.dumps({"versions": {"python": "3.11.7", "nucleus-bench": "0.1.0"},
                                                   "host": {"name": "known-host", "cpus": 2}, "seed": 42}))
    if capacity:
        (run_dir / "capacity.json").write_text(json.dumps(KNOWN_CAPACITY, indent=2))
    return run_dir


def write_capacity_only(run_dir: Path) -> Path:
    """What a capacity search leaves: capacity.json and meta.json, no summary."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "capacity.json").write_text(json.dumps(KNOWN_CAPACITY, indent=2))
    (run_dir / "meta.json").write_text(json.dumps({"command": "capacity", "seed": 42}))
    return run_dir


class Page(HTMLParser):
    """A report page taken apart: plot figures and their SVGs, every address it names, and its text."""

    #: Attributes through which a page makes the browser fetch something.
    FETCHING = ("src", "href", "xlink:href", "srcset", "poster", "data", "action", "background", "formaction")

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.plots: dict[str, list[str]] = {}   # figure id -> the tags inside it
        self.svg_text: dict[str, list[str]] = {}  # figure id -> the texts inside its svg
        self.addresses: list[str] = []           # every src/href/url() value of the page
        self.tags: list[str] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._figure: str | None = None
        self._depth = 0
        self._in_style = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        self.addresses += [v for k, v in attrs if k in self.FETCHING and v is not None]
        self.styles += [v for k, v in attrs if k == "style" and v]
        self.styles += [v for k, v in attrs if v and "url(" in v]
        if tag == "figure" and (values.get("id") or "").startswith("plot-"):
            self._figure = str(values["id"])[len("plot-"):]
            self.plots[self._figure] = []
            self.svg_text[self._figure] = []
            self._depth = 0
        elif self._figure is not None:
            self.plots[self._figure].append(tag)
        if tag == "figure":
            self._depth += 1
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure" and self._figure is not None:
            self._depth -= 1
            if self._depth == 0:
                self._figure = None
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
        elif self._figure is not None:
            self.svg_text[self._figure].append(data)
        elif data.strip():
            self.text.append(data.strip())

    @property
    def body_text(self) -> str:
        return " | ".join(self.text)
