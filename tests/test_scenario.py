"""Scenario files: the shipped ones load; each kind of bad input is a ScenarioError at file:line and key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.protocol.errors import ScenarioError, UsageError
from bench.scenario import (
    MAX_DEVICE_EVENTS,
    MAX_DEVICES,
    Mix,
    Scenario,
    load_scenario,
    parse_duration,
    parse_scenario,
)

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.toml"))


def _error(tmp_path: Path, text: str | bytes) -> ScenarioError:
    path = tmp_path / "bad.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


def test_the_three_required_scenarios_ship() -> None:
    """smoke, desktop-fleet and idle-heartbeats exist (the tests and `make bench` use them)."""
    names = {p.stem for p in SHIPPED}
    assert {"smoke", "desktop-fleet", "idle-heartbeats"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_scenario_loads(path: Path) -> None:
    """Each file under scenarios/ is valid and named after itself."""
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.path == str(path)


def test_smoke_is_small_and_short() -> None:
    """The smoke scenario stays a few seconds and a few devices: tests run it over real sockets."""
    smoke = load_scenario(SCENARIOS / "smoke.toml")
    assert smoke.duration_s <= 5 and smoke.devices <= 10


def test_desktop_fleet_fits_make_bench() -> None:
    """desktop-fleet: ~45 s per transport, a few hundred devices, several HTTP flushes per device."""
    desk = load_scenario(SCENARIOS / "desktop-fleet.toml")
    assert 30 <= desk.duration_s <= 50
    assert 100 <= desk.devices <= 1000
    assert desk.duration_s / desk.http_flush_s >= 5
    assert desk.rate is not None and 200 <= desk.rate <= 3000


def test_desktop_fleet_spells_out_the_default_mix() -> None:
    """The file and the built-in defaults describe the same fleet."""
    desk = load_scenario(SCENARIOS / "desktop-fleet.toml")
    default = Scenario()
    for name in ("platforms", "os_versions", "total_ram", "versions", "locales", "event_names", "error_names",
                 "payload_bytes", "stack_bytes", "error_share", "userid_share", "props_share"):
        assert getattr(desk, name) == getattr(default, name), name


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    """Every key has a default; the name comes from the file."""
    path = tmp_path / "empty.toml"
    path.write_text("")
    assert load_scenario(path) == Scenario(name="empty", path=str(path))


def test_values_are_read_into_their_fields() -> None:
    """Durations in any form, mixes, ranges and choices land in the right fields."""
    s = parse_scenario(
        'name = "x"\nseed = 9\nduration = "1m30s"\napp_id = "abc_DEF-1"\n'
        '[fleet]\ndevices = 7\nramp = "500ms"\n'
        '[attributes]\nlocale_field = "locale"\nplatform = { darwin = 1 }\nos_version = { "14.1" = 2 }\n'
        'total_ram = { 16 = 1 }\nversion = { "1.0.0" = 1 }\nlocale = { fr-FR = 1 }\n'
        '[sessions]\nlength = "2m"\nidle_gap = 5\n'
        '[events]\nrate = 70.5\narrival = "fixed"\nnames = { a = 1, b = 3 }\npayload_bytes = 100\n'
        'userid_share = 0.1\nprops_share = 0.2\n'
        '[errors]\nshare = 0.3\nnames = { boom = 1 }\nstack_bytes = [10, 20]\n'
        '[transport]\nevents_per_message = 4\nheartbeat = 0\nhttp_flush = "10s"\nhttp_max_events = 50\n'
        'ack_timeout = 2.5\n')
    assert (s.name, s.seed, s.duration_s, s.app_id) == ("x", 9, 90.0, "abc_DEF-1")
    assert (s.devices, s.ramp_s, s.session_s, s.idle_gap_s) == (7, 0.5, 120.0, 5.0)
    assert s.platforms == Mix(("darwin",), (1.0,)) and s.os_version_mix("darwin").values == ("14.1",)
    assert s.total_ram.values == (16,) and s.locales.values == ("fr-FR",) and s.locale_field == "locale"
    assert (s.rate, s.arrival, s.payload_bytes, s.userid_share, s.props_share) == (70.5, "fixed", (100, 100),
                                                                                   0.1, 0.2)
    assert s.event_names == Mix(("a", "b"), (1.0, 3.0)) and s.device_rate == pytest.approx(70.5 / 7)
    assert (s.error_share, s.error_names.values, s.stack_bytes) == (0.3, ("boom",), (10, 20))
    assert (s.events_per_message, s.heartbeat_s, s.http_flush_s, s.http_max_events, s.ack_timeout_s) == (
        4, 0.0, 10.0, 50, 2.5)


# (file text, expected line, expected key, a piece of the detail)
BAD = [
    pytest.param("seed = 1\nx = [1,\n\n", 2, "TOML syntax", "", id="syntax-eof"),
    pytest.param("seed = 1\nname = 'a\n", 2, "TOML syntax", "", id="syntax-string"),
    pytest.param("[fleet]\n[fleet]\n", 2, "TOML syntax", "twice", id="syntax-duplicate-table"),
    pytest.param("seed = 1\nsed = 2\n", 2, "sed", "did you mean 'seed'", id="unknown-top"),
    pytest.param("[fleet]\ndevices = 3\ndevics = 3\n", 3, "fleet.devics", "did you mean 'devices'",
                 id="unknown-in-table"),
    pytest.param("seed = 1\n\ndevices = 3\n", 3, "devices", "belongs in [fleet]", id="key-in-wrong-table"),
    pytest.param("[fleeet]\ndevices = 3\n", 1, "fleeet", "did you mean 'fleet'", id="unknown-table"),
    pytest.param("fleet = 3\n", 1, "fleet", "expected a table", id="table-not-table"),
    pytest.param('[fleet]\nramp = 1\ndevices = "ten"\n', 3, "fleet.devices", "expected an integer",
                 id="wrong-type"),
    pytest.param("seed = true\n", 1, "seed", "boolean", id="bool-is-not-int"),
    pytest.param("seed = 1.5\n", 1, "seed", "expected an integer", id="float-is-not-int"),
    pytest.param("seed = -1\n", 1, "seed", "out of range", id="seed-negative"),
    pytest.param("[fleet]\n\n\ndevices = 0\n", 4, "fleet.devices", "out of range", id="devices-zero"),
    pytest.param(f"[fleet]\ndevices = {MAX_DEVICES + 1}\n", 2, "fleet.devices", "out of range",
                 id="devices-too-many"),
    pytest.param('duration = "5x"\n', 1, "duration", "bad duration", id="duration-unparsable"),
    pytest.param("duration = 0\n", 1, "duration", "out of range", id="duration-zero"),
    pytest.param("duration = [1]\n", 1, "duration", "expected seconds", id="duration-type"),
    pytest.param("duration = 10\n[fleet]\nramp = 11\n", 3, "fleet.ramp", "longer than the duration",
                 id="ramp-over-duration"),
    pytest.param("[events]\nrate = 5\nper_device_rate = 2\n", 3, "events.per_device_rate", "not both",
                 id="rate-and-per-device"),
    pytest.param("[events]\nrate = -5\n", 2, "events.rate", "out of range", id="rate-negative"),
    pytest.param("[events]\nrate = nan\n", 2, "events.rate", "out of range", id="rate-nan"),
    pytest.param('[events]\narrival = "poison"\n', 2, "events.arrival", "did you mean 'poisson'",
                 id="choice-close"),
    pytest.param("[events]\npayload_bytes = [5, 1]\n", 2, "events.payload_bytes", "greater than max",
                 id="range-reversed"),
    pytest.param("[events]\npayload_bytes = [5]\n", 2, "events.payload_bytes", "[min, max]",
                 id="range-short"),
    pytest.param("[events]\nnames = {}\n", 2, "events.names", "non-empty", id="mix-empty"),
    pytest.param("[events]\nnames = { a = 0, b = 0 }\n", 2, "events.names", "positive", id="mix-all-zero"),
    pytest.param("[events.names]\na = 1\nb = -1\n", 3, "events.names.b", "out of range", id="mix-negative"),
    pytest.param('[events.names]\na = 1\nb = "x"\n', 3, "events.names.b", "expected a number",
                 id="mix-weight-type"),
    pytest.param("[attributes.version]\n\n2.3.1 = 5\n", 3, "attributes.version.2", "quote keys",
                 id="mix-unquoted-dots"),
    pytest.param("[attributes.total_ram]\n8 = 1\neight = 3\n", 3, "attributes.total_ram.eight",
                 "whole gigabytes", id="ram-not-a-number"),
    pytest.param("[attributes]\nplatform = { win32 = 1, freebsd = 2 }\n", 2, "attributes.platform.freebsd",
                 "no OS version mix", id="platform-without-os"),
    pytest.param("[attributes.os_version]\nwin32 = { a = 1 }\nb = 2\n", 1, "attributes.os_version",
                 "not both", id="os-version-mixed"),
    pytest.param('[attributes]\nlocale_field = "lang"\n', 2, "attributes.locale_field", "did you mean",
                 id="locale-field"),
    pytest.param('[sessions]\nlength = "1ms"\n', 2, "sessions.length", "at least 10ms", id="session-tiny"),
    pytest.param("[errors]\nshare = 1.5\n", 2, "errors.share", "out of range", id="share-over-one"),
    pytest.param("[errors]\nshare = 0.7\n[events]\nuserid_share = 0.5\n", 4, "events.userid_share",
                 "more than 1", id="shares-sum"),
    pytest.param("[transport]\nevents_per_message = 0\n", 2, "transport.events_per_message", "out of range",
                 id="epm-zero"),
    pytest.param("[transport]\nheartbeat = -1\n", 2, "transport.heartbeat", "out of range",
                 id="heartbeat-negative"),
    pytest.param('[transport]\nhttp_flush = "0s"\n', 2, "transport.http_flush", "out of range",
                 id="flush-zero"),
    pytest.param('app_id = "a/b"\n', 1, "app_id", "[A-Za-z0-9_-]", id="app-id"),
    pytest.param('name = ""\n', 1, "name", "non-empty", id="name-empty"),
    pytest.param("events = { rate = 5, arrivl = 'fixed' }\n", 1, "events.arrivl", "did you mean 'arrival'",
                 id="inline-table-key"),
    pytest.param("fleet.devices = 'x'\n", 1, "fleet.devices", "expected an integer", id="dotted-key"),
]


@pytest.mark.parametrize(("text", "line", "key", "detail"), BAD)
def test_bad_input_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str,
                                           detail: str) -> None:
    """Each kind of bad input is one ScenarioError whose message starts with file:line: key."""
    err = _error(tmp_path, text)
    path = str(tmp_path / "bad.toml")
    assert (err.path, err.line, err.key) == (path, line, key)
    assert detail in err.detail
    message = str(err)
    assert message.startswith(f"{path}:{line}: {key}: ") and "\n" not in message


def test_syntax_error_keeps_the_column(tmp_path: Path) -> None:
    """A TOML syntax error keeps tomllib's column in the detail, and its line in the location."""
    err = _error(tmp_path, "seed = 1\n\nname = = 2\n")
    assert err.line == 3 and "column" in err.detail


def test_missing_file(tmp_path: Path) -> None:
    """A file that cannot be read is a ScenarioError naming it, without a line."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.toml")
    assert info.value.line is None and str(info.value).startswith(str(tmp_path / "nope.toml") + ": ")


def test_not_utf8(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported with the line they are on."""
    err = _error(tmp_path, b"seed = 1\nname = '\xff'\n")
    assert err.line == 2 and "UTF-8" in err.detail


def test_scenario_error_is_a_usage_error(tmp_path: Path) -> None:
    """The CLI prints UsageError as one line (exit 2); a ScenarioError is one."""
    assert isinstance(_error(tmp_path, "sed = 1\n"), UsageError)


@pytest.mark.parametrize(("text", "seconds"), [
    ("45", 45.0), ("90s", 90.0), ("2m", 120.0), ("1h", 3600.0), ("500ms", 0.5), ("1m30s", 90.0),
    ("1.5s", 1.5), (" 2M ", 120.0), ("0", 0.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    """Durations: plain seconds or number+unit parts (ms, s, m, h)."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5x", "-5", "1.s", "inf", "nan", "5 s", "1e3", "m5"])
def test_parse_duration_rejects(text: str) -> None:
    """Anything else is a one-line UsageError."""
    with pytest.raises(UsageError, match="bad duration"):
        parse_duration(text)


def test_with_overrides_applies_and_checks() -> None:
    """Overrides replace their field; bad ones are UsageErrors (not ScenarioErrors: they come from flags)."""
    base = Scenario(ramp_s=10.0)
    changed = base.with_overrides(duration_s=20, rate=5, devices=3, seed=4)
    assert (changed.duration_s, changed.rate, changed.devices, changed.seed) == (20.0, 5.0, 3, 4)
    assert base.with_overrides() == base
    for bad in ({"duration_s": 0.0}, {"duration_s": 5.0}, {"rate": -1.0}, {"rate": math.inf},
                {"devices": 0}, {"seed": -1}):
        with pytest.raises(UsageError):
            base.with_overrides(**bad)


@given(st.lists(st.floats(0, 100), min_size=1, max_size=6).filter(lambda ws: sum(ws) > 0),
       st.floats(0, 1, exclude_max=True))
def test_mix_picks_only_weighted_values(weights: list[float], u: float) -> None:
    """Mix.pick maps any u in [0, 1) to a value, never to one of weight 0."""
    mix = Mix(tuple(range(len(weights))), tuple(weights))
    assert weights[mix.pick(u)] > 0


def test_mix_follows_its_weights() -> None:
    """Mix.pick splits [0, 1) in bands proportional to the weights."""
    mix = Mix(("a", "b", "c"), (1.0, 0.0, 3.0))
    picks = [mix.pick(i / 1000) for i in range(1000)]
    assert picks.count("a") == 250 and picks.count("b") == 0 and picks.count("c") == 750


def test_a_rate_the_plan_cannot_number_is_refused_at_its_line() -> None:
    """A rate whose devices would send more events than their ids number is a scenario error at its line."""
    with pytest.raises(ScenarioError, match=r"x\.toml:5: events\.rate: .*events per device, more than"):
        parse_scenario("duration = 45\n[fleet]\ndevices = 300\n[events]\nrate = 1e12\n", "x.toml")


def test_a_rate_override_the_plan_cannot_number_is_refused() -> None:
    """``--rate 1e12`` over 300 devices for 45 s: refused with the flag named, before any plan is built."""
    base = Scenario(duration_s=45.0, devices=300)
    with pytest.raises(UsageError, match=r"--rate 1e\+12: .*events per device"):
        base.with_overrides(rate=1e12)
    most = MAX_DEVICE_EVENTS * 300 / 45.0  # every device right at the bound: still plannable
    assert base.with_overrides(rate=most).plannable() is None


def test_the_connect_rate_paces_the_fleet_onto_the_network() -> None:
    """Devices come online at the connect rate: the ramp lasts at least devices / connect_rate."""
    from bench.fleet import Plan

    scenario = parse_scenario("duration = 60\n[fleet]\ndevices = 3000\nconnect_rate = 500\n", "x.toml")
    assert scenario.connect_rate == 500.0 and scenario.ramp_s == 0.0 and scenario.connect_ramp_s == 6.0
    plan = Plan(scenario)
    assert plan.connect_at_ns(0) == 0 and plan.connect_at_ns(2999) == 6_000_000_000 * 2999 // 3000
    slow = scenario.with_overrides(connect_rate=100.0)  # --connect-rate 100: 30 s to come online
    assert Plan(slow).connect_at_ns(1500) == 15_000_000_000
    longer = parse_scenario("duration = 60\n[fleet]\ndevices = 30\nramp = 10\n", "y.toml")
    assert longer.connect_ramp_s == 10.0  # a ramp longer than the pacing asks for stands


def test_a_fleet_that_cannot_come_online_within_the_run_is_refused() -> None:
    """At the default 1,500 connects/s, 250,000 devices need 167 s: a 60 s run is refused at its line."""
    refused = r"x\.toml:3: fleet\.devices: 250,000 devices at 1,500 connects/s"
    with pytest.raises(ScenarioError, match=refused):
        parse_scenario("duration = 60\n[fleet]\ndevices = 250000\n", "x.toml")
    base = Scenario(duration_s=60.0, devices=1000)
    with pytest.raises(UsageError, match="raise the connect rate"):
        base.with_overrides(devices=200_000)
    assert base.with_overrides(devices=200_000, connect_rate=5000.0).connect_ramp_s == 40.0
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(UsageError, match="connect rate must be a positive number"):
            base.with_overrides(connect_rate=bad)
