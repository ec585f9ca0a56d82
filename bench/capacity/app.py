"""``nucleus-bench capacity`` as a library call: step the load against one target until the knee.

``execute(CapacityRequest) -> int``: the scenario is loaded once, the target (the embedded reference target
unless ``--target`` is given) is started once and serves every step, so that the steps differ in their load
only. Per transport, ``bench.capacity.search`` picks each load; each step is one ``run_transport`` in this
process (or sharded over ``--processes``) with its own fresh appId, judged by ``bench.results.verdict``
over its seconds after the warm-up. After every step ``capacity.json`` is rewritten whole and one line is
printed, so a search that runs for minutes shows its progress and an interrupted one keeps what it found.

Exit status: 0 when the searches ended (whatever they found: a knee, no knee up to the cap, or no load
meeting the objective are all answers), 130 after Ctrl-C (the steps done so far are written and printed),
1 when a step's accounting identity fails (a harness bug), 2 for the user's errors (``UsageError``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.capacity.axis import Axis, Vary
from bench.capacity.report import CAPACITY_SCHEMA, Step, knee_line, step_line, steps_table, transport_json
from bench.capacity.search import Knee, SearchConfig, Tried, bracket, next_load
from bench.protocol.errors import BenchError, UsageError
from bench.protocol.message import Transport
from bench.results.files import make_run_dir, run_meta
from bench.results.ids import new_app_id
from bench.results.transport import TransportResult
from bench.results.verdict import default_warmup, judge, objective_in_force, step_figures
from bench.runner.app import check_out_dir, preflight
from bench.runner.engine import RunConfig, raise_nofile_limit
from bench.runner.procs import run_transport
from bench.runner.progress import Progress
from bench.scenario import Objective, Scenario, load_scenario
from bench.transports.common import TransportOptions

#: Open files kept free for everything but the devices' sockets, when the cap comes from the files limit.
FD_MARGIN = 256


@dataclass(frozen=True, slots=True)
class CapacityRequest:
    """Everything ``nucleus-bench capacity`` was asked to do (flags checked for form by the CLI).

    ``start``, ``low`` and ``high`` are loads on the ``vary`` axis (devices, or the fleet's events/s);
    None: the scenario's own fleet, 1, and (devices over WebSocket) the open-files limit.
    """

    scenario_path: str
    slo_p99_s: float | None = None  # None: the scenario's [objective]
    max_loss: float | None = None
    transports: tuple[Transport, ...] = ("ws",)
    vary: Vary = "devices"
    start: float | None = None
    low: float | None = None
    high: float | None = None
    factor: float = 2.0
    resolution: float = 0.05
    max_steps: int = 12
    step_duration_s: float = 20.0
    warmup_s: float | None = None
    target_url: str | None = None
    target_args: tuple[str, ...] = ()
    target_store: str | None = None
    processes: int = 1
    seed: int | None = None
    out_dir: str = "results"
    progress: bool = True
    options: TransportOptions = field(default_factory=TransportOptions)
    argv: tuple[str, ...] = ()


class AccountingFailed(BenchError, RuntimeError):
    """A step's events did not add up (sent != acked + rejected + lost + in flight): a harness bug."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """The checked settings every step of every transport shares."""

    scenario: Scenario
    axis: Axis
    search: SearchConfig
    objective: Objective
    warmup_s: float | None  # None: each step's own default (its fleet's ramp at the connect rate + 2 s)


def plan(request: CapacityRequest, files_limit: int) -> _Plan:
    """Check everything that can be checked before the target starts (UsageError, one line, on bad input)."""
    scenario = load_scenario(request.scenario_path)
    if request.seed is not None:
        scenario = scenario.with_overrides(seed=request.seed)
    axis = Axis.of(scenario, request.vary)
    high = request.high
    if high is None and request.vary == "devices" and "ws" in request.transports:
        high = float(max(1, files_limit - FD_MARGIN))  # one socket per device, in the target too
    try:
        search = SearchConfig(start=request.start if request.start is not None else axis.default_start(),
                              low=request.low if request.low is not None else 1.0, high=high,
                              factor=request.factor, resolution=request.resolution,
                              max_steps=request.max_steps)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    objective = objective_in_force(scenario.objective, p99_s=request.slo_p99_s, max_loss=request.max_loss,
                                   warmup_s=request.warmup_s)
    if objective is None:
        raise UsageError(f"capacity needs an objective: --slo-p99, or an [objective] p99 in {scenario.path}")
    warmup = objective.warmup_s
    if warmup is not None and not 0 <= warmup < request.step_duration_s:
        raise UsageError(f"--warmup {warmup:g}s must be shorter than --step-duration "
                         f"{request.step_duration_s:g}s: the verdict needs seconds after it")
    axis.scenario_at(scenario, search.clamp(search.start), request.step_duration_s)  # e.g. a ramp too long
    return _Plan(scenario, axis, search, objective, warmup)


def target(request: CapacityRequest) -> contextlib.AbstractContextManager[tuple[str, bool]]:
    """(base URL, embedded?): the given target, or the embedded reference target for every step."""
    from bench.target.embedded import given_or_embedded

    return given_or_embedded(
        request.target_url, request.target_store, request.target_args,
        lambda url, kind: f"nucleus-bench capacity: no --target given: started the embedded reference target "
                          f"at {url} ({kind}) with {' '.join(request.target_args) or 'no extra flags'}; "
                          f"every step runs against it")


class _Session:
    """One capacity search: the steps of each transport so far, and the files they are written to."""

    def __init__(self, request: CapacityRequest, settings: _Plan, base_url: str, embedded: bool) -> None:
        self.request = request
        self.settings = settings
        self.base_url = base_url
        self.embedded = embedded
        self.started = datetime.now(UTC)
        self.steps: dict[str, list[Step]] = {}
        self.knees: dict[str, Knee | None] = {}
        self.interrupted = False
        self.error: str | None = None
        self.run_dir = make_run_dir(request.out_dir, f"capacity-{settings.scenario.name}", self.started)
        self._write_meta()

    # -- the search ---------------------------------------------------------------------------------
    def search(self, transport: Transport) -> None:
        """Step until the knee (or Ctrl-C, which sets ``interrupted``)."""
        s = self.settings
        steps = self.steps.setdefault(transport, [])
        self.knees[transport] = None
        preflight(self.base_url)
        while True:
            load = next_load(s.search, [step.tried for step in steps])
            if isinstance(load, Knee):
                self.knees[transport] = load
                self.write()
                return
            step = self.run_step(transport, len(steps) + 1, load)
            if step is None:
                self.interrupt()
                return
            steps.append(step)
            self.write()
            print(step_line(transport, step, s.axis), flush=True)

    def run_step(self, transport: Transport, n: int, load: float) -> Step | None:
        """One step at ``load``: run, keep its lossless result, judge it. None: Ctrl-C cut it short."""
        s, request = self.settings, self.request
        scenario = s.axis.scenario_at(s.scenario, load, request.step_duration_s)
        app_id = new_app_id()
        config = RunConfig(scenario=scenario, transport=transport, target_url=self.base_url, app_id=app_id,
                           options=request.options, processes=min(request.processes, scenario.devices))
        label = f"{transport} step {n}: {s.axis.describe(load)}"
        with Progress(label, request.progress) as progress:
            result = run_transport(config, progress=progress.update)
        self._save_result(transport, n, result)
        if result.interrupted:
            return None
        accounting = result.accounting()
        if not accounting.ok:
            raise AccountingFailed(f"{transport} step {n}: {accounting.line()}")
        # a step of more devices takes longer to come online at the connect rate: by default, its own warm-up
        warmup = s.warmup_s if s.warmup_s is not None else default_warmup(scenario.connect_ramp_s,
                                                                          request.step_duration_s)
        figures = step_figures(result, warmup)
        return Step(n, Tried(load, judge(figures, s.objective)), figures, app_id, warmup)

    def interrupt(self) -> None:
        """Ctrl-C: each search still running ends with the bracket of its steps so far."""
        self.interrupted = True
        for transport, knee in self.knees.items():
            if knee is None:
                good, bad = bracket([step.tried for step in self.steps[transport]])
                self.knees[transport] = Knee(good, bad, "interrupted")
        self.write()

    # -- files --------------------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        """capacity.json (results/README.md, "Capacity search")."""
        s, request = self.settings, self.request
        sc = s.scenario
        return {
            "schema": CAPACITY_SCHEMA,
            "scenario": {"name": sc.name, "path": sc.path, "seed": sc.seed, "devices": sc.devices,
                         "per_device_rate": s.axis.per_device_rate, "ramp_s": sc.ramp_s},
            "slo": {"p99_us": s.objective.p99_us, "max_loss": s.objective.max_loss},
            "search": {"vary": s.axis.vary, "unit": s.axis.unit, "start": s.search.clamp(s.search.start),
                       "low": s.search.low, "high": s.search.high, "factor": s.search.factor,
                       "resolution": s.search.resolution, "max_steps": s.search.max_steps,
                       "step_duration_s": request.step_duration_s, "warmup_s": s.warmup_s,
                       "processes": request.processes},
            "target": {"url": self.base_url, "embedded": self.embedded, "args": list(request.target_args)},
            "started_at": self.started.isoformat(), "finished_at": datetime.now(UTC).isoformat(),
            "interrupted": self.interrupted, "error": self.error,
            "transports": {t: transport_json(steps, self.knees.get(t), s.axis)
                           for t, steps in self.steps.items()},
        }

    def write(self) -> None:
        _dump(self.run_dir / "capacity.json", self.document())

    def _save_result(self, transport: str, n: int, result: TransportResult) -> None:
        """The step's lossless ``TransportResult`` (results/README.md, ``result-<t>.json``'s form)."""
        steps_dir = self.run_dir / "steps"
        steps_dir.mkdir(exist_ok=True)
        _dump(steps_dir / f"{transport}-{n:02d}.json", result.to_json(), compact=True)

    def _write_meta(self) -> None:
        sc = self.settings.scenario
        meta = run_meta(argv=self.request.argv, seed=sc.seed, scenario_path=sc.path,
                        extra={"command": "capacity",
                               "target": {"url": self.base_url, "embedded": self.embedded}})
        _dump(self.run_dir / "meta.json", meta)

    def report(self) -> None:
        """The table of every step, the answer per transport, and where the files are."""
        from rich.console import Console

        doc = self.document()
        if any(block["steps"] for block in doc["transports"].values()):
            Console(width=max(Console().width, 120)).print(steps_table(doc))
        for transport, block in doc["transports"].items():
            print(knee_line(transport, block))
        print(f"results: {self.run_dir}")


def _dump(path: Path, obj: Any, *, compact: bool = False) -> None:
    """Write ``obj`` as JSON, whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(obj, separators=(",", ":")) if compact else json.dumps(obj, indent=2)
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def execute(request: CapacityRequest) -> int:
    """Search each requested transport's capacity, write and print the answer. Returns the exit status."""
    files_limit = raise_nofile_limit()  # before the embedded target starts: it inherits the limit
    settings = plan(request, files_limit)
    check_out_dir(request.out_dir)
    with target(request) as (base_url, embedded):
        preflight(base_url)  # an unreachable --target: one line, before a results directory is made
        session = _Session(request, settings, base_url, embedded)
        try:
            for transport in request.transports:
                session.search(transport)
                if session.interrupted:
                    break
        except KeyboardInterrupt:  # between steps, or while a step was being set up
            session.interrupt()
        except AccountingFailed as exc:
            session.error = str(exc)
            session.write()
            print(f"nucleus-bench capacity: error: accounting identity failed: {exc}", file=sys.stderr)
            return 1
        except UsageError as exc:
            session.error = str(exc)
            session.write()  # the steps measured before it are kept
            raise
    if session.interrupted:
        print("nucleus-bench capacity: interrupted (Ctrl-C): the steps done so far are written",
              file=sys.stderr)
    session.report()
    return 130 if session.interrupted else 0
