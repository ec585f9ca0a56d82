"""Reconciliation: did the events the server acknowledged really get stored?

contract.md, "Acknowledgements": an id in ``reportedIds`` means *stored durably*. After a run the
harness asks the server what it stored and compares it with what it was told:

- **reference target** (api.md, "bench.target"): ``GET /app/{appId}/stats`` and
  ``GET /app/{appId}/stored-ids`` give the stored ids themselves, so the comparison is exact, id by id:
  ``acked_not_stored`` (phantom acks: ids reported but not in the store), ``stored_not_acked`` (stored,
  never reported: dropped acks) and ``duplicates_stored`` (rows beyond one per id).
- **--verify-url URL** (any server): the URL answers the stored count as JSON, in one of the shapes
  ``parse_stored_count`` accepts. Only the net difference between acked and stored can be told then.
- otherwise reconciliation is not done, and the summary says so.

Client profiles draw ids at random (contract.md, "Acknowledgements": 1..10,000 in the Python module), so
ids collide across devices and within sessions and cannot tell stored events apart. For a fleet with
clients the comparison is by event: ``GET /app/{appId}/stored-ids?by=event`` gives each stored event's
duplicate key (device, session, id, type, name, date), the plan gives the same key of every event the
server acknowledged (``bench.fleet.Plan.identities``), and ``compare_events`` compares the two multisets.
``collisions`` then says how many acknowledged events shared their id with another one of their session,
and how many of those are stored exactly once each.

Plain stdlib HTTP (urllib): it runs once per transport after the load, never on the hot path.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.fleet import Plan
from bench.protocol.errors import UsageError
from bench.protocol.events import EventId

FETCH_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the server stored, compared with what it acknowledged. ``None``: could not be told."""

    done: bool
    method: str  # "reference" | "verify-url" | "none"
    stored: int | None = None
    acked_not_stored: int | None = None
    stored_not_acked: int | None = None
    duplicates_stored: int | None = None
    note: str = ""
    #: by event (``compare_events``): acked events sharing their id, and whether each is stored once
    collisions: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def not_done(note: str) -> Reconciliation:
    return Reconciliation(done=False, method="none", note=note)


def compare_ids(stored_ids: Iterable[EventId], stored_total: int | None,
                reported: Iterable[EventId]) -> Reconciliation:
    """Exact comparison of the stored ids with every id the server reported.

    Args:
        stored_ids: the ids in the store (``stored-ids``); repeats count as duplicates.
        stored_total: rows stored (``stats.stored.total``); rows beyond the distinct ids are duplicates.
        reported: every id seen in a ``reportedIds`` (repeats allowed).
    """
    stored_list = list(stored_ids)
    stored = set(stored_list)
    acked = set(reported)
    rows = max(stored_total if stored_total is not None else 0, len(stored_list))
    return Reconciliation(
        done=True, method="reference", stored=len(stored),
        acked_not_stored=len(acked - stored), stored_not_acked=len(stored - acked),
        duplicates_stored=rows - len(stored),
    )


def compare_counts(stored: int, acked: int) -> Reconciliation:
    """Count-only comparison (``--verify-url``): the net difference, with no way to see both sides."""
    return Reconciliation(
        done=True, method="verify-url", stored=stored,
        acked_not_stored=max(0, acked - stored), stored_not_acked=max(0, stored - acked),
        duplicates_stored=None, note="count only: acked_not_stored and stored_not_acked are net differences",
    )


def parse_stored_count(doc: Any, where: str) -> int:
    """The stored count in a ``--verify-url`` reply.

    Accepted shapes: a bare number ``1234``; ``{"stored": 1234}``; ``{"count": 1234}``; the reference
    target's stats ``{"stored": {"total": 1234, ...}, ...}``.

    Raises:
        UsageError: none of those shapes (one line naming the URL).
    """
    value: Any = doc
    if isinstance(doc, dict):
        value = doc.get("stored", doc.get("count"))
        if isinstance(value, dict):
            value = value.get("total")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UsageError(f"--verify-url {where}: expected a count (n, {{\"stored\": n}}, {{\"count\": n}} "
                         f"or {{\"stored\": {{\"total\": n}}}}), got {json.dumps(doc)[:80]}")
    return int(value)


def fetch_json(url: str, *, insecure: bool = False, token: str | None = None,
               timeout_s: float = FETCH_TIMEOUT_S) -> Any:
    """GET a JSON document.

    Raises:
        OSError: the server could not be reached or answered an HTTP error (``urllib.error.URLError``).
        ValueError: the body is not JSON.
    """
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    context = None
    if url.startswith("https:") and insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(request, timeout=timeout_s, context=context) as resp:
        return json.loads(resp.read())


def unreachable(exc: OSError) -> str | None:
    """Why the server could not be reached at all (``"connection refused"``, a timeout...), or None when it
    answered (an HTTP error status is an answer: the server is up, and not the reference target)."""
    if isinstance(exc, urllib.error.HTTPError):
        return None
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(getattr(reason, "strerror", None) or reason)


def reference_stats(base_url: str, app_id: str, *, insecure: bool = False, token: str | None = None,
                    timeout_s: float = FETCH_TIMEOUT_S) -> dict[str, Any] | str | None:
    """The reference target's ``/app/{appId}/stats``; None when the server answered but is not one; a
    one-line reason (``"unreachable: connection refused"``) when it could not be reached."""
    try:
        doc = fetch_json(f"{base_url.rstrip('/')}/app/{app_id}/stats", insecure=insecure, token=token,
                         timeout_s=timeout_s)
    except OSError as exc:
        why = unreachable(exc)
        return f"unreachable: {why}" if why is not None else None
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("stored"), dict) and "total" in doc["stored"]:
        return doc
    return None


def reconcile_reference(base_url: str, app_id: str, reported: Iterable[EventId], *,
                        insecure: bool = False, token: str | None = None,
                        timeout_s: float = FETCH_TIMEOUT_S) -> Reconciliation:
    """Exact reconciliation against the reference target (api.md: ``stats`` and ``stored-ids``); each
    request waits at most ``timeout_s`` for its answer."""
    stats = reference_stats(base_url, app_id, insecure=insecure, token=token, timeout_s=timeout_s)
    if isinstance(stats, str):
        return not_done(f"{base_url} {stats}")
    if stats is None:
        return not_done(f"{base_url} did not answer /app/{app_id}/stats like the reference target")
    try:
        doc = fetch_json(f"{base_url.rstrip('/')}/app/{app_id}/stored-ids", insecure=insecure, token=token,
                         timeout_s=timeout_s)
    except (OSError, ValueError) as exc:
        return not_done(f"stored-ids could not be read: {exc}")
    ids = doc.get("ids") if isinstance(doc, dict) else None
    if not isinstance(ids, list):
        return not_done("stored-ids did not answer {\"ids\": [...]}")
    total = stats["stored"].get("total")
    result = compare_ids(ids, int(total) if isinstance(total, int) else None, reported)
    dup = stats.get("duplicates")
    note = f"server saw {dup} duplicate deliveries (stored once)" if isinstance(dup, int) and dup else ""
    return Reconciliation(**{**result.to_json(), "note": note})


def verify_url_for(url: str, app_id: str) -> str:
    """``--verify-url`` with ``{appId}`` replaced by the run's app id (so one flag serves every transport)."""
    return url.replace("{appId}", app_id)


def fetch_stored_count(url: str, *, insecure: bool = False, timeout_s: float = FETCH_TIMEOUT_S) -> int | str:
    """The stored count a ``--verify-url`` answers, or a one-line reason it could not be read."""
    try:
        doc = fetch_json(url, insecure=insecure, timeout_s=timeout_s)
    except (OSError, ValueError) as exc:
        return f"--verify-url {url} failed: {exc}"
    try:
        return parse_stored_count(doc, url)
    except UsageError as exc:
        return str(exc)


def reconcile_counts(before: int | str, after: int | str, acked: int) -> Reconciliation:
    """Count-only reconciliation from the stored count before and after one transport's run.

    Taking the difference keeps counts right when the app already held events (a real server's app).
    """
    for value in (before, after):
        if isinstance(value, str):
            return not_done(value)
    assert isinstance(before, int) and isinstance(after, int)
    return compare_counts(after - before, acked)


def compare_events(stored: Iterable[Sequence[Any]], acked: Iterable[Sequence[Any]]) -> Reconciliation:
    """Exact comparison, event by event, of what the target stored with what it acknowledged.

    Args:
        stored: each stored event's (device, session, id, type, name, date ms or None), as
            ``stored-ids?by=event`` answers.
        acked: the same key of each distinct event acknowledged (``Plan.identities``).

    ``collisions``: ``same_session``, acknowledged events that share their id with another acknowledged
    event of their device and session; ``same_session_stored_once``, of those, the ones stored exactly once
    (and not merged); ``across_fleet``, acknowledged events whose id another acknowledged event has anywhere
    in the run (what an id-only comparison would confuse); ``merged``, distinct events the key cannot tell
    apart (same device, session, id, type, name and date), which the target rightly stores once.
    """
    rows = Counter(tuple(row) for row in stored)
    events = Counter(tuple(key) for key in acked)
    stored_keys, acked_keys = set(rows), set(events)
    per_session = Counter((k[0], k[1], k[2]) for k in events.elements())
    per_id = Counter(k[2] for k in events.elements())
    colliding = [k for k in events.elements() if per_session[k[0], k[1], k[2]] > 1]
    collisions = {
        "same_session": len(colliding),
        "same_session_stored_once": sum(1 for k in colliding if rows[k] == 1 and events[k] == 1),
        "across_fleet": sum(1 for k in events.elements() if per_id[k[2]] > 1),
        "merged": sum(n - 1 for n in events.values() if n > 1),
    }
    return Reconciliation(
        done=True, method="reference-events", stored=len(stored_keys),
        acked_not_stored=len(acked_keys - stored_keys), stored_not_acked=len(stored_keys - acked_keys),
        duplicates_stored=sum(rows.values()) - len(stored_keys), collisions=collisions)


def reconcile_events(base_url: str, app_id: str, acked: Iterable[Sequence[Any]], *, insecure: bool = False,
                     token: str | None = None, timeout_s: float = FETCH_TIMEOUT_S) -> Reconciliation:
    """``compare_events`` against the reference target's ``stored-ids?by=event`` (client fleets)."""
    try:
        doc = fetch_json(f"{base_url.rstrip('/')}/app/{app_id}/stored-ids?by=event", insecure=insecure,
                         token=token, timeout_s=timeout_s)
    except (OSError, ValueError) as exc:
        return not_done(f"stored-ids?by=event could not be read: {exc}")
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, list) and len(e) == 6 for e in events):
        return not_done("stored-ids?by=event did not answer {\"events\": [[device, session, id, type, name, "
                        "date], ...]}")
    result = compare_events(events, acked)
    try:  # what the target saw besides: re-sends it stored once, and its events by type (an error storm)
        stats = fetch_json(f"{base_url.rstrip('/')}/app/{app_id}/stats", insecure=insecure, token=token,
                           timeout_s=timeout_s)
    except (OSError, ValueError):
        return result
    dup = stats.get("duplicates") if isinstance(stats, dict) else None
    by_type = stats.get("stored", {}).get("by_type") if isinstance(stats, dict) else None
    notes = [f"server saw {dup} duplicate deliveries (stored once)"] if isinstance(dup, int) and dup else []
    if isinstance(by_type, dict) and by_type:
        notes.append("stored by type: " + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())))
    return dataclasses.replace(result, note="; ".join(notes))


def reconcile_fleet(plan: Plan, base_url: str, app_id: str, reported: Iterable[EventId], *,
                    insecure: bool = False, token: str | None = None,
                    timeout_s: float = FETCH_TIMEOUT_S) -> Reconciliation:
    """The reference reconciliation that fits ``plan``'s fleet: by event when it has client devices (their
    ids collide; ``reported`` holds their keys, ``Plan.identities`` turns them into events), else by id."""
    if plan.has_clients:
        return reconcile_events(base_url, app_id, plan.identities(reported), insecure=insecure, token=token,
                                timeout_s=timeout_s)
    return reconcile_reference(base_url, app_id, reported, insecure=insecure, token=token,
                               timeout_s=timeout_s)
