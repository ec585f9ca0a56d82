"""One Locust test run as one process sees it: the run's spec, the plan, device numbering, the books.

Theory of operation
-------------------
Locust decides *how many* devices run (``-u``, one device per user) and *how fast they arrive* (``-r``);
the scenario decides *what each device does*. So the plan is built for an effectively unbounded fleet
(``fleet_scenario``): ``MAX_DEVICES`` devices, no ramp (a device starts when Locust spawns its user), the
scenario's per-device rate kept exactly (a whole-fleet ``rate`` is turned into the same rate per device),
and a duration that covers the Locust run. A device's events depend only on (seed, device index)
(bench.fleet.device), so Locust user ``k`` of the only process is device ``k``: the very device, with the
very events, that ``nucleus-bench run`` sends for that seed.

Device numbering across processes: worker ``w`` numbers its users ``w * PER_WORKER_DEVICES + k``. That
needs no agreement between workers, never collides, and keeps a standalone run on devices 0..n-1.

Every process of a run agrees on a ``RunSpec`` (scenario file, appIds, plan duration...). The master (or
the standalone process) makes it at ``test_start`` and Locust carries it to the workers inside the spawn
message's parsed options, before their own ``test_start``. The spec carries the master's ``Identity`` (its
user classes, locustfiles and nucleus-bench version): a worker that differs refuses the run rather than
run half a fleet of something else.

``TransportBooks`` keeps what one transport measured in this process: the shared ``AckTracker`` (every
device of the process reports to it, one ``conn`` id per connection), the wire counters
(``TransportStats``), schedule lag, the per-second series and every reported id (for reconciliation).
``RunState.results`` turns them into the hot path's ``TransportResult``, which merges exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from bench.fleet import Plan
from bench.locust_glue.detail import Detail
from bench.metrics import AckTracker, Histogram, SecondSeries, SeriesRows
from bench.protocol.errors import UsageError
from bench.protocol.events import EventId
from bench.results.saturation import process_reasons
from bench.results.transport import TransportResult
from bench.scenario import MAX_DEVICES, Scenario
from bench.transports.common import TransportStats

NS = 1_000_000_000
#: Devices numbered per worker process (worker w: w * PER_WORKER_DEVICES + k).
PER_WORKER_DEVICES = 1 << 19
#: Worker processes a run can number devices for (MAX_DEVICES / PER_WORKER_DEVICES).
MAX_WORKERS = MAX_DEVICES // PER_WORKER_DEVICES
#: Plan duration when Locust has no --run-time (the web UI, or until Ctrl-C): long enough for any session.
OPEN_DURATION_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Identity:
    """What a master and its workers must share to run one fleet: user classes, locustfiles, version.

    Attributes:
        version: nucleus-bench's version.
        user_classes: the names of the Locust user classes, sorted (the master dispatches users by name).
        locustfiles: the locustfiles' base names, sorted (for the message; ``digest`` decides).
        digest: sha256 (first 16 hex digits) over the locustfiles' names and contents.
    """

    version: str
    user_classes: tuple[str, ...]
    locustfiles: tuple[str, ...]
    digest: str

    @classmethod
    def of(cls, version: str, user_classes: Iterable[str], files: Iterable[tuple[str, bytes]]) -> Identity:
        """From the user class names and each locustfile's (base name, contents)."""
        ordered = sorted(files)
        h = hashlib.sha256()
        for name, data in ordered:
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return cls(version=version, user_classes=tuple(sorted(user_classes)),
                   locustfiles=tuple(name for name, _ in ordered), digest=h.hexdigest()[:16])

    def differs(self, other: Identity) -> str | None:
        """One line saying how ``other`` (a worker) differs from this (the master), or None."""
        if other.version != self.version:
            return f"nucleus-bench {other.version}, the master runs {self.version}"
        if other.user_classes != self.user_classes:
            return (f"user classes {', '.join(other.user_classes) or 'none'}, the master runs "
                    f"{', '.join(self.user_classes) or 'none'}")
        if other.digest != self.digest:
            return (f"locustfile {', '.join(other.locustfiles)} differs from the master's "
                    f"{', '.join(self.locustfiles)} (contents)")
        return None

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "user_classes": list(self.user_classes),
                "locustfiles": list(self.locustfiles), "digest": self.digest}

    @classmethod
    def from_json(cls, obj: Any) -> Identity:
        """Raises: KeyError, TypeError, ValueError, AttributeError: not an identity."""
        return cls(version=str(obj["version"]), user_classes=tuple(str(c) for c in obj["user_classes"]),
                   locustfiles=tuple(str(f) for f in obj["locustfiles"]), digest=str(obj["digest"]))


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What every process of one run agrees on; made by the master, carried to the workers.

    Attributes:
        run_id: tells this run's messages from a previous run's (the web UI runs many tests per process).
        scenario_path: the scenario file, as the master was given it (it names the scenario in messages).
        scenario_text: its TOML, as the master read it: workers parse this, so they need no copy of the file
            and every process of the run follows the same scenario.
        app_ids: the appId of each transport.
        duration_s: how long each device's plan runs, from its user's start.
        endpoint: "app" (/app/{appId}/track) or "short" (/{appId}/).
        insecure: skip TLS checks.
        identity: the master's user classes, locustfiles and version (None: a process that runs alone).
    """

    run_id: str
    scenario_path: str
    scenario_text: str
    app_ids: tuple[tuple[str, str], ...]
    duration_s: float
    endpoint: str = "app"
    insecure: bool = False
    identity: Identity | None = None

    def app_id(self, transport: str) -> str:
        return dict(self.app_ids)[transport]

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "scenario_path": self.scenario_path,
                "scenario_text": self.scenario_text, "app_ids": dict(self.app_ids),
                "duration_s": self.duration_s, "endpoint": self.endpoint, "insecure": self.insecure,
                "identity": self.identity.to_json() if self.identity is not None else None}

    @classmethod
    def from_json(cls, obj: Any) -> RunSpec:
        """Raises: UsageError: not a spec of this version (a master running another locustfile)."""
        try:
            return cls(run_id=str(obj["run_id"]), scenario_path=str(obj["scenario_path"]),
                       scenario_text=str(obj["scenario_text"]),
                       app_ids=tuple(sorted((str(k), str(v)) for k, v in obj["app_ids"].items())),
                       duration_s=float(obj["duration_s"]), endpoint=str(obj["endpoint"]),
                       insecure=bool(obj["insecure"]),
                       identity=Identity.from_json(obj["identity"]) if obj["identity"] is not None else None)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UsageError("the master sent no usable run spec: run the same locustfile on the master "
                             "and the workers") from None


def plan_duration(scenario: Scenario, run_time_s: float | None) -> float:
    """The plan covers the Locust run: the longer of the scenario's duration and ``--run-time``."""
    if run_time_s is None or run_time_s <= 0:
        return max(scenario.duration_s, OPEN_DURATION_S)
    return max(scenario.duration_s, float(run_time_s))


def fleet_scenario(scenario: Scenario, duration_s: float) -> Scenario:
    """The scenario as Locust drives it (see the module docstring): same devices, unbounded fleet, no ramp
    (Locust's spawn rate paces the devices' arrival)."""
    rate = scenario.device_rate * MAX_DEVICES if scenario.rate is not None else None
    wide = scenario.with_overrides(duration_s=duration_s, devices=MAX_DEVICES, rate=rate,
                                   connect_rate=math.inf)
    return dataclasses.replace(wide, ramp_s=0.0)


def fleet_plan(fleet: Scenario) -> Plan:
    """The plan of a ``fleet_scenario``: shard 0 of MAX_DEVICES shards holds one device, so the plan builds
    nothing per device up front; iter_device serves any device of the fleet."""
    return Plan(fleet, shard=0, shards=fleet.devices)


def device_index(worker_index: int, local_seq: int) -> int:
    """The device of the ``local_seq``-th user (from 0) of worker ``worker_index`` (standalone: 0).

    Raises:
        UsageError: more workers or more users per worker than the numbering allows.
    """
    if not 0 <= worker_index < MAX_WORKERS:
        raise UsageError(f"worker index {worker_index}: device numbering allows {MAX_WORKERS} workers")
    if not 0 <= local_seq < PER_WORKER_DEVICES:
        raise UsageError(f"more than {PER_WORKER_DEVICES} users in one Locust process")
    return worker_index * PER_WORKER_DEVICES + local_seq


class DeviceLike(Protocol):
    """What the drain asks of every device (``bench.locust_glue.devices``)."""

    transport: str

    def final_flush(self) -> None: ...

    def abandon_unsent(self, now_ns: int) -> int: ...


class TransportBooks:
    """One transport's measurements in this process (see the module docstring)."""

    def __init__(self, transport: str, timeout_ns: int) -> None:
        self.transport = transport
        self.tracker = AckTracker(timeout_ns=timeout_ns)
        self.stats = TransportStats()
        self.series = SecondSeries()
        self.schedule_lag = Histogram()
        self.lags_ns: list[int] = []    # actual - intended of each send, folded once a second
        self.reported: list[EventId] = []
        self.planned = 0                # trackable events the devices took from their plans
        self.detail = Detail()          # latency per event type, rejections by reason
        self._rows = SeriesRows(self.series)

    def fold(self) -> None:
        self.tracker.fold()
        self.detail.fold()
        if self.lags_ns:
            self.schedule_lag.record_many(np.asarray(self.lags_ns, dtype=np.int64) // 1000)
            self.lags_ns.clear()

    def on_second(self, second: int, now_ns: int) -> int:
        """Once a second: expire, fold, one series row. Returns how many events were just counted lost."""
        lost = self.tracker.expire(now_ns)
        self.fold()
        self.row(second)
        return lost

    def row(self, second: int) -> None:
        t = self.tracker
        self._rows.record(second, sent=t.sent, acked=t.acked, rejected=t.rejected, lost=t.lost,
                          bytes_sent=self.stats.bytes_sent,
                          histograms={"corrected": t.corrected, "raw": t.raw,
                                      "schedule_lag": self.schedule_lag})


class RunState:
    """One test run in one Locust process that runs users (a worker, or the standalone process).

    Args:
        spec: what the run agreed on.
        scenario: the scenario file's scenario (not yet widened: ``fleet_scenario`` is applied here).
        worker_index: this process's worker index (0 standalone).
        clock_ns: monotonic nanoseconds (injected for tests).
        started: when the run started here (UTC; now when not given).
    """

    def __init__(self, spec: RunSpec, scenario: Scenario, *, worker_index: int = 0,
                 clock_ns: Callable[[], int] = time.monotonic_ns, started: datetime | None = None) -> None:
        self.spec = spec
        self.started = started if started is not None else datetime.now(UTC)
        self.scenario = scenario
        self.fleet = fleet_scenario(scenario, spec.duration_s)
        self.plan = fleet_plan(self.fleet)
        self.worker_index = worker_index
        self._clock_ns = clock_ns
        self.t0_ns = clock_ns()
        self.cpu0 = time.process_time()
        self.timeout_ns = round(scenario.ack_timeout_s * NS)
        self.books: dict[str, TransportBooks] = {}
        self.devices: list[DeviceLike] = []
        self.loop_lag = Histogram()
        self.loop_lags_ns: list[int] = []
        self.draining = False
        self.send_end_ns: int | None = None
        self.send_cpu_s = 0.0
        self._users = itertools.count()
        self._conns = itertools.count(1)

    def clock(self) -> int:
        """Monotonic ns since this run started in this process (the time base of every tracker call)."""
        return self._clock_ns() - self.t0_ns

    def book(self, transport: str) -> TransportBooks:
        books = self.books.get(transport)
        if books is None:
            books = self.books[transport] = TransportBooks(transport, self.timeout_ns)
        return books

    def new_device(self) -> int:
        """The device index of the next user this process starts (UsageError past the numbering)."""
        return device_index(self.worker_index, next(self._users))

    def new_conn_id(self) -> int:
        """A connection id unique in this process's trackers (never reused: a reply cannot cross over)."""
        return next(self._conns)

    def fold(self) -> None:
        for books in self.books.values():
            books.fold()
        if self.loop_lags_ns:
            self.loop_lag.record_many(np.asarray(self.loop_lags_ns, dtype=np.int64) // 1000)
            self.loop_lags_ns.clear()

    def stop_sending(self) -> None:
        """The drain begins: devices send nothing more (HTTP devices flush what they hold first)."""
        if not self.draining:
            self.draining = True
            self.send_end_ns = self.clock()
            self.send_cpu_s = time.process_time() - self.cpu0

    def in_flight(self) -> int:
        return sum(b.tracker.in_flight for b in self.books.values())

    def finish(self) -> None:
        """End of the drain: never-written events go to the trackers, then everything pending is lost."""
        now = self.clock()
        for device in self.devices:
            self.book(device.transport).stats.unsent_events += device.abandon_unsent(now)
        for books in self.books.values():
            books.tracker.expire(now)
            books.tracker.finish(now)
            books.fold()
            books.row(now // NS)
        self.fold()

    def results(self) -> dict[str, TransportResult]:
        """This process's ``TransportResult`` of each transport that ran (call after ``finish``)."""
        end_ns = self.clock()
        send_ns = self.send_end_ns if self.send_end_ns is not None else end_ns
        cpu_s = time.process_time() - self.cpu0
        send_cpu_s = self.send_cpu_s if self.send_end_ns is not None else cpu_s
        share = send_cpu_s / (send_ns / NS) if send_ns > 0 else 0.0
        behind_us = max((b.schedule_lag.max() for b in self.books.values() if b.schedule_lag.total),
                        default=0.0)
        total_sent = sum(b.tracker.sent for b in self.books.values()) or 1
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out: dict[str, TransportResult] = {}
        for name, books in self.books.items():
            tracked = books.tracker.result()
            part = tracked.sent / total_sent if len(self.books) > 1 else 1.0  # one process, two transports
            out[name] = TransportResult(
                transport=name, planned_events=books.planned, processes=1, tracker=tracked,
                stats=books.stats, schedule_lag=books.schedule_lag, loop_lag=self.loop_lag.copy(),
                series=books.series, cpu_s=cpu_s * part, send_cpu_s=send_cpu_s * part,
                send_s=send_ns / NS, wall_s=end_ns / NS, max_rss_kb=rss, cpu_share_max=share,
                behind_max_us=behind_us, reasons=process_reasons(share, behind_us),
                reported_ids=list(books.reported))
        return out

