"""What ``make perf`` measures: the cases, their floors, the sizes, and one measured sample.

Each case has a key (``--only KEY``), a kind (how it is driven: table dispatch in ``client.py``) and the
bare loop it is compared with (the bare loop with the same events per message, measured in the same
run). Floors come from the issue that asked for this benchmark; they were measured with plain scripts on
a 2-core VM, and here they are checked against what this machine measures in the same run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from bench.protocol.message import Transport

Kind = Literal["bare", "hot", "naive", "plain", "wrk", "locust"]
Metric = Literal["us_per_msg_max", "ratio_max", "events_per_cpu_min", "msgs_per_cpu_min"]


@dataclass(frozen=True, slots=True)
class Floor:
    """One bound a case must reach: ``metric`` compared with ``value``."""

    metric: Metric
    value: float
    text: str


@dataclass(frozen=True, slots=True)
class Case:
    """One row of the CPU table.

    Attributes:
        key: the ``--only`` name.
        label: the table's first column.
        kind: how it is driven (bare loop, hot path, naive timers, wrk, Locust).
        transport: "ws" or "http".
        epm: events per message (per HTTP request).
        devices: devices (connections for the bare loop and wrk); a paced case has
            ``Sizes.paced_devices`` (``sized``).
        rate: offered messages per second of the fleet (open loop), per device for a paced case; 0 for
            closed loops that go as fast as they can.
        floors: bounds to reach.
        paced: many devices, each at its own slow pace (``{n}`` in the label is their number).
        ws_io: how a hot-path WebSocket case reads replies (``TransportOptions.ws_io``).
        pure: run the Python twins of the per-event steps (``bench.native``), not the C ones: the same
            case, to show what the C twins save.
    """

    key: str
    label: str
    kind: Kind
    transport: Transport
    epm: int
    devices: int
    rate: float
    floors: tuple[Floor, ...] = ()
    paced: bool = False
    ws_io: Literal["auto", "polled", "stream"] = "auto"
    pure: bool = False

    def sized(self, sizes: Sizes) -> Case:
        """This case with a paced fleet's device count filled in; a fleet smaller than the one its floor is
        set for (``PACED_FLOOR_DEVICES``, as ``--quick`` runs) drops the floor: it is not judged."""
        if not self.paced:
            return self
        n = sizes.paced_devices
        floors = self.floors if n >= PACED_FLOOR_DEVICES else ()
        return dataclasses.replace(self, label=self.label.format(n=n), devices=n, floors=floors)

    @property
    def bare(self) -> str:
        """The key of the bare loop this case's ratio is taken against."""
        return "bare-ws-1" if self.epm == 1 else "bare-ws-10"


@dataclass(frozen=True, slots=True)
class Sizes:
    """How long and how big each case runs (the full run and ``--quick``)."""

    repeats: int
    window_s: float          # measured window of a hot-path case
    bare_messages: int       # messages of a 1-event bare loop (a 10-event loop sends a third of it)
    paced_devices: int
    paced_window_s: float
    wrk_s: float
    locust_s: float
    rss_devices: int
    max_devices: int         # bound of the address-pool ramp
    per_process: int         # devices per client process (and connections per target) in that ramp


FULL = Sizes(repeats=3, window_s=4.0, bare_messages=60_000, paced_devices=10_000, paced_window_s=8.0,
             wrk_s=4.0, locust_s=6.0, rss_devices=10_000, max_devices=250_000, per_process=15_000)
QUICK = Sizes(repeats=1, window_s=2.0, bare_messages=20_000, paced_devices=5_000, paced_window_s=4.0,
              wrk_s=2.0, locust_s=4.0, rss_devices=5_000, max_devices=20_000, per_process=10_000)

_US_1 = Floor("us_per_msg_max", 25.0, "<= 25 us/msg")
_RATIO_1 = Floor("ratio_max", 1.25, "<= 1.25x bare")
_EV_10 = Floor("events_per_cpu_min", 250_000.0, ">= 250k ev/CPU-s")
_HTTP_10 = Floor("msgs_per_cpu_min", 7_000.0, ">= 7k req/CPU-s")
_PACED = Floor("msgs_per_cpu_min", 25_000.0, ">= 25k msg/CPU-s")
#: The paced floor holds for a fleet of this many connections (issue 3: "over 10,000 connections").
PACED_FLOOR_DEVICES = 10_000
#: RSS per idle connected device, KiB.
RSS_FLOOR_KB = 12.0
#: Concurrent devices on this machine through the address pool.
DEVICES_FLOOR = 200_000

#: The CPU table, in the order it runs (and prints) within each repeat. Paced cases take their device count
#: from ``Sizes.paced_devices``; their rate is 0.4 messages/s per device (4,000/s over 10,000 devices).
#: Open-loop rates are chosen so that the client and the target together stay well under the 2 cores (the
#: bare loops, closed loops running flat out, reach ~42,000 1-event and ~16,000 10-event messages/s here);
#: the cases with a floor run at 15,000 and 8,000 messages/s. A process that waits between sends pays for
#: every wake-up (an idle 1 ms tick costs ~33 µs of CPU here), so the same plan at a lower rate costs more
#: per message: the 10-event case at 4,000/s shows how much.
#: "stream" rows read replies as they arrive (``TransportOptions.ws_io``), the others once per tick.
CASES: tuple[Case, ...] = (
    Case("bare-ws-1", "bare websockets loop, 1-event", "bare", "ws", 1, 4, 0),
    Case("bare-ws-10", "bare websockets loop, 10-event", "bare", "ws", 10, 4, 0),
    Case("hot-ws-1", "hot path WS, 1-event", "hot", "ws", 1, 100, 15_000, (_US_1, _RATIO_1)),
    Case("hot-ws-1-py", "hot path WS, 1-event, Python twins", "hot", "ws", 1, 100, 15_000, pure=True),
    Case("hot-ws-10", "hot path WS, 10-event", "hot", "ws", 10, 100, 8_000, (_EV_10,)),
    Case("hot-ws-10-py", "hot path WS, 10-event, Python twins", "hot", "ws", 10, 100, 8_000, pure=True),
    Case("hot-ws-10-4k", "hot path WS, 10-event, 4k msg/s", "hot", "ws", 10, 100, 4_000),
    Case("hot-ws-10-stream", "hot path WS, 10-event, stream", "hot", "ws", 10, 100, 8_000,
         ws_io="stream"),
    Case("hot-http-10", "hot path HTTP, 10-event", "hot", "http", 10, 200, 2_000, (_HTTP_10,)),
    Case("wrk-http-10", "wrk POST, same 10-event body", "wrk", "http", 10, 8, 0),
    Case("locust-ws", "Locust WS user, 1-event", "locust", "ws", 1, 50, 1_000),
    Case("locust-http", "Locust HTTP user, 10-event", "locust", "http", 10, 50, 50),
    Case("hot-ws-paced", "hot path WS, paced, {n:,} dev", "hot", "ws", 1, 0, 0.4, (_PACED,), paced=True),
    Case("hot-ws-paced-py", "hot path WS, paced, Python twins", "hot", "ws", 1, 0, 0.4, paced=True,
         pure=True),
    Case("hot-ws-paced-stream", "hot path WS, paced, stream", "hot", "ws", 1, 0, 0.4, paced=True,
         ws_io="stream"),
    Case("naive-ws-paced", "naive timers, paced, {n:,} dev", "naive", "ws", 1, 0, 0.4, paced=True),
    Case("plain-ws-paced", "plain epoll loop, paced, {n:,} dev", "plain", "ws", 1, 0, 0.4, paced=True),
)
#: Cases outside the CPU table (``--only`` accepts them too).
EXTRA_KEYS = ("idle-rss", "max-devices")
BY_KEY = {c.key: c for c in CASES}


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed run of one case: counts over the measured window and the CPU spent in it.

    Attributes:
        messages: messages (HTTP requests) written in the window.
        events: events in those messages.
        seconds: wall time of the window.
        client_cpu_s: CPU seconds of the client process(es) over the window.
        target_cpu_s: CPU seconds of the target over the same window (None: not measured).
        note: what is worth knowing about this run, in detail (lost events, saturation, peer errors).
        flags: the same in short tags, counted over the repeats in the table's notes.
    """

    messages: int
    events: int
    seconds: float
    client_cpu_s: float
    target_cpu_s: float | None = None
    note: str = ""
    flags: tuple[str, ...] = ()

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else math.nan

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.nan

    @property
    def us_per_msg(self) -> float:
        return self.client_cpu_s * 1e6 / self.messages if self.messages else math.nan

    @property
    def us_per_event(self) -> float:
        return self.client_cpu_s * 1e6 / self.events if self.events else math.nan

    @property
    def target_us_per_msg(self) -> float:
        if self.target_cpu_s is None or not self.messages:
            return math.nan
        return self.target_cpu_s * 1e6 / self.messages

    def to_json(self) -> dict[str, float | int | str | list[str] | None]:
        return {"messages": self.messages, "events": self.events, "seconds": self.seconds,
                "client_cpu_s": self.client_cpu_s, "target_cpu_s": self.target_cpu_s,
                "us_per_msg": self.us_per_msg, "us_per_event": self.us_per_event, "note": self.note,
                "flags": list(self.flags)}


def scenario_toml(*, devices: int, rate: float, epm: int, duration_s: float, ramp_s: float = 0.0,
                  arrival: str = "poisson", http_flush_s: float = 30.0, heartbeat_s: float = 0.0,
                  seed: int = 11, per_device_rate: float | None = None) -> str:
    """A scenario (bench/scenario.py schema) for one case: plain events of a fixed 100-byte payload.

    The case's ramp is its own: no connect rate lengthens it (``connect_rate`` is set far above it).

    Errors, userid and props are off so every message is the same shape as the bare loop's (the bare
    loop sends an event taken from the same plan). ``per_device_rate`` replaces the fleet ``rate``.
    """
    events = (f"per_device_rate = {per_device_rate!r}" if per_device_rate is not None
              else f"rate = {float(rate)!r}")
    return (
        f'name = "perf"\nseed = {seed}\nduration = {duration_s!r}\n'
        f"[fleet]\ndevices = {devices}\nramp = {ramp_s!r}\nconnect_rate = 1e9\n"
        f'[events]\n{events}\narrival = "{arrival}"\npayload_bytes = 100\n'
        "userid_share = 0.0\nprops_share = 0.0\n"
        "[errors]\nshare = 0.0\n"
        f"[transport]\nevents_per_message = {epm}\nheartbeat = {heartbeat_s!r}\n"
        f'http_flush = {http_flush_s!r}\nack_timeout = "5s"\n'
    )
