"""``Send``: one message of the plan, and the fast way the plan makes one."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from bench.protocol.events import Event, Heartbeat
from bench.protocol.message import encode_events


@dataclass(frozen=True, slots=True)
class Send:
    """One message a device sends: at ``at_ns`` (intended, ns since the run's start), its ``events`` in order.

    ``created_ns[i]`` is when ``events[i]`` was created (== ``at_ns`` for WebSocket sends). A heartbeat Send
    holds exactly one ``Heartbeat`` whose id is None: never acknowledged, never tracked.
    """

    at_ns: int
    device: int
    events: tuple[Event, ...]
    created_ns: tuple[int, ...]
    # encode_events(events) once known: on first use of ``encoded``, or at once for heartbeats (shared).
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_heartbeat(self) -> bool:
        return isinstance(self.events[0], Heartbeat)

    @property
    def encoded(self) -> bytes:
        """``encode_events(self.events)``: the message's bytes, encoded on first use and kept.

        All heartbeats of a device share one encoding, made once: reading it costs nothing.
        """
        data = self._encoded
        if data is None:
            data = encode_events(self.events)
            object.__setattr__(self, "_encoded", data)  # a cache: set once, never visible as a change
        return data


class _Send(Send):
    """Builds a ``Send(at, device, events, created)``, with ``encoded`` when already known.

    Why and how: as ``bench.fleet.device._Event`` (plain slot stores instead of the frozen dataclass
    ``__init__``'s ``object.__setattr__`` per field, then ``__class__`` assignment): the plan makes one Send
    per message. The result is exactly a ``Send``; the asserts below keep that true.
    """

    __slots__ = ()
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__

    def __init__(self, at: int, device: int, events: tuple[Event, ...],
                 created: tuple[int, ...] | None = None, encoded: bytes | None = None) -> None:
        this: Any = self  # the dataclass's fields are read-only to the type checker: they are set here, once
        this.at_ns = at
        this.device = device
        this.events = events
        this.created_ns = (at,) * len(events) if created is None else created
        this._encoded = encoded
        this.__class__ = Send


#: Makes a Send (see ``_Send``): ``make_send(at, device, events, created_ns=None, encoded=None)``; without
#: ``created_ns``, every event was created at ``at`` (a WebSocket message).
make_send = _Send
assert tuple(f.name for f in fields(Send)) == ("at_ns", "device", "events", "created_ns", "_encoded"), (
    "bench.fleet.send._Send sets a stale list of fields")
_check: Send = make_send(1, 2, (), (3,))
assert type(_check) is Send and _check == Send(1, 2, (), (3,)), "bench.fleet.send._Send builds another Send"
