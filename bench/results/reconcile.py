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

Plain stdlib HTTP (urllib): it runs once per transport after the load, never on the hot path.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

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
