"""Every lenient rule of contract.md, "Messages (client to server)", one test each, and what stays strict."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from bench.protocol import (
    Error,
    Event,
    Extra,
    Heartbeat,
    Init,
    InvalidEvent,
    Props,
    Reason,
    Track,
    UserId,
    View,
    date_ms,
    parse_envelope,
    parse_event,
)

#: The smallest valid init, spread into variations.
BASE: dict[str, Any] = {"type": "init", "deviceId": "dev-1", "sessionId": 1234}


def ev(**fields: Any) -> Event:
    obj = {**BASE, **fields}
    return parse_event({k: v for k, v in obj.items() if v is not _DROP})


def refused(reason: Reason, **fields: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        ev(**fields)
    assert info.value.reason is reason, info.value
    return info.value


_DROP = object()  # ev(key=_DROP) removes a key of BASE


# -- device identity -----------------------------------------------------------------------------------
def test_device_id_accepted() -> None:
    """deviceId identifies the device."""
    e = ev()
    assert e.device_id == "dev-1" and e.device_key == "deviceId"


def test_machine_id_accepted_instead() -> None:
    """machineId (older modules) stands for deviceId and is written back under its own key."""
    e = ev(deviceId=_DROP, machineId="m-9")
    assert e.device_id == "m-9" and e.device_key == "machineId"
    assert e.to_obj()["machineId"] == "m-9" and "deviceId" not in e.to_obj()


def test_both_device_keys_keep_device_id_and_machine_id_as_unknown() -> None:
    """With both, deviceId wins and machineId is kept (written back unchanged)."""
    e = ev(machineId="m-9")
    assert e.device_id == "dev-1" and e.unknown == {"machineId": "m-9"}
    assert e.to_obj()["machineId"] == "m-9"


def test_null_device_id_falls_back_to_machine_id() -> None:
    """deviceId null counts as absent."""
    assert ev(deviceId=None, machineId="m-9").device_key == "machineId"


@pytest.mark.parametrize("fields", [
    {"deviceId": _DROP}, {"deviceId": ""}, {"deviceId": 42}, {"deviceId": None},
    {"deviceId": _DROP, "machineId": ""}, {"deviceId": _DROP, "machineId": ["x"]},
], ids=["absent", "empty", "number", "null", "empty-machineId", "list-machineId"])
def test_device_required_for_every_type(fields: dict[str, Any]) -> None:
    """Every type needs a non-empty string deviceId or machineId."""
    refused(Reason.MISSING_DEVICE, **fields)
    with pytest.raises(InvalidEvent):
        ev(type="heartbeat", **fields)


# -- extra data: locale or language, missing fields counted not refused -----------------------------------
def test_locale_stands_for_language() -> None:
    """An init with locale and no language is not missing its language."""
    e = ev(platform="darwin", osVersion="23.1", totalRam=16, version="1.0", locale="en-US")
    assert e.missing_required() == ()
    assert isinstance(e.extra, Extra) and e.extra.locale == "en-US" and e.extra.language is None


def test_language_accepted() -> None:
    """language is the document's own key."""
    e = ev(platform="win32", osVersion="10", totalRam=8.5, version="2", language="fr")
    assert e.missing_required() == ()


def test_missing_extra_fields_reported_not_refused() -> None:
    """Newer modules send only platform and locale: accepted, and missing_required() names the rest."""
    e = ev(platform="linux", locale="de")
    assert isinstance(e, Init)
    assert e.missing_required() == ("osVersion", "totalRam", "version")
    assert ev().missing_required() == ("platform", "osVersion", "totalRam", "version", "language")
    err = ev(type="error", name="boom")
    assert isinstance(err, Error) and "platform" in err.missing_required()


def test_extra_fields_not_required_on_other_types() -> None:
    """Only init and error are expected to carry extra data."""
    assert ev(type="event", name="click").missing_required() == ()


@pytest.mark.parametrize(("key", "attr", "value"), [
    ("arch", "arch", 64), ("platform", "platform", 5), ("version", "version", 1.5),
    ("osVersion", "os_version", True), ("locale", "locale", ["en"]), ("moduleVersion", "module_version", 3),
    ("client", "client", {"name": "py"}), ("language", "language", False), ("totalRam", "total_ram", "16"),
    ("totalRam", "total_ram", True)])
def test_extra_field_of_another_json_type_is_kept_as_it_came(key: str, attr: str, value: Any) -> None:
    """contract.md: an optional extra of another JSON type is stored as it came (the Python module's arch)."""
    extra = ev(**{key: value}).extra
    assert extra is not None
    got = getattr(extra, attr)
    assert got == value and type(got) is type(value)


# -- ids ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["abc", "123", 123, 0, -5, 2**63])
def test_id_string_or_integer_type_kept(value: str | int) -> None:
    """id may be a string or an integer, and keeps its JSON type (the ack echoes it as sent)."""
    e = ev(id=value)
    assert e.id == value and type(e.id) is type(value)
    assert e.to_obj()["id"] == value


def test_no_id_is_fine() -> None:
    """Events without id are stored but cannot be acknowledged."""
    assert ev().id is None and "id" not in ev().to_obj()


@pytest.mark.parametrize("value", [True, False, 1.5, 1.0, [1], {"a": 1}])
def test_id_bool_float_or_container_refused(value: Any) -> None:
    """A bool is not an integer id; nor a float or a container."""
    refused(Reason.BAD_ID, id=value)


def test_rejection_carries_the_readable_id() -> None:
    """An invalid event with a readable id names it, so the target can report which one."""
    assert refused(Reason.MISSING_NAME, type="event", id=77).event_id == 77


# -- sessions -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,expected", [(1, 1), (1234, 1234), (12345678, 12345678), ("4321", 4321),
                                            ("007", 7)])
def test_session_integer_or_numeric_string(value: int | str, expected: int) -> None:
    """sessionId is a positive integer; v4 sends a numeric string after a reload."""
    assert ev(sessionId=value).session_id == expected


@pytest.mark.parametrize("value", [0, -1, "0", "-3", "12a", "", " 12", "1.5", 1.5, True, None, [1]],
                         ids=repr)
def test_session_not_positive_or_not_numeric_refused(value: Any) -> None:
    """Zero, negative, non-numeric, bool and missing sessions are refused."""
    refused(Reason.BAD_SESSION, sessionId=value)


def test_session_required_except_heartbeat() -> None:
    """Every type but heartbeat needs a session; a heartbeat needs none."""
    refused(Reason.BAD_SESSION, sessionId=_DROP)
    hb = ev(type="heartbeat", sessionId=_DROP, deviceId=_DROP, machineId="m-1")
    assert isinstance(hb, Heartbeat) and hb.session_id is None
    assert ev(type="heartbeat").session_id == 1234
    refused(Reason.BAD_SESSION, type="heartbeat", sessionId=0)


# -- dates ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123+02:00", "2024-05-01",
                                   1714557600000, 1714557600000.5, 0, "1714557600000"])
def test_date_iso_or_epoch_ms(value: Any) -> None:
    """date is ISO 8601 or milliseconds since 1970 (integer, float, or digits), kept as sent."""
    assert ev(date=value).date == value


@pytest.mark.parametrize("value", ["yesterday", "2024-13-45", "", "12:00 PM", -1, -0.5, math.inf, math.nan,
                                   True, [2024], {"t": 1}], ids=repr)
def test_date_garbage_refused(value: Any) -> None:
    """Anything else is refused."""
    refused(Reason.BAD_DATE, date=value)


def test_date_ms_reads_every_form() -> None:
    """date_ms gives epoch ms for every accepted form; no date means the receive time."""
    assert date_ms(ev(date="2024-05-01T10:00:00Z"), 0.0) == 1714557600000.0
    assert date_ms(ev(date="2024-05-01T10:00:00"), 0.0) == 1714557600000.0  # no offset: UTC
    assert date_ms(ev(date="2024-05-01T12:00:00+02:00"), 0.0) == 1714557600000.0
    assert date_ms(ev(date=1714557600000), 0.0) == 1714557600000.0
    assert date_ms(ev(date="1714557600000"), 0.0) == 1714557600000.0
    assert date_ms(ev(), 99.5) == 99.5


# -- types and names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,cls", [("init", Init), ("event", Track), ("error", Error), ("userid", UserId),
                                      ("props", Props), ("heartbeat", Heartbeat), ("nucleus:view", View)])
def test_every_type_maps_to_its_class(kind: str, cls: type[Event]) -> None:
    """Table dispatch: each wire type has its class, written back under the same type."""
    e = ev(type=kind, name="n")
    assert type(e) is cls and e.to_obj()["type"] == kind


@pytest.mark.parametrize("extra", [{}, {"platform": "linux", "machineId": "m", "odd": 1}])
def test_a_parsed_event_is_the_constructed_one_frozen(extra: dict[str, Any]) -> None:
    """parse_event builds through a builder class; what it returns is of the class itself, equal to the
    event its constructor makes from the same fields, and as frozen."""
    e = ev(type="event", name="click", id=7, date=5, payload={"k": 1}, **extra)
    assert type(e) is Track
    made = Track(e.device_id, e.session_id, e.id, e.name, e.date, e.user_id, e.anon_id, e.payload, e.extra,
                 e.device_key, e.unknown)
    assert e == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.name = "other"  # type: ignore[misc]


def test_type_defaults_to_event() -> None:
    """A missing type means "event"."""
    assert type(ev(type=_DROP, name="click")) is Track


def test_view_needs_no_name() -> None:
    """nucleus:view (modules v3-v5) is accepted without a name."""
    e = ev(type="nucleus:view")
    assert isinstance(e, View) and e.name is None


@pytest.mark.parametrize("kind", ["event", "error"])
@pytest.mark.parametrize("name", [_DROP, None, ""], ids=["absent", "null", "empty"])
def test_name_required_for_event_and_error(kind: str, name: Any) -> None:
    """event and error need a non-empty name."""
    refused(Reason.MISSING_NAME, type=kind, name=name)


def test_name_optional_elsewhere_and_of_any_json_type() -> None:
    """Other types may omit the name; a name that is not a string is recorded as it came."""
    for kind in ("init", "userid", "props", "heartbeat"):
        assert ev(type=kind).name is None
    assert [ev(type="event", name=n).name for n in (5, 0, False, [1])] == [5, 0, False, [1]]


@pytest.mark.parametrize("kind", ["click", "", "EVENT", "nucleus:page", 5, None, ["init"]], ids=repr)
def test_unknown_type_refused(kind: Any) -> None:
    """Types outside the contract, and non-string types, are refused."""
    refused(Reason.BAD_TYPE, type=kind)


def test_not_an_object_refused() -> None:
    """An item of data that is not an object is refused."""
    values: tuple[Any, ...] = ([], "init", 5, None)
    for value in values:
        with pytest.raises(InvalidEvent) as info:
            parse_event(value)
        assert info.value.reason is Reason.NOT_OBJECT


# -- other fields, unknown keys ------------------------------------------------------------------------
def test_unknown_keys_kept_and_written_back() -> None:
    """Keys outside the document are kept and serialized again (the target records what is there)."""
    e = ev(arch="arm64", custom={"a": [1, 2]}, flag=True)
    assert e.unknown == {"custom": {"a": [1, 2]}, "flag": True}
    obj = e.to_obj()
    assert obj["custom"] == {"a": [1, 2]} and obj["flag"] is True and obj["arch"] == "arm64"


def test_payload_user_and_anon() -> None:
    """payload, userId and anonId are recorded as they came: an object and strings, or any JSON value."""
    e = ev(type="event", name="x", payload={"stack": "s" * 5000, "n": [1, None]}, userId="u@x", anonId="a")
    assert e.payload == {"stack": "s" * 5000, "n": [1, None]} and e.user_id == "u@x" and e.anon_id == "a"
    odd = ev(payload=[1], userId=5, anonId=["a"])
    assert (odd.payload, odd.user_id, odd.anon_id) == ([1], 5, ["a"])
    assert ev(payload="x").payload == "x"


def test_explicit_nulls_read_as_absent() -> None:
    """A key with null reads like a missing key for optional fields."""
    e = ev(id=None, date=None, payload=None, userId=None, name=None, platform=None)
    assert (e.id, e.date, e.payload, e.user_id, e.name) == (None, None, None, None, None)


@pytest.mark.parametrize("nested", [b"[" * 1000 + b"0" + b"]" * 1000, b'{"a":' * 1000 + b"0" + b"}" * 1000],
                         ids=["arrays", "objects"])
def test_a_type_nested_a_thousand_deep_is_refused_as_bad_type(nested: bytes) -> None:
    """A ``type`` nested 1,000 levels deep (JSON orjson reads) is an InvalidEvent like any bad type: its
    detail names the JSON type, never its repr, whose recursion would escape the parser as RecursionError
    (found by the fuzzer: the target answered such a message with HTTP 500 and a traceback)."""
    envelope = parse_envelope(b'{"data":[{"type":' + nested + b',"deviceId":"d","sessionId":1,"id":1},'
                              b'{"type":"init","deviceId":"d","sessionId":1,"id":2}]}')
    assert [e.id for e in envelope.events] == [2]
    (rejection,) = envelope.rejected
    assert rejection.reason is Reason.BAD_TYPE and rejection.event_id == 1
    assert "type must be a string" in rejection.detail


def test_a_long_unknown_type_is_quoted_cut_short() -> None:
    """An unknown type string is quoted in the detail, at most 64 of its characters."""
    assert "x" * 65 not in refused(Reason.BAD_TYPE, type="x" * 100_000).detail
