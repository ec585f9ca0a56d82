"""The master's roll of a run's workers: who was given users, the most each ran, who was lost and when.

Pure: no gevent, no locust. The plugin samples Locust's ``MasterRunner.clients`` into ``observe`` twice a
second while the run is live (and while it waits for results at the end); ``running`` records a worker's
own ``nucleus_running`` message (sent as each of its users starts a device, before the device sends
anything), ``heard`` its heartbeats and ``report`` its ``nucleus_result``. The worker's own message is what
makes a worker expected, with its devices counted, even when it dies before a sample saw its users.

Why a roll of its own: Locust forgets a worker that stops sending heartbeats. It marks it ``missing``,
zeroes its users and, if it never comes back, deletes it a minute later; a worker that quits is deleted
at once. Waiting only for the workers Locust still lists (as the plugin once did) turned a worker killed
mid-run into a summary with no error, whose acked events were simply fewer than the target stored. Here
every worker that ran users stays expected until its result comes: one that goes missing or leaves
without it is a ``LostWorker`` in the summary, with when it was lost.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: What ``observe`` is told of one connected worker: (worker index, Locust says it is missing, its users).
ClientView = tuple[int, bool, int]

NO_HEARTBEAT = "stopped sending heartbeats"
LEFT = "left the master without sending its result"
NO_RESULT = "sent no result before the collection deadline"


@dataclass(frozen=True, slots=True)
class LostWorker:
    """A worker that ran users but whose result never reached the master.

    Attributes:
        worker: its Locust worker index.
        node: its Locust client id.
        users: the most users Locust was seen running on it at once.
        devices: the devices it said it had started, when last heard from (``nucleus_running``).
        last_heard_s: seconds from the run's start to its last heartbeat (negative: before the run
            started; None: never heard); a worker killed outright died within a second after it.
        lost_after_s: seconds from the run's start to when it was seen lost (Locust marks a worker
            missing 4 to 5 s after its last heartbeat).
        lost_at: the same moment in UTC.
        reason: how it was lost (``NO_HEARTBEAT``, ``LEFT`` or ``NO_RESULT``).
    """

    worker: int
    node: str
    users: int
    devices: int
    last_heard_s: float | None
    lost_after_s: float
    lost_at: datetime
    reason: str

    def to_json(self) -> dict[str, Any]:
        heard = round(self.last_heard_s, 3) if self.last_heard_s is not None else None
        return {"worker": self.worker, "node": self.node, "users": self.users, "devices": self.devices,
                "last_heard_after_s": heard,
                "lost_after_s": round(self.lost_after_s, 3), "lost_at": self.lost_at.isoformat(),
                "reason": self.reason}

    def phrase(self) -> str:
        heard = f"last heard {self.last_heard_s:.1f} s, " if self.last_heard_s is not None else ""
        return f"worker {self.worker} {self.reason} ({heard}lost {self.lost_after_s:.1f} s into the run)"


def _ran(seen: _Seen) -> bool:
    return seen.users_max > 0 or seen.devices > 0


@dataclass(slots=True)
class _Seen:
    index: int
    users_max: int = 0
    devices: int = 0
    heard_s: float | None = None
    lost_s: float | None = None
    reason: str = ""


class Roster:
    """Every worker seen in one run, for the master.

    Args:
        started: the run's start (UTC); ``observe``'s ``now_s`` counts seconds from it.
    """

    def __init__(self, started: datetime) -> None:
        self.started = started
        self._seen: dict[str, _Seen] = {}
        self._reported: set[str] = set()
        self.peak_users = 0

    def observe(self, clients: Mapping[str, ClientView], now_s: float) -> list[LostWorker]:
        """One look at the master's workers; returns the workers just seen lost (to say so at once).

        A worker counts as given users once it was seen running at least one. It is lost when Locust
        marks it missing or it leaves the list, its result not come; a missing worker whose heartbeats
        resume is expected again.
        """
        live = 0
        for node, (index, missing, users) in clients.items():
            seen = self._seen.setdefault(node, _Seen(index))
            seen.index = index
            seen.users_max = max(seen.users_max, users)
            if not missing:
                live += users
                seen.lost_s, seen.reason = None, ""
        self.note_users(live)
        fresh = []
        for node, seen in self._seen.items():
            if not _ran(seen) or node in self._reported or seen.lost_s is not None:
                continue
            view = clients.get(node)
            if view is None or view[1]:
                seen.lost_s, seen.reason = now_s, (LEFT if view is None else NO_HEARTBEAT)
                fresh.append(self._lost(node, seen))
        return fresh

    def running(self, node: str, index: int, devices: int) -> None:
        """The worker says it has started ``devices`` devices in this run (so its result is expected)."""
        seen = self._seen.setdefault(node, _Seen(index))
        seen.index = index if index >= 0 else seen.index
        seen.devices = max(seen.devices, devices)

    def heard(self, node: str, now_s: float) -> None:
        """A heartbeat came from the worker (Locust's ``heartbeat_sent``, once a second per worker)."""
        self._seen.setdefault(node, _Seen(-1)).heard_s = now_s

    def note_users(self, users: int) -> None:
        """Users running at once, as Locust counts them (also at each ``spawning_complete``)."""
        self.peak_users = max(self.peak_users, users)

    def report(self, node: str) -> None:
        """The worker's result came: it is no longer lost, whatever it looked like."""
        self._reported.add(node)

    def expected(self) -> set[str]:
        """The workers whose result the run waits for: every one that was seen running users."""
        return {node for node, seen in self._seen.items() if _ran(seen)}

    def settled(self, arrived: Collection[str], also: Collection[str] = ()) -> bool:
        """Nothing left to wait for: every expected worker (and every one in ``also``) reported or is lost."""
        return all(node in arrived or self._is_lost(node) for node in self.expected() | set(also))

    def _is_lost(self, node: str) -> bool:
        seen = self._seen.get(node)
        return seen is not None and seen.lost_s is not None

    def missing(self, arrived: Collection[str], now_s: float, also: Collection[str] = ()) -> list[LostWorker]:
        """The expected workers (and those in ``also``: live workers asked to drain) whose result did not
        come, in worker order; those not yet lost are lost now (the collection gave up waiting)."""
        out = []
        for node in sorted((self.expected() | set(also)) - set(arrived), key=self._index):
            seen = self._seen.setdefault(node, _Seen(-1))
            if seen.lost_s is None:
                seen.lost_s, seen.reason = now_s, NO_RESULT
            out.append(self._lost(node, seen))
        return out

    def _index(self, node: str) -> int:
        seen = self._seen.get(node)
        return seen.index if seen is not None else -1

    def _lost(self, node: str, seen: _Seen) -> LostWorker:
        lost_s = seen.lost_s if seen.lost_s is not None else 0.0
        return LostWorker(worker=seen.index, node=node, users=seen.users_max, devices=seen.devices,
                          last_heard_s=seen.heard_s,
                          lost_after_s=lost_s,
                          lost_at=self.started + timedelta(seconds=lost_s), reason=seen.reason)
