"""What devices say: seeded identities and the payload pools events draw from.

Everything here is a pure function of the scenario's seed (and a device index): no wall clock, no process
state. ``hashlib.blake2b`` derives seeds, ids and phases, so they are the same in every process and every
Python build (``hash()`` is salted per process; ``random`` is used only through ``random()``, whose output for
an integer seed is stable across versions).

Payloads are built once per plan, a few variants per event name, and shared by every event that uses them:
events are frozen and nobody mutates a payload, so sharing is safe and keeps per-event work small.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.scenario import Mix, Scenario

#: Payload variants per event name: enough to vary sizes across [min, max], few enough to build at once.
VARIANTS = 8

_WORDS = ("alpha", "bravo", "cursor", "delta", "editor", "folder", "gamma", "header", "index", "join",
          "kernel", "layout", "module", "network", "option", "panel", "query", "render", "sidebar", "theme",
          "update", "viewport", "window", "zoom")
_FRAMES = ("Object.<anonymous>", "Module._compile", "readFileSync", "EventEmitter.emit",
           "processTicksAndRejections", "App.handleOpen", "Store.flush", "Renderer.paint",
           "IpcMain.handle", "Updater.check")
_FILES = ("/Applications/App.app/Contents/Resources/app.asar/dist/main.js",
          "C:\\Program Files\\App\\resources\\app.asar\\dist\\renderer.js",
          "/opt/App/resources/app.asar/dist/preload.js", "node:internal/fs/utils", "node:events")


def derive(seed: int, *parts: object) -> int:
    """A 64-bit integer derived from the seed and ``parts``; stable across processes and Python builds."""
    text = ":".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def unit(seed: int, *parts: object) -> float:
    """A float in [0, 1) derived like ``derive``."""
    return derive(seed, *parts) / 2.0**64


def device_rng(seed: int, device: int) -> random.Random:
    """The device's own random stream: from (seed, device) only, so sharding never changes it."""
    return random.Random(derive(seed, "device", device))


def device_id(seed: int, device: int) -> str:
    """A stable hashed-looking deviceId (64 hex characters, like a hashed machine id)."""
    return hashlib.blake2b(f"{seed}:device-id:{device}".encode(), digest_size=32).hexdigest()


class Seeds:
    """``derive``, ``unit``, ``device_rng`` and ``device_id`` of one seed, for many devices.

    The same values as those functions, for less: each "seed:purpose:" prefix is hashed once and the hash
    state copied per device (a plan derives three values per device: its deviceId, its random stream's seed,
    a heartbeat or flush phase).
    """

    __slots__ = ("_prefixes", "seed")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._prefixes: dict[tuple[str, int], hashlib.blake2b] = {}  # (purpose, digest size) -> state

    def _hash(self, purpose: str, index: int, size: int) -> hashlib.blake2b:
        state = self._prefixes.get((purpose, size))
        if state is None:
            state = self._prefixes[purpose, size] = hashlib.blake2b(f"{self.seed}:{purpose}:".encode(),
                                                                    digest_size=size)
        h = state.copy()
        h.update(b"%d" % index)
        return h

    def derive(self, purpose: str, index: int) -> int:
        """``derive(seed, purpose, index)``."""
        return int.from_bytes(self._hash(purpose, index, 8).digest(), "big")

    def unit(self, purpose: str, index: int) -> float:
        """``unit(seed, purpose, index)``."""
        return self.derive(purpose, index) / 2.0**64

    def device_rng(self, index: int) -> random.Random:
        """``device_rng(seed, index)``."""
        return random.Random(self.derive("device", index))

    def device_id(self, index: int) -> str:
        """``device_id(seed, index)``."""
        return self._hash("device-id", index, 32).hexdigest()


def _size(obj: dict[str, Any]) -> int:
    return len(json.dumps(obj, separators=(",", ":")))


def _filler(rng: random.Random, length: int) -> str:
    words: list[str] = []
    total = 0
    while total < length:
        word = _WORDS[int(rng.random() * len(_WORDS))]
        words.append(word)
        total += len(word) + 1
    return " ".join(words)[:length]


def _sizes(bounds: tuple[int, int]) -> list[int]:
    lo, hi = bounds
    return [lo + (hi - lo) * i // (VARIANTS - 1) for i in range(VARIANTS)]


def track_payload(rng: random.Random, name: str, size: int) -> dict[str, Any]:
    """An event payload of about ``size`` bytes of JSON (at least its fixed fields)."""
    payload: dict[str, Any] = {"screen": name, "count": int(rng.random() * 100), "detail": ""}
    payload["detail"] = _filler(rng, max(0, size - _size(payload)))
    return payload


def error_payload(rng: random.Random, name: str, size: int) -> dict[str, Any]:
    """An error payload ``{"stack", "message"}`` (contract.md, "Messages") with a stack of ``size`` bytes."""
    message = f"{name}: {_filler(rng, 40)}"
    lines = [f"Error: {message}"]
    total = len(lines[0])
    while total < size:
        frame = _FRAMES[int(rng.random() * len(_FRAMES))]
        where = _FILES[int(rng.random() * len(_FILES))]
        line = f"    at {frame} ({where}:{1 + int(rng.random() * 4000)}:{1 + int(rng.random() * 80)})"
        lines.append(line)
        total += len(line) + 1
    return {"stack": "\n".join(lines)[:size], "message": message}


def props_payload(rng: random.Random) -> dict[str, Any]:
    """User properties as a ``props`` event sets them."""
    return {"plan": ("free", "pro", "team")[int(rng.random() * 3)],
            "theme": ("dark", "light", "system")[int(rng.random() * 3)],
            "seats": 1 + int(rng.random() * 50), "beta": rng.random() < 0.2}


@dataclass(frozen=True, slots=True)
class Content:
    """The payload pools of one plan: built from the scenario and its seed alone, the same in every shard."""

    track: Mapping[str, tuple[dict[str, Any] | None, ...]]
    errors: Mapping[str, tuple[dict[str, Any], ...]]
    props: tuple[dict[str, Any], ...]

    @classmethod
    def build(cls, scenario: Scenario) -> Content:
        rng = random.Random(derive(scenario.seed, "content"))
        track: Mapping[str, tuple[dict[str, Any] | None, ...]]
        if scenario.payload_bytes == (0, 0):  # payload_bytes = 0: events carry no payload at all
            track = {name: (None,) for name in scenario.event_names.values}
        else:
            track = _pools(scenario.event_names, scenario.payload_bytes, rng, track_payload)
        return cls(
            track=track,
            errors=_pools(scenario.error_names, scenario.stack_bytes, rng, error_payload),
            props=tuple(props_payload(rng) for _ in range(VARIANTS)),
        )


Pools = dict[str, tuple[dict[str, Any], ...]]


def _pools(names: Mix[str], bounds: tuple[int, int], rng: random.Random,
           make: Callable[[random.Random, str, int], dict[str, Any]]) -> Pools:
    return {name: tuple(make(rng, name, size) for size in _sizes(bounds)) for name in names.values}
