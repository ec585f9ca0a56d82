"""Client profiles: what the official Nucleus modules do on the wire, as named sets of behaviours.

contract.md, "Client behaviour worth simulating": the real modules re-send their whole unacked queue every
tick, reconnect without backoff and leave the old socket open, flush hours of persisted backlog after an
outage, draw integer ids that collide, send sessionIds as strings and use binary frames. A ``Profile`` names
one such set of behaviours; a scenario's ``[profiles]`` table gives each a share of the fleet, and
``[profile.NAME]`` defines more from a built-in one (``base``) with some fields changed.

A profile is data only. ``bench.fleet`` makes a device's events in its profile's forms (ids, sessionId,
device id, date, field names, extras) and shapes them on its report tick (open delay, heartbeat pattern,
outage, error storm); ``bench.transports.ws`` carries out what depends on the server (re-sending the unacked
queue, reconnecting, binary frames). ``FIELDS`` below is the one table of what each field may hold: the
scenario reader checks ``[profile.NAME]`` against it.

Where a fact comes from: ``v4`` and ``python`` were read from the modules' published source
(nucleus-analytics 4.0.3 on npm, nucleus-python 0.3.0 on PyPI); ``v3``, ``v5`` and ``swift`` follow
contract.md, and where it says nothing (their device id form, their date form), the choice is ours and
``scenarios/README.md`` says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Heartbeat = Literal["interval", "connect", "alternate", "idle", "none"]
DeviceForm = Literal["hex64", "sha256", "base64-15", "md5", "random-12"]
DateForm = Literal["none", "epoch-ms", "iso-z", "iso-local"]
Extras = Literal["document", "js", "v3", "python", "minimal"]

#: The most an id or sessionId may be drawn up to: exact in any JSON reader (below 2**53).
MAX_DRAW = (1 << 53) - 1
#: 2026-01-01T00:00:00Z: where dates start when nobody says (a plan stays the same from run to run); the
#: runner sets ``Clients.epoch_ms`` to the real time of its start.
EPOCH_MS = 1_767_225_600_000


@dataclass(frozen=True, slots=True)
class Profile:
    """One client's behaviour. Times in seconds of the scenario's (simulated) clock.

    Attributes:
        name: how scenarios select it.
        imitates: which module it imitates, in a few words (``scenarios/README.md`` has the details).
        tick_s: the report tick: queued events go out together every ``tick_s``; 0: each burst goes as it is
            made (the harness's own shape).
        open_delay_s: after a connection opens, the wait before the first send (v4 and v5: 1 s).
        heartbeat: ``interval``: every ``[transport] heartbeat`` (the document: once a minute); ``connect``:
            once after each (re)connect (v3); ``alternate``: an idle tick sends a heartbeat, the next an empty
            batch (contract.md's v4); ``idle``: a heartbeat every idle tick (v5, and v4 4.0.3 as published:
            its report drops the undated heartbeat from the queue before each send, so it never
            alternates); ``none``.
        resend: every tick re-sends every event not yet acknowledged, with the new ones (v3-v5, Python).
        id_max: event ids drawn at random in 1..id_max (collisions included); 0: unique ids.
        session_min, session_max: the sessionId range.
        session_string: the share of sessions whose sessionId goes as a numeric string (v4 after a reload).
        device_form: the device id: ``hex64`` (the harness's 64 hex), ``sha256`` (64 hex), ``base64-15``
            (v4: 15 characters of a base64 SHA-256), ``md5`` (Python: 32 hex), ``random-12`` (12 of
            [A-Za-z0-9_-]).
        device_key: ``deviceId``, or ``machineId`` as older modules send it.
        date: ``none`` (the server's receive time), ``epoch-ms`` (an integer), ``iso-z`` (ISO 8601 in UTC
            with ``Z``), ``iso-local`` (ISO 8601 without a zone, microseconds, as Python's ``isoformat``).
        locale_key: ``language`` or ``locale``; ``scenario``: the scenario's ``[attributes] locale_field``.
        extras: the extra data of ``init`` and ``error``: ``document`` (platform, osVersion, totalRam,
            version, language/locale), ``js`` (client "js", platform, osVersion, version, locale; an anonId
            on every event; 4.0.3 never fills its moduleVersion, so it never sends one), ``v3`` (the
            document's plus arch and explicit nulls, totalRam a float), ``python`` (client "python",
            totalRam, arch as an integer, moduleVersion, explicit null name and userId), ``minimal``
            (platform and locale only).
        frame: ``text``, or ``binary`` frames (the Swift module).
        reconnect: ``tick``: each tick opens a new socket while the current one is not open, leaving the old
            one as it is (every module); ``backoff``: a jittered exponential backoff (the harness's own).
        error_every_tick: each tick also reports one error, the same every time (one app's module reported
            its own file-write error every tick: 95 % of its events).
    """

    name: str
    imitates: str
    tick_s: float = 0.0
    open_delay_s: float = 0.0
    heartbeat: Heartbeat = "interval"
    resend: bool = False
    id_max: int = 0
    session_min: int = 1
    session_max: int = 99_999_999
    session_string: float = 0.0
    device_form: DeviceForm = "hex64"
    device_key: Literal["deviceId", "machineId"] = "deviceId"
    date: DateForm = "none"
    locale_key: Literal["language", "locale", "scenario"] = "scenario"
    extras: Extras = "document"
    frame: Literal["text", "binary"] = "text"
    reconnect: Literal["tick", "backoff"] = "backoff"
    error_every_tick: bool = False

    @property
    def ticked(self) -> bool:
        """Events wait for the report tick (else each burst goes as it is made)."""
        return self.tick_s > 0

    @property
    def random_ids(self) -> bool:
        """Ids are drawn at random, so two events may share one: acks are matched per message."""
        return self.id_max > 0


#: The harness's own tidy stream: unique ids, each burst sent as made, the document's heartbeat. A fleet with
#: no ``[profiles]`` table is this profile, byte for byte the plan of before profiles existed.
DEFAULT = Profile(name="default",
                  imitates="no module: tracking-api.md's fields, unique ids, one message per burst")

BUILTIN: Mapping[str, Profile] = {p.name: p for p in (
    DEFAULT,
    Profile(name="v3", imitates="Electron/Node module v3 (contract.md)", tick_s=20.0, heartbeat="connect",
            resend=True, id_max=1_000_000, session_max=99_999_999, device_form="sha256",
            device_key="machineId", date="iso-z", locale_key="language", extras="v3", reconnect="tick"),
    Profile(name="v4", imitates="nucleus-analytics 4.0.3 (npm), read from its source and recorded",
            tick_s=20.0, open_delay_s=1.0, heartbeat="idle", resend=True, id_max=1_000_000,
            session_max=1_000_000, session_string=0.1, device_form="base64-15", date="epoch-ms",
            locale_key="locale", extras="js", reconnect="tick"),
    Profile(name="v5", imitates="Electron/Node module v5 (contract.md)", tick_s=2.0, open_delay_s=1.0,
            heartbeat="idle", resend=True, id_max=1_000_000, session_max=1_000_000, device_form="random-12",
            date="epoch-ms", locale_key="locale", extras="minimal", reconnect="tick"),
    Profile(name="python", imitates="nucleus-python 0.3.0 (PyPI), read from its source", tick_s=20.0,
            heartbeat="none", resend=True, id_max=10_000, session_min=1000, session_max=9999,
            device_form="md5", device_key="machineId", date="iso-local", locale_key="locale",
            extras="python", reconnect="tick"),
    Profile(name="swift", imitates="the Swift module (contract.md): binary frames", tick_s=20.0,
            heartbeat="connect", resend=True, id_max=1_000_000, device_form="sha256", date="iso-z",
            locale_key="locale", extras="document", frame="binary", reconnect="tick"),
)}


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"expected seconds >= 0, got {value!r}")
    return float(value)


def _whole(lo: int, hi: int) -> Callable[[Any], int]:
    def conv(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"expected an integer in [{lo}, {hi}], got {value!r}")
        return value
    return conv


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"expected a share in [0, 1], got {value!r}")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _one_of(*options: str) -> Callable[[Any], str]:
    def conv(value: Any) -> str:
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(map(repr, options))}")
        return str(value)
    return conv


#: What each field of ``[profile.NAME]`` may hold (``name`` and ``imitates`` come from the table itself):
#: a converter that returns the value or raises ValueError with a one-line reason.
FIELDS: Mapping[str, Callable[[Any], Any]] = {
    "tick_s": _seconds,
    "open_delay_s": _seconds,
    "heartbeat": _one_of("interval", "connect", "alternate", "idle", "none"),
    "resend": _flag,
    "id_max": _whole(0, MAX_DRAW),
    "session_min": _whole(1, MAX_DRAW),
    "session_max": _whole(1, MAX_DRAW),
    "session_string": _share,
    "device_form": _one_of("hex64", "sha256", "base64-15", "md5", "random-12"),
    "device_key": _one_of("deviceId", "machineId"),
    "date": _one_of("none", "epoch-ms", "iso-z", "iso-local"),
    "locale_key": _one_of("language", "locale", "scenario"),
    "extras": _one_of("document", "js", "v3", "python", "minimal"),
    "frame": _one_of("text", "binary"),
    "reconnect": _one_of("tick", "backoff"),
    "error_every_tick": _flag,
}
#: The TOML keys of ``[profile.NAME]``: durations without their ``_s``.
TOML_KEYS: Mapping[str, str] = {key.removesuffix("_s"): key for key in FIELDS}


def derive_profile(name: str, base: Profile, changes: Mapping[str, Any]) -> Profile:
    """A profile named ``name``: ``base`` with ``changes`` (field name -> value, already converted).

    Raises:
        ValueError: the sessionId range is empty, or a resending or ticked profile has no tick.
    """
    profile = dataclasses.replace(base, name=name, imitates=f"{base.name}, changed: "
                                  f"{', '.join(sorted(changes)) or 'nothing'}", **changes)
    check(profile)
    return profile


def check(profile: Profile) -> None:
    """Raises ValueError when the profile's fields do not fit together."""
    if profile.session_min > profile.session_max:
        raise ValueError(f"session_min {profile.session_min} is above session_max {profile.session_max}")
    if not profile.ticked:
        needs = [f for f, on in (("resend", profile.resend), ("error_every_tick", profile.error_every_tick),
                                 ("open_delay", profile.open_delay_s > 0)) if on]
        if needs or profile.heartbeat in ("alternate", "idle"):
            what = ", ".join(needs) or f"heartbeat = {profile.heartbeat!r}"
            raise ValueError(f"{what} needs a report tick (tick > 0)")


@dataclass(frozen=True, slots=True)
class Outage:
    """The devices lose the server from ``start_s`` for ``length_s``: each drops its socket and holds its
    events, then reconnects at its first tick after and flushes the backlog. ``share`` of the devices."""

    start_s: float
    length_s: float
    share: float = 1.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s


@dataclass(frozen=True, slots=True)
class Release:
    """A new app version rolls out at ``at_s``: ``share`` of the devices restart within ``spread_s`` of it,
    each with a new session (an ``init``) reporting ``version``."""

    at_s: float
    version: str
    spread_s: float = 0.0
    share: float = 1.0


@dataclass(frozen=True, slots=True)
class Clients:
    """What a scenario says about its clients: profiles by share, storms, and time compression.

    Attributes:
        shares: (profile name, weight), every name a key of ``profiles``.
        profiles: every profile the shares name.
        outage: every (or a share of) device loses the server for a stretch.
        release: a version rolls out (an init burst).
        time_scale: simulated seconds per real second: the plan runs on the scenario's clock (durations,
            ticks, outages, dates) and the run goes ``time_scale`` times faster.
        epoch_ms: the real time of the run's start (epoch ms): events' dates are counted from it.
    """

    shares: tuple[tuple[str, float], ...] = (("default", 1.0),)
    profiles: tuple[Profile, ...] = (DEFAULT,)
    outage: Outage | None = None
    release: Release | None = None
    time_scale: float = 1.0
    epoch_ms: int = EPOCH_MS

    def profile(self, name: str) -> Profile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        raise KeyError(name)
