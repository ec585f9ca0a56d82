"""``run --metrics-port P``: the run's live figures in the Prometheus text format, for a Grafana board.

Theory of operation: nothing here touches the hot path. The run's once-a-second bookkeeping already hands
a progress snapshot to its caller about twice a second (``bench.runner.engine``); with the endpoint on, those
snapshots also carry copies of the ``corrected`` and ``raw`` latency histograms. ``LiveMetrics.update`` keeps
the latest snapshot of each transport (one reference swapped under a lock), and the HTTP server's thread turns
it into metric families only when Prometheus scrapes. With ``--processes N`` the parent serves: it merges the
children's snapshots (counters summed, histograms added exactly, ``procs.merge_snapshots``), so one endpoint
shows the whole fleet, as summary.json will. When a transport ends, its final figures replace the live ones
(``finish``): the endpoint then serves exactly what summary.json holds. With the endpoint off nothing of this
is loaded and the snapshots carry no histograms.

Served (every name prefixed ``nucleus_bench_``, label ``transport``):

- counters ``sent_events_total``, ``acked_events_total``, ``rejected_events_total``, ``lost_events_total``;
  gauge ``in_flight_events``;
- gauge ``ack_latency_quantile_seconds{kind="corrected"|"raw", quantile="0.5"|"0.9"|"0.99"|"0.999"}``: the
  run's quantiles so far (the summary's p50/p90/p99/p999, in seconds);
- histogram ``ack_latency_seconds{kind}`` (``_bucket{le}``, ``_count``, ``_sum``) over fixed bounds from
  100 µs to 60 s, so Grafana can take quantiles over any window: ``histogram_quantile(0.99,
  rate(nucleus_bench_ack_latency_seconds_bucket{kind="corrected"}[1m]))``. A bound falls inside one of the
  run histogram's buckets (<= 0.4 % wide): that bucket counts above it;
- gauge ``transport_finished`` (1: the figures are final) and ``info{scenario, app_id, shard}`` = 1.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from prometheus_client.registry import Collector, CollectorRegistry

from bench.metrics import Histogram
from bench.protocol.errors import UsageError
from bench.results.summary import quantiles
from bench.results.transport import TransportResult

PREFIX = "nucleus_bench_"
COUNTED = ("sent", "acked", "rejected", "lost")
#: (label, summary key) of the quantiles served, as summary.json names them.
QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("0.999", "p999"))
#: Upper bounds (seconds) of the served histogram's buckets.
BOUNDS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class Figures:
    """One transport's figures at one moment: what a scrape serves (never changed once made)."""

    counters: Mapping[str, int]
    histograms: Mapping[str, Histogram] = field(default_factory=dict)  # "corrected", "raw"
    final: bool = False

    @classmethod
    def of_snapshot(cls, snap: Mapping[str, Any]) -> Figures:
        return cls(counters={k: int(snap[k]) for k in (*COUNTED, "in_flight")},
                   histograms={k: snap[k] for k in ("corrected", "raw") if k in snap})

    @classmethod
    def of_result(cls, result: TransportResult) -> Figures:
        t = result.tracker
        return cls(counters={k: int(getattr(t, k)) for k in (*COUNTED, "in_flight")},
                   histograms={"corrected": t.corrected, "raw": t.raw}, final=True)


class LiveMetrics(Collector):
    """The latest figures of each transport of the run, as a Prometheus collector.

    ``update`` and ``finish`` run on the run's thread, ``collect`` on the server's: they share one dict of
    immutable ``Figures`` under a lock. ``done()`` says every transport has ended; a scrape that starts after
    it sets ``final_scraped`` once its reply is written (``--metrics-hold`` waits for that).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._figures: dict[str, Figures] = {}
        self._info: dict[str, dict[str, str]] = {}
        self.ended = False
        self.final_scraped = threading.Event()

    def set_info(self, transport: str, *, scenario: str, app_id: str, shard: str = "") -> None:
        """What the transport's run is, for the ``info`` gauge's labels (``shard``: "I/N" or empty)."""
        with self._lock:
            self._info[transport] = {"scenario": scenario, "app_id": app_id, "shard": shard}

    def update(self, transport: str, snap: Mapping[str, Any]) -> None:
        """A progress snapshot of ``transport`` (cumulative counters; histograms when the run sends them)."""
        figures = Figures.of_snapshot(snap)
        with self._lock:
            if not self._figures.get(transport, figures).final:
                self._figures[transport] = figures

    def finish(self, transport: str, result: TransportResult) -> None:
        """The transport's final figures: the same histograms and counters summary.json is built from."""
        with self._lock:
            self._figures[transport] = Figures.of_result(result)

    def done(self) -> None:
        """Every transport has ended: the figures served from now on are the run's last."""
        self.ended = True

    def describe(self) -> Iterable[Metric]:
        return []  # names are fixed; nothing to collect at registration

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            figures, infos = dict(self._figures), dict(self._info)
        yield from _counter_families(figures)
        yield from _latency_families(figures)
        finished = GaugeMetricFamily(PREFIX + "transport_finished",
                                     "1 when the transport's figures are final", labels=["transport"])
        info = GaugeMetricFamily(PREFIX + "info", "what ran: scenario, appId, shard (value 1)",
                                 labels=["transport", "scenario", "app_id", "shard"])
        for name, fig in figures.items():
            finished.add_metric([name], 1.0 if fig.final else 0.0)
            labels = infos.get(name, {})
            info.add_metric([name, labels.get("scenario", ""), labels.get("app_id", ""),
                             labels.get("shard", "")], 1.0)
        yield finished
        yield info


def _counter_families(figures: Mapping[str, Figures]) -> Iterator[Metric]:
    for key in COUNTED:
        family = CounterMetricFamily(PREFIX + f"{key}_events", f"events {key} so far", labels=["transport"])
        for name, fig in figures.items():
            family.add_metric([name], float(fig.counters[key]))
        yield family
    in_flight = GaugeMetricFamily(PREFIX + "in_flight_events", "events sent and not answered yet",
                                  labels=["transport"])
    for name, fig in figures.items():
        in_flight.add_metric([name], float(fig.counters["in_flight"]))
    yield in_flight


def _latency_families(figures: Mapping[str, Figures]) -> Iterator[Metric]:
    gauge = GaugeMetricFamily(PREFIX + "ack_latency_quantile_seconds",
                              "ack latency quantile of the run so far (corrected: from the intended send)",
                              labels=["transport", "kind", "quantile"])
    hist = HistogramMetricFamily(PREFIX + "ack_latency_seconds", "ack latency of the run so far",
                                 labels=["transport", "kind"])
    for name, fig in figures.items():
        for kind, h in fig.histograms.items():
            q = quantiles(h)
            for label, key in QUANTILES:
                gauge.add_metric([name, kind, label], float(q[key]) / 1e6)
            hist.add_metric([name, kind], buckets(h), sum_value=h.mean() * h.count / 1e6)
    yield gauge
    yield hist


def buckets(h: Histogram) -> list[tuple[str, float]]:
    """Cumulative counts at ``BOUNDS_S`` and +Inf: values below the range count in every bucket, above it
    only in +Inf; a run-histogram bucket that straddles a bound counts above it."""
    counts = h.buckets
    out: list[tuple[str, float]] = []
    for bound in BOUNDS_S:
        below = int(counts[: h.layout.index(bound * 1e6)].sum())
        out.append((repr(bound), float(h.underflow + below)))
    out.append(("+Inf", float(h.total)))
    return out


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape on the run's terminal."""


class LiveServer:
    """The HTTP endpoint: ``prometheus_client``'s WSGI app over a threaded server on ``host:port``."""

    def __init__(self, metrics: LiveMetrics, host: str, port: int) -> None:
        registry = CollectorRegistry()
        registry.register(metrics)
        app = make_wsgi_app(registry)
        self.metrics = metrics

        def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            final = metrics.ended  # then this reply carries the final figures
            return _Reply(app(environ, start_response), metrics.final_scraped.set if final else None)

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            self._httpd = make_server(host, port, serve, Server, handler_class=_Quiet)
        except OSError as exc:
            raise UsageError(f"--metrics-port {port}: cannot listen on {host}:{port}: "
                             f"{exc.strerror or exc}") from None
        self.port = int(self._httpd.server_port)
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/metrics"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="nucleus-bench-metrics",
                                        daemon=True)
        self._thread.start()

    def hold(self, seconds: float) -> bool:
        """Keep serving until one scrape has read the final figures, or ``seconds`` have passed (a Prometheus
        that scrapes every 15 s would otherwise miss a run's last figures). True if it was scraped."""
        try:
            return self.metrics.final_scraped.wait(seconds)
        except KeyboardInterrupt:
            return False

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5.0)


class _Reply:
    """A WSGI reply whose ``close()`` (called by the server once the body is written) runs ``on_close``."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None] | None) -> None:
        self._body = body
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
        if self._on_close is not None:
            self._on_close()
