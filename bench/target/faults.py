"""Fault injection for the reference target: pure, seeded, exact.

The harness's own tests use these faults to prove it detects what it claims to detect, so each one does
exactly what its flag says and nothing else, and the same seed gives the same decisions:

- ``--ack-delay-ms D``: the ack of a message leaves no sooner than D ms after the message arrived (and never
  before its events are stored). D is a number, ``uniform:A:B`` or ``exp:MEAN``.
- ``--drop-ack-ratio R``: that share of messages is stored but never acknowledged (HTTP: the connection is
  cut without a response).
- ``--lie-ack-ratio R``: that share of messages is acknowledged but not stored.
- ``--close-ratio R``: that share of messages closes its connection right after its ack (WebSocket close
  1001; HTTP ``Connection: close``).
- ``--stall-ms N --stall-every-ms M``: all tracking traffic stops for N ms every M ms (the windows
  ``[k*M, k*M + N)`` ms after start, k >= 1): nothing is read, stored or acknowledged in them.

Ratios apply per message (WebSocket message or HTTP request), in the order the target takes messages in.
Every fault draws from its own random stream, so turning one fault on never changes another's decisions.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from bench.protocol.errors import UsageError

_NS_PER_MS = 1_000_000
DelayKind = Literal["fixed", "uniform", "exp"]


@dataclass(frozen=True, slots=True)
class Delay:
    """A distribution of ack delays in ms: fixed ``a``, uniform on ``[a, b]``, or exponential, mean ``a``."""

    kind: DelayKind
    a: float
    b: float = 0.0

    def sample_ms(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0


def _ms(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not a number of milliseconds") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{flag}: {text!r} must be a non-negative number of milliseconds")
    return value


def parse_delay(text: str, flag: str = "--ack-delay-ms") -> Delay:
    """Read ``"250"``, ``"uniform:100:300"`` or ``"exp:50"``.

    Raises:
        UsageError: anything else, naming the flag and the text.
    """
    kind, _, rest = text.partition(":")
    if not rest:
        return Delay("fixed", _ms(text, flag))
    if kind == "uniform":
        low, sep, high = rest.partition(":")
        if not sep:
            raise UsageError(f"{flag}: {text!r}: write uniform:LOW:HIGH")
        a, b = _ms(low, flag), _ms(high, flag)
        if b < a:
            raise UsageError(f"{flag}: {text!r}: HIGH is below LOW")
        return Delay("uniform", a, b)
    if kind == "exp":
        return Delay("exp", _ms(rest, flag))
    raise UsageError(f"{flag}: {text!r}: write MS, uniform:LOW:HIGH or exp:MEAN")


def _check_ratio(value: float, flag: str) -> None:
    if not (0.0 <= value <= 1.0):
        raise UsageError(f"{flag} must be between 0 and 1, not {value}")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """The fault flags, validated. All off by default."""

    ack_delay: Delay | None = None
    drop_ack_ratio: float = 0.0
    lie_ack_ratio: float = 0.0
    close_ratio: float = 0.0
    stall_ms: float = 0.0
    stall_every_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_ratio(self.drop_ack_ratio, "--drop-ack-ratio")
        _check_ratio(self.lie_ack_ratio, "--lie-ack-ratio")
        _check_ratio(self.close_ratio, "--close-ratio")
        if self.stall_ms < 0 or self.stall_every_ms < 0:
            raise UsageError("--stall-ms and --stall-every-ms must be non-negative")
        if (self.stall_ms > 0) != (self.stall_every_ms > 0):
            raise UsageError("--stall-ms and --stall-every-ms go together: give both or neither")
        if self.stall_ms > 0 and self.stall_ms >= self.stall_every_ms:
            raise UsageError(f"--stall-ms ({self.stall_ms:g}) must be below --stall-every-ms "
                             f"({self.stall_every_ms:g}), or the target never serves")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the faults do to one message."""

    delay_ns: int = 0
    drop_ack: bool = False
    lie: bool = False
    close: bool = False


NO_FAULT = Decision()


class Faults:
    """Seeded per-message decisions and the stall schedule. ``start_ns`` is the target's start (monotonic)."""

    __slots__ = ("_close", "_config", "_delay", "_drop", "_every_ns", "_lie", "_stall_ns", "_start_ns",
                 "active")

    def __init__(self, config: FaultConfig, start_ns: int) -> None:
        self._config = config
        self._start_ns = start_ns
        # One stream per fault (seeded from a string, which random.Random hashes the same way in every run).
        self._delay = random.Random(f"{config.seed}:ack-delay")
        self._drop = random.Random(f"{config.seed}:drop-ack")
        self._lie = random.Random(f"{config.seed}:lie-ack")
        self._close = random.Random(f"{config.seed}:close")
        self._stall_ns = round(config.stall_ms * _NS_PER_MS)
        self._every_ns = round(config.stall_every_ms * _NS_PER_MS)
        self.active = (config.ack_delay is not None or config.drop_ack_ratio > 0 or config.lie_ack_ratio > 0
                       or config.close_ratio > 0)

    def decide(self) -> Decision:
        """The decision for the next message (call once per message, in the order messages are taken)."""
        if not self.active:
            return NO_FAULT
        config = self._config
        delay = config.ack_delay
        return Decision(
            delay_ns=round(delay.sample_ms(self._delay) * _NS_PER_MS) if delay is not None else 0,
            drop_ack=config.drop_ack_ratio > 0 and self._drop.random() < config.drop_ack_ratio,
            lie=config.lie_ack_ratio > 0 and self._lie.random() < config.lie_ack_ratio,
            close=config.close_ratio > 0 and self._close.random() < config.close_ratio,
        )

    @property
    def stalls(self) -> bool:
        return self._every_ns > 0

    def stall_remaining_ns(self, now_ns: int) -> int:
        """How long tracking traffic must wait at ``now_ns``: 0 outside a stall window."""
        if self._every_ns <= 0:
            return 0
        elapsed = now_ns - self._start_ns
        if elapsed < self._every_ns:
            return 0
        into = elapsed % self._every_ns
        return self._stall_ns - into if into < self._stall_ns else 0
