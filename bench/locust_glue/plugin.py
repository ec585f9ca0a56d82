"""The Locust event listeners that tie a device fleet to Locust: ``install()`` is all a locustfile calls.

What happens when (each Locust process runs the listeners for its role):

- ``init_command_line_parser``: the custom arguments (bench.locust_glue.options); with ``--processes``
  the parsed options point the forked workers at the master's own bind address.
- ``init``: the master or standalone process checks the options, the scenario and ``--host`` (a bad one is
  one line, exit 2, before any user starts) and, without ``--host``, starts the embedded reference target
  (memory store) and says so; custom messages are registered (bench.locust_glue.collect). A worker says
  hello to its master with its ``Identity`` (user classes, locustfiles, nucleus-bench version) and starts
  watching for the master's death (``collect.MasterWatch``).
- ``nucleus_hello`` (master): a worker whose identity differs from the master's is refused in one line on
  both sides, and dropped before any user is dispatched to it; it exits 2 (bench.locust_glue.joining).
- ``test_start``: the master/standalone process makes the run's ``RunSpec`` (scenario text, appIds, plan
  duration, the master's identity) and puts it in the parsed options, which Locust forwards to the workers
  with each spawn message; a master first waits (a few seconds at most) for the hello of every connected
  worker. Every process that runs users builds its ``RunState`` and starts its housekeeping; a worker
  whose identity differs from the spec's refuses the run (exit 2) before any user starts. While the run
  is live the master samples its workers into a ``Roster`` twice a second: who ran users, the most users
  at once, who was lost and when.
- ``test_stopping`` (before Locust stops any user) and ``quitting``: the master/standalone process drains
  every process, waits for the result of every worker that ran users (until it comes, the worker is seen
  lost, or the ack timeout plus a grace has passed), merges them exactly, reconciles them with the target,
  writes ``<results-dir>/<UTC time>-locust-<scenario>/summary.json`` (the hot path's files and schema),
  prints the end-of-run lines and the ``--check-*`` verdicts, and sets the exit code. A ``quitting`` that
  comes while the run is live (Ctrl-C or SIGTERM: Locust quits without stopping the test first) marks every
  transport of the summary ``interrupted``.
- ``quit``: the embedded target, if any, is stopped.

Exit codes of the master or standalone process (the first that applies):

- 1: a worker that ran users was lost (its result never came: ``missing_workers`` says which and when,
  ``error`` says so), or an accounting identity does not hold (a harness bug);
- 130 (``EXIT_INTERRUPTED``): Ctrl-C or SIGTERM while the run was live; the summary is written, marked
  ``interrupted``, as ``nucleus-bench run`` does;
- with any ``--check-*`` given, the thresholds decide: 3 when one is violated, else 0 (failures are judged
  by ``--check-fail-ratio``, not by Locust's any-error rule); without, Locust's own rule stands.

A worker exits 2 when it is refused, and 1 when its master is lost (``EXIT_MASTER_LOST``), after writing
its own partial result under its ``--results-dir`` (``<UTC time>-locust-<scenario>-worker<N>/``).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.lock
from locust import __version__ as locust_version
from locust import events as locust_events
from locust import log as locust_log
from locust.env import Environment
from locust.event import Events
from locust.rpc import Message
from locust.runners import (
    STATE_INIT,
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    LocalRunner,
    MasterRunner,
    Runner,
    WorkerRunner,
)

from bench.locust_glue import collect, joining, live, messages, webui
from bench.locust_glue.devices import check_base_url
from bench.locust_glue.gates import EXIT_GATES, evaluate
from bench.locust_glue.options import GlueOptions, add_arguments, align_forked_workers
from bench.locust_glue.roster import NO_RESULT, LostWorker, Roster
from bench.locust_glue.runstate import Identity, RunSpec, RunState, fleet_plan, fleet_scenario, plan_duration
from bench.protocol.errors import EventLost, UsageError
from bench.protocol.message import TRANSPORT_NAMES
from bench.results.files import make_run_dir, run_meta, write_results
from bench.results.ids import new_app_id
from bench.results.reconcile import Reconciliation, not_done, reconcile_fleet
from bench.results.summary import build_summary
from bench.results.terminal import transport_lines
from bench.results.transport import TransportResult
from bench.results.verdict import Judge, all_met, default_warmup, objective_line
from bench.scenario import Scenario, load_scenario, parse_scenario, read_scenario_text
from bench.target.embedded import EmbeddedTarget

logger = logging.getLogger("nucleus_bench")

#: Where the master keeps the run's spec in the parsed options (forwarded to workers by Locust).
SPEC_OPTION = "nucleus_run"
#: Extra wait for the workers' results beyond the ack timeout (their drain, the message, the merge).
COLLECT_GRACE_S = 10.0
#: How often the master samples its workers into the run's roster.
SAMPLE_S = 0.5
#: Exit code of a run cut short by Ctrl-C or SIGTERM (as a shell reports a command ended by SIGINT).
EXIT_INTERRUPTED = 130
#: Exit code of a worker that lost its master (its partial result is written where it runs).
EXIT_MASTER_LOST = 1
_KINDS = {"ws": "WS", "http": "HTTP"}
INTERRUPTED = "Locust quit mid-run (Ctrl-C or SIGTERM): the figures cover the run up to then"


@dataclass(slots=True)
class _Collection:
    """The master/standalone side of one run: what it agreed on and the results that came back."""

    spec: RunSpec
    scenario: Scenario
    started: datetime
    transports: tuple[str, ...]
    roster: Roster
    started_mono: float = field(default_factory=time.monotonic)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrived: gevent.event.Event = field(default_factory=gevent.event.Event)
    done: bool = False
    #: Locust quit while the run was live (Ctrl-C or SIGTERM): its figures cover the run up to then.
    interrupted: bool = False
    sampler: gevent.Greenlet[Any, None] | None = None

    def now_s(self) -> float:
        """Seconds since the run started (the roster's clock)."""
        return time.monotonic() - self.started_mono


def spawn_pacing_warning(spawn_rate: float | None, connect_rate: float) -> str | None:
    """Locust's spawn rate paces its users' connects, as ``connect_rate`` paces a ``run``'s fleet: one line
    when it asks for more connects per second than the scenario allows (None: it does not, or is unknown)."""
    if spawn_rate is None or not spawn_rate > connect_rate:
        return None
    return (f"spawning {spawn_rate:,.6g} users/s asks for more connects/s than the scenario's connect rate "
            f"of {connect_rate:,.6g}/s ([fleet] connect_rate): handshakes may time out and devices start "
            f"late; lower -r or raise connect_rate")


def _spawn_rate(environment: Environment) -> float | None:
    """The run's spawn rate where Locust keeps it (the master's runner, else the command line's -r)."""
    parsed = environment.parsed_options
    rate = getattr(environment.runner, "spawn_rate", None) or getattr(parsed, "spawn_rate", None)
    return float(rate) if isinstance(rate, int | float) and rate > 0 else None


def route_sigint_to_main() -> None:
    """Deliver Ctrl-C to Locust's main greenlet only, as the KeyboardInterrupt its ``main`` catches.

    Python's own handler raises KeyboardInterrupt in whichever greenlet runs when the signal lands: in the
    housekeeping or a user's greenlet, gevent prints that greenlet's traceback before passing the interrupt
    on. Taken through gevent's loop instead, the interrupt is thrown into the main greenlet from the hub,
    the way gevent passes on any system error. A handler someone else installed is left alone.
    """
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    hub = gevent.get_hub()

    def interrupt() -> None:
        hub.loop.run_callback(hub.parent.throw, KeyboardInterrupt)

    gevent.signal_handler(signal.SIGINT, interrupt)


class Glue:
    """The listeners of one Locust process and the state they share."""

    def __init__(self) -> None:
        self.environment: Environment | None = None
        self.options = GlueOptions()
        self.identity: Identity | None = None
        self.target: EmbeddedTarget | None = None
        self.run: RunState | None = None
        self.run_error = ""
        self.housekeeper: collect.Housekeeper | None = None
        self.final: dict[str, Any] | None = None
        self.delivered = False  # worker: this run's result went to the master in answer to its drain
        self.announced = 0  # worker: the devices this run has started, as the master was last told
        self.collection: _Collection | None = None
        self.web: webui.WebTab | None = None
        self.verified: set[str] = set()  # master: the workers whose hello matched
        self.heartbeats: dict[str, float] = {}  # master: each worker's last heartbeat (monotonic s)
        self.watch: collect.MasterWatch | None = None
        self._finalizing = gevent.lock.Semaphore()

    # -- Locust event listeners -------------------------------------------------------------------
    def on_parser(self, parser: Any, **_: Any) -> None:
        add_arguments(parser)
        parse = parser.parse_args

        def parse_args(*args: Any, **kwargs: Any) -> Any:
            ns = parse(*args, **kwargs)
            align_forked_workers(ns, parser.error)
            return ns

        parser.parse_args = parse_args  # Locust forks --processes workers right after parsing

    def on_init(self, environment: Environment, **_: Any) -> None:
        self.environment = environment
        self.web = webui.install(environment, self)  # first: its test_start runs before the run's own
        route_sigint_to_main()
        events: Any = environment.events  # locust's EventHook is untyped
        for hook, listener in ((events.test_stopping, self.on_test_stopping),
                               (events.quitting, self.on_quitting), (events.quit, self.on_quit),
                               (events.spawning_complete, self.on_spawned),
                               (events.heartbeat_sent, self.on_heartbeat)):
            hook.add_listener(listener)
        runner = environment.runner
        self.identity = joining.identity_of(environment)
        if runner is not None:
            self._register_messages(runner)
        if not isinstance(runner, WorkerRunner):
            try:
                self.options = GlueOptions.from_parsed(environment.parsed_options)
                load_scenario(self.options.scenario)
                if environment.host is not None:  # else the embedded target's, or the web UI's form
                    check_base_url(environment.host)
            except (UsageError, argparse.ArgumentTypeError) as exc:
                sys.stderr.write(f"nucleus-bench: error: {exc}\n")
                sys.exit(2)
            if environment.host is None and all(c.host is None for c in environment.user_classes):
                self._start_target(environment)

    def _register_messages(self, runner: Runner) -> None:
        """The custom messages of this process's role; a worker then says hello and watches its master."""
        if not isinstance(runner, MasterRunner):
            runner.register_message(messages.DRAIN_MSG, self.on_drain,
                                    concurrent=isinstance(runner, WorkerRunner))
        if not isinstance(runner, WorkerRunner):
            runner.register_message(messages.RESULT_MSG, self.on_result)
        if isinstance(runner, MasterRunner):
            runner.register_message(messages.RUNNING_MSG, self.on_running)
            runner.register_message(messages.HELLO_MSG, self.on_hello)
            runner.send_message(messages.HELLO_MSG, None)  # workers that said hello before this listened
        if isinstance(runner, WorkerRunner):
            runner.register_message(messages.HELLO_MSG, self.on_hello_asked)
            runner.register_message(messages.REFUSED_MSG, self.on_refused)
            self.on_hello_asked()
            assert self.environment is not None
            self._watch_master(self.environment, runner)

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        if not isinstance(runner, WorkerRunner):
            if isinstance(runner, MasterRunner):
                joining.await_hellos(runner, self.verified)
            try:
                self.collection = self._new_collection(environment)
            except (UsageError, argparse.ArgumentTypeError) as exc:
                logger.error("nucleus-bench: %s", exc)
                self.collection = None
                if runner is not None:
                    gevent.spawn(runner.stop)  # the web UI's form named a bad scenario: nothing to run
                return
            if runner is not None:
                self.collection.sampler = gevent.spawn(self._sample_loop, runner, self.collection)
        if not isinstance(runner, MasterRunner):
            self._start_run(environment)

    def on_test_stopping(self, environment: Environment, **_: Any) -> None:
        if not isinstance(environment.runner, WorkerRunner):
            self._collect(environment)

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            if self.run is not None and self.final is None:  # quitting on its own: still be counted
                runner.send_message(messages.RESULT_MSG, self._finalize(runner.worker_index))
        else:
            c = self.collection
            if c is not None and not c.done:
                # Locust fires quitting before stopping the test only on its way out of a live run: Ctrl-C
                # (KeyboardInterrupt in its main greenlet) or SIGTERM; --run-time, the web UI's stop button
                # and the last worker quitting all stop the test first (test_stopping collected it).
                c.interrupted = True
            self._collect(environment)

    def on_quit(self, **_: Any) -> None:
        if self.target is not None:
            self.target.stop()
            self.target = None

    def on_spawned(self, user_count: int, **_: Any) -> None:
        """A ramp finished (master/standalone): Locust runs ``user_count`` users at once now."""
        c = self.collection
        if c is not None and not c.done:
            c.roster.note_users(int(user_count))

    def on_heartbeat(self, client_id: str, **_: Any) -> None:
        """Master: a worker's heartbeat came (the last one tells when a lost worker was last alive)."""
        self.heartbeats[str(client_id)] = time.monotonic()
        c = self.collection
        if c is not None and not c.done:
            c.roster.heard(str(client_id), c.now_s())

    def on_drain(self, environment: Environment, msg: Message, **_: Any) -> None:
        """A process running users: drain, then send this run's result to the master."""
        runner = environment.runner
        assert runner is not None
        worker = int(getattr(runner, "worker_index", 0))
        run_id = str(msg.data.get("run_id", "")) if isinstance(msg.data, dict) else ""
        if self.run is None or self.run.spec.run_id != run_id:
            payload = messages.empty_message(run_id, worker, self.run_error or "no run in this process")
        else:
            payload = self._finalize(worker)
            self.delivered = True
        runner.send_message(messages.RESULT_MSG, payload)

    def on_result(self, environment: Environment, msg: Message, **_: Any) -> None:
        c = self.collection
        if c is not None and isinstance(msg.data, dict) and msg.data.get("run_id") == c.spec.run_id:
            c.messages[str(msg.node_id)] = msg.data
            c.roster.report(str(msg.node_id))
            c.arrived.set()

    def on_running(self, environment: Environment, msg: Message, **_: Any) -> None:
        """Master: a worker has started devices in this run (it is expected to report)."""
        c, runner = self.collection, environment.runner
        data = msg.data if isinstance(msg.data, dict) else {}
        if c is not None and isinstance(runner, MasterRunner) and data.get("run_id") == c.spec.run_id:
            node = str(msg.node_id)
            c.roster.running(node, runner.worker_indexes.get(node, -1), int(data.get("devices", 0)))

    # -- who may join (master: nucleus_hello; worker: nucleus_refused and the spawn's spec) ------------
    def on_hello(self, environment: Environment, msg: Message, **_: Any) -> None:
        """Master: a worker says what it runs; one that differs is refused before it gets any user."""
        runner, node = environment.runner, str(msg.node_id)
        assert isinstance(runner, MasterRunner) and self.identity is not None
        try:
            differs = self.identity.differs(Identity.from_json(msg.data))
        except (KeyError, TypeError, ValueError, AttributeError):
            differs = "another nucleus-bench version (its hello is not one this version reads)"
        if differs is None:
            self.verified.add(node)
        else:
            joining.refuse(runner, node, f"it runs {differs}")

    def on_hello_asked(self, **_: Any) -> None:
        """Worker: say hello (at start, and again when the master asks: it may have missed the first)."""
        runner = self.environment.runner if self.environment is not None else None
        if isinstance(runner, WorkerRunner) and self.identity is not None:
            runner.send_message(messages.HELLO_MSG, self.identity.to_json())

    def on_refused(self, environment: Environment, msg: Message, **_: Any) -> None:
        """Worker: the master refused this worker (the reason, in one line); it exits 2."""
        reason = msg.data.get("reason", "") if isinstance(msg.data, dict) else ""
        joining.leave(environment, str(reason) or "the master refused this worker")

    # -- a worker's master -------------------------------------------------------------------------
    def _watch_master(self, environment: Environment, runner: WorkerRunner) -> None:
        parsed = environment.parsed_options
        try:
            timeout_s = GlueOptions.from_parsed(parsed).master_timeout_s
        except argparse.ArgumentTypeError:
            timeout_s = GlueOptions().master_timeout_s
        forked = bool(getattr(parsed, "processes", None))
        self.watch = collect.MasterWatch(lambda: runner.last_heartbeat_timestamp, timeout_s, forked,
                                         lambda reason: self._master_lost(environment, runner, reason))

    def _master_lost(self, environment: Environment, runner: WorkerRunner, reason: str) -> None:
        """The master is gone: stop sending, keep this worker's part of the run where it runs, exit 1."""
        where = "no run was under way"
        if self.run is not None and self.delivered:
            where = "its last run's result had reached the master"
        elif self.run is not None:
            payload = self._finalize(runner.worker_index)
            try:
                where = f"its partial result is in {_write_local(environment, self.run, payload, reason)}"
            except OSError as exc:
                where = f"its partial result could not be written: {exc}"
        logger.error("nucleus-bench: the master is gone (%s): worker %d stops; %s", reason,
                     runner.worker_index, where)
        environment.process_exit_code = EXIT_MASTER_LOST
        runner.quit()

    # -- the embedded target -----------------------------------------------------------------------
    def _start_target(self, environment: Environment) -> None:
        target = EmbeddedTarget(store="memory")
        try:
            target.start()
        except Exception as exc:  # the child's own reason, in one line
            sys.stderr.write(f"nucleus-bench: error: the embedded target did not start: {exc}\n")
            sys.exit(2)
        self.target = target
        atexit.register(target.stop)
        environment.host = target.url
        logger.info("no --host given: started the embedded reference target at %s (memory store); "
                    "it stops when Locust quits", target.url)

    # -- run start ---------------------------------------------------------------------------------
    def _new_collection(self, environment: Environment) -> _Collection:
        """The master/standalone side of a new run; its spec goes to the workers in the parsed options."""
        parsed = environment.parsed_options
        self.options = opts = GlueOptions.from_parsed(parsed)
        if not environment.host and self.target is not None:
            environment.host = self.target.url  # the web UI's host field was emptied: ours still serves
        check_base_url(environment.host)  # the web UI's host field, or a bad --host without the form
        text = read_scenario_text(opts.scenario)  # the workers get the text: they need no copy of the file
        scenario = parse_scenario(text, opts.scenario)
        given = opts.app_id or scenario.app_id
        master = isinstance(environment.runner, MasterRunner)
        spec = RunSpec(run_id=secrets.token_hex(6), scenario_path=opts.scenario, scenario_text=text,
                       app_ids=tuple((t, given or new_app_id()) for t in TRANSPORT_NAMES),
                       duration_s=plan_duration(scenario, getattr(parsed, "run_time", None)),
                       endpoint=opts.endpoint, insecure=opts.insecure,
                       identity=self.identity if master else None)
        if parsed is not None:
            setattr(parsed, SPEC_OPTION, spec.to_json())
        kinds = tuple(sorted({str(getattr(c, "nucleus_transport", "")) for c in environment.user_classes}
                             - {""}))
        started = datetime.now(UTC)
        c = _Collection(spec=spec, scenario=scenario, started=started, transports=kinds,
                        roster=Roster(started))
        for node, at in self.heartbeats.items():  # heard before the run: a negative time into it
            c.roster.heard(node, at - c.started_mono)
        warning = spawn_pacing_warning(_spawn_rate(environment), scenario.connect_rate)
        if warning is not None:
            logger.warning("nucleus-bench: %s", warning)
        return c

    def _start_run(self, environment: Environment) -> None:
        """A process running users: its RunState for the spec the master made."""
        if self.housekeeper is not None:
            self.housekeeper.stop()
        self.run, self.final, self.run_error, self.housekeeper = None, None, "", None
        self.delivered, self.announced = False, 0
        runner = environment.runner
        worker = int(getattr(runner, "worker_index", 0))
        if isinstance(runner, WorkerRunner):
            try:
                spec = RunSpec.from_json(getattr(environment.parsed_options, SPEC_OPTION, None))
            except UsageError as exc:
                joining.leave(environment, str(exc))
            mine = self.identity or joining.identity_of(environment)
            reason = ("the master sent no identity (another nucleus-bench version)" if spec.identity is None
                      else spec.identity.differs(mine))
            if reason is not None:
                joining.leave(environment, f"this worker runs {reason}")
        elif self.collection is not None:
            spec = self.collection.spec
        else:
            return  # the master side refused the run (and said why)
        try:
            scenario = parse_scenario(spec.scenario_text, spec.scenario_path)
            self.run = RunState(spec, scenario, worker_index=worker)
        except UsageError as exc:
            self.run_error = str(exc)
            logger.error("nucleus-bench: %s", exc)
            return
        self.housekeeper = collect.Housekeeper(self.run, self._fire_lost)

    def announce(self, starting: int = 0) -> None:
        """Worker: tell the master how many devices this run has started (``starting``: about to start),
        when that grew; so the master expects this worker's result, and counts its devices, even if it dies
        before Locust reports its users. Called as each user starts, before its device sends anything."""
        runner = self.environment.runner if self.environment is not None else None
        run = self.run
        if not isinstance(runner, WorkerRunner) or run is None:
            return
        devices = len(run.devices) + starting
        if devices > self.announced:
            self.announced = devices
            runner.send_message(messages.RUNNING_MSG, {"run_id": run.spec.run_id, "devices": devices})

    def _fire_lost(self, transport: str, count: int) -> None:
        environment, run = self.environment, self.run
        if environment is None or run is None:
            return
        fire: Any = environment.events.request.fire
        ms = run.timeout_ns / 1e6
        for _ in range(count):
            fire(request_type=_KINDS.get(transport, transport), name="lost", response_time=ms,
                 response_length=0, exception=EventLost(f"no ack within {ms / 1000:g} s"), context={})

    def _finalize(self, worker: int) -> dict[str, Any]:
        """Drain this process once and build its result message (later calls return the same)."""
        with self._finalizing:
            if self.final is None:
                run = self.run
                if run is None:
                    return messages.empty_message("", worker, self.run_error or "no run in this process")
                collect.drain(run, self._fire_lost, self.housekeeper)
                self.housekeeper = None
                self.final = messages.result_message(run, worker) | {"detail": live.details_json(run)}
            return self.final

    # -- the run's workers, as the master sees them ---------------------------------------------------
    def _sample_loop(self, runner: Runner, c: _Collection) -> None:
        while not c.done:
            _observe(runner, c)
            gevent.sleep(SAMPLE_S)

    # -- run end (master or standalone) ------------------------------------------------------------
    def _collect(self, environment: Environment) -> None:
        c = self.collection
        runner = environment.runner
        if c is None or c.done or runner is None:
            return
        c.done = True
        if c.sampler is not None and c.sampler is not gevent.getcurrent():
            c.sampler.kill(block=False)
        _observe(runner, c)
        waiting = _live_nodes(runner) | c.roster.expected()
        runner.send_message(messages.DRAIN_MSG, {"run_id": c.spec.run_id})
        if gevent.getcurrent() not in runner.greenlet:  # the runner's own greenlets receive the messages
            deadline = time.monotonic() + c.scenario.ack_timeout_s + COLLECT_GRACE_S
            while not c.roster.settled(set(c.messages), waiting):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                c.arrived.wait(min(left, SAMPLE_S))
                c.arrived.clear()
                _observe(runner, c)
        lost = c.roster.missing(set(c.messages), c.now_s(), also=waiting)
        for worker in lost:
            if worker.reason == NO_RESULT:
                logger.error("nucleus-bench: %s: the summary leaves it out", worker.phrase())
        self._report(environment, c, lost)

    def _report(self, environment: Environment, c: _Collection, lost: list[LostWorker]) -> None:
        results = messages.merge_messages(c.messages)
        if not results and not lost:
            logger.warning("nucleus-bench: no device ran in this test: no summary written")
            return
        base_url = str(environment.host or "")
        results = {name: replace(result, reconciliation=self._reconcile(c, name, result, base_url, lost),
                                 interrupted=result.interrupted or c.interrupted)
                   for name, result in results.items()}
        judge = locust_judge(c.scenario, results)
        verdicts = {} if judge is None else {name: judge.verdict(r) for name, r in results.items()
                                             if not r.interrupted}
        summary, run_dir = _write(environment, c, results, lost, base_url, self.options.results_dir,
                                  self.target is not None,
                                  {"objective": judge.to_json(verdicts)} if judge is not None else {})
        lines = [line for name in results for line in transport_lines(name, summary["transports"][name])]
        lines += [objective_line(name, verdict) for name, verdict in verdicts.items()]
        lines.append(f"results: {run_dir}")
        if lost:
            lines.append(f"lost: {summary['error']}")
        if c.interrupted:
            lines.append(f"interrupted: {INTERRUPTED}")
        failed = evaluate(self.options.gates, summary["transports"])
        lines += failed
        for line in lines:
            print(line)
        sys.stdout.flush()
        if self.web is not None:  # the web UI's Nucleus tab and Logs tab show them too
            self.web.ended(summary, run_dir, lines, c.messages)
        runner = environment.runner
        crashed = bool(locust_log.unhandled_greenlet_exception or (runner is not None and runner.exceptions))
        if not summary["ok"] or lost:  # a harness bug, or a worker's events not counted
            environment.process_exit_code = 1
        elif c.interrupted:
            environment.process_exit_code = EXIT_INTERRUPTED
        elif failed or not all_met(verdicts):
            environment.process_exit_code = EXIT_GATES
        elif (self.options.gates.any or verdicts) and not crashed:  # thresholds decide; a crash is Locust's
            environment.process_exit_code = 0

    def _reconcile(self, c: _Collection, name: str, result: TransportResult, base_url: str,
                   lost: list[LostWorker]) -> Reconciliation:
        app_id = c.spec.app_id(name)
        if sum(1 for t in c.transports if c.spec.app_id(t) == app_id) > 1:
            return not_done("both transports sent to one appId: reconciliation needs one appId per transport")
        plan = fleet_plan(fleet_scenario(c.scenario, c.spec.duration_s))  # client devices: by event
        rec = reconcile_fleet(plan, base_url, app_id, result.reported_ids or [], insecure=c.spec.insecure)
        if rec.done and lost:
            workers = ", ".join(str(w.worker) for w in lost)
            note = (f"stored_not_acked includes what lost worker(s) {workers} sent: the target stored it, "
                    "their acks died with them")
            rec = replace(rec, note=f"{rec.note}; {note}" if rec.note else note)
        return rec


def _observe(runner: Runner, c: _Collection) -> None:
    """One sample of the run's processes into its roster; a worker just seen lost is said at once."""
    if isinstance(runner, MasterRunner):
        views = {node.id: (runner.worker_indexes.get(node.id, -1), node.state == STATE_MISSING,
                           node.user_count) for node in runner.clients.all}
        for worker in c.roster.observe(views, c.now_s()):
            logger.error("nucleus-bench: %s: its events will be missing from the summary", worker.phrase())
    elif isinstance(runner, LocalRunner):
        c.roster.note_users(runner.user_count)


def _live_nodes(runner: Runner) -> set[str]:
    """The processes that can still answer the drain: every connected live worker, or this process."""
    if isinstance(runner, MasterRunner):
        live = (STATE_INIT, STATE_SPAWNING, STATE_RUNNING)
        return {node.id for node in runner.clients.all if node.state in live}
    return {"local"}


def locust_judge(scenario: Scenario, results: dict[str, TransportResult]) -> Judge | None:
    """The judge of the scenario's ``[objective]`` (None: it has none). Locust decides how long the run
    lasts, so the default warm-up is the scenario's ramp + 2 s, at most half of the longest send phase."""
    objective = scenario.objective
    if objective is None:
        return None
    send_s = max((r.send_s for r in results.values()), default=0.0)
    warmup = objective.warmup_s
    if warmup is None:
        warmup = default_warmup(scenario.connect_ramp_s / scenario.time_scale, send_s)
    return Judge(objective, warmup)


def _write(environment: Environment, c: _Collection, results: dict[str, TransportResult],
           lost: list[LostWorker], base_url: str, results_dir: str,
           embedded: bool, extra: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """summary.json and the other result files, in the hot path's schema (bench.results); ``extra``: more
    top-level blocks (the objective's verdict)."""
    sc = c.scenario
    header = messages.run_header(sc, c.spec, c.messages, users=c.roster.peak_users, started=c.started,
                                 lost=lost, target_url=base_url, embedded=embedded,
                                 locust_version=locust_version)
    header = replace(header, extra=extra)
    app_ids = {name: c.spec.app_id(name) for name in results}
    summary = build_summary(results, app_ids, header)
    run_dir = make_run_dir(results_dir, f"locust-{sc.name}", c.started)
    meta = run_meta(argv=sys.argv, seed=sc.seed, scenario_path=sc.path,
                    extra={"target": header.target_json(), "app_ids": app_ids, "driver": "locust"})
    write_results(run_dir, summary, results, meta)
    return summary, run_dir


def _write_local(environment: Environment, run: RunState, payload: dict[str, Any], reason: str) -> Path:
    """A worker's own partial result, when its master is gone: the same files, this worker's part only."""
    try:
        results_dir = GlueOptions.from_parsed(environment.parsed_options).results_dir
    except argparse.ArgumentTypeError:
        results_dir = GlueOptions().results_dir
    worker = int(payload["worker"])
    arrived = {"local": payload}
    note = "one worker's part of a run whose master was lost: the target holds the other workers' events too"
    results = {name: replace(result, reconciliation=not_done(note), interrupted=True)
               for name, result in messages.merge_messages(arrived).items()}
    runner = environment.runner
    header = messages.run_header(run.scenario, run.spec, arrived, lost=[], started=run.started,
                                 users=runner.user_count if runner is not None else 0,
                                 target_url=str(environment.host or ""), embedded=False,
                                 locust_version=locust_version,
                                 error=f"the master was lost ({reason}): worker {worker}'s part of the run")
    app_ids = {name: run.spec.app_id(name) for name in results}
    run_dir = make_run_dir(results_dir, f"locust-{run.scenario.name}-worker{worker}", run.started)
    meta = run_meta(argv=sys.argv, seed=run.scenario.seed, scenario_path=run.scenario.path,
                    extra={"target": header.target_json(), "app_ids": app_ids, "driver": "locust"})
    write_results(run_dir, build_summary(results, app_ids, header), results, meta)
    return run_dir

GLUE = Glue()
_installed: set[int] = set()


def install(events: Events | None = None) -> Glue:
    """Register the listeners (once per process, however many locustfiles call it).

    The parser, ``init`` and ``test_start`` listeners are added here: a worker may get its first spawn
    message while it is still connecting, before ``init``, and must check it before any user starts.
    ``init`` adds the others once the runner exists, so that ``quitting`` (fired in reverse order of
    registration) reaches this process's listener before the runner's own: the master still hears its
    workers, a worker still reaches its master.
    """
    hooks: Any = events or locust_events  # locust's EventHook is untyped
    if id(hooks) not in _installed:
        _installed.add(id(hooks))
        hooks.init_command_line_parser.add_listener(GLUE.on_parser)
        hooks.init.add_listener(GLUE.on_init)
        hooks.test_start.add_listener(GLUE.on_test_start)
    return GLUE


def current_run() -> RunState | None:
    """The run a starting user belongs to; None when this process has none (its start failed, or the
    run is draining): the user then stops."""
    run = GLUE.run
    if run is None or run.draining:
        return None
    GLUE.announce(starting=1)  # before this device sends anything
    return run
