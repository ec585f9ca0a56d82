"""The limits the reference target enforces, and the per-IP token bucket behind its HTTP rate limit.

contract.md, "Limits the reference target enforces": the document publishes none, so these are our own
defaults and every one of them is a flag of ``nucleus-bench target``. Pure: the clock is passed in as
monotonic nanoseconds, so the bucket is tested without sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.protocol.errors import UsageError
from bench.protocol.message import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS

#: HTTP requests per second per client IP. One target process on loopback serves well under this many
#: requests per second, so a benchmark never meets the limit unless it asks for it with the flag.
DEFAULT_HTTP_RATE = 20_000.0
#: Requests a client may make at once before the rate applies (the bucket's depth).
DEFAULT_HTTP_BURST = 20_000
#: A WebSocket that receives nothing (no events, no heartbeat) this long is closed (0 = never).
DEFAULT_IDLE_TIMEOUT_S = 300.0
#: Connections served at once; 0: as many as the open-file limit leaves room for (``connection_cap``).
DEFAULT_MAX_CONNECTIONS = 0
#: A request head (request line and headers) must arrive whole within this long of its first byte, and a
#: new connection's first head within this long of the connection (0 = no limit).
DEFAULT_HEADER_TIMEOUT_S = 10.0
#: An HTTP body must arrive whole within this long of its head (0 = no limit).
DEFAULT_BODY_TIMEOUT_S = 30.0
#: Messages a WebSocket may have sent whose acks are not out yet (waiting for their commit, or for the
#: peer to read); at this many the target stops reading from it. Deep enough that one busy connection
#: still fills a group commit.
DEFAULT_MAX_UNSENT_ACKS = 256
#: A WebSocket whose peer takes none of the bytes queued for it this long is closed with 1008.
DEFAULT_SLOW_PEER_TIMEOUT_S = 10.0
#: File descriptors kept out of the connection cap: standard streams, the store's files, the listening
#: socket and the event loop's own, and the refused connections still being answered (``gate.py``).
FD_RESERVE = 128

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit of the target. ``0`` turns the rate limit and the idle timeout off.

    Attributes:
        max_bytes: largest message or HTTP body, in bytes (HTTP 413, WebSocket close 1009).
        max_events: most events in one message (HTTP 413, WebSocket close 1009).
        http_rate: HTTP requests per second per client IP (429 with ``Retry-After``).
        http_burst: depth of each IP's token bucket.
        idle_timeout_s: a WebSocket silent this long is closed with 1001.
        max_connections: connections served at once (HTTP and WebSocket); more are answered 503. 0: as many
            as the open-file limit leaves room for.
        header_timeout_s: a request head open this long closes its connection (slowloris).
        body_timeout_s: an HTTP body still incomplete this long after its head: 408.
        max_unsent_acks: a WebSocket's messages whose acks are not out yet; at this many it is not read.
        slow_peer_timeout_s: a WebSocket whose peer reads none of its acks this long is closed with 1008.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_events: int = DEFAULT_MAX_EVENTS
    http_rate: float = DEFAULT_HTTP_RATE
    http_burst: int = DEFAULT_HTTP_BURST
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_unsent_acks: int = DEFAULT_MAX_UNSENT_ACKS
    slow_peer_timeout_s: float = DEFAULT_SLOW_PEER_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise UsageError(f"--max-message-bytes must be at least 1, not {self.max_bytes}")
        if self.max_events < 1:
            raise UsageError(f"--max-events must be at least 1, not {self.max_events}")
        if not math.isfinite(self.http_rate) or self.http_rate < 0:
            raise UsageError(f"--http-rate must be a non-negative number, not {self.http_rate}")
        if self.http_burst < 1:
            raise UsageError(f"--http-burst must be at least 1, not {self.http_burst}")
        for flag, value in (("--idle-timeout-s", self.idle_timeout_s),
                            ("--header-timeout-s", self.header_timeout_s),
                            ("--body-timeout-s", self.body_timeout_s)):
            if not math.isfinite(value) or value < 0:
                raise UsageError(f"{flag} must be a non-negative number, not {value}")
        if self.max_connections < 0:
            raise UsageError(f"--max-connections must be 0 (the open-file limit) or more, "
                             f"not {self.max_connections}")
        if self.max_unsent_acks < 1:
            raise UsageError(f"--max-unsent-acks must be at least 1, not {self.max_unsent_acks}")
        # No 0 = never here: a peer that reads nothing would hold its connection, and its idle close, forever.
        if not math.isfinite(self.slow_peer_timeout_s) or self.slow_peer_timeout_s <= 0:
            raise UsageError(f"--slow-peer-timeout-s must be a positive number of seconds, "
                             f"not {self.slow_peer_timeout_s}")


def connection_cap(max_connections: int, open_files: int) -> int:
    """The connections the target serves at once: ``max_connections`` (0: no cap of its own), never more
    than the open-file limit ``open_files`` leaves room for after ``FD_RESERVE``, and at least 1.

    Over the open-file limit the kernel refuses the ``accept`` and the client is reset; under the cap the
    target refuses with a reply it can read (``gate.py``).
    """
    room = max(1, open_files - FD_RESERVE)
    return room if max_connections == 0 else min(max_connections, room)


class TokenBuckets:
    """One token bucket per key (the client IP): ``rate`` tokens a second, at most ``burst`` saved up.

    Each request takes one token. A bucket starts full, so a client's first ``burst`` requests pass at once.
    """

    __slots__ = ("_buckets", "_burst", "_ns_per_token")

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0:
            raise ValueError("a token bucket needs a positive rate")
        self._ns_per_token = _NS / rate
        self._burst = float(burst)
        # key -> [tokens, last refill ns]; a list so the hot path updates it in place.
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str, now_ns: int) -> float:
        """Take one token for ``key``.

        Returns:
            0.0 when the request may go on, else the seconds until a token is there (for ``Retry-After``).
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self._burst, float(now_ns)]
        tokens = min(self._burst, bucket[0] + (now_ns - bucket[1]) / self._ns_per_token)
        bucket[1] = float(now_ns)
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) * self._ns_per_token / _NS


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` in whole seconds (RFC 9110 allows no fraction), never less than 1."""
    return str(max(1, math.ceil(wait_s)))
