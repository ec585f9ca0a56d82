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
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_events: int = DEFAULT_MAX_EVENTS
    http_rate: float = DEFAULT_HTTP_RATE
    http_burst: int = DEFAULT_HTTP_BURST
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise UsageError(f"--max-message-bytes must be at least 1, not {self.max_bytes}")
        if self.max_events < 1:
            raise UsageError(f"--max-events must be at least 1, not {self.max_events}")
        if not math.isfinite(self.http_rate) or self.http_rate < 0:
            raise UsageError(f"--http-rate must be a non-negative number, not {self.http_rate}")
        if self.http_burst < 1:
            raise UsageError(f"--http-burst must be at least 1, not {self.http_burst}")
        if not math.isfinite(self.idle_timeout_s) or self.idle_timeout_s < 0:
            raise UsageError(f"--idle-timeout-s must be a non-negative number, not {self.idle_timeout_s}")


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
