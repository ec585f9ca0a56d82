"""Properties of the sans-I/O core: serialize∘parse is the identity; parsers raise only their own errors."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, timedelta, timezone
from typing import Any

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bench.protocol import (
    EVENT_CLASSES,
    Envelope,
    Event,
    Extra,
    Heartbeat,
    InvalidEvent,
    MalformedAck,
    MalformedMessage,
    MessageTooLarge,
    encode_ack,
    encode_events,
    parse_ack,
    parse_envelope,
    parse_event,
)
from bench.protocol.events import DeviceKey

FAST = settings(max_examples=200, deadline=None)

#: Wire keys the parser knows; unknown keys must avoid them.
KNOWN_KEYS = frozenset({"type", "name", "sessionId", "date", "id", "userId", "anonId", "deviceId",
                        "machineId", "payload", "platform", "osVersion", "totalRam", "version", "language",
                        "locale", "arch", "client", "moduleVersion"})

# orjson's range: JSON text without lone surrogates, integers within 64 bits.
chars = st.characters(exclude_categories=["Cs"])
text = st.text(alphabet=chars, max_size=12)
nonempty = st.text(alphabet=chars, min_size=1, max_size=12)
ints64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
json_scalars = st.none() | st.booleans() | ints64 | st.floats(allow_nan=False, allow_infinity=False) | text
json_values = st.recursive(
    json_scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text, kids, max_size=3),
    max_leaves=8)
json_objects = st.dictionaries(text, json_values, max_size=4)

event_ids = st.none() | text | ints64
sessions = st.integers(min_value=1, max_value=2**63 - 1)
offsets = (st.none() | st.just(UTC)
           | st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))))
dates = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.floats(min_value=0.0, max_value=1e15, allow_nan=False),
    st.from_regex(r"\A[0-9]{1,16}\Z"),
    st.datetimes(timezones=offsets).map(lambda d: d.isoformat()),
)
numbers = st.none() | st.integers(0, 2**40) | st.floats(min_value=0, max_value=1e12)
# Extras are recorded as they came, of any JSON type (contract.md, "Messages": the Python module's arch).
extras = st.builds(
    Extra, platform=st.none() | text, os_version=st.none() | text, total_ram=numbers | json_values,
    version=st.none() | text, language=st.none() | text, locale=st.none() | text, arch=json_values,
    client=json_values, module_version=st.none() | text | ints64,
).filter(lambda e: e != Extra())  # Extra() and None are the same wire event; the parser gives None


@st.composite
def events(draw: st.DrawFn, cls: type[Event] | None = None) -> Event:
    """A valid event of any type: what parse_event can produce."""
    cls = cls or draw(st.sampled_from(sorted(EVENT_CLASSES.values(), key=lambda c: c.TYPE.value)))
    device_key: DeviceKey = draw(st.sampled_from(["deviceId", "machineId"]))
    unknown: dict[str, Any] = draw(st.dictionaries(text.filter(lambda k: k not in KNOWN_KEYS), json_values,
                                                   max_size=2))
    if device_key == "deviceId" and draw(st.booleans()):
        unknown["machineId"] = draw(json_values)  # both keys sent: machineId is kept as unknown
    return cls(
        device_id=draw(nonempty),
        session_id=draw(st.none() | sessions if cls is Heartbeat else sessions),
        id=draw(event_ids),
        name=draw(nonempty | ints64 if cls.REQUIRES_NAME else st.none() | text | json_values),
        date=draw(dates),
        user_id=draw(st.none() | text | json_values),
        anon_id=draw(st.none() | text),
        payload=draw(st.none() | json_objects | json_values),
        extra=draw(st.none() | extras),
        device_key=device_key,
        unknown=unknown or None,
    )


@FAST
@given(st.lists(events(), max_size=5))
def test_serialize_then_parse_is_the_identity(evs: list[Event]) -> None:
    """parse_envelope(encode_events(events)).events == events, for every type and field."""
    env = parse_envelope(encode_events(evs))
    assert env.events == tuple(evs)
    assert env.rejected == ()
    assert Envelope(tuple(evs)).serialize() == encode_events(evs)


@FAST
@given(events())
def test_parse_event_of_to_obj_is_the_identity(ev: Event) -> None:
    """parse_event(event.to_obj()) gives the same event, and its JSON type of id is kept."""
    back = parse_event(orjson.loads(orjson.dumps(ev.to_obj())))
    assert back == ev
    assert type(back.id) is type(ev.id)


@FAST
@given(st.lists(st.one_of(text, ints64), max_size=8))
def test_ack_round_trip(ids: list[str | int]) -> None:
    """parse_ack(encode_ack(ids)) gives the ids back, in order, types kept."""
    assert parse_ack(encode_ack(ids)).reported_ids == tuple(ids)


def _envelope_or_protocol_error(data: bytes | str) -> None:
    with contextlib.suppress(MalformedMessage, MessageTooLarge):
        assert isinstance(parse_envelope(data), Envelope)


@FAST
@given(st.binary(max_size=200))
def test_envelope_of_arbitrary_bytes(data: bytes) -> None:
    """Arbitrary bytes give an Envelope or MalformedMessage / MessageTooLarge, nothing else."""
    _envelope_or_protocol_error(data)


@FAST
@given(st.text(max_size=100))
def test_envelope_of_arbitrary_text(data: str) -> None:
    """Arbitrary str gives an Envelope or MalformedMessage / MessageTooLarge, nothing else."""
    _envelope_or_protocol_error(data)


@FAST
@given(json_values)
def test_envelope_of_arbitrary_json(value: Any) -> None:
    """Any JSON document gives an Envelope or MalformedMessage, nothing else."""
    _envelope_or_protocol_error(orjson.dumps(value))


def _event_like() -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the known keys holding arbitrary values (hits every branch of parse_event)."""
    keys = st.sampled_from(sorted(KNOWN_KEYS)) | text
    plausible = st.sampled_from(["init", "event", "error", "heartbeat", "nucleus:view", "d1", "12", "0",
                                 "2024-05-01T10:00:00Z"])
    return st.dictionaries(keys, plausible | json_values | st.integers(), max_size=8)


@FAST
@given(st.lists(_event_like() | json_values, max_size=4))
def test_envelope_of_arbitrary_events(items: list[Any]) -> None:
    """A data array of anything: every item ends as an event or a rejection, in order."""
    env = parse_envelope(json.dumps({"data": items}))  # json: integers of any size
    assert len(env.events) + len(env.rejected) == len(items)
    assert [r.index for r in env.rejected] == sorted(r.index for r in env.rejected)


@FAST
@given(_event_like() | json_values)
def test_parse_event_raises_only_invalid_event(value: Any) -> None:
    """parse_event on any JSON value returns an Event or raises InvalidEvent, nothing else."""
    try:
        assert isinstance(parse_event(value), Event)
    except InvalidEvent as exc:
        assert exc.reason and exc.detail


@FAST
@given(json_values | st.binary(max_size=50))
def test_parse_ack_raises_only_malformed_ack(value: Any) -> None:
    """parse_ack on anything returns an Ack or raises MalformedAck."""
    data = value if isinstance(value, bytes) else orjson.dumps(value)
    with contextlib.suppress(MalformedAck):
        parse_ack(data)


@FAST
@given(st.lists(events(), min_size=1, max_size=3), st.data())
def test_every_proper_prefix_is_refused(evs: list[Event], data: st.DataObject) -> None:
    """Fed a truncated message, the parser refuses it (no partial envelope is ever returned)."""
    raw = encode_events(evs)
    cut = data.draw(st.integers(0, len(raw) - 1))
    assume(raw[:cut].strip() != raw.strip())
    try:
        parse_envelope(raw[:cut])
    except MalformedMessage:
        return
    raise AssertionError(f"prefix {raw[:cut]!r} was accepted")
