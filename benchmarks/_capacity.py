"""Idle devices: client memory per connected device, and how many devices one machine holds.

Both run the hot path (``bench.runner.engine.run_shard_async``) on an idle fleet: every device connects
during the ramp, sends its ``init``, then only a heartbeat a minute (a long period, as idle desktop apps
do). One or more client processes, each against its own reference target (a process holds at most
~20,000 sockets: the open-file limit), start together: each reports ready (its resident memory is read
then, before any connection), and the parent hands all of them one t=0.

While they run, the parent polls every target's ``/stats`` (``connections.open``) twice a second. Once
the sum reaches the fleet size and stays there for two polls (the plateau) it reads the resident memory
of every client and target process and the kernel's count of ESTABLISHED connections at both ends
(/proc/net/tcp). Memory read then is not the steady state: most devices have not sent a heartbeat yet,
and each grows by what its first heartbeat and its reply leave behind. So the hold goes on until every
device has had one full heartbeat period since it connected (the ramp's end + the period + a margin),
reads the memory again (the steady state, the figure the floors judge), watches the count for
``CONFIRM_S`` more, then tells the clients to stop: each cancels its run, which closes its connections.
On a loaded machine the plateau can come late: the run is planned long, and only the parent's stop ends
it early. Everything is bounded (the scenario's length, a deadline in
the parent), and the parent only ever ends its own children.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from benchmarks._cases import scenario_toml
from benchmarks._proc import Child, Group, Link, PerfError, rss_kb_of

#: Polls in a row at the full count that make the plateau.
STABLE_POLLS = 2
#: How long the plateau is watched (every poll must still count every device) before the runs are ended.
CONFIRM_S = 3.0
#: Lead from "every client is ready" to t=0.
LEAD_NS = 300_000_000
#: Seconds past the run's own length before the parent gives up.
SLACK_S = 60.0
#: The idle fleet's heartbeat period (idle desktop apps: one a minute).
HEARTBEAT_S = 60.0
#: After the last device's first heartbeat is due, before the steady-state reading.
STEADY_MARGIN_S = 5.0


def idle_child(link: Link, config: Any) -> dict[str, Any]:
    """Child main: run an idle fleet shard until its end or the parent's "stop".

    t=0 comes from the parent once every client is ready; after that a thread waits for the parent's
    "stop" (sent once the plateau is measured) and cancels the run, which closes every connection.
    """
    import uvloop

    from bench.runner.engine import raise_nofile_limit

    raise_nofile_limit()
    result: dict[str, Any] = uvloop.run(_idle(link, config))
    return result


async def _idle(link: Link, config: Any) -> dict[str, Any]:
    from bench.runner.engine import run_shard_async

    loop = asyncio.get_running_loop()
    box: list[asyncio.Task[Any]] = []

    def stop_on_word() -> None:
        with contextlib.suppress(EOFError, OSError):
            link.wait()
        loop.call_soon_threadsafe(box[0].cancel)

    def ready() -> int:
        t0 = int(link.ask("ready"))
        threading.Thread(target=stop_on_word, name="stop-on-word", daemon=True).start()
        return t0

    box.append(loop.create_task(run_shard_async(config, ready=ready)))
    try:
        result = await box[0]
    except asyncio.CancelledError:
        return {"stopped": True}
    st = result.stats
    return {"stopped": False, "connects": st.connects, "connect_errors": st.connect_errors,
            "closed_by_peer": st.closed_by_peer, "acked": result.tracker.acked, "lost": result.tracker.lost}


def open_connections(url: str, app_id: str | None = None) -> int:
    """``connections.open`` of a reference target's ``/stats``, or of one app's (bench.target, api.md)."""
    path = f"/app/{app_id}/stats" if app_id else "/stats"
    with urllib.request.urlopen(f"{url}{path}", timeout=5) as resp:
        return int(json.load(resp)["connections"]["open"])


def established(ports: Sequence[int]) -> tuple[list[int], list[int]]:
    """The kernel's count of ESTABLISHED loopback TCP connections to and from each port (proc(5),
    /proc/net/tcp: state 01): (client ends, whose remote port it is; server ends, whose local port it is).
    """
    index = {port: k for k, port in enumerate(ports)}
    clients, servers = [0] * len(ports), [0] * len(ports)
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split(None, 4)
            if fields[3] != "01":
                continue
            local, remote = int(fields[1][-4:], 16), int(fields[2][-4:], 16)
            if (k := index.get(remote)) is not None:
                clients[k] += 1
            if (k := index.get(local)) is not None:
                servers[k] += 1
    return clients, servers


@dataclass(slots=True)
class Hold:
    """What one idle hold measured.

    Attributes:
        devices: the fleet size (all clients).
        held: the most connections open at once, summed over the targets' ``/stats``.
        steady: the fewest open over the ``CONFIRM_S`` after the plateau (0: no plateau).
        plateau_s: seconds from t=0 until every device was connected (None: never).
        steady_s: seconds from t=0 to the steady-state reading (None: not reached).
        client_tcp / target_tcp: ESTABLISHED connections at the plateau by the kernel's count, client
            ends and target ends (None: no plateau).
        client_rss0_kb / client_rss_kb, target_rss0_kb / target_rss_kb: resident memory per process,
            before any connection and at the plateau (or at the most connections seen).
        client_steady_rss_kb / target_steady_rss_kb: the same once every device has had a full heartbeat
            period (empty: not reached).
        clients: what each client process returned ("stopped": ended by the parent after the plateau).
    """

    devices: int
    held: int = 0
    steady: int = 0
    plateau_s: float | None = None
    steady_s: float | None = None
    client_tcp: int | None = None
    target_tcp: int | None = None
    client_rss0_kb: list[int] = field(default_factory=list)
    client_rss_kb: list[int] = field(default_factory=list)
    target_rss0_kb: list[int] = field(default_factory=list)
    target_rss_kb: list[int] = field(default_factory=list)
    client_steady_rss_kb: list[int] = field(default_factory=list)
    target_steady_rss_kb: list[int] = field(default_factory=list)
    clients: list[dict[str, Any]] = field(default_factory=list)

    @property
    def client_kb_per_device(self) -> float:
        """At the steady state when it was reached, else at the plateau."""
        rss = self.client_steady_rss_kb or self.client_rss_kb
        return (sum(rss) - sum(self.client_rss0_kb)) / max(1, self.held)

    @property
    def target_kb_per_device(self) -> float:
        rss = self.target_steady_rss_kb or self.target_rss_kb
        return (sum(rss) - sum(self.target_rss0_kb)) / max(1, self.held)

    @property
    def client_kb_per_device_at_plateau(self) -> float:
        return (sum(self.client_rss_kb) - sum(self.client_rss0_kb)) / max(1, self.held)

    def to_json(self) -> dict[str, Any]:
        return {"devices": self.devices, "held": self.held, "steady": self.steady,
                "plateau_s": self.plateau_s, "steady_s": self.steady_s, "client_tcp": self.client_tcp,
                "target_tcp": self.target_tcp,
                "client_rss0_kb": self.client_rss0_kb, "client_rss_kb": self.client_rss_kb,
                "target_rss0_kb": self.target_rss0_kb, "target_rss_kb": self.target_rss_kb,
                "client_steady_rss_kb": self.client_steady_rss_kb,
                "target_steady_rss_kb": self.target_steady_rss_kb,
                "client_kb_per_device": self.client_kb_per_device,
                "client_kb_per_device_at_plateau": self.client_kb_per_device_at_plateau,
                "target_kb_per_device": self.target_kb_per_device, "clients": self.clients}


class _Watch:
    """The parent's side of a hold: the ready barrier, the polls, the plateau's readings, the stop."""

    def __init__(self, hold: Hold, group: Group, targets: Sequence[tuple[str, int]],
                 steady_at_s: float) -> None:
        self.hold = hold
        self.steady_at_s = steady_at_s
        self.group = group
        self.targets = targets
        self.ports = [urlsplit(url).port or 80 for url, _ in targets]
        self.ready: dict[str, int] = {}
        self.t0_ns = 0
        self.stable = 0
        self.confirm_until = 0.0
        self.stopped = False

    def on_message(self, child: Child, message: tuple[Any, ...]) -> None:
        if message[:2] != ("ask", "ready"):
            return
        self.ready[child.name] = rss_kb_of(_pid(child))
        if len(self.ready) < len(self.group.children):
            return
        self.hold.client_rss0_kb = [self.ready[c.name] for c in self.group.children]
        self.hold.target_rss0_kb = [rss_kb_of(pid) for _, pid in self.targets]
        self.t0_ns = time.monotonic_ns() + LEAD_NS
        for c in self.group.children:
            c.conn.send(self.t0_ns)

    def tick(self) -> None:
        hold = self.hold
        if not self.t0_ns or self.stopped:
            return
        try:
            open_now = sum(open_connections(url) for url, _ in self.targets)
        except OSError:
            return  # a target busy with a burst of handshakes: the next poll asks again
        if open_now > hold.held:
            hold.held = open_now
            if hold.plateau_s is None:
                self._read_rss()
        if hold.plateau_s is not None:
            hold.steady = min(hold.steady, open_now)
            if hold.steady_s is None:
                since_t0_s = (time.monotonic_ns() - self.t0_ns) / 1e9
                if since_t0_s >= self.steady_at_s:  # every device has had a full heartbeat period
                    hold.client_steady_rss_kb = [rss_kb_of(_pid(c)) for c in self.group.children]
                    hold.target_steady_rss_kb = [rss_kb_of(pid) for _, pid in self.targets]
                    hold.steady_s = since_t0_s
                    self.confirm_until = time.monotonic() + CONFIRM_S
                return
            if time.monotonic() >= self.confirm_until:
                self._stop()
            return
        self.stable = self.stable + 1 if open_now >= hold.devices else 0
        if self.stable >= STABLE_POLLS:
            self._read_rss()
            clients, servers = established(self.ports)
            hold.client_tcp, hold.target_tcp = sum(clients), sum(servers)
            hold.plateau_s = (time.monotonic_ns() - self.t0_ns) / 1e9
            hold.steady = open_now

    def _read_rss(self) -> None:
        self.hold.client_rss_kb = [rss_kb_of(_pid(c)) for c in self.group.children]
        self.hold.target_rss_kb = [rss_kb_of(pid) for _, pid in self.targets]

    def _stop(self) -> None:
        """Plateau measured and confirmed: end the runs now (each closes its connections)."""
        self.stopped = True
        for c in self.group.children:
            if not c.done:
                with contextlib.suppress(OSError):
                    c.conn.send("stop")


def _pid(child: Child) -> int:
    pid = child.proc.pid
    if pid is None:
        raise PerfError(f"{child.name} is not running")
    return pid


def hold_idle(targets: Sequence[tuple[str, int]], per_client: int, *, ramp_s: float,
              source_addrs: Sequence[tuple[str, ...]] = ()) -> Hold:
    """Ramp ``per_client`` idle devices from one client process per target, hold them, measure.

    Args:
        targets: (base URL, PID) of each target; client k drives target k.
        per_client: devices of each client process.
        ramp_s: devices connect evenly over this long. The hold lasts until the steady-state reading
            (ramp + a heartbeat period + a margin) and ``CONFIRM_S`` more; the run is planned longer by
            ``SLACK_S``, so only the parent's stop ends it.
        source_addrs: per client, the local addresses its connections bind (empty: any).

    Raises:
        PerfError: a client failed, or the hold did not end by itself in time.
    """
    from bench.runner.engine import RunConfig
    from bench.scenario import parse_scenario
    from bench.transports.common import TransportOptions

    specs = []
    steady_at_s = ramp_s + HEARTBEAT_S + STEADY_MARGIN_S
    hold_s = HEARTBEAT_S + STEADY_MARGIN_S + CONFIRM_S + SLACK_S
    for k, (url, _) in enumerate(targets):
        text = scenario_toml(devices=per_client, rate=0.0, epm=1, duration_s=ramp_s + hold_s,
                             ramp_s=ramp_s, heartbeat_s=HEARTBEAT_S, seed=100 + k, per_device_rate=0.0)
        options = TransportOptions(source_addrs=tuple(source_addrs[k]) if source_addrs else (),
                                   record_reported=False)
        config = RunConfig(parse_scenario(text, "perf-idle.toml"), "ws", url, secrets.token_hex(12), options)
        specs.append((f"idle-client-{k}", idle_child, (config,)))
    hold = Hold(devices=per_client * len(targets))
    with Group(specs) as group:
        watch = _Watch(hold, group, targets, steady_at_s)
        group.serve(watch.on_message, timeout_s=ramp_s + hold_s + SLACK_S, tick=watch.tick)
    hold.clients = [c.result for c in group.children]
    if not hold.client_rss_kb:
        raise PerfError("no target ever reported an open connection")
    return hold
