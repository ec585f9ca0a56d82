"""Envelopes and acknowledgements: the two messages of the Tracking API, parsed and serialized.

Client to server: ``{"data": [event, ...]}`` (one per WebSocket message or HTTP body). Server to client:
``{"reportedIds": [id, ...]}``, exactly that key (contract.md, "Acknowledgements": the Swift module
decodes strictly). orjson is used here and nowhere else in the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from bench.native import twins
from bench.protocol.errors import InvalidEvent, MalformedAck, MalformedMessage, MessageTooLarge, Reason
from bench.protocol.events import Event, EventId, parse_event

#: Defaults of the reference target (contract.md, "Limits"); every one is a flag there.
#: The two ways a message travels to the tracking API (tracking-api.md): a WebSocket, or an HTTP POST batch.
Transport = Literal["ws", "http"]
#: Both, in the order runs, summaries and Locust's user classes list them.
TRANSPORT_NAMES: tuple[Transport, ...] = ("ws", "http")

DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_MAX_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event of a message that was refused, and why."""

    index: int
    reason: Reason
    detail: str
    event_id: EventId | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed message: its valid events, in order, and the ones refused."""

    events: tuple[Event, ...]
    rejected: tuple[Rejection, ...] = ()

    def serialize(self) -> bytes:
        return encode_events(self.events)


def encode_events(events: Iterable[Event]) -> bytes:
    """``{"data": [...]}`` as UTF-8 JSON bytes."""
    return orjson.dumps({"data": [e.to_obj() for e in events]})


def encode_objs(objs: Sequence[dict[str, Any]]) -> bytes:
    """``{"data": [...]}`` from already-built event objects (the hot path's fast form)."""
    return orjson.dumps({"data": objs})


def decode_json(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode one JSON document; raises ``MalformedMessage`` when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None


def parse_envelope(
    data: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> Envelope:
    """Parse one client message. Invalid events are set aside in ``rejected``; the rest stand.

    Raises:
        MessageTooLarge: over ``max_bytes`` bytes or ``max_events`` events.
        MalformedMessage: not JSON, not an object, or no ``data`` array.
    """
    if isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError:
            raise MalformedMessage("message is not valid Unicode text") from None
    size = len(data)
    if size > max_bytes:
        raise MessageTooLarge(f"message is {size} bytes, the limit is {max_bytes}")
    doc = decode_json(data)
    if not isinstance(doc, dict):
        raise MalformedMessage("message must be a JSON object")
    items = doc.get("data")
    if not isinstance(items, list):
        raise MalformedMessage('message must have a "data" array')
    if len(items) > max_events:
        raise MessageTooLarge(f"message has {len(items)} events, the limit is {max_events}")
    events: list[Event] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            events.append(parse_event(item))
        except InvalidEvent as exc:
            rejected.append(Rejection(index, exc.reason, exc.detail, exc.event_id))
    return Envelope(tuple(events), tuple(rejected))


@dataclass(frozen=True, slots=True)
class Ack:
    """``{"reportedIds": [...]}``: the ids of the events that are stored durably."""

    reported_ids: tuple[EventId, ...]

    def serialize(self) -> bytes:
        return encode_ack(self.reported_ids)


def encode_ack(ids: Iterable[EventId]) -> bytes:
    return orjson.dumps({"reportedIds": list(ids)})


def parse_ack(data: bytes | bytearray | memoryview | str) -> Ack:
    """Parse a server reply strictly, as the Swift module does (``parse_ack_ids``, as an ``Ack``).

    Raises:
        MalformedAck: not JSON, another key beside ``reportedIds``, or an id that is not a string or integer.
    """
    return Ack(parse_ack_ids(data))


def parse_ack_ids(data: bytes | bytearray | memoryview | str) -> tuple[EventId, ...]:
    """The ids of a server reply ``{"reportedIds": [...]}``, parsed strictly, as the Swift module does.

    The clients' per-reply call: the ids without the ``Ack`` around them (a frozen value costs more to
    build than the parse of a one-id reply).

    The compact form of integers, ``{"reportedIds":[1,2]}`` as bytes, is read by ``bench._native``'s C
    twin when it is built (the same tuple); everything else by orjson and the checks below.

    Raises:
        MalformedAck: not JSON, another key beside ``reportedIds``, or an id that is not a string or integer.
    """
    compact = twins.parse_compact_ack
    if compact is not None and type(data) is bytes:
        ids = compact(data)
        if ids is not None:
            return ids
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedAck(f"reply is not JSON: {exc}") from None
    if type(doc) is not dict or len(doc) != 1 or "reportedIds" not in doc:
        raise MalformedAck('reply must be exactly {"reportedIds": [...]}')
    ids = doc["reportedIds"]
    if type(ids) is not list:
        raise MalformedAck("reportedIds must be an array")
    for value in ids:
        # orjson yields exact types: bool is its own type, so this also refuses true/false.
        kind = type(value)
        if kind is not int and kind is not str:
            # Named by its type, never its repr: a container nested 1,000 deep would raise RecursionError.
            raise MalformedAck(f"reportedIds holds a {kind.__name__}, not a string or integer")
    return tuple(ids)
