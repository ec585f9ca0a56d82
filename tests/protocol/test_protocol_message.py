"""Envelopes and acks: whole-message errors, strict acks, parsers fed whole, cut, and with trailing data."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bench.protocol import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EVENTS,
    Ack,
    Envelope,
    Init,
    MalformedAck,
    MalformedMessage,
    MessageTooLarge,
    Reason,
    Track,
    encode_ack,
    encode_events,
    encode_objs,
    parse_ack,
    parse_envelope,
    parse_event,
)

GOOD = b'{"data":[{"type":"init","deviceId":"d","sessionId":1,"id":1},{"name":"click","deviceId":"d",' \
       b'"sessionId":1,"id":"2"}]}'
GOOD_ACK = b'{"reportedIds":[1,"2"]}'


# -- envelopes ------------------------------------------------------------------------------------------
def test_good_envelope_whole() -> None:
    """A valid message gives its events in order, as str, bytes, bytearray or memoryview."""
    for data in (GOOD, GOOD.decode(), bytearray(GOOD), memoryview(GOOD)):
        env = parse_envelope(data)
        assert [type(e) for e in env.events] == [Init, Track]
        assert [e.id for e in env.events] == [1, "2"] and env.rejected == ()


def test_empty_data_is_legal() -> None:
    """{"data": []} is legal (v4 sends it when idle)."""
    assert parse_envelope(b'{"data": []}') == Envelope(())


def test_invalid_events_set_aside_the_rest_stand() -> None:
    """Invalid events are listed with index, reason and id; valid ones of the same message stand."""
    msg = orjson.dumps({"data": [{"type": "init", "deviceId": "d", "sessionId": 1, "id": 1},
                                 {"type": "event", "deviceId": "d", "sessionId": 1, "id": 2},
                                 "junk",
                                 {"type": "props", "deviceId": "d", "sessionId": 1, "id": 4}]})
    env = parse_envelope(msg)
    assert [e.id for e in env.events] == [1, 4]
    assert [(r.index, r.reason, r.event_id) for r in env.rejected] == [
        (1, Reason.MISSING_NAME, 2), (2, Reason.NOT_OBJECT, None)]


def test_extra_top_level_keys_are_tolerated() -> None:
    """Keys beside "data" do not make a message malformed."""
    assert parse_envelope(b'{"data": [], "v": 4}') == Envelope(())


@pytest.mark.parametrize("data", [b"", b"not json", b"{", b"{'data': []}", b'{"data": [}', b"\xff\xfe",
                                  b'{"data": [] "x": 1}', b"nul"], ids=repr)
def test_not_json_is_malformed(data: bytes) -> None:
    """Bytes that are not one JSON document: MalformedMessage (WS close 1007 / HTTP 400)."""
    with pytest.raises(MalformedMessage, match="not JSON"):
        parse_envelope(data)


@pytest.mark.parametrize("data", [b"[]", b'[{"data": []}]', b"5", b'"data"', b"null", b"true"], ids=repr)
def test_not_an_object_is_malformed(data: bytes) -> None:
    """A JSON document that is not an object: MalformedMessage."""
    with pytest.raises(MalformedMessage, match="object"):
        parse_envelope(data)


@pytest.mark.parametrize("data", [b"{}", b'{"Data": []}', b'{"data": null}', b'{"data": {}}',
                                  b'{"data": "[]"}', b'{"data": 3}', b'{"events": []}'], ids=repr)
def test_no_data_array_is_malformed(data: bytes) -> None:
    """No "data" key, or "data" not a list: MalformedMessage."""
    with pytest.raises(MalformedMessage, match='"data" array'):
        parse_envelope(data)


def test_byte_cap_boundary() -> None:
    """A message of exactly max_bytes passes; one byte more is MessageTooLarge (WS 1009 / HTTP 413)."""
    msg = b'{"data": []}'
    assert parse_envelope(msg, max_bytes=len(msg)) == Envelope(())
    with pytest.raises(MessageTooLarge):
        parse_envelope(msg, max_bytes=len(msg) - 1)
    with pytest.raises(MessageTooLarge):
        parse_envelope(b" " * (DEFAULT_MAX_BYTES + 1))


def test_byte_cap_counts_utf8_bytes_of_text() -> None:
    """A text frame is measured in UTF-8 bytes, not characters."""
    msg = '{"data": [], "x": "\u00e9\u00e9"}'  # 2 characters, 4 bytes
    size = len(msg.encode())
    assert parse_envelope(msg, max_bytes=size) == Envelope(())
    with pytest.raises(MessageTooLarge):
        parse_envelope(msg, max_bytes=size - 1)


def test_too_large_is_checked_before_decoding() -> None:
    """An oversized message is refused as too large even when it is not JSON."""
    with pytest.raises(MessageTooLarge):
        parse_envelope(b"x" * 100, max_bytes=10)


def test_event_cap_boundary() -> None:
    """max_events events pass; one more is MessageTooLarge, whatever the events are."""
    assert len(parse_envelope(orjson.dumps({"data": [1, 2, 3]}), max_events=3).rejected) == 3
    with pytest.raises(MessageTooLarge, match="4 events"):
        parse_envelope(orjson.dumps({"data": [1, 2, 3, 4]}), max_events=3)
    with pytest.raises(MessageTooLarge):
        parse_envelope(orjson.dumps({"data": [None] * (DEFAULT_MAX_EVENTS + 1)}))


def test_encode_objs_and_events_agree() -> None:
    """The hot path's encode_objs writes the same bytes as encode_events."""
    evs = parse_envelope(GOOD).events
    assert encode_objs([e.to_obj() for e in evs]) == encode_events(evs) == Envelope(evs).serialize()


# -- feeding parsers: whole, cut byte by byte, and with trailing data -----------------------------------
def test_envelope_fed_byte_by_byte_is_refused_until_whole() -> None:
    """Every proper prefix of a message is refused; only the whole message parses."""
    for cut in range(len(GOOD)):
        with pytest.raises(MalformedMessage):
            parse_envelope(GOOD[:cut])
    assert len(parse_envelope(GOOD).events) == 2


@pytest.mark.parametrize("tail", [b"x", b"{}", b'{"data": []}', b"\x00", b"]", b",", b"}"], ids=repr)
def test_envelope_with_trailing_garbage_is_refused(tail: bytes) -> None:
    """Anything after the JSON document is refused, not ignored."""
    with pytest.raises(MalformedMessage):
        parse_envelope(GOOD + tail)
    with pytest.raises(MalformedMessage):
        parse_envelope((GOOD + tail).decode("utf-8", "replace"))


def test_envelope_with_trailing_whitespace_is_json() -> None:
    """Whitespace around a document is JSON, so it is accepted."""
    assert len(parse_envelope(b" \n" + GOOD + b"\r\n\t ").events) == 2


def test_ack_fed_byte_by_byte_and_with_trailing_garbage() -> None:
    """Every proper prefix of an ack, and an ack followed by anything, is a MalformedAck."""
    for cut in range(len(GOOD_ACK)):
        with pytest.raises(MalformedAck):
            parse_ack(GOOD_ACK[:cut])
    for tail in (b"x", b'{"reportedIds": []}', b"]", b"\x00"):
        with pytest.raises(MalformedAck):
            parse_ack(GOOD_ACK + tail)
    assert parse_ack(GOOD_ACK) == Ack((1, "2"))


# -- acks -----------------------------------------------------------------------------------------------
def test_ack_parses_types_kept() -> None:
    """reportedIds keep their JSON types; an empty list is fine; str and bytes both accepted."""
    assert parse_ack(GOOD_ACK).reported_ids == (1, "2")
    assert parse_ack(GOOD_ACK.decode()).reported_ids == (1, "2")
    assert parse_ack(b'{"reportedIds": []}').reported_ids == ()
    assert parse_ack(encode_ack([5, "5"])) == Ack((5, "5"))
    assert Ack((1, "a")).serialize() == b'{"reportedIds":[1,"a"]}'


@pytest.mark.parametrize("data", [
    b'{"reportedIds": [], "ok": true}', b'{"reportedIds": [], "error": null}', b"{}", b'{"reportedids": []}',
], ids=repr)
def test_ack_with_another_key_is_refused(data: bytes) -> None:
    """Exactly the one key: the Swift module decodes strictly (contract.md, Acknowledgements)."""
    with pytest.raises(MalformedAck, match="exactly"):
        parse_ack(data)


@pytest.mark.parametrize("data", [b'{"reportedIds": null}', b'{"reportedIds": {}}', b'{"reportedIds": "1"}',
                                  b'{"reportedIds": 1}'], ids=repr)
def test_ack_ids_not_a_list_refused(data: bytes) -> None:
    """reportedIds must be an array."""
    with pytest.raises(MalformedAck, match="array"):
        parse_ack(data)


@pytest.mark.parametrize("value", [True, False, None, 1.5, 1.0, [1], {"id": 1}], ids=repr)
def test_ack_id_of_the_wrong_type_refused(value: Any) -> None:
    """Each id is a string or an integer; bools, floats, null and containers are refused."""
    with pytest.raises(MalformedAck):
        parse_ack(orjson.dumps({"reportedIds": [1, value]}))


@pytest.mark.parametrize("data", [b"", b"ok", b"[1, 2]", b"null", b'"reportedIds"', b"\xff"], ids=repr)
def test_ack_not_json_or_not_an_object_refused(data: bytes) -> None:
    """A reply that is not a JSON object is a MalformedAck."""
    with pytest.raises(MalformedAck):
        parse_ack(data)


# -- edge cases of text, huge digit strings and null extras ---------------------------------------------
def test_text_with_a_lone_surrogate_is_malformed() -> None:
    """A str holding a lone surrogate is not valid text: MalformedMessage, like invalid UTF-8 bytes."""
    with pytest.raises(MalformedMessage):
        parse_envelope('{"data": []}\ud800')


def test_session_of_thousands_of_digits_is_refused_not_crashing() -> None:
    """A sessionId string of 5000 digits is an invalid event, not an exception escaping the parser."""
    env = parse_envelope(orjson.dumps({"data": [{"type": "init", "deviceId": "d", "sessionId": "9" * 5000}]}))
    assert env.events == () and env.rejected[0].reason is Reason.BAD_SESSION


def test_parse_is_idempotent_through_to_obj() -> None:
    """parse(to_obj(parse(x))) == parse(x): re-serializing a parsed event changes nothing."""
    e = parse_event({"type": "init", "deviceId": "d", "sessionId": 1, "platform": None})
    assert parse_event(e.to_obj()) == e


def test_ack_id_nested_a_thousand_deep_is_a_malformed_ack() -> None:
    """An id that is a container nested 1,000 levels deep is a MalformedAck naming its type, not a
    RecursionError from its repr (the same flaw the fuzzer found in the event parser)."""
    with pytest.raises(MalformedAck, match="holds a list"):
        parse_ack(b'{"reportedIds":[1,' + b"[" * 1000 + b"]" * 1000 + b"]}")
