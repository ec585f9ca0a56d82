"""The ``run`` command as a library call: target, transports one after the other, results, report.

``execute(RunRequest) -> int`` is what the CLI calls; capacity search and other drivers call
``bench.runner.run_transport`` directly. Exit status: 0 for a clean run (lost events and phantom acks
are measurements), 1 when the accounting identity fails (a harness bug), 2 for the user's errors and an
unreachable target (raised as ``UsageError``; results measured before it are still written).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from bench.fleet import Plan
from bench.profiles import Clients
from bench.protocol.errors import UsageError
from bench.results.files import make_run_dir, run_meta, write_results
from bench.results.ids import new_app_id
from bench.results.reconcile import (
    Reconciliation,
    fetch_stored_count,
    not_done,
    reconcile_counts,
    reconcile_fleet,
    reconcile_reference,
    verify_url_for,
)
from bench.results.shards import ShardInfo, parse_shard, scenario_digest
from bench.results.summary import RunHeader, build_summary
from bench.results.terminal import transport_lines
from bench.results.transport import TransportResult
from bench.results.verdict import EXIT_OBJECTIVE_MISSED, Judge, all_met, objective_in_force, objective_line
from bench.runner.engine import RunConfig, raise_nofile_limit
from bench.runner.procs import run_transport
from bench.runner.progress import Progress
from bench.runner.stops import STOPS, sigterm_as_interrupt
from bench.scenario import Scenario, load_scenario, parse_duration
from bench.transports.common import TransportOptions, parse_source_addrs

if TYPE_CHECKING:
    from bench.runner.live import LiveMetrics, LiveServer

#: TCP connect timeout of the reachability check made before each transport.
PREFLIGHT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything ``nucleus-bench run`` was asked to do, flags checked for form (not yet for meaning)."""

    scenario_path: str
    transports: tuple[str, ...] = ("ws",)
    target_url: str | None = None
    app_ids: tuple[str, ...] | None = None
    duration: str | None = None
    rate: float | None = None
    devices: int | None = None
    connect_rate: float | None = None
    time_scale: float | None = None
    processes: int = 1
    out_dir: str = "results"
    seed: int | None = None
    insecure: bool = False
    source_addrs: str | None = None
    progress: bool = True
    verify_url: str | None = None
    reconcile_timeout_s: float = 10.0
    stats_token: str | None = None
    target_args: tuple[str, ...] = ()
    target_store: str | None = None
    http_concurrency: int = 128
    ws_io: Literal["auto", "polled", "stream"] = "auto"
    argv: tuple[str, ...] = field(default_factory=tuple)
    #: (I, N): drive shard I (0-based) of N of the fleet, for ``nucleus-bench merge`` (``--shard I/N``).
    shard: tuple[int, int] | None = None
    #: serve live figures for Prometheus on this port (0: a free one; None: off), ``--metrics-port``.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    #: after the run, serve until the final figures are scraped once or this many seconds pass.
    metrics_hold_s: float = 0.0
    #: the objective's values given on the command line (None: the scenario's [objective], if any).
    slo_p99_s: float | None = None
    max_loss: float | None = None
    warmup_s: float | None = None


#: Exit statuses of ``run`` besides 0 (every identity holds), 1 (one does not) and 2 (bad input): the
#: objective missed; a shard process lost mid-run; 128 + the signal for a run stopped by SIGINT (130) or
#: SIGTERM (143).
EXIT_LOST_PROCESS = 4
#: The connect rate's pacing is said before the run when it lengthens the scenario's ramp by this much.
PACING_NOTE_S = 1.0


def interrupted_line() -> str:
    return (f"interrupted ({STOPS.label}): the figures cover the run up to then; unanswered events are in "
            "flight")


def lost_line(lost: list[str]) -> str:
    more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
    return (f"{lost[0]}{more}: its events are not counted; the other shards stopped there and their "
            "figures are kept")


def load(request: RunRequest) -> Scenario:
    """The scenario with the command line's overrides (ScenarioError / UsageError on bad input)."""
    scenario = load_scenario(request.scenario_path)
    duration = parse_duration(request.duration) if request.duration is not None else None
    scenario = scenario.with_overrides(duration_s=duration, rate=request.rate, devices=request.devices,
                                       seed=request.seed, connect_rate=request.connect_rate)
    if request.time_scale is not None:
        scenario = with_time_scale(scenario, request.time_scale)
    if scenario.clients is not None:  # client devices date their events from the real start of the run
        scenario = replace(scenario, clients=replace(scenario.clients, epoch_ms=int(time.time() * 1000)))
        if "http" in request.transports and Plan(scenario).has_clients:
            raise UsageError(f"{request.scenario_path}: client profiles, outages, releases and time_scale "
                             "imitate the WebSocket modules: run it with --transport ws")
    return scenario


def with_time_scale(scenario: Scenario, scale: float) -> Scenario:
    """The scenario on a clock ``scale`` times faster than the real one (``--time-scale``).

    Raises:
        UsageError: the scale is out of [1, 10000], or the fleet no longer comes online within the run.
    """
    if not 1.0 <= scale <= 10_000.0:
        raise UsageError(f"--time-scale must be in [1, 10000], not {scale:g}")
    clients = replace(scenario.clients or Clients(), time_scale=scale)
    scaled = replace(scenario, clients=clients)
    why = scaled.ramp_fits()
    if why is not None:
        raise UsageError(f"--time-scale {scale:g}: {why}")
    return scaled


def preflight(base_url: str) -> None:
    """Fail fast, in one line, when nothing listens at the target (exit 2)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=PREFLIGHT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UsageError(f"target {base_url} is unreachable: {exc.strerror or exc}") from None


def check_out_dir(out_dir: str) -> None:
    """Fail before the load, in one line, when no results could be written under ``out_dir`` (exit 2)."""
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".nucleus-bench-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: results cannot be written there: {exc.strerror or exc}") from None


def stored_before(request: RunRequest, app_id: str) -> int | None:
    """The ``--verify-url`` count before the load, read first so that a bad URL (refused, 404, not the shape
    it must answer) is one line and exit 2 before any load, not a reconciliation lost after it."""
    if request.verify_url is None:
        return None
    before = fetch_stored_count(verify_url_for(request.verify_url, app_id), insecure=request.insecure,
                                timeout_s=request.reconcile_timeout_s)
    if isinstance(before, str):
        raise UsageError(before)
    return before


def target(request: RunRequest) -> contextlib.AbstractContextManager[tuple[str, bool]]:
    """(base URL, embedded?): the given target, or the embedded reference target, started and stopped."""
    from bench.target.embedded import given_or_embedded

    return given_or_embedded(
        request.target_url, request.target_store, request.target_args,
        lambda url, kind: f"nucleus-bench run: no --target given: started the embedded reference target at "
                          f"{url} ({kind}); it stops at the end")


def reconcile(request: RunRequest, result: TransportResult, base_url: str, app_id: str,
              embedded: bool, before: int | None, scenario: Scenario | None = None) -> Reconciliation:
    """Reference reconciliation when the target is one; else --verify-url counts; else not done.

    A fleet with client devices (``scenario``) is reconciled event by event: their ids collide.

    A shard does not reconcile: the other shards store into the same app while it runs, so only the union of
    their acknowledged ids can be compared with the store (``nucleus-bench merge`` does).
    """
    if request.shard is not None:
        index, count = request.shard
        return not_done(f"shard {index} of {count}: `nucleus-bench merge` reconciles the whole run")
    if request.verify_url is not None and before is not None:
        after = fetch_stored_count(verify_url_for(request.verify_url, app_id), insecure=request.insecure,
                                   timeout_s=request.reconcile_timeout_s)
        return reconcile_counts(before, after, result.tracker.acked)
    reported = result.reported_ids or []
    if scenario is not None:  # a fleet with client devices is reconciled by event
        rec = reconcile_fleet(Plan(scenario), base_url, app_id, reported, insecure=request.insecure,
                              token=request.stats_token, timeout_s=request.reconcile_timeout_s)
    else:
        rec = reconcile_reference(base_url, app_id, reported, insecure=request.insecure,
                                  token=request.stats_token, timeout_s=request.reconcile_timeout_s)
    if rec.done or embedded or rec.note.startswith(f"{base_url} unreachable:"):
        return rec  # done, or why not: a target that cannot be reached is said so, not taken for a stranger
    return not_done("the target is not the reference target and no --verify-url was given")


class _Session:
    """One ``run`` invocation: results so far, where they go, and how to write them."""

    def __init__(self, request: RunRequest, scenario: Scenario, base_url: str, embedded: bool,
                 live: LiveMetrics | None = None) -> None:
        self.request = request
        self.scenario = scenario
        self.base_url = base_url
        self.embedded = embedded
        self.live = live
        self.started = datetime.now(UTC)
        self.results: dict[str, TransportResult] = {}
        self.app_ids: dict[str, str] = {}
        self.run_dir: Path | None = None
        self.summary: dict[str, Any] = {}
        self.shard: ShardInfo | None = None
        self.judge: Judge | None = None
        self.verdicts: dict[str, dict[str, Any]] = {}

    def run_one(self, transport: str, app_id: str, options: TransportOptions) -> None:
        request, sc = self.request, self.scenario
        preflight(self.base_url)
        before = stored_before(request, app_id)
        index, count = request.shard or (0, 1)
        config = RunConfig(scenario=sc, transport=transport,  # type: ignore[arg-type]
                           target_url=self.base_url, app_id=app_id, options=options,
                           processes=request.processes, shard=index, shards=count,
                           live_histograms=self.live is not None)
        if self.live is not None:
            self.live.set_info(transport, scenario=sc.name, app_id=app_id,
                               shard=f"{index}/{count}" if request.shard else "")
        with Progress(f"{sc.name} {transport}", request.progress) as progress:
            result = run_transport(config, progress=self._progress_fn(transport, progress))
        if self.live is not None:
            self.live.finish(transport, result)
        try:
            rec = reconcile(request, result, self.base_url, app_id, self.embedded, before, sc)
        except KeyboardInterrupt:  # Ctrl-C while the target is asked: keep what the load measured
            rec = not_done(f"interrupted ({STOPS.label}) during reconciliation")
            result = replace(result, interrupted=True)
        result = replace(result, reconciliation=rec)
        self.results[transport] = result
        self.app_ids[transport] = app_id
        if self.judge is not None and not result.interrupted and self.shard is None:  # merge judges shards
            self.verdicts[transport] = self.judge.verdict(result)
        self.write()
        for line in transport_lines(transport, self.summary["transports"][transport]):
            print(line)
        if transport in self.verdicts:
            print(objective_line(transport, self.verdicts[transport]))

    def _progress_fn(self, transport: str, progress: Progress) -> Callable[[dict[str, Any]], None]:
        """The terminal's progress, and the metrics endpoint's when it is on."""
        live = self.live
        if live is None:
            return progress.update

        def both(snap: dict[str, Any]) -> None:
            progress.update(snap)
            live.update(transport, snap)
        return both

    def write(self, error: str | None = None) -> None:
        if not self.results:
            return
        sc = self.scenario
        extra: dict[str, Any] = {"shard": self.shard.to_json()} if self.shard is not None else {}
        if self.judge is not None:
            extra["objective"] = self.judge.to_json(self.verdicts)
        if self.run_dir is None:
            name = sc.name
            if self.shard is not None:
                name += f"-shard-{self.shard.index}-of-{self.shard.count}"
            self.run_dir = make_run_dir(self.request.out_dir, name, self.started)
        header = replace(run_header(self.request, sc, self.base_url, self.embedded, self.started, error),
                         extra=extra)
        self.summary = build_summary(self.results, self.app_ids, header)
        meta = run_meta(argv=self.request.argv, seed=sc.seed, scenario_path=sc.path,
                        extra={"target": header.target_json(), "app_ids": dict(self.app_ids),
                               **({"shard": extra["shard"]} if "shard" in extra else {})})
        write_results(self.run_dir, self.summary, self.results, meta, reported_ids=self.shard is not None)


def run_header(request: RunRequest, scenario: Scenario, base_url: str, embedded: bool, started: datetime,
               error: str | None = None) -> RunHeader:
    """The summary's header of a ``run``: the scenario with the command line's overrides, which is what ran
    (its devices and duration are the scenario's: no driver sets them, unlike Locust's)."""
    return RunHeader(scenario=scenario, target_url=base_url, embedded=embedded, started=started,
                     finished=datetime.now(UTC), processes=request.processes, error=error)


def _options(request: RunRequest) -> TransportOptions:
    addrs = parse_source_addrs(request.source_addrs) if request.source_addrs else ()
    return TransportOptions(insecure=request.insecure, source_addrs=addrs,
                            http_concurrency=request.http_concurrency, ws_io=request.ws_io)


def note_twins() -> None:
    """Say so when the per-event steps run their Python twins because ``bench._native`` was not built (the
    results are the same; the generator spends more CPU per event, so it saturates sooner)."""
    from bench import native

    if not native.in_use() and not native.pure_requested():
        print("nucleus-bench run: bench._native is not built (no C compiler at install): the per-event steps "
              "run in Python, same results, more client CPU per event", file=sys.stderr)


def execute(request: RunRequest) -> int:
    """Run every requested transport, write the results, print the report. Returns the exit status."""
    scenario = load(request)
    options = _options(request)
    app_ids = request.app_ids or ((scenario.app_id,) * len(request.transports) if scenario.app_id else None)
    if app_ids is not None and len(set(app_ids)) != len(request.transports):
        raise UsageError("the scenario's app_id serves one transport; for both give --app-id WS_ID,HTTP_ID")
    check_shard(request, scenario, app_ids)
    if request.processes > (devices := _slice_devices(request, scenario)):
        raise UsageError(f"--processes {request.processes} is more than the {devices} devices"
                         f"{' of the shard' if request.shard else ''}")
    check_out_dir(request.out_dir)
    objective = objective_in_force(scenario.objective, p99_s=request.slo_p99_s, max_loss=request.max_loss,
                                   warmup_s=request.warmup_s)
    judge = Judge.of(objective, scenario)
    if scenario.target_args and request.target_url is None:  # [target] args: the embedded target's flags
        request = replace(request, target_args=(*scenario.target_args, *request.target_args))
    if scenario.time_scale != 1.0:
        print(f"nucleus-bench run: time runs {scenario.time_scale:g}x: the scenario's "
              f"{scenario.duration_s:g} s take {scenario.duration_s / scenario.time_scale:.3g} s",
              file=sys.stderr)
    if scenario.connect_ramp_s >= scenario.ramp_s + PACING_NOTE_S * scenario.time_scale:
        print(f"nucleus-bench run: {scenario.devices:,} devices come online at {scenario.connect_rate:,.6g} "
              f"connects/s, over {scenario.connect_ramp_s / scenario.time_scale:.3g} s (the scenario's ramp: "
              f"{scenario.ramp_s / scenario.time_scale:g} s)", file=sys.stderr)
    raise_nofile_limit()
    note_twins()
    STOPS.reset()
    with sigterm_as_interrupt(), live_server(request) as server:
        live = server.metrics if server is not None else None
        with target(request) as (base_url, embedded):
            session = _Session(request, scenario, base_url, embedded, live)
            session.judge = judge
            if request.shard is not None and app_ids is not None:
                session.shard = shard_info(request.shard, scenario, request.transports, app_ids, base_url)
            try:
                for k, transport in enumerate(request.transports):
                    session.run_one(transport, app_ids[k] if app_ids else new_app_id(), options)
                    result = session.results[transport]
                    if result.interrupted:
                        lost = result.lost_processes
                        error = lost_line(lost) if lost else interrupted_line()
                        session.write(error=error)
                        print(f"nucleus-bench run: {error}", file=sys.stderr)
                        break
            except UsageError as exc:
                session.write(error=str(exc))  # whatever was measured is still written
                raise
        _report(session)
        if judge is not None and session.shard is not None:
            print("objective: not judged on a shard's slice; `nucleus-bench merge` judges the whole run")
        if server is not None:
            hold(server, request.metrics_hold_s, session)
    return exit_status(session.results.values(), bool(session.summary.get("ok")), all_met(session.verdicts))


def exit_status(results: Iterable[TransportResult], ok: bool, met: bool = True) -> int:
    """0: every identity holds (and the objective, if any, was met); 1: an identity does not hold; 3: the
    objective was missed; 4: a shard process was lost; 130/143: SIGINT/SIGTERM."""
    done = list(results)
    if any(r.lost_processes for r in done):
        return EXIT_LOST_PROCESS
    if any(r.interrupted for r in done):
        return STOPS.exit_status()  # as a shell reports a command ended by the signal
    if not ok:
        return 1
    return 0 if met else EXIT_OBJECTIVE_MISSED


def check_shard(request: RunRequest, scenario: Scenario, app_ids: tuple[str, ...] | None) -> None:
    """A shard's run must be mergeable: one target and one appId per transport shared by every shard
    (one line, exit 2, before any load)."""
    if request.shard is None:
        return
    index, count = request.shard
    parse_shard(f"{index}/{count}", scenario.devices)  # N <= devices
    spec = f"--shard {index}/{count}"
    if request.target_url is None:
        raise UsageError(f"{spec} needs --target URL: every shard sends to the one server under test (an "
                         "embedded target per shard would be N servers, and the merge could reconcile none)")
    if app_ids is None:
        raise UsageError(f"{spec} needs --app-id (or the scenario's app_id): every shard of the run sends to "
                         "the same app, so give each the same fresh id")
    if request.verify_url is not None:
        raise UsageError(f"{spec} with --verify-url: the other shards store into the same app meanwhile; "
                         "give --verify-url to `nucleus-bench merge` instead")


def _slice_devices(request: RunRequest, scenario: Scenario) -> int:
    index, count = request.shard or (0, 1)
    return len(range(index, scenario.devices, count))


def shard_info(shard: tuple[int, int], scenario: Scenario, transports: tuple[str, ...],
               app_ids: tuple[str, ...], base_url: str) -> ShardInfo:
    """The ``shard`` block of a shard's summary: its slice, and what every shard of the run shares."""
    return ShardInfo(index=shard[0], count=shard[1], seed=scenario.seed, scenario=scenario.name,
                     scenario_digest=scenario_digest(scenario), transports=transports,
                     app_ids=dict(zip(transports, app_ids, strict=True)), target=base_url)


@contextlib.contextmanager
def live_server(request: RunRequest) -> Iterator[LiveServer | None]:
    """The ``--metrics-port`` endpoint for the whole command (None when off: nothing of it is loaded)."""
    if request.metrics_port is None:
        yield None
        return
    from bench.runner.live import LiveMetrics, LiveServer

    server = LiveServer(LiveMetrics(), request.metrics_host, request.metrics_port)
    print(f"nucleus-bench run: live metrics (Prometheus) at {server.url}", file=sys.stderr)
    try:
        yield server
    finally:
        server.close()


def hold(server: LiveServer, seconds: float, session: _Session) -> None:
    """Serve the final figures until they are scraped once, or for ``seconds`` (``--metrics-hold``); not
    after Ctrl-C, which asked the run to stop."""
    server.metrics.done()
    if seconds > 0 and session.results and not any(r.interrupted for r in session.results.values()):
        print(f"nucleus-bench run: serving the final metrics until scraped, at most {seconds:g} s",
              file=sys.stderr)
        server.hold(seconds)


def _report(session: _Session) -> None:
    if len(session.results) > 1:
        from rich.console import Console

        from bench.results.terminal import comparison_table

        Console().print(comparison_table(session.summary))
    if session.run_dir is not None:
        print(f"results: {session.run_dir}")
