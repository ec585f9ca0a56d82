"""``Send``: one message of the plan, held as the bytes it goes out as.

Why bytes: the plan feeds the hot path, and building one frozen ``Event`` per event, then a dict per event
for orjson, was most of the plan's cost. A ``Send`` holds each event's JSON object as bytes (``parts``,
exactly what ``orjson.dumps(event.to_obj())`` writes: ``bench.fleet.device`` makes the common ``event``
type from byte templates, the rarer types through ``to_obj``), the ids it carries, and builds the message
(``encoded``) by one join. ``events`` parses the parts back into ``Event`` values on first use, for
readers that want values (tests, Locust, the comparison of plans); serialize and parse are each other's
inverse (tests/protocol), so the values are the events the plan made.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, NamedTuple

import orjson

from bench.protocol.events import Event, EventId
from bench.protocol.message import parse_envelope

#: ``{"data":[`` ... ``]}``: how orjson writes ``{"data": [...]}`` around the event objects.
_OPEN, _SEP, _CLOSE = b'{"data":[', b",", b"]}"


def encode_parts(parts: tuple[bytes, ...]) -> bytes:
    """The message ``{"data": [...]}`` whose events are the JSON objects ``parts``."""
    return _OPEN + _SEP.join(parts) + _CLOSE


def event_part(event: Event) -> bytes:
    """One event's JSON object as bytes, as ``encode_events`` writes it inside a message."""
    return orjson.dumps(event.to_obj())


class Send:
    """One message a device sends: at ``at_ns`` (intended, ns since the run's start), its events in order.

    ``Send(at_ns, device, events, created_ns)`` builds one from event values; the plan builds them from
    bytes (``make_send``). Two Sends are equal when their time, device, creation times and bytes are.

    Attributes:
        at_ns: intended send time.
        device: the device's index in the fleet.
        parts: each event's JSON object, in order.
        ids: the ids of the events that carry one, in order (a heartbeat carries none: never acknowledged,
            never tracked).
        created_ns: when each event was created, parallel to ``parts`` (== ``at_ns`` for WebSocket sends).
    """

    __slots__ = ("_encoded", "_events", "at_ns", "created_ns", "device", "ids", "parts")
    at_ns: int
    device: int
    parts: tuple[bytes, ...]
    ids: tuple[EventId, ...]
    created_ns: tuple[int, ...]
    _encoded: bytes | None
    _events: tuple[Event, ...] | None

    def __init__(self, at_ns: int, device: int, events: tuple[Event, ...],
                 created_ns: tuple[int, ...]) -> None:
        _init(self, at_ns, device, tuple(event_part(e) for e in events),
              tuple(e.id for e in events if e.id is not None), created_ns, None, events)

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: a Send is read-only")

    __delattr__ = __setattr__  # type: ignore[assignment]

    @property
    def events(self) -> tuple[Event, ...]:
        """The events as values (parsed from ``parts`` on first use, then kept)."""
        events = self._events
        if events is None:
            envelope = parse_envelope(encode_parts(self.parts), max_bytes=1 << 62, max_events=1 << 62)
            if envelope.rejected:  # the plan made an event its own parser refuses: a bug, never input
                raise AssertionError(f"the plan made an invalid event: {envelope.rejected[0]}")
            events = envelope.events
            object.__setattr__(self, "_events", events)  # a cache, as ``encoded``
        return events

    @property
    def encoded(self) -> bytes:
        """``encode_events(self.events)``: the message's bytes, joined on first use and kept.

        All heartbeats of a device share one encoding, made once: reading it costs nothing.
        """
        data = self._encoded
        if data is None:
            data = encode_parts(self.parts)
            object.__setattr__(self, "_encoded", data)  # a cache: set once, never visible as a change
        return data

    @property
    def is_heartbeat(self) -> bool:
        """A heartbeat: the one kind of send whose event carries no id."""
        return not self.ids

    def _key(self) -> tuple[Any, ...]:
        return (self.at_ns, self.device, self.created_ns, self.parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Send):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Send(at_ns={self.at_ns}, device={self.device}, ids={self.ids!r}, "
                f"created_ns={self.created_ns!r}, parts={self.parts!r})")


def make_send(at: int, device: int, parts: tuple[bytes, ...], ids: tuple[EventId, ...],
              created: tuple[int, ...] | None = None, encoded: bytes | None = None) -> Send:
    """A Send from bytes: the plan's fast way (no ``Event`` is built until ``events`` is read).

    Args:
        parts: each event's JSON object (``event_part``).
        ids: the ids among them, in order.
        created: creation times parallel to ``parts``; None: every event was created at ``at`` (WebSocket).
        encoded: the message's bytes when already known (a device's heartbeats share one).
    """
    send = Send.__new__(Send)
    _init(send, at, device, parts, ids, (at,) * len(parts) if created is None else created, encoded, None)
    return send


class WireSend(NamedTuple):
    """One message as the hot path sends it: a ``Send`` without its parts, its bytes joined at once.

    What the runner's scheduler reads of a send and nothing else, built as a plain tuple: a ``Send`` is
    built for readers that want its parts or events (tests, Locust), and its frozen-object construction and
    lazy ``encoded`` cost a paced fleet about a tenth of its CPU per message (make perf, hot-ws-paced).
    ``Plan.wire_sends`` yields these; field for field they equal ``Plan.sends``' Sends.
    """

    at_ns: int
    device: int
    encoded: bytes
    ids: tuple[EventId, ...]
    created_ns: tuple[int, ...]


def make_wire(at: int, device: int, parts: tuple[bytes, ...], ids: tuple[EventId, ...],
              created: tuple[int, ...] | None = None, encoded: bytes | None = None) -> WireSend:
    """``make_send``'s arguments, a ``WireSend`` out (the message's bytes joined now)."""
    return tuple.__new__(WireSend, (at, device, encode_parts(parts) if encoded is None else encoded, ids,
                                    (at,) * len(parts) if created is None else created))


def _init(send: Send, at: int, device: int, parts: tuple[bytes, ...], ids: tuple[EventId, ...],
          created: tuple[int, ...], encoded: bytes | None, events: tuple[Event, ...] | None) -> None:
    """Set every field of a new Send, once: ``object.__setattr__`` past the read-only ``__setattr__``."""
    build = object.__setattr__
    build(send, "at_ns", at)
    build(send, "device", device)
    build(send, "parts", parts)
    build(send, "ids", ids)
    build(send, "created_ns", created)
    build(send, "_encoded", encoded)
    build(send, "_events", events)
