"""What a capacity step varies, and the devices and events/s a load means. Pure.

Two axes, one question (how many devices of this scenario can the target serve?):

- ``devices`` (the default): a step runs N devices, each behaving exactly as the scenario's devices do
  (``Scenario.device_rate`` events/s while in a session, the same sessions, heartbeats and flushes). Every
  cost of a device is in the measurement: its connection, its handshake, its heartbeats, its share of the
  events. The answer is a count of devices; the events/s beside it is N times the per-device rate.
- ``rate``: a step runs the scenario's own devices at a fleet rate of R events/s. It answers how many events/s
  the target serves over that many connections; the devices it stands for are R over the scenario's
  per-device rate, an extrapolation that leaves out what more connections would cost. It is the axis to
  use when the question is the events/s, or the per-connection rate (e.g. how an in-order ack delay grows
  with it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bench.protocol.errors import UsageError
from bench.scenario import Scenario

Vary = Literal["devices", "rate"]


@dataclass(frozen=True, slots=True)
class Axis:
    """The stepped variable of a search over ``scenario``.

    Attributes:
        vary: "devices" or "rate".
        per_device_rate: events/s of one of the scenario's devices while in a session (its own figure,
            before any step changes the fleet).
        devices: the scenario's fleet size (what the rate axis keeps).
    """

    vary: Vary
    per_device_rate: float
    devices: int

    @classmethod
    def of(cls, scenario: Scenario, vary: Vary) -> Axis:
        """The axis over this scenario's devices.

        Raises:
            UsageError: the scenario's devices send no events (no ack latency to measure).
        """
        if not scenario.device_rate > 0:
            raise UsageError(f"{scenario.path}: its devices send no events (rate 0): there is no ack "
                             f"latency to search a capacity on")
        return cls(vary, scenario.device_rate, scenario.devices)

    @property
    def unit(self) -> str:
        return "devices" if self.vary == "devices" else "events/s"

    def default_start(self) -> float:
        """The scenario as written: its devices, or its fleet's events/s."""
        return float(self.devices) if self.vary == "devices" else self.devices * self.per_device_rate

    def devices_at(self, load: float) -> int:
        """The devices of this scenario a load means (the rate axis: the whole devices its rate feeds)."""
        if self.vary == "devices":
            return round(load)
        return math.floor(load / self.per_device_rate + 1e-9)

    def rate_at(self, load: float) -> float:
        """The fleet's events/s while every device is in a session."""
        return load * self.per_device_rate if self.vary == "devices" else load

    def scenario_at(self, scenario: Scenario, load: float, duration_s: float) -> Scenario:
        """The scenario one step runs.

        Raises:
            UsageError: the step cannot be planned (shorter than the ramp, too many devices, ...).
        """
        if self.vary == "devices":
            devices = round(load)
            # a whole-fleet rate would spread over more devices: keep each device's own rate instead
            rate = devices * self.per_device_rate if scenario.rate is not None else None
            return scenario.with_overrides(devices=devices, rate=rate, duration_s=duration_s)
        return scenario.with_overrides(rate=load, duration_s=duration_s)

    def describe(self, load: float) -> str:
        """``"1200 devices (4,800 events/s)"`` or ``"480 events/s (120 devices' worth)"``."""
        if self.vary == "devices":
            n = round(load)
            return f"{n:,} device{'s' if n != 1 else ''} ({self.rate_at(load):,.0f} events/s)"
        return f"{load:,.0f} events/s ({self.devices_at(load):,} devices' worth)"
