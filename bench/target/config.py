"""The reference target's configuration: one frozen value built by the CLI from its flags."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from bench.protocol.errors import UsageError
from bench.target.faults import FaultConfig
from bench.target.ingest import (
    DEFAULT_DEDUP_MAX_KEYS,
    DEFAULT_DEDUP_WINDOW_S,
    DEFAULT_MAX_APPS,
    DEFAULT_MAX_DEVICES,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_TIMEOUT_S,
)
from bench.target.limits import Limits

#: The SQLite file used when ``--store`` is not given (in the working directory).
DEFAULT_STORE = "nucleus-target.sqlite3"
#: ``--store memory``: ids only, in memory.
MEMORY = "memory"
DEFAULT_PORT = 8000
SYNC_MODES = ("full", "normal", "off")
#: How long shutdown waits for open connections to take their acks and close before it cuts them.
DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """Everything ``nucleus-bench target`` needs to serve.

    Attributes:
        host: address to listen on.
        port: TCP port; 0 picks a free one (the first line of output says which).
        store: path of the SQLite file, or ``"memory"``.
        sync: SQLite ``synchronous`` mode: ``full`` (each commit on disk before its acks), ``normal``
            (WAL: survives a crash of the process, not of the machine) or ``off``.
        limits: size caps, HTTP rate limit, idle timeout.
        faults: fault injection (all off by default).
        stats_token: when set, the stats endpoints want ``Authorization: Bearer <token>`` from anyone;
            when not, they answer loopback clients only.
        dedup_window_s: a re-sent event is known as a duplicate for at least this long.
        session_timeout_s: silence that ends a session (contract.md, "Sessions": 30 minutes).
        max_apps: most appIds tracked; a request naming another one is refused (HTTP 503, WebSocket
            close 1013).
        max_sessions: most sessions remembered; the least recently used are forgotten past it.
        dedup_max_keys: most duplicate keys remembered; past half of it the window turns over early.
        max_devices: most devices counted in all; past it the ``devices`` counters are lower bounds.
        stop_on_stdin_eof: stop (gracefully) when standard input closes: a child of ``EmbeddedTarget``
            then never outlives its parent.
        shutdown_timeout_s: on SIGINT/SIGTERM, how long open connections get to take the acks they are owed
            and close; those still open then are cut (a peer that does not read never holds shutdown up).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    store: str = DEFAULT_STORE
    sync: Literal["full", "normal", "off"] = "full"
    limits: Limits = field(default_factory=Limits)
    faults: FaultConfig = field(default_factory=FaultConfig)
    stats_token: str | None = None
    dedup_window_s: float = DEFAULT_DEDUP_WINDOW_S
    session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
    max_apps: int = DEFAULT_MAX_APPS
    max_sessions: int = DEFAULT_MAX_SESSIONS
    dedup_max_keys: int = DEFAULT_DEDUP_MAX_KEYS
    max_devices: int = DEFAULT_MAX_DEVICES
    stop_on_stdin_eof: bool = False
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port must be between 0 and 65535, not {self.port}")
        if self.sync not in SYNC_MODES:
            raise UsageError(f"--sync must be one of {', '.join(SYNC_MODES)}, not {self.sync!r}")
        if not self.store:
            raise UsageError("--store must name a file or be 'memory'")
        for flag, value in (("--dedup-window-s", self.dedup_window_s),
                            ("--session-timeout-s", self.session_timeout_s),
                            ("--shutdown-timeout-s", self.shutdown_timeout_s)):
            if not math.isfinite(value) or value <= 0:
                raise UsageError(f"{flag} must be a positive number of seconds, not {value}")
        for flag, count, least in (("--max-apps", self.max_apps, 1), ("--max-sessions", self.max_sessions, 2),
                                   ("--dedup-max-keys", self.dedup_max_keys, 2),
                                   ("--max-devices", self.max_devices, 1)):
            if count < least:
                raise UsageError(f"{flag} must be at least {least}, not {count}")
        if self.stats_token == "":
            raise UsageError("--stats-token must not be empty")

    @property
    def in_memory(self) -> bool:
        return self.store == MEMORY
