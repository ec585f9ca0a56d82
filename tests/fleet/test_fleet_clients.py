"""Client profiles in the plan: each behaviour of bench.profiles, read off the plan alone (no socket).

The plan's times are plain integers, so every test here is a fake clock: it builds a small fleet and checks
what its sends say, in microseconds of CPU.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from bench.fleet import ClientSend, Plan
from bench.fleet.clients import BEAT, DROP, EVENTS, TICK, device_id_form
from bench.profiles import BUILTIN, DEFAULT, Clients, Outage, Profile, Release, derive_profile
from bench.protocol.errors import UsageError
from bench.scenario import Scenario, parse_scenario

S = 1_000_000_000
BASE = Scenario(name="clients", duration_s=120.0, devices=6, per_device_rate=0.5, heartbeat_s=30.0,
                error_share=0.05, userid_share=0.02, props_share=0.02, stack_bytes=(100, 300))


def fleet(*profiles: Profile, scenario: Scenario = BASE, **clients: Any) -> Plan:
    """A plan whose devices all run ``profiles`` (shared equally)."""
    shares = tuple((p.name, 1.0) for p in profiles)
    return Plan(replace(scenario, clients=Clients(shares=shares, profiles=profiles, **clients)))


def sends(plan: Plan, device: int | None = None) -> list[ClientSend]:
    out = [s for s in plan.mixed_wire_sends("ws") if isinstance(s, ClientSend)]
    return out if device is None else [s for s in out if s.device == device]


def objs(send: ClientSend) -> list[dict[str, Any]]:
    return [orjson.loads(p) for p in send.parts]


def test_no_profiles_and_the_default_profile_alone_plan_the_same_stream() -> None:
    """[profiles] default = 1, with no storm and real time, is the very plan of a scenario without clients."""
    plain = list(Plan(BASE).mixed_wire_sends("ws"))
    with_default = Plan(replace(BASE, clients=Clients()))
    assert not with_default.has_clients
    assert list(with_default.mixed_wire_sends("ws")) == plain


def test_the_base_timeline_is_shared_by_every_profile() -> None:
    """A profile changes the forms, never the timeline: the same event names in the same order per device."""
    def names(plan: Plan) -> list[tuple[int, str]]:
        return [(s.device, str(e.get("name"))) for s in plan.mixed_sends("ws")
                for e in map(orjson.loads, s.parts) if e.get("type") == "event"]
    unticked = derive_profile("forms", BUILTIN["v4"], {"tick_s": 0.0, "open_delay_s": 0.0, "resend": False,
                                                       "heartbeat": "interval"})
    assert names(fleet(unticked)) == names(Plan(BASE))


def test_random_ids_stay_in_range_and_keys_stay_unique() -> None:
    """Wire ids are drawn in 1..id_max and collide; the keys the tracker sees never do."""
    tiny = derive_profile("tiny", BUILTIN["python"], {"id_max": 20})
    plan = fleet(tiny, scenario=replace(BASE, per_device_rate=2.0))
    keys = [k for s in sends(plan) for k in s.ids]
    wires = [w for s in sends(plan) for w in s.wire]
    assert len(keys) == len(set(keys)) == plan.expected_events() > 20
    assert set(wires) <= set(range(1, 21)) and len(set(wires)) < len(wires)
    for s in sends(plan):
        assert [o["id"] for o in objs(s)] == list(s.wire)


def test_unique_ids_go_out_as_the_keys() -> None:
    """A profile with id_max = 0 sends each event's key as its id."""
    unique = derive_profile("unique", BUILTIN["v5"], {"id_max": 0})
    assert all(s.wire == s.ids for s in sends(fleet(unique)))


def test_session_ids_in_range_and_as_numeric_strings() -> None:
    """Python's sessionIds are 4 digits; a profile with session_string = 1 sends them as numeric strings."""
    python = [o["sessionId"] for s in sends(fleet(BUILTIN["python"])) for o in objs(s)]
    assert python and all(type(x) is int and 1000 <= x <= 9999 for x in python)
    strings = derive_profile("reloads", BUILTIN["v4"], {"session_string": 1.0})
    v4 = [o["sessionId"] for s in sends(fleet(strings)) for o in objs(s) if o["type"] != "heartbeat"]
    assert v4 and all(type(x) is str and x.isdigit() and 1 <= int(x) <= 1_000_000 for x in v4)


@pytest.mark.parametrize(("form", "pattern"), [("hex64", r"[0-9a-f]{64}"), ("sha256", r"[0-9a-f]{64}"),
                                               ("base64-15", r"[A-Za-z0-9+/]{15}"), ("md5", r"[0-9a-f]{32}"),
                                               ("random-12", r"[A-Za-z0-9_-]{12}")])
def test_device_id_forms(form: str, pattern: str) -> None:
    """Each device id form has its length and alphabet, and differs from device to device."""
    ids = {device_id_form(1, d, form) for d in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(pattern, i) for i in ids)


def test_device_key_and_extras_follow_the_profile() -> None:
    """Python sends machineId and its extras (arch an integer, explicit nulls); v5 platform and locale."""
    (python,) = [o for o in objs(sends(fleet(BUILTIN["python"]), 0)[0]) if o["type"] == "init"]
    assert "machineId" in python and "deviceId" not in python
    assert python["arch"] == 64 and python["client"] == "python" and python["name"] is None
    assert {"platform", "osVersion", "totalRam", "version", "locale", "moduleVersion"} <= python.keys()
    (v5,) = [o for o in objs(sends(fleet(BUILTIN["v5"]), 0)[0]) if o["type"] == "init"]
    assert set(v5) == {"type", "sessionId", "id", "deviceId", "platform", "locale", "date"}


def test_dates_are_creation_times_in_the_profile_form() -> None:
    """epoch-ms is an integer, iso-z ends in Z, iso-local has no zone; each is the event's creation time."""
    epoch = 1_800_000_000_000
    forms = (("v5", r"\d{13}"), ("v3", r"[\d-]+T[\d:]+\.\d{3}Z"), ("python", r"[\d-]+T[\d:]+\.\d{6}"))
    for name, form in forms:
        for s in sends(fleet(BUILTIN[name], epoch_ms=epoch)):
            if s.action != EVENTS:
                continue
            for obj, created in zip(objs(s), s.created_ns, strict=True):
                date = str(obj["date"])
                assert re.fullmatch(form, date), (name, date)
                parsed = int(date) if date.isdigit() else datetime.fromisoformat(date.replace("Z", "+00:00"))
                ms = parsed if isinstance(parsed, int) else parsed.replace(tzinfo=UTC).timestamp() * 1000
                assert abs(ms - (epoch + created / 1e6)) < 1.0, (name, date, created)


def test_report_tick_and_open_delay() -> None:
    """v4: the first send a second after the device comes online, then one every 20 s; events wait for it."""
    plan = fleet(BUILTIN["v4"], scenario=replace(BASE, devices=1))
    at = [s.at_ns for s in sends(plan) if s.action != DROP]
    assert at[0] == 1 * S and all((t - 0) % (20 * S) == 0 for t in at[1:-1])
    for s in sends(plan):
        assert all(c <= s.at_ns for c in s.created_ns)


@pytest.mark.parametrize("name", ["alternate", "v5", "v3"])
def test_heartbeat_patterns(name: str) -> None:
    """``alternate`` (contract.md's v4) sends a heartbeat and an empty batch in turn on idle ticks; v5 a
    heartbeat each idle tick; v3 one with its first send only."""
    quiet = replace(BASE, devices=1, per_device_rate=0.0, duration_s=200.0)
    profile = BUILTIN.get(name) or derive_profile(name, BUILTIN["v4"], {"heartbeat": "alternate"})
    beats = [s for s in sends(fleet(profile, scenario=quiet)) if s.action == BEAT]
    kinds = ["empty" if not b.parts else orjson.loads(b.parts[0])["type"] for b in beats]
    if name == "alternate":
        assert kinds[:4] == ["heartbeat", "empty", "heartbeat", "empty"]
    elif name == "v5":
        assert len(kinds) > 50 and set(kinds) == {"heartbeat"}
    else:
        assert kinds == ["heartbeat"]


def test_a_resending_profile_ticks_when_idle() -> None:
    """A resending profile with no heartbeat of its own still gets every tick (to re-send its queue)."""
    quiet = replace(BASE, devices=1, per_device_rate=0.0)
    kinds = {s.action for s in sends(fleet(BUILTIN["python"], scenario=quiet))}
    assert TICK in kinds and BEAT not in kinds


def test_an_outage_drops_the_socket_holds_events_and_flushes_them_at_the_first_tick_after() -> None:
    """Nothing goes out during the outage; the first send after it carries every event made meanwhile."""
    plan = fleet(BUILTIN["v4"], scenario=replace(BASE, per_device_rate=2.0),
                 outage=Outage(start_s=30.0, length_s=45.0))
    for d in range(BASE.devices):
        mine = sends(plan, d)
        drop = [s for s in mine if s.action == DROP]
        assert len(drop) == 1 and drop[0].at_ns == 30 * S
        assert not [s for s in mine if 30 * S < s.at_ns < 75 * S]
        flush = next(s for s in mine if s.at_ns >= 75 * S)
        assert flush.action == EVENTS and flush.at_ns == plan.connect_at_ns(d) + 80 * S  # the 20 s grid
        assert sum(30 * S <= c < 75 * S for c in flush.created_ns) > 50


def test_an_outage_from_the_start_delays_the_first_connect() -> None:
    """Devices offline from the start come online when the outage ends; their first message is the backlog."""
    plan = fleet(BUILTIN["python"], outage=Outage(start_s=0.0, length_s=60.0))
    assert all(plan.connect_at_ns(d) == 60 * S for d in range(BASE.devices))
    first = sends(plan, 0)[0]
    assert first.at_ns == 60 * S and first.action == EVENTS and len(first.ids) > 10


def test_an_error_storm_reports_its_error_every_tick() -> None:
    """error_every_tick: every tick's send carries the EPERM error, whatever else it carries."""
    broken = derive_profile("broken", BUILTIN["v4"], {"error_every_tick": True})
    plan = fleet(broken)
    for s in sends(plan):
        if s.at_ns >= plan.end_ns:
            continue  # what is left at the end goes without a tick
        assert s.action == EVENTS
        assert [o["name"] for o in objs(s) if o["type"] == "error" and o["name"] == "EPERM"] == ["EPERM"]


def test_release_day_restarts_a_share_with_a_new_session_and_version() -> None:
    """At the release every chosen device sends an init with the new version and a new sessionId."""
    plan = fleet(BUILTIN["v5"], release=Release(at_s=60.0, version="9.9.9", spread_s=10.0, share=1.0))
    for d in range(BASE.devices):
        inits = [o for s in sends(plan, d) for o in objs(s) if o["type"] == "init"]
        assert len(inits) == 2 and inits[1]["sessionId"] != inits[0]["sessionId"]
        assert "version" not in inits[0]  # v5's extras: platform and locale only
    v4 = fleet(BUILTIN["v4"], release=Release(at_s=60.0, version="9.9.9", share=1.0))
    versions = [o["version"] for s in sends(v4) for o in objs(s) if o["type"] == "init"]
    assert versions.count("9.9.9") == BASE.devices


def test_time_scale_divides_every_time_and_keeps_the_events() -> None:
    """At time_scale 10 every send and creation time is a tenth, and the events are the same."""
    ramped = replace(BASE, ramp_s=1.0)  # the connect rate is real: a ramp keeps the connects the same
    real, fast = fleet(BUILTIN["v5"], scenario=ramped), fleet(BUILTIN["v5"], scenario=ramped, time_scale=10.0)
    a, b = sends(real), sends(fast)
    assert [s.ids for s in a] == [s.ids for s in b]
    assert [s.at_ns // 10 for s in a] == [s.at_ns for s in b]
    assert fast.end_ns == real.end_ns // 10


def test_shards_split_the_client_fleet_exactly() -> None:
    """The shards' sends are the unsharded plan's, device by device (the profile of a device is the same)."""
    scenario = replace(BASE, clients=Clients(shares=(("v4", 1.0), ("python", 1.0)),
                                             profiles=(BUILTIN["v4"], BUILTIN["python"])))
    whole = {(s.device, s.at_ns, s.ids) for s in Plan(scenario).mixed_wire_sends("ws")}
    parts = {(s.device, s.at_ns, s.ids) for k in range(3)
             for s in Plan(scenario, shard=k, shards=3).mixed_wire_sends("ws")}
    assert whole == parts
    assert Plan(scenario).expected_events() == sum(Plan(scenario, shard=k, shards=3).expected_events()
                                                   for k in range(3))


def test_expected_events_count_every_event_once() -> None:
    """expected_events is the number of events the sends carry (re-sends are the transport's)."""
    plan = fleet(BUILTIN["v4"], BUILTIN["v5"], outage=Outage(start_s=10.0, length_s=30.0))
    assert plan.expected_events() == sum(len(s.ids) for s in plan.mixed_wire_sends("ws"))


def test_identities_name_what_the_target_keys_events_by() -> None:
    """Plan.identities gives (device, session, id, type, name, date ms) per key, sessionIds as integers."""
    strings = derive_profile("reloads", BUILTIN["v4"], {"session_string": 1.0})
    plan = fleet(strings)
    first = next(s for s in sends(plan) if s.action == EVENTS)
    (ident,) = plan.identities(first.ids[:1])
    obj = objs(first)[0]
    assert ident == (obj["deviceId"], int(obj["sessionId"]), obj["id"], obj["type"], obj.get("name"),
                     float(obj["date"]))


def test_clients_over_http_are_refused() -> None:
    """Profiles imitate the WebSocket modules: an HTTP plan of them is one clear error."""
    with pytest.raises(UsageError, match="--transport ws"):
        fleet(BUILTIN["v4"]).mixed_wire_sends("http")


def test_scenario_tables_select_and_define_profiles() -> None:
    """[profiles] shares, [profile.NAME] from a base, [outage], [release], time_scale: parsed into Clients."""
    sc = parse_scenario('time_scale = 4\nduration = "10m"\n[profiles]\nv4 = 3\nbroken = 1\n'
                        '[profile.broken]\nbase = "v4"\nerror_every_tick = true\ntick = "2s"\n'
                        '[outage]\nstart = "1m"\nlength = "2m"\nshare = 0.5\n'
                        '[release]\nat = "5m"\nversion = "3.0.0"\n')
    assert sc.clients is not None and sc.time_scale == 4.0
    broken = sc.clients.profile("broken")
    assert broken.error_every_tick and broken.tick_s == 2.0 and broken.id_max == BUILTIN["v4"].id_max
    assert sc.clients.outage == Outage(start_s=60.0, length_s=120.0, share=0.5)
    assert sc.clients.release == Release(at_s=300.0, version="3.0.0")
    assert Plan(sc).profile_counts().keys() == {"v4", "broken"}


@pytest.mark.parametrize(("text", "where"), [
    ("[profiles]\nv9 = 1\n", "f.toml:2: profiles.v9: 'v9' is not a profile"),
    ('[profile.x]\nbase = "v4"\nhearbeat = "idle"\n',
     "f.toml:3: profile.x.hearbeat: unknown key (did you mean"),
    ('[profile.x]\nresend = true\n', "f.toml:1: profile.x: resend needs a report tick"),
    ('[profile.v4]\ntick = 1\n', "f.toml:1: profile.v4: 'v4': a new profile needs a name"),
    ('[outage]\nlength = "2m"\n', "f.toml:2: outage.length: the outage ends at 120s"),
    ("time_scale = 0.5\n", "f.toml:1: time_scale: 0.5 is out of range"),
    ('[target]\nargs = ["ack-delay"]\n', "f.toml:2: target.args: expected an array of flags"),
])
def test_bad_client_tables_name_file_line_and_key(text: str, where: str) -> None:
    """Every mistake in the new tables is one line naming the file, the line and the key."""
    from bench.protocol.errors import ScenarioError

    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "f.toml")
    assert str(info.value).startswith(where), str(info.value)


def test_default_profile_is_the_harness_stream() -> None:
    """The default profile is what a fleet without clients does: unique ids, no tick, the document's beat."""
    assert BUILTIN["default"] == DEFAULT and not DEFAULT.ticked and not DEFAULT.random_ids
