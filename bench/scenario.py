"""Scenario files: TOML in; a validated, frozen ``Scenario`` out, or a ``ScenarioError`` at file:line, key.

A scenario says what a device fleet does: how many devices, how they arrive, what they are (platform, OS,
RAM, app version, locale mixes), how their sessions go, which events they send at what rate and size, and the
transport knobs (WebSocket events per message and heartbeats, HTTP flush interval, ack timeout). The schema,
with every default, is in ``scenarios/README.md``; ``_SCHEMA`` below is the table it is checked against.

Every key has a default, so an empty file is a valid (small) scenario. Unknown keys, wrong types and values
out of range are errors. ``tomllib`` gives no line numbers for keys, so ``_LineIndex`` finds the line of a key
by scanning the text for its table header and ``key =``; a TOML syntax error keeps the line tomllib reports.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, NoReturn, TypeVar

from bench.profiles import (
    BUILTIN,
    DEFAULT,
    FIELDS,
    TOML_KEYS,
    Clients,
    Outage,
    Profile,
    Release,
    derive_profile,
)
from bench.protocol.errors import ScenarioError, UsageError

T = TypeVar("T")
KeyPath = tuple[str, ...]

#: contract.md, "Endpoints": 1-64 characters of [A-Za-z0-9_-].
_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Event ids are device * 2**28 + sequence and must stay below 2**53 (exact in JSON doubles), so at most 2**25
#: devices (bench.fleet.device.ID_STRIDE).
MAX_DEVICES = 1 << 25
#: Devices that come online per second by default (``[fleet] connect_rate``, ``--connect-rate``): a
#: conservative rate of TCP + WebSocket handshakes for one client core beside a target on the same machine
#: (one 2-core machine sets up about 2,500/s with both cores busy; at 7,500/s asked, connects time out).
DEFAULT_CONNECT_RATE = 1500.0
#: The most events one device sends in a run: its event ids are a block of this many (bench.fleet.device
#: numbers device k's events from k * 2**28 + 1, every id below 2**53). A rate past it is refused at once.
MAX_DEVICE_EVENTS = (1 << 28) - 1
#: contract.md, "Limits": the reference target's default events-per-message cap.
MAX_EVENTS_PER_MESSAGE = 10_000
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_STACK_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Mix(Generic[T]):
    """A weighted choice among values; ``pick(u)`` maps a uniform ``u`` in [0, 1) to a value."""

    values: tuple[T, ...]
    weights: tuple[float, ...]
    _cum: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.values or len(self.values) != len(self.weights):
            raise ValueError("a mix needs as many weights as values, and at least one")
        total = math.fsum(self.weights)
        if not total > 0 or any(w < 0 for w in self.weights):
            raise ValueError("mix weights must be >= 0 with a positive sum")
        running, cum = 0.0, []
        for w in self.weights:
            running += w
            cum.append(running / total)
        cum[-1] = 1.0  # no rounding gap at the top: pick(u) with u < 1 always lands
        object.__setattr__(self, "_cum", tuple(cum))

    @classmethod
    def of(cls, pairs: Mapping[T, float]) -> Mix[T]:
        return cls(tuple(pairs), tuple(float(w) for w in pairs.values()))

    def pick(self, u: float) -> T:
        """The value whose cumulative-weight band holds ``u`` (zero-weight values are never picked)."""
        return self.values[bisect_right(self._cum, u)]

    @property
    def bounds(self) -> tuple[float, ...]:
        """The upper bounds of the values' bands: ``pick(u) == values[bisect_right(bounds, u)]``."""
        return self._cum


# The default mix: a desktop app's fleet, roughly as the platforms and versions of such apps spread.
DEFAULT_PLATFORMS: Mix[str] = Mix.of({"win32": 55, "darwin": 30, "linux": 15})
DEFAULT_OS_VERSIONS: tuple[tuple[str, Mix[str]], ...] = (
    ("win32", Mix.of({"10.0.19045": 45, "10.0.22631": 45, "6.1.7601": 10})),
    ("darwin", Mix.of({"23.6.0": 40, "24.1.0": 40, "22.6.0": 20})),
    ("linux", Mix.of({"6.8.0": 50, "6.5.0": 30, "5.15.0": 20})),
)
DEFAULT_TOTAL_RAM: Mix[int] = Mix.of({8: 35, 16: 40, 32: 18, 64: 7})
DEFAULT_VERSIONS: Mix[str] = Mix.of({"2.4.0": 60, "2.3.2": 30, "2.2.0": 10})
DEFAULT_LOCALES: Mix[str] = Mix.of({"en-US": 45, "de-DE": 10, "fr-FR": 8, "ja-JP": 7, "pt-BR": 8,
                                    "es-ES": 7, "zh-CN": 10, "en-GB": 5})
DEFAULT_EVENT_NAMES: Mix[str] = Mix.of({"open_file": 25, "save_file": 20, "search": 15, "tab_switch": 25,
                                        "export": 5, "settings_opened": 5, "sync_completed": 5})
DEFAULT_ERROR_NAMES: Mix[str] = Mix.of({"uncaughtException": 6, "unhandledRejection": 3, "ENOENT": 1})
#: Key under which os_version holds one mix for every platform.
ANY_PLATFORM = "*"


@dataclass(frozen=True, slots=True)
class Objective:
    """What a run must meet: ack latency p99 (corrected, µs), the share of events it may lose, and the seconds
    at its start left out of the latency verdict (None: the ramp + 2 s, at most half the run).

    ``[objective]`` in a scenario, ``--slo-p99`` / ``--max-loss`` / ``--warmup`` on the command line; judged
    by ``bench.results.verdict`` (``run`` per transport, ``capacity`` per step).
    """

    p99_us: float
    max_loss: float = 0.0
    warmup_s: float | None = None

    def __post_init__(self) -> None:
        if not (self.p99_us > 0 and math.isfinite(self.p99_us)):
            raise ValueError(f"the p99 objective must be a positive time, not {self.p99_us}")
        if not 0.0 <= self.max_loss <= 1.0:
            raise ValueError(f"the loss allowed is a share of the events sent, 0 to 1, not {self.max_loss}")
        if self.warmup_s is not None and not (self.warmup_s >= 0 and math.isfinite(self.warmup_s)):
            raise ValueError(f"the warm-up must be 0 or more seconds, not {self.warmup_s}")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario. Durations in seconds (floats); see scenarios/README.md for each field."""

    name: str = "scenario"
    path: str = "<memory>"
    seed: int = 1
    duration_s: float = 60.0
    devices: int = 10
    ramp_s: float = 0.0
    connect_rate: float = DEFAULT_CONNECT_RATE
    rate: float | None = None
    per_device_rate: float = 1.0
    events_per_message: int = 1
    http_flush_s: float = 30.0
    heartbeat_s: float = 60.0
    ack_timeout_s: float = 30.0
    app_id: str | None = None
    arrival: Literal["poisson", "fixed"] = "poisson"
    session_s: float = 0.0  # mean session length; 0: one session for the whole run
    idle_gap_s: float = 300.0  # mean idle gap between sessions
    http_max_events: int = 1000  # an HTTP flush larger than this is split into several requests
    platforms: Mix[str] = DEFAULT_PLATFORMS
    os_versions: tuple[tuple[str, Mix[str]], ...] = DEFAULT_OS_VERSIONS
    total_ram: Mix[int] = DEFAULT_TOTAL_RAM
    versions: Mix[str] = DEFAULT_VERSIONS
    locales: Mix[str] = DEFAULT_LOCALES
    locale_field: Literal["language", "locale"] = "language"
    event_names: Mix[str] = DEFAULT_EVENT_NAMES
    payload_bytes: tuple[int, int] = (40, 400)
    error_share: float = 0.02
    error_names: Mix[str] = DEFAULT_ERROR_NAMES
    stack_bytes: tuple[int, int] = (800, 6000)
    userid_share: float = 0.005
    props_share: float = 0.005
    # [profiles], [profile.NAME], [outage], [release], time_scale (bench.profiles); None: the default profile
    # alone, today's stream. Out of the repr: the golden digests of tests/fleet pin the shipped scenarios'
    # values by their repr, and a scenario without clients is the very value it was before they existed.
    clients: Clients | None = field(default=None, repr=False)
    # [target] args: flags for the embedded reference target (a storm that needs slow acks); out of the repr
    # for the same reason as clients
    target_args: tuple[str, ...] = field(default=(), repr=False)
    # [objective]: what a run must meet to exit 0 (bench.results.verdict); None: no verdict. Out of the repr
    # for the same reason as clients
    objective: Objective | None = field(default=None, repr=False)

    @property
    def time_scale(self) -> float:
        """Simulated seconds per real second (``time_scale``): 1 unless the scenario compresses time."""
        return self.clients.time_scale if self.clients is not None else 1.0

    @property
    def device_rate(self) -> float:
        """Events per second of one device while it is in a session."""
        return self.rate / self.devices if self.rate is not None else self.per_device_rate

    @property
    def connect_ramp_s(self) -> float:
        """How long the fleet takes to come online: the ramp, or longer when the connect rate asks for it."""
        return max(self.ramp_s, self.devices / self.connect_rate * self.time_scale)

    def ramp_fits(self) -> str | None:
        """Why the fleet cannot come online within the run at its connect rate, or None."""
        need = self.devices / self.connect_rate * self.time_scale  # the connect rate is in real seconds
        if need <= self.duration_s:
            return None
        return (f"{self.devices:,} devices at {self.connect_rate:,.6g} connects/s take {need:.3g} s to come "
                f"online, longer than the duration of {self.duration_s:g} s: raise the connect rate "
                f"([fleet] connect_rate, --connect-rate) or the duration")

    def plannable(self) -> str | None:
        """Why the plan cannot represent this scenario (one device would send more events than its ids
        number), or None. Checked before any plan is built: replaying such a plan would never end."""
        per_device = self.device_rate * self.duration_s
        if per_device <= MAX_DEVICE_EVENTS:
            return None
        return (f"{self.device_rate:.6g} events/s per device for {self.duration_s:g} s is {per_device:.3g} "
                f"events per device, more than the {MAX_DEVICE_EVENTS:,} a device's event ids number: lower "
                f"the rate or the duration, or add devices")

    def os_version_mix(self, platform: str) -> Mix[str]:
        """The OS version mix of a platform (or the one shared by all platforms)."""
        for key, mix in self.os_versions:
            if key in (platform, ANY_PLATFORM):
                return mix
        raise KeyError(platform)

    def with_overrides(self, *, duration_s: float | None = None, rate: float | None = None,
                       devices: int | None = None, seed: int | None = None,
                       connect_rate: float | None = None) -> Scenario:
        """A copy with command-line overrides applied and checked.

        Raises:
            UsageError: an override is out of range or conflicts with the scenario (shorter than its ramp).
        """
        changes: dict[str, Any] = {}
        if duration_s is not None:
            if not (math.isfinite(duration_s) and duration_s > 0):
                raise UsageError(f"duration must be a positive number of seconds, not {duration_s}")
            if self.ramp_s > duration_s:
                raise UsageError(f"duration {duration_s:g}s is shorter than the ramp of {self.path} "
                                 f"({self.ramp_s:g}s)")
            changes["duration_s"] = float(duration_s)
        if rate is not None:
            if not (math.isfinite(rate) and rate >= 0):
                raise UsageError(f"rate must be a number of events/s >= 0, not {rate}")
            changes["rate"] = float(rate)
        if devices is not None:
            if not 1 <= devices <= MAX_DEVICES:
                raise UsageError(f"devices must be between 1 and {MAX_DEVICES}, not {devices}")
            changes["devices"] = devices
        if seed is not None:
            if not 0 <= seed < 1 << 63:
                raise UsageError(f"seed must be an integer in [0, 2**63), not {seed}")
            changes["seed"] = seed
        if connect_rate is not None:
            if not connect_rate > 0:  # inf: no pacing, every device at its ramp time (NaN is refused too)
                raise UsageError(f"connect rate must be a positive number of connects/s, not {connect_rate}")
            changes["connect_rate"] = float(connect_rate)
        changed = dataclasses.replace(self, **changes)
        why = changed.plannable()
        if why is not None:
            raise UsageError(f"--rate {rate:g}: {why}" if rate is not None else why)
        why = changed.ramp_fits()
        if why is not None:
            raise UsageError(why)
        return changed


#: The defaults of every field (a slotted class keeps no class-level defaults to read).
_D = Scenario()

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_FULL = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")


def parse_duration(text: str) -> float:
    """Seconds from ``"45"``, ``"90s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or ``"1m30s"``.

    Raises:
        UsageError: the text is none of those forms.
    """
    s = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        return float(s)
    if not _DURATION_FULL.fullmatch(s):
        raise UsageError(f"bad duration {text!r}: use e.g. 45, 90s, 500ms, 2m, 1h or 1m30s")
    return math.fsum(float(num) * _UNITS[unit] for num, unit in _DURATION_PART.findall(s))


def parse_share(text: str, flag: str) -> float:
    """``"0"``, ``"0.001"`` or ``"0.1%"`` as a share in [0, 1] (``flag`` names it in the error).

    Raises:
        UsageError: the text is none of those, or outside [0, 1].
    """
    s = text.strip()
    scale = 100.0 if s.endswith("%") else 1.0
    try:
        value = float(s.removesuffix("%")) / scale
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"{flag} {text!r}: expected a share of the events between 0 and 1, or a percentage")
    return value


# --- where a key is written: tomllib keeps no positions -----------------------------------------------------
_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_KEY_PATH = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_KEY_PATH})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_KEY_PATH})\s*=(.*)$")
_INLINE_ASSIGN = re.compile(rf"[{{,]\s*({_KEY_PATH})\s*=")
_SPLIT_PART = re.compile(_KEY_PART)


def _key_parts(text: str) -> KeyPath:
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in _SPLIT_PART.findall(text))


class _LineIndex:
    """Maps key paths to the 1-based line that writes them, by scanning headers and ``key =`` lines."""

    def __init__(self, text: str) -> None:
        self.lines: dict[KeyPath, int] = {}
        table: KeyPath = ()
        in_string = False
        for number, line in enumerate(text.splitlines(), start=1):
            toggles = line.count('"""') + line.count("'''")
            if in_string:
                in_string = toggles % 2 == 0
                continue
            if header := _HEADER.match(line):
                table = _key_parts(header.group(1))
                self.lines.setdefault(table, number)
            elif assign := _ASSIGN.match(line):
                path = table + _key_parts(assign.group(1))
                self.lines.setdefault(path, number)
                for inner in _INLINE_ASSIGN.finditer(assign.group(2)):  # inline tables: { a = 1, b = 2 }
                    self.lines.setdefault(path + _key_parts(inner.group(1)), number)
            in_string = toggles % 2 == 1

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``; else of its first written child (``a.b = 1`` writes ``a``); else of its
        nearest written parent (a table header); None if none is written."""
        if path not in self.lines:
            children = [n for p, n in self.lines.items() if p[: len(path)] == path]
            if children:
                return min(children)
        for end in range(len(path), 0, -1):
            if (found := self.lines.get(path[:end])) is not None:
                return found
        return None


class _Bad(Exception):
    """A value is wrong; the reader adds file, line and key."""


_SCHEMA: dict[KeyPath, frozenset[str]] = {
    (): frozenset({"name", "seed", "duration", "app_id", "fleet", "attributes", "sessions", "events",
                   "errors", "transport", "time_scale", "profiles", "profile", "outage", "release",
                   "target", "objective"}),
    ("fleet",): frozenset({"devices", "ramp", "connect_rate"}),
    ("attributes",): frozenset({"platform", "os_version", "total_ram", "version", "locale", "locale_field"}),
    ("sessions",): frozenset({"length", "idle_gap"}),
    ("events",): frozenset({"rate", "per_device_rate", "arrival", "names", "payload_bytes", "userid_share",
                            "props_share"}),
    ("errors",): frozenset({"share", "names", "stack_bytes"}),
    ("transport",): frozenset({"events_per_message", "heartbeat", "http_flush", "http_max_events",
                               "ack_timeout"}),
    ("outage",): frozenset({"start", "length", "share"}),
    ("release",): frozenset({"at", "version", "spread", "share"}),
    ("target",): frozenset({"args"}),
    ("objective",): frozenset({"p99", "max_loss", "warmup"}),
}
#: Tables whose keys are names the file chooses: ``[profiles]`` (profile = share), ``[profile]`` (one table
#: per profile the file defines). Their keys are checked by ``_read_clients``.
_OPEN_TABLES = frozenset({("profiles",), ("profile",)})


def _place(table: KeyPath) -> str:
    return f"[{'.'.join(table)}]" if table else "the top level"


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


# --- value converters: each returns the value or raises _Bad ---------------------------------------------
Conv = Callable[[Any], Any]


def _integer(lo: int, hi: int) -> Conv:
    def conv(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"expected an integer, got {_type_name(value)} {value!r}")
        if not lo <= value <= hi:
            raise _Bad(f"{value} is out of range [{lo}, {hi}]")
        return value
    return conv


def _number(lo: float, hi: float = math.inf, *, lo_open: bool = False) -> Conv:
    def conv(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(f"expected a number, got {_type_name(value)} {value!r}")
        if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo):
            low = "(" if lo_open else "["
            raise _Bad(f"{value} is out of range {low}{lo:g}, {hi:g}]")
        return float(value)
    return conv


def _duration(*, positive: bool, hi: float = 30 * 86400.0) -> Conv:
    def conv(value: Any) -> float:
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except UsageError as exc:
                raise _Bad(str(exc)) from None
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            seconds = float(value)
        else:
            raise _Bad(f"expected seconds (a number) or a duration string like \"90s\", got "
                       f"{_type_name(value)} {value!r}")
        if seconds < 0 or (positive and seconds == 0) or seconds > hi:
            raise _Bad(f"{value!r} is out of range {'(' if positive else '['}0, {hi:.0f}] seconds")
        return seconds
    return conv


def _choice(*options: str) -> Conv:
    def conv(value: Any) -> str:
        if not isinstance(value, str):
            raise _Bad(f"expected a string, got {_type_name(value)} {value!r}")
        if value not in options:
            close = difflib.get_close_matches(value, options, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Bad(f"{value!r} is not one of {', '.join(map(repr, options))}{hint}")
        return value
    return conv


def _text(pattern: re.Pattern[str], what: str) -> Conv:
    def conv(value: Any) -> str:
        if not isinstance(value, str):
            raise _Bad(f"expected a string, got {_type_name(value)} {value!r}")
        if not pattern.fullmatch(value):
            raise _Bad(f"{value!r} is not {what}")
        return value
    return conv


def _byte_range(hi: int) -> Conv:
    def conv(value: Any) -> tuple[int, int]:
        one = _integer(0, hi)
        if isinstance(value, list):
            if len(value) != 2:
                raise _Bad(f"expected [min, max], got an array of {len(value)}")
            lo, top = one(value[0]), one(value[1])
            if lo > top:
                raise _Bad(f"min {lo} is greater than max {top}")
            return lo, top
        size = one(value)
        return size, size
    return conv


class _Reader:
    """Reads one parsed TOML document against ``_SCHEMA``, raising ScenarioError at the first problem."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.index = _LineIndex(text)

    def fail(self, where: KeyPath, detail: str) -> NoReturn:
        raise ScenarioError(self.path, self.index.line(where), ".".join(where) or "(file)", detail)

    def table(self, doc: dict[str, Any], where: KeyPath) -> dict[str, Any]:
        """The sub-table at ``where`` (empty when absent), after checking its keys against the schema."""
        value: Any = doc
        for part in where:
            value = value.get(part, {})
        if not isinstance(value, dict):
            self.fail(where, f"expected a table, got {_type_name(value)}")
        if where in _OPEN_TABLES:
            return value
        known = _SCHEMA[where]
        for key in value:
            if key not in known:
                self.fail((*where, key), f"unknown key{self._hint(key, known, where)}")
        return value

    def _hint(self, key: str, known: frozenset[str], where: KeyPath) -> str:
        homes = [_place(table) for table, keys in _SCHEMA.items() if key in keys and table != where]
        if homes:  # a known key in the wrong table: `devices = 300` at the top instead of in [fleet]
            return f" here ({key!r} belongs in {' or '.join(homes)})"
        close = difflib.get_close_matches(key, sorted(known), n=1)
        if close:
            return f" (did you mean {close[0]!r}?)"
        return f"; known keys: {', '.join(sorted(known))}"

    def get(self, table: dict[str, Any], where: KeyPath, key: str, conv: Conv, default: Any) -> Any:
        if key not in table:
            return default
        try:
            return conv(table[key])
        except _Bad as exc:
            self.fail((*where, key), str(exc))

    def mix(self, table: dict[str, Any], where: KeyPath, key: str, default: Mix[Any],
            value_of: Callable[[str], Any] = str) -> Mix[Any]:
        """A ``value = weight`` table: weights >= 0, at least one positive."""
        if key not in table:
            return default
        raw, here = table[key], (*where, key)
        if not isinstance(raw, dict) or not raw:
            self.fail(here, "expected a non-empty table of value = weight")
        pairs: dict[Any, float] = {}
        for value, weight in raw.items():
            if isinstance(weight, dict):
                self.fail((*here, value), "expected a weight, got a table (quote keys that hold dots: "
                                           '"2.3.1" = 5)')
            try:
                pairs[value_of(value)] = _number(0.0)(weight)
            except (_Bad, ValueError) as exc:
                self.fail((*here, value), str(exc) if isinstance(exc, _Bad) else f"{value!r}: {exc}")
        if not any(pairs.values()):
            self.fail(here, "at least one weight must be positive")
        return Mix.of(pairs)


def _ram(key: str) -> int:
    if not key.isdigit() or int(key) <= 0:
        raise ValueError("total_ram values are whole gigabytes (e.g. 16 = 40)")
    return int(key)


def _read_top(r: _Reader, doc: dict[str, Any], stem: str) -> dict[str, Any]:
    top = r.table(doc, ())
    return {
        "name": r.get(top, (), "name", _text(re.compile(r".+"), "a non-empty name"), stem),
        "seed": r.get(top, (), "seed", _integer(0, (1 << 63) - 1), _D.seed),
        "duration_s": r.get(top, (), "duration", _duration(positive=True), _D.duration_s),
        "app_id": r.get(top, (), "app_id", _text(_APP_ID, "1-64 characters of [A-Za-z0-9_-]"), None),
    }


def _read_fleet(r: _Reader, doc: dict[str, Any], duration_s: float) -> dict[str, Any]:
    where = ("fleet",)
    t = r.table(doc, where)
    ramp = r.get(t, where, "ramp", _duration(positive=False), _D.ramp_s)
    if ramp > duration_s:
        r.fail((*where, "ramp"), f"ramp {ramp:g}s is longer than the duration {duration_s:g}s")
    return {"devices": r.get(t, where, "devices", _integer(1, MAX_DEVICES), _D.devices), "ramp_s": ramp,
            "connect_rate": r.get(t, where, "connect_rate", _number(0.0, lo_open=True), _D.connect_rate)}


def _read_os_versions(r: _Reader, t: dict[str, Any], platforms: Mix[str]) -> tuple[tuple[str, Mix[str]], ...]:
    where = ("attributes", "os_version")
    raw = t.get("os_version")
    if raw is None:
        out = DEFAULT_OS_VERSIONS
    elif isinstance(raw, dict) and raw and all(isinstance(v, dict) for v in raw.values()):
        out = tuple((platform, r.mix(raw, where, platform, Mix(("",), (1.0,)))) for platform in raw)
    elif isinstance(raw, dict) and any(isinstance(v, dict) for v in raw.values()):
        r.fail(where, "either one mix for all platforms (value = weight) or one table per platform, not both")
    else:
        out = ((ANY_PLATFORM, r.mix(t, ("attributes",), "os_version", Mix(("",), (1.0,)))),)
    known = {key for key, _ in out}
    for platform in platforms.values:
        if ANY_PLATFORM not in known and platform not in known:
            r.fail(("attributes", "platform", platform),
                   f"no OS version mix for platform {platform!r}: add [attributes.os_version.{platform}] "
                   "or make os_version one mix for every platform")
    return out


def _read_attributes(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    where = ("attributes",)
    t = r.table(doc, where)
    platforms = r.mix(t, where, "platform", DEFAULT_PLATFORMS)
    return {
        "platforms": platforms,
        "os_versions": _read_os_versions(r, t, platforms),
        "total_ram": r.mix(t, where, "total_ram", DEFAULT_TOTAL_RAM, _ram),
        "versions": r.mix(t, where, "version", DEFAULT_VERSIONS),
        "locales": r.mix(t, where, "locale", DEFAULT_LOCALES),
        "locale_field": r.get(t, where, "locale_field", _choice("language", "locale"), _D.locale_field),
    }


def _read_sessions(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    where = ("sessions",)
    t = r.table(doc, where)
    length = r.get(t, where, "length", _duration(positive=False), _D.session_s)
    if 0 < length < 0.01:
        r.fail((*where, "length"), "a session lasts at least 10ms (0: one session for the whole run)")
    return {"session_s": length,
            "idle_gap_s": r.get(t, where, "idle_gap", _duration(positive=False), _D.idle_gap_s)}


def _read_events(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    where = ("events",)
    t = r.table(doc, where)
    if "rate" in t and "per_device_rate" in t:
        r.fail((*where, "per_device_rate"), "give either rate (whole fleet) or per_device_rate, not both")
    share = _number(0.0, 1.0)
    return {
        "rate": r.get(t, where, "rate", _number(0.0), None),
        "per_device_rate": r.get(t, where, "per_device_rate", _number(0.0), _D.per_device_rate),
        "arrival": r.get(t, where, "arrival", _choice("poisson", "fixed"), _D.arrival),
        "event_names": r.mix(t, where, "names", DEFAULT_EVENT_NAMES),
        "payload_bytes": r.get(t, where, "payload_bytes", _byte_range(MAX_PAYLOAD_BYTES), _D.payload_bytes),
        "userid_share": r.get(t, where, "userid_share", share, _D.userid_share),
        "props_share": r.get(t, where, "props_share", share, _D.props_share),
    }


def _read_errors(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    where = ("errors",)
    t = r.table(doc, where)
    return {
        "error_share": r.get(t, where, "share", _number(0.0, 1.0), _D.error_share),
        "error_names": r.mix(t, where, "names", DEFAULT_ERROR_NAMES),
        "stack_bytes": r.get(t, where, "stack_bytes", _byte_range(MAX_STACK_BYTES), _D.stack_bytes),
    }


def _read_transport(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    where = ("transport",)
    t = r.table(doc, where)
    return {
        "events_per_message": r.get(t, where, "events_per_message", _integer(1, MAX_EVENTS_PER_MESSAGE),
                                    _D.events_per_message),
        "heartbeat_s": r.get(t, where, "heartbeat", _duration(positive=False), _D.heartbeat_s),
        "http_flush_s": r.get(t, where, "http_flush", _duration(positive=True), _D.http_flush_s),
        "http_max_events": r.get(t, where, "http_max_events", _integer(1, MAX_EVENTS_PER_MESSAGE),
                                 _D.http_max_events),
        "ack_timeout_s": r.get(t, where, "ack_timeout", _duration(positive=True), _D.ack_timeout_s),
    }


_CLIENT_KEYS = ("time_scale", "profiles", "profile", "outage", "release")
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def _read_profile(r: _Reader, name: str, raw: Any, defined: dict[str, Profile]) -> Profile:
    """``[profile.NAME]``: ``base`` (a built-in, or a profile defined above it) and the fields it changes."""
    where = ("profile", name)
    if not isinstance(raw, dict):
        r.fail(where, f"expected a table, got {_type_name(raw)}")
    if not _PROFILE_NAME.fullmatch(name) or name in BUILTIN:
        r.fail(where, f"{name!r}: a new profile needs a name of 1-40 [A-Za-z0-9_-] that is not a built-in "
                      f"one ({', '.join(BUILTIN)})")
    base_name = raw.get("base", DEFAULT.name)
    base = BUILTIN.get(base_name) if isinstance(base_name, str) else None
    base = base or (defined.get(base_name) if isinstance(base_name, str) else None)
    if base is None:
        r.fail((*where, "base"), _not_a_profile(str(base_name), defined))
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "base":
            continue
        field_name = TOML_KEYS.get(key)
        if field_name is None:
            close = difflib.get_close_matches(key, sorted(TOML_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known: base, {', '.join(TOML_KEYS)}"
            r.fail((*where, key), f"unknown key{hint}")
        if field_name.endswith("_s") and isinstance(value, str):
            try:
                value = parse_duration(value)
            except UsageError as exc:
                r.fail((*where, key), str(exc))
        try:
            changes[field_name] = FIELDS[field_name](value)
        except ValueError as exc:
            r.fail((*where, key), str(exc))
    try:
        return derive_profile(name, base, changes)
    except ValueError as exc:
        r.fail(where, str(exc))


def _read_clients(r: _Reader, doc: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """``time_scale``, ``[profiles]``, ``[profile.NAME]``, ``[outage]``, ``[release]``: None when none is
    written (the default profile alone: the plan of before profiles existed)."""
    if not any(key in doc for key in _CLIENT_KEYS):
        return {"clients": None}
    scale = r.get(doc, (), "time_scale", _number(1.0, 10_000.0), 1.0)
    defined: dict[str, Profile] = {}
    for name, raw in r.table(doc, ("profile",)).items():
        defined[name] = _read_profile(r, name, raw, defined)
    shares_raw = r.table(doc, ("profiles",)) or {DEFAULT.name: 1.0}
    shares = r.mix({"profiles": shares_raw}, (), "profiles", Mix.of({DEFAULT.name: 1.0}))
    for name in shares.values:
        if name not in BUILTIN and name not in defined:
            r.fail(("profiles", name), f"{_not_a_profile(name, defined)} (or define it in [profile.{name}])")
    used = tuple(defined.get(n) or BUILTIN[n] for n in shares.values)
    return {"clients": Clients(shares=tuple(zip(shares.values, shares.weights, strict=True)), profiles=used,
                               outage=_read_outage(r, doc, duration_s),
                               release=_read_release(r, doc, duration_s), time_scale=scale)}


def _target_args(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) and a.startswith("--") for a in value):
        raise _Bad(f"expected an array of flags (strings starting with --), got {value!r}")
    return tuple(value)


def _read_target(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    """``[target] args``: flags the runner gives the embedded reference target (none with --target)."""
    where = ("target",)
    t = r.table(doc, where)
    return {"target_args": r.get(t, where, "args", _target_args, ())}


def _read_objective(r: _Reader, doc: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """``[objective]``: the p99 a run must meet (required in the table), the loss it may have, its warm-up."""
    where = ("objective",)
    if "objective" not in doc:
        return {}
    t = r.table(doc, where)
    p99 = r.get(t, where, "p99", _duration(positive=True), None)
    if p99 is None:
        r.fail(where, "an objective needs its p99 (e.g. p99 = \"250ms\")")
    warmup = r.get(t, where, "warmup", _duration(positive=False), None)
    if warmup is not None and warmup >= duration_s:
        r.fail((*where, "warmup"), f"the warm-up of {warmup:g}s leaves nothing of the {duration_s:g}s run "
                                   "to judge")
    loss = r.get(t, where, "max_loss", _number(0.0, 1.0), 0.0)
    return {"objective": Objective(p99_us=p99 * 1e6, max_loss=loss, warmup_s=warmup)}


def _not_a_profile(name: str, defined: Mapping[str, Profile]) -> str:
    known = [*BUILTIN, *defined]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{name!r} is not a profile{hint}; known: {', '.join(known)}"


def _read_outage(r: _Reader, doc: dict[str, Any], duration_s: float) -> Outage | None:
    where = ("outage",)
    if "outage" not in doc:
        return None
    t = r.table(doc, where)
    start = r.get(t, where, "start", _duration(positive=False), 0.0)
    length = r.get(t, where, "length", _duration(positive=True), None)
    if length is None:
        r.fail(where, "an outage needs its length (e.g. length = \"10m\")")
    if start + length >= duration_s:
        r.fail((*where, "length"), f"the outage ends at {start + length:g}s, not before the end of the run "
                                   f"({duration_s:g}s): the devices would never flush their backlog")
    return Outage(start_s=start, length_s=length, share=r.get(t, where, "share", _number(0.0, 1.0), 1.0))


def _read_release(r: _Reader, doc: dict[str, Any], duration_s: float) -> Release | None:
    where = ("release",)
    if "release" not in doc:
        return None
    t = r.table(doc, where)
    at = r.get(t, where, "at", _duration(positive=False), 0.0)
    spread = r.get(t, where, "spread", _duration(positive=False), 0.0)
    if at + spread >= duration_s:
        r.fail((*where, "at"), f"the release ends at {at + spread:g}s, not before the end of the run "
                               f"({duration_s:g}s)")
    version = r.get(t, where, "version", _text(re.compile(r".{1,64}"), "1-64 characters"), None)
    if version is None:
        r.fail(where, "a release needs the version it rolls out (e.g. version = \"2.5.0\")")
    return Release(at_s=at, version=version, spread_s=spread,
                   share=r.get(t, where, "share", _number(0.0, 1.0), 1.0))


def parse_scenario(text: str, path: str = "<string>") -> Scenario:
    """Validate scenario TOML ``text``; ``path`` names it in errors.

    Raises:
        ScenarioError: "path:line: key: detail" for a syntax error, unknown key, wrong type or bad value.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = re.search(r"\(at line (\d+), column (\d+)\)", message)
        # "at end of document" (an unclosed string or array): point at the last line that has content
        line = int(at.group(1)) if at else max(1, len(text.rstrip().splitlines()))
        detail = re.sub(r"\s*\(at (line \d+, )?(column \d+|end of document)\)", "", message)
        detail += f" (column {at.group(2)})" if at else ""
        raise ScenarioError(path, line, "TOML syntax", detail) from None
    r = _Reader(path, text)
    fields = _read_top(r, doc, Path(path).stem)
    fields |= _read_fleet(r, doc, fields["duration_s"])
    fields |= _read_attributes(r, doc)
    fields |= _read_sessions(r, doc)
    fields |= _read_events(r, doc)
    fields |= _read_errors(r, doc)
    fields |= _read_transport(r, doc)
    fields |= _read_clients(r, doc, fields["duration_s"])
    fields |= _read_target(r, doc)
    fields |= _read_objective(r, doc, fields["duration_s"])
    total = fields["error_share"] + fields["userid_share"] + fields["props_share"]
    if total > 1.0 + 1e-9:  # the shares split each event slot; what is left over is a plain `event`
        written = [k for k in _SHARE_KEYS if k in r.index.lines]
        r.fail(max(written, key=lambda k: r.index.lines[k]),
               f"errors.share + events.userid_share + events.props_share = {total:g}, more than 1")
    scenario = Scenario(path=path, **fields)
    why = scenario.plannable()
    if why is not None:
        written = [k for k in (("events", "rate"), ("events", "per_device_rate"), ("duration",))
                   if k in r.index.lines]
        r.fail(written[0] if written else ("events", "rate"), why)
    why = scenario.ramp_fits()
    if why is not None:
        written = [k for k in (("fleet", "connect_rate"), ("fleet", "devices"), ("duration",))
                   if k in r.index.lines]
        r.fail(written[0] if written else ("fleet", "devices"), why)
    return scenario


_SHARE_KEYS: tuple[KeyPath, ...] = (("errors", "share"), ("events", "userid_share"),
                                    ("events", "props_share"))


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        ScenarioError: "file:line: key: detail"; also for a file that cannot be read or is not UTF-8.
    """
    return parse_scenario(read_scenario_text(path), os.fspath(path))


def read_scenario_text(path: str | os.PathLike[str]) -> str:
    """A scenario file's text, unchecked (``parse_scenario`` validates it).

    Raises:
        ScenarioError: "file:(file): detail" for a file that cannot be read, "file:line: ..." if not UTF-8.
    """
    name = os.fspath(path)
    try:
        raw = Path(name).read_bytes()
    except OSError as exc:
        raise ScenarioError(name, None, "(file)", exc.strerror or str(exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ScenarioError(name, line, "(file)", f"not UTF-8 (byte {exc.start})") from None
    return text
