"""Interop: the official nucleus-analytics module (npm, 4.0.3) against the reference target, and our v4
profile held to the shape of what it really sends.

``nucleus_v4.js`` drives the module as it ships (installed by ``make test`` with npm under
tests/interop/node_modules), pointed at the target on loopback, and records every frame it sends and
receives. The test checks that its init, user id, events and error are acknowledged and stored and nothing
is refused, then compares its messages with what bench's ``v4`` profile plans: the same keys per event
type (the profile imitates an Electron app, so it also sends ``version``, which the module fills from
Electron only), the same JSON types, the second's wait after the socket opens, and a heartbeat on every
idle report.

Skipped, saying why, when Node or the installed module is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from timeouts import PROCESS_TIMEOUT_S, TIMEOUT_S

from bench.fleet import Plan
from bench.fleet.clients import BEAT
from bench.profiles import BUILTIN, Clients
from bench.results.reconcile import fetch_json
from bench.scenario import Scenario
from bench.target.embedded import EmbeddedTarget

HERE = Path(__file__).resolve().parent
MODULE = HERE / "node_modules" / "nucleus-analytics" / "package.json"
EVENTS = 6
#: What the v4 profile sends beyond the module under plain Node: an Electron app's version.
ELECTRON_ONLY = {"version"}


def _need_module() -> None:
    if shutil.which("node") is None:
        pytest.skip("Node is not installed: the nucleus-analytics interop test needs it (make test installs "
                    "the module with npm when Node is present)")
    if not MODULE.exists():
        pytest.skip("tests/interop/node_modules has no nucleus-analytics: `make interop` installs it "
                    "(make test does)")
    version = json.loads(MODULE.read_text())["version"]
    assert version == "4.0.3", f"tests/interop has nucleus-analytics {version}, not the pinned 4.0.3"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the module once against a fresh target; its recording and the target's view of the app."""
    _need_module()
    home = tmp_path_factory.mktemp("nucleus-js")
    app = "0a1b2c3d4e5f60718293a4b5"
    with EmbeddedTarget(store=str(home / "t.sqlite3")) as target:
        endpoint = "ws" + target.url[len("http"):]  # ws://host:port: the module appends /app/{appId}/track
        out = home / "frames.json"
        proc = subprocess.run(["node", str(HERE / "nucleus_v4.js"), endpoint, app, str(EVENTS), str(out),
                               str(TIMEOUT_S)], env={**os.environ, "XDG_CONFIG_HOME": str(home)},
                              capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, check=False)
        assert proc.returncode == 0, f"the module did not finish ({proc.returncode}): {proc.stderr[-999:]}"
        stats = fetch_json(f"{target.url}/app/{app}/stats")
        events = fetch_json(f"{target.url}/app/{app}/stored-ids?by=event")["events"]
    rec: dict[str, Any] = json.loads(out.read_text())
    sent = [json.loads(f["data"]) for f in rec["frames"] if f["dir"] == "sent"]
    return {"rec": rec, "sent": sent, "stats": stats, "stored": events}


def test_its_events_are_acknowledged_and_stored_and_nothing_is_refused(recorded: dict[str, Any]) -> None:
    """init, userid, the events and the error: each acknowledged, stored once, none refused."""
    events = [e for m in recorded["sent"] for e in m["data"] if e["type"] != "heartbeat"]
    assert Counter(e["type"] for e in events) == Counter({"init": 1, "userid": 1, "event": EVENTS,
                                                          "error": 1})
    stats = recorded["stats"]
    assert stats["rejected"]["total"] == 0 and stats["orphans"] == 0
    assert stats["stored"]["total"] == len(events) == stats["acked"]
    stored = Counter((row[2], row[3]) for row in recorded["stored"])
    assert stored == Counter((e["id"], e["type"]) for e in events)


def _shapes(events: list[dict[str, Any]]) -> dict[str, tuple[frozenset[str], dict[str, set[str]]]]:
    """Per event type: its keys, and each key's JSON types (a numeric-string sessionId counts as a number)."""
    keys: dict[str, set[str]] = {}
    types: dict[str, dict[str, set[str]]] = {}
    for e in events:
        # userId: on every event once a user id is set, in the module and in the profile alike (the script
        # sets it first thing; the profile's devices at a userid event of theirs)
        keys.setdefault(e["type"], set()).update(k for k in e if k != "userId")
        for k, v in e.items():
            kind = "number" if isinstance(v, int | float) or (k == "sessionId" and str(v).isdigit()) \
                else type(v).__name__
            types.setdefault(e["type"], {}).setdefault(k, set()).add(kind)
    return {t: (frozenset(keys[t]), types[t]) for t in keys}


def _v4_plan() -> Plan:
    """A few v4 devices with user ids, errors and idle ticks (what the driver script does)."""
    scenario = Scenario(duration_s=600.0, devices=8, per_device_rate=0.05, userid_share=0.2,
                        error_share=0.2, props_share=0.0,
                        clients=Clients(shares=(("v4", 1.0),), profiles=(BUILTIN["v4"],)))
    return Plan(scenario)


def test_the_v4_profile_sends_messages_of_the_modules_shape(recorded: dict[str, Any]) -> None:
    """Every message is {"data": [...]}; per event type the v4 profile sends the module's keys (plus an
    Electron app's version) with the same JSON types; ids, dates and sessionIds are numbers."""
    real = _shapes([e for m in recorded["sent"] for e in m["data"]])
    ours = _shapes([json.loads(p) for s in _v4_plan().mixed_sends("ws") for p in s.parts])
    assert all(set(m) == {"data"} for m in recorded["sent"])
    for kind, (keys, types) in real.items():
        assert kind in ours, f"the v4 profile never sends a {kind!r}"
        our_keys, our_types = ours[kind]
        assert keys <= our_keys and our_keys - keys <= ELECTRON_ONLY, (kind, sorted(keys ^ our_keys))
        for key in keys:
            assert types[key] <= our_types[key], (kind, key, types[key], our_types[key])


def test_the_v4_profile_keeps_the_modules_cadence(recorded: dict[str, Any]) -> None:
    """The module waits a second after the socket opens before its first send, and sends a heartbeat on
    every idle report; the v4 profile has that open delay and that heartbeat pattern, and its idle ticks
    are heartbeats."""
    rec = recorded["rec"]
    first_sent = next(f["t"] for f in rec["frames"] if f["dir"] == "sent")
    assert first_sent - rec["opened"][0] >= 990  # setTimeout(sendQueue, 1000) after the open (ms rounding)
    idle = [m["data"] for m in recorded["sent"] if all(e["type"] == "heartbeat" for e in m["data"])]
    assert len(idle) >= 3 and all(len(d) == 1 for d in idle)  # one heartbeat per idle report, never []
    v4 = BUILTIN["v4"]
    assert (v4.open_delay_s, v4.heartbeat, v4.tick_s, v4.resend) == (1.0, "idle", 20.0, True)
    quiet = replace(_v4_plan().scenario, per_device_rate=0.0, userid_share=0.0, error_share=0.0)
    beats = [s for s in Plan(quiet).mixed_sends("ws") if getattr(s, "action", None) == BEAT]
    assert beats and all(json.loads(s.parts[0])["type"] == "heartbeat" for s in beats)
