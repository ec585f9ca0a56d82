"""A client device's side of the WebSocket transport: what the official modules do that depends on the server.

Theory of operation
-------------------
The plan (``bench.fleet.clients``) says what a client device does and when: new events on its report tick,
heartbeats, an outage. What it cannot know is the server's answer, and the modules' behaviour hangs on it
(contract.md, "Client behaviour worth simulating"):

- **The unacked queue.** A module keeps every event until an ack names it and sends the whole queue each
  tick. ``ClientQueue`` keeps the device's events; ``compose`` builds the next message from them. A
  resending profile sends every event not yet answered (asked of the tracker: ``pending``), the new ones
  with them, so an ack slower than the tick makes duplicates, as it does with the real modules; the others
  send each event once. An event the tracker has finished (acked, rejected or lost) leaves the queue: a
  real module would go on re-sending a refused or timed-out event, which would count it twice here.
- **Opening.** A module writes nothing until its socket is open, and v4/v5 wait a second after that
  (``open_delay``); meanwhile new events queue up, and the first write after the delay takes them all.
- **Reconnecting.** ``tick``: each tick while the socket is not open starts a new one, and the old one is
  left as it is (a connecting socket may open later and stay open, idle, as the modules leave theirs); a
  socket started less than half a tick ago is this tick's (the device's first connect and its first tick
  come at the same instant); ``backoff``: the transport's own jittered backoff.
- **Frames.** ``binary``: the Swift module's binary frames.

Pure: no socket, no clock; ``bench.transports.ws`` does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.fleet.clients import ClientSend
from bench.profiles import Profile
from bench.protocol.events import EventId


class _Entry:
    """One event in a device's queue: its bytes, key, wire id, creation and intended send time."""

    __slots__ = ("created", "intended", "key", "part", "sent", "wire")

    def __init__(self, part: bytes, key: EventId, wire: EventId, created: int, intended: int) -> None:
        self.part = part
        self.key = key
        self.wire = wire
        self.created = created
        self.intended = intended
        self.sent = False


#: A message to write: (parts, keys, wire ids, creation times, intended time, events written for the first
#: time in it).
Composed = tuple[tuple[bytes, ...], tuple[EventId, ...], tuple[EventId, ...], tuple[int, ...], int, int]


class ClientQueue:
    """One client device's queue and transport-side state.

    Args:
        profile: the device's profile.
        time_scale: simulated seconds per real second (the open delay is the profile's, in simulated time).

    Attributes:
        ready: the connection is open and past the open delay: messages may be written.
        unsent: events queued and never written.
    """

    __slots__ = ("binary", "connecting_since", "delay_s", "entries", "half_tick_ns", "ready", "resend",
                 "tick_reconnect", "unsent")

    def __init__(self, profile: Profile, time_scale: float = 1.0) -> None:
        self.resend = profile.resend
        self.binary = profile.frame == "binary"
        self.tick_reconnect = profile.reconnect == "tick"
        self.delay_s = profile.open_delay_s / time_scale
        self.half_tick_ns = int(profile.tick_s / time_scale * 5e8)
        self.connecting_since = 0  # when the current socket was started (the transport's clock)
        self.entries: list[_Entry] = []
        self.ready = False
        self.unsent = 0

    def add(self, send: ClientSend) -> int:
        """Queue the new events of ``send``; returns how many."""
        at = send.at_ns
        self.entries += map(_Entry, send.parts, send.ids, send.wire, send.created_ns, [at] * len(send.ids))
        self.unsent += len(send.ids)
        return len(send.ids)

    def compose(self, pending: Callable[[EventId], bool]) -> Composed | None:
        """The message to write now (None: nothing to send), its events marked as written.

        A resending queue sends its unwritten events and every written one still ``pending``; the others
        send their unwritten events and forget them.
        """
        if self.resend:
            self.entries = out = [e for e in self.entries if not e.sent or pending(e.key)]
        else:
            out, self.entries = [e for e in self.entries if not e.sent], []
        if not out:
            return None
        first = [e for e in out if not e.sent]
        # latency counts from the intended time of the events' first send: the oldest among the new ones
        intended = min(e.intended for e in first) if first else min(e.intended for e in out)
        for e in first:
            e.sent = True
        self.unsent -= len(first)
        return (tuple(e.part for e in out), tuple(e.key for e in out), tuple(e.wire for e in out),
                tuple(e.created for e in out), intended, len(first))

    def new_socket(self, connecting: bool, now_ns: int) -> bool:
        """Whether a tick at ``now_ns`` opens a new socket (``tick`` reconnects) while the current one is not
        open: always, unless the current one is still ``connecting`` and was started this tick."""
        return not connecting or now_ns - self.connecting_since >= self.half_tick_ns

    def take_unsent(self) -> list[tuple[EventId, EventId, int, int]]:
        """The end of the run: every event never written, as (key, wire id, created, intended); forgotten."""
        out = [(e.key, e.wire, e.created, e.intended) for e in self.entries if not e.sent]
        self.entries = []
        self.unsent = 0
        return out


def frame_binary_py(payload: bytes, mask: bytes, apply_mask: Callable[[bytes, bytes], bytes]) -> bytes:
    """One masked, final binary frame (RFC 6455, 5.2: opcode 0x2) around ``payload``."""
    n = len(payload)
    if n < 126:
        head = bytes((0x82, 0x80 | n))
    elif n < 65536:
        head = b"\x82\xfe" + n.to_bytes(2, "big")
    else:
        head = b"\x82\xff" + n.to_bytes(8, "big")
    return head + mask + apply_mask(payload, mask)
