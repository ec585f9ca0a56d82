"""The Locust event listeners that tie a device fleet to Locust: ``install()`` is all a locustfile calls.

What happens when (each Locust process runs the listeners for its role):

- ``init_command_line_parser``: the custom arguments (bench.locust_glue.options).
- ``init``: the master or standalone process checks the options, the scenario and ``--host`` (a bad one is
  one line, exit 2, before any user starts) and, without ``--host``, starts the embedded reference target
  (memory store) and says so; custom messages are registered (bench.locust_glue.collect).
- ``test_start``: the master/standalone process makes the run's ``RunSpec`` (scenario text, appIds, plan
  duration) and puts it in the parsed options, which Locust forwards to the workers with each spawn
  message; every process that runs users builds its ``RunState`` and starts its housekeeping.
- ``test_stopping`` (before Locust stops any user) and ``quitting``: the master/standalone process drains
  every process, merges their results exactly, reconciles them with the target, writes
  ``<results-dir>/<UTC time>-locust-<scenario>/summary.json`` (the hot path's files and schema), prints
  the end-of-run lines and the ``--check-*`` verdicts, and sets the exit code. A ``quitting`` that comes
  while the run is live (Ctrl-C or SIGTERM: Locust quits without stopping the test first) marks every
  transport of the summary ``interrupted``.
- ``quit``: the embedded target, if any, is stopped.

Exit code: with any ``--check-*`` given, the thresholds decide (3 when one is violated, else 0: failures
are judged by ``--check-fail-ratio``, not by Locust's any-error rule); without, Locust's own rule stands.
An accounting identity that does not hold (a harness bug), or a worker whose result never came (its
events are missing from the summary, which says so in ``error``): exit 1.
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
from locust.runners import STATE_INIT, STATE_RUNNING, STATE_SPAWNING, MasterRunner, Runner, WorkerRunner

from bench.locust_glue import collect, live, messages, webui
from bench.locust_glue.devices import check_base_url
from bench.locust_glue.gates import EXIT_GATES, evaluate
from bench.locust_glue.options import GlueOptions, add_arguments
from bench.locust_glue.runstate import RunSpec, RunState, fleet_plan, fleet_scenario, plan_duration
from bench.protocol.errors import EventLost, UsageError
from bench.protocol.message import TRANSPORT_NAMES
from bench.results.files import make_run_dir, run_meta, write_results
from bench.results.ids import new_app_id
from bench.results.reconcile import Reconciliation, not_done, reconcile_fleet
from bench.results.summary import build_summary
from bench.results.terminal import transport_lines
from bench.results.transport import TransportResult
from bench.scenario import Scenario, load_scenario, parse_scenario, read_scenario_text
from bench.target.embedded import EmbeddedTarget

logger = logging.getLogger("nucleus_bench")

#: Where the master keeps the run's spec in the parsed options (forwarded to workers by Locust).
SPEC_OPTION = "nucleus_run"
#: Extra wait for the workers' results beyond the ack timeout (their drain, the message, the merge).
COLLECT_GRACE_S = 10.0
_KINDS = {"ws": "WS", "http": "HTTP"}
INTERRUPTED = "Locust quit mid-run (Ctrl-C or SIGTERM): the figures cover the run up to then"


@dataclass(slots=True)
class _Collection:
    """The master/standalone side of one run: what it agreed on and the results that came back."""

    spec: RunSpec
    scenario: Scenario
    started: datetime
    transports: tuple[str, ...]
    users: int
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrived: gevent.event.Event = field(default_factory=gevent.event.Event)
    done: bool = False
    #: Locust quit while the run was live (Ctrl-C or SIGTERM): its figures cover the run up to then.
    interrupted: bool = False


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
        self.target: EmbeddedTarget | None = None
        self.run: RunState | None = None
        self.run_error = ""
        self.housekeeper: collect.Housekeeper | None = None
        self.final: dict[str, Any] | None = None
        self.collection: _Collection | None = None
        self.web: webui.WebTab | None = None
        self._finalizing = gevent.lock.Semaphore()

    # -- Locust event listeners -------------------------------------------------------------------
    def on_parser(self, parser: Any, **_: Any) -> None:
        add_arguments(parser)

    def on_init(self, environment: Environment, **_: Any) -> None:
        self.environment = environment
        self.web = webui.install(environment, self)  # first: its test_start runs before the run's own
        route_sigint_to_main()
        events: Any = environment.events  # locust's EventHook is untyped
        for hook, listener in ((events.test_start, self.on_test_start),
                               (events.test_stopping, self.on_test_stopping),
                               (events.quitting, self.on_quitting), (events.quit, self.on_quit)):
            hook.add_listener(listener)
        runner = environment.runner
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
        if runner is not None and not isinstance(runner, MasterRunner):
            runner.register_message(messages.DRAIN_MSG, self.on_drain,
                                    concurrent=isinstance(runner, WorkerRunner))
        if runner is not None and not isinstance(runner, WorkerRunner):
            runner.register_message(messages.RESULT_MSG, self.on_result)

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        if not isinstance(runner, WorkerRunner):
            try:
                self.collection = self._new_collection(environment)
            except (UsageError, argparse.ArgumentTypeError) as exc:
                logger.error("nucleus-bench: %s", exc)
                self.collection = None
                if runner is not None:
                    gevent.spawn(runner.stop)  # the web UI's form named a bad scenario: nothing to run
                return
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
        runner.send_message(messages.RESULT_MSG, payload)

    def on_result(self, environment: Environment, msg: Message, **_: Any) -> None:
        c = self.collection
        if c is not None and isinstance(msg.data, dict) and msg.data.get("run_id") == c.spec.run_id:
            c.messages[str(msg.node_id)] = msg.data
            c.arrived.set()

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
        spec = RunSpec(run_id=secrets.token_hex(6), scenario_path=opts.scenario, scenario_text=text,
                       app_ids=tuple((t, given or new_app_id()) for t in TRANSPORT_NAMES),
                       duration_s=plan_duration(scenario, getattr(parsed, "run_time", None)),
                       endpoint=opts.endpoint, insecure=opts.insecure)
        if parsed is not None:
            setattr(parsed, SPEC_OPTION, spec.to_json())
        kinds = tuple(sorted({str(getattr(c, "nucleus_transport", "")) for c in environment.user_classes}
                             - {""}))
        runner = environment.runner
        users = int(runner.target_user_count) if runner is not None else 0
        return _Collection(spec=spec, scenario=scenario, started=datetime.now(UTC), transports=kinds,
                           users=users)

    def _start_run(self, environment: Environment) -> None:
        """A process running users: its RunState for the spec the master made."""
        if self.housekeeper is not None:
            self.housekeeper.stop()
        self.run, self.final, self.run_error, self.housekeeper = None, None, "", None
        runner = environment.runner
        worker = int(getattr(runner, "worker_index", 0))
        try:
            if isinstance(runner, WorkerRunner):
                spec = RunSpec.from_json(getattr(environment.parsed_options, SPEC_OPTION, None))
            elif self.collection is not None:
                spec = self.collection.spec
            else:
                return  # the master side refused the run (and said why)
            scenario = parse_scenario(spec.scenario_text, spec.scenario_path)
            self.run = RunState(spec, scenario, worker_index=worker)
        except UsageError as exc:
            self.run_error = str(exc)
            logger.error("nucleus-bench: %s", exc)
            return
        self.housekeeper = collect.Housekeeper(self.run, self._fire_lost)

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

    # -- run end (master or standalone) ------------------------------------------------------------
    def _collect(self, environment: Environment) -> None:
        c = self.collection
        runner = environment.runner
        if c is None or c.done or runner is None:
            return
        c.done = True
        expected = _expected_nodes(runner)
        runner.send_message(messages.DRAIN_MSG, {"run_id": c.spec.run_id})
        if gevent.getcurrent() not in runner.greenlet:  # the runner's own greenlets receive the messages
            deadline = time.monotonic() + c.scenario.ack_timeout_s + COLLECT_GRACE_S
            while not expected <= c.messages.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                c.arrived.wait(left)
                c.arrived.clear()
        missing = sorted(expected - c.messages.keys())
        if missing:
            logger.error("nucleus-bench: no result from worker(s) %s: the summary leaves them out",
                         ", ".join(missing))
        self._report(environment, c, missing)

    def _report(self, environment: Environment, c: _Collection, missing: list[str]) -> None:
        results = messages.merge_messages(c.messages)
        if not results:
            logger.warning("nucleus-bench: no device ran in this test: no summary written")
            return
        base_url = str(environment.host or "")
        results = {name: replace(result, reconciliation=self._reconcile(c, name, result, base_url),
                                 interrupted=result.interrupted or c.interrupted)
                   for name, result in results.items()}
        summary, run_dir = _write(environment, c, results, missing, base_url, self.options.results_dir,
                                  self.target is not None)
        lines = [line for name in results for line in transport_lines(name, summary["transports"][name])]
        lines.append(f"results: {run_dir}")
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
        if not summary["ok"] or missing:  # a harness bug, or a worker's events not counted
            environment.process_exit_code = 1
        elif failed:
            environment.process_exit_code = EXIT_GATES
        elif self.options.gates.any and not crashed:  # thresholds decide; a crash is still Locust's to report
            environment.process_exit_code = 0

    def _reconcile(self, c: _Collection, name: str, result: TransportResult, base_url: str) -> Reconciliation:
        app_id = c.spec.app_id(name)
        if sum(1 for t in c.transports if c.spec.app_id(t) == app_id) > 1:
            return not_done("both transports sent to one appId: reconciliation needs one appId per transport")
        plan = fleet_plan(fleet_scenario(c.scenario, c.spec.duration_s))  # client devices: by event
        return reconcile_fleet(plan, base_url, app_id, result.reported_ids or [], insecure=c.spec.insecure)


def _expected_nodes(runner: Runner) -> set[str]:
    """The processes whose result the run waits for: every connected worker, or this process."""
    if isinstance(runner, MasterRunner):
        live = (STATE_INIT, STATE_SPAWNING, STATE_RUNNING)
        return {node_id for node_id, node in runner.clients.items() if node.state in live}
    return {"local"}


def _write(environment: Environment, c: _Collection, results: dict[str, TransportResult], missing: list[str],
           base_url: str, results_dir: str, embedded: bool) -> tuple[dict[str, Any], Any]:
    """summary.json and the other result files, in the hot path's schema (bench.results)."""
    sc = c.scenario
    header = messages.run_header(sc, c.spec, c.messages, users=c.users, started=c.started, missing=missing,
                                 target_url=base_url, embedded=embedded, locust_version=locust_version)
    app_ids = {name: c.spec.app_id(name) for name in results}
    summary = build_summary(results, app_ids, header)
    run_dir = make_run_dir(results_dir, f"locust-{sc.name}", c.started)
    meta = run_meta(argv=sys.argv, seed=sc.seed, scenario_path=sc.path,
                    extra={"target": header.target_json(), "app_ids": app_ids, "driver": "locust"})
    write_results(run_dir, summary, results, meta)
    return summary, run_dir


GLUE = Glue()
_installed: set[int] = set()


def install(events: Events | None = None) -> Glue:
    """Register the listeners (once per process, however many locustfiles call it).

    Only the parser and ``init`` listeners are added here; ``init`` adds the others once the runner
    exists, so that ``quitting`` (fired in reverse order of registration) reaches this process's
    listener before the runner's own: the master still hears its workers, a worker still reaches
    its master.
    """
    hooks: Any = events or locust_events  # locust's EventHook is untyped
    if id(hooks) not in _installed:
        _installed.add(id(hooks))
        hooks.init_command_line_parser.add_listener(GLUE.on_parser)
        hooks.init.add_listener(GLUE.on_init)
    return GLUE


def current_run() -> RunState | None:
    """The run a starting user belongs to; None when this process has none (its start failed, or the
    run is draining): the user then stops."""
    run = GLUE.run
    return None if run is None or run.draining else run
