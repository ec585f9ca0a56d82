"""Where the reference target keeps events: SQLite with group commit (the default), or memory.

Theory of operation
-------------------
contract.md, "Acknowledgements": an id in ``reportedIds`` means *stored durably*. The transport therefore
writes a message's rows with ``Store.write`` and sends the ack only when the future it got back is done.

``SqliteStore`` does the SQLite work on one writer thread, off the event loop. The loop puts each message's
rows on a queue and goes on serving; the writer takes *everything* queued, inserts it in one transaction,
commits once (WAL, ``synchronous=FULL`` by default: the commit is on disk), then resolves the futures of all
those messages with one callback on the loop. That is group commit: under load one fsync covers the
events of many concurrent messages, so latency and durability hold together. Each message waits for its
own rows' commit and nothing else: a message with no rows gets no future, so another connection's failed
batch never fails it (a duplicate's ack waits for its original through ``ingest.Outcome.waits``).
Rows come encoded (``ingest.Row``): the writer does no JSON work, and nothing that cannot be encoded
reaches it.

Rows are inserted with multi-row ``INSERT ... VALUES`` statements of power-of-two sizes (all prepared
once): the sqlite3 module releases the GIL around each statement, and a statement per row would hand the
GIL to the busy loop thread and wait for it back thousands of times a second.

``MemoryStore`` keeps only the ids (for ``/app/{appId}/stored-ids``): it is for pure throughput runs.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, Literal, Protocol, cast

from bench.protocol.errors import UsageError
from bench.protocol.events import EventId
from bench.target.ingest import ROW_ID, Row, Snapshot

SyncMode = Literal["full", "normal", "off"]
#: A stored event by its duplicate key without the app (ingest.Key): (device, session, id, type, name, date ms
#: or None); a name stored as JSON bytes comes back as that JSON's text.
StoredEvent = tuple[str, int | None, EventId, str, str | None, float | None]
_COLUMNS = ("app", "type", "orphan", "missing", "event_ms", "received_ms", "device", "session", "id", "name",
            "user_id", "anon_id", "payload", "extra", "dated")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    app TEXT NOT NULL,          -- appId of the URL
    type TEXT NOT NULL,         -- wire type: init, event, error, userid, props, nucleus:view
    orphan INTEGER NOT NULL,    -- 1: its session never had an init (contract.md, "Sessions")
    missing INTEGER NOT NULL,   -- 1: lacks fields the document requires (Event.missing_required())
    event_ms REAL NOT NULL,     -- the event's date in epoch ms (the receive time when it had none)
    received_ms REAL NOT NULL,  -- when the target received it, epoch ms
    device TEXT NOT NULL,
    session INTEGER,
    id,                         -- no affinity: the JSON type of the id (integer or text) is kept
    name TEXT,                  -- name, user_id, anon_id: a string, or a BLOB holding the JSON of any other
    user_id TEXT,               -- value the client sent there (contract.md, "Messages": kept as it came)
    anon_id TEXT,
    payload BLOB,               -- the event's payload, JSON
    extra BLOB,                 -- init and error: platform, osVersion, totalRam, version, language... as JSON
    dated INTEGER NOT NULL      -- 1: event_ms is the event's own date; 0: it had none (the receive time)
)
"""
#: Files written before ``dated`` existed get it (rows of then read as dated: their keys may miss a re-send).
_ADD_DATED = "ALTER TABLE events ADD COLUMN dated INTEGER NOT NULL DEFAULT 1"
_NCOL = len(_COLUMNS)
#: Largest statement: 512 rows x 15 columns stays under SQLite's 32766 bound parameters.
_MAX_ROWS_LOG2 = 9
_INSERTS = {1 << k: "INSERT INTO events VALUES " + ",".join(["(" + ",".join("?" * _NCOL) + ")"] * (1 << k))
            for k in range(_MAX_ROWS_LOG2 + 1)}


class Store(Protocol):
    """What the transport needs of a store."""

    def write(self, rows: list[Row]) -> asyncio.Future[None] | None:
        """Store ``rows``. None: already durable. A future: durable once it is done (it may fail)."""

    async def stored_ids(self, app: str) -> list[EventId]:
        """The id of every stored event of ``app`` that has one."""

    async def stored_events(self, app: str) -> list[StoredEvent] | None:
        """Every stored event of ``app`` that has an id, by its duplicate key; None: not kept here."""

    def snapshot(self, *, recent_since_ms: float, max_recent: int, max_sessions: int,
                 max_devices: int) -> Snapshot:
        """What the store holds already: ``recent`` lists the keys of events received at or after
        ``recent_since_ms``, the latest ``max_recent`` of them; ``sessions`` the latest ``max_sessions``;
        ``devices`` at most ``max_devices``."""

    async def close(self) -> None:
        """Flush everything written so far and release the store."""


class MemoryStore:
    """Ids only, per app, in memory: for throughput runs where durability is not the question."""

    def __init__(self) -> None:
        self._ids: defaultdict[str, list[EventId]] = defaultdict(list)

    def write(self, rows: list[Row]) -> None:
        if rows:
            app = rows[0][0]  # one message's rows all belong to the app of its URL
            self._ids[app].extend([eid for row in rows if (eid := row[ROW_ID]) is not None])

    async def stored_ids(self, app: str) -> list[EventId]:
        return list(self._ids.get(app, ()))

    async def stored_events(self, app: str) -> list[StoredEvent] | None:
        return None  # ids only

    def snapshot(self, *, recent_since_ms: float, max_recent: int, max_sessions: int,
                 max_devices: int) -> Snapshot:
        return Snapshot()

    async def close(self) -> None:
        return None


class _Batch:
    __slots__ = ("future", "rows")

    def __init__(self, rows: list[Row], future: asyncio.Future[None]) -> None:
        self.rows = rows
        self.future = future


_STOP: Any = object()
_flatten = chain.from_iterable


def _resolve(batches: list[_Batch], errors: list[BaseException | None] | None) -> None:
    """On the loop: finish the futures of one commit, in queue order (``errors``: one per batch, or None)."""
    for index, batch in enumerate(batches):
        future = batch.future
        error = errors[index] if errors is not None else None
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


_NONE_ADAPTER = cast(Callable[[None], None], {}.get)
_BYTES_ADAPTER = cast(Callable[[bytes], bytes], bytes.__bytes__)


def _connect(path: str, sync: SyncMode) -> sqlite3.Connection:
    # sqlite3 binds int, float, str and bytearray directly, but looks every other type up in its adapter
    # protocol (__adapt__, __conform__, raising and clearing AttributeErrors): for None and bytes that
    # costs more than the insert itself. A registered adapter short-cuts the lookup, and these two are C
    # functions that change nothing: {}.get(None) is None, bytes.__bytes__(b) is b.
    sqlite3.register_adapter(type(None), _NONE_ADAPTER)
    sqlite3.register_adapter(bytes, _BYTES_ADAPTER)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               cached_statements=len(_INSERTS) + 8)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync.upper()}")
        conn.execute(_SCHEMA)
        if "dated" not in {r[1] for r in conn.execute("PRAGMA table_info(events)")}:
            conn.execute(_ADD_DATED)
    except sqlite3.Error as exc:
        raise UsageError(f"--store {path}: cannot open the SQLite file: {exc}") from None
    return conn


_I64 = range(-(1 << 63), 1 << 63)


def _widen(row: Row) -> Any:
    session, eid = row[7], row[ROW_ID]
    if (type(session) is int and session not in _I64) or (type(eid) is int and eid not in _I64):
        wide = list(row)
        wide[7], wide[ROW_ID] = _as_blob(session), _as_blob(eid)
        return tuple(wide)
    return row


def _as_blob(value: Any) -> Any:
    return str(value).encode() if type(value) is int and value not in _I64 else value


def _narrow(value: Any) -> Any:
    """A value read back from the ``id`` or ``session`` column: a BLOB there is a wide integer."""
    return int(value) if type(value) is bytes else value


class SqliteStore:
    """SQLite in WAL mode, written by one group-commit thread. ``start`` binds it to the running loop."""

    def __init__(self, path: str, *, sync: SyncMode = "full") -> None:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise UsageError(f"--store {path}: the directory {directory} does not exist")
        self.path = path
        self._conn = _connect(path, sync)
        self._queue: queue.SimpleQueue[_Batch] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0

    def snapshot(self, *, recent_since_ms: float, max_recent: int, max_sessions: int,
                 max_devices: int) -> Snapshot:
        conn = self._conn
        counts = conn.execute("SELECT app, type, count(*), sum(orphan), sum(missing) FROM events "
                              "GROUP BY app, type").fetchall()
        started = ("SELECT app, device, session, max(event_ms) AS last FROM events "
                   "GROUP BY app, device, session HAVING max(type = 'init') = 1")
        session_counts = conn.execute(f"SELECT app, count(*) FROM ({started}) GROUP BY app").fetchall()
        sessions = conn.execute(f"{started} ORDER BY last DESC LIMIT ?", (max_sessions,)).fetchall()
        devices = conn.execute("SELECT DISTINCT app, device FROM events LIMIT ?", (max_devices,)).fetchall()
        # The fields of the duplicate keys, as ingest.accept reads them: (app, device, session, id, type,
        # name, date), the latest first (rowid order is arrival order).
        recent = conn.execute("SELECT app, device, session, id, type, name, "
                              "CASE WHEN dated THEN event_ms END FROM events "
                              "WHERE id IS NOT NULL AND received_ms >= ? ORDER BY rowid DESC LIMIT ?",
                              (recent_since_ms, max_recent)).fetchall()
        return Snapshot(tuple(counts), tuple(session_counts),
                        tuple((a, d, _narrow(s), t) for a, d, s, t in sessions), tuple(devices),
                        tuple((a, d, _narrow(s), _narrow(i), k, n, t) for a, d, s, i, k, n, t in recent))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    def write(self, rows: list[Row]) -> asyncio.Future[None] | None:
        if not rows:
            # Nothing to store (a heartbeat, an empty batch, all duplicates): nothing to wait for. Never
            # another message's future: its failure is not this message's (the duplicates of a pending
            # original wait for it through ingest.Outcome.waits).
            return None
        assert self._loop is not None, "SqliteStore.start() was not called"
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Batch(rows, future))
        return future

    def _run(self) -> None:
        """The writer thread: take all that is queued, insert, commit once, resolve, repeat."""
        get, get_nowait = self._queue.get, self._queue.get_nowait
        stopping = False
        while not stopping:
            batches = [get()]
            while True:
                try:
                    batches.append(get_nowait())
                except queue.Empty:
                    break
            if _STOP in batches:  # close(): commit what came before it, then end
                batches = [b for b in batches if b is not _STOP]
                stopping = True
            if not batches:
                continue
            errors = self._commit_group(batches)
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(_resolve, batches, errors)
            except RuntimeError:  # the loop is gone (the process is exiting): nothing waits any more
                return
        self._conn.close()

    def _commit_group(self, batches: list[_Batch]) -> list[BaseException | None] | None:
        """One transaction for all ``batches``; None when it committed, else each batch's own outcome."""
        try:
            self._commit(list(_flatten(batch.rows for batch in batches)))
            return None
        except Exception as exc:  # handed to the waiters: their acks are not sent
            if len(batches) == 1:
                return [exc]
        # One bad batch must not fail the messages it happened to share a commit with: retry each alone.
        errors: list[BaseException | None] = []
        for batch in batches:
            try:
                self._commit(batch.rows)
                errors.append(None)
            except Exception as exc:  # handed to that message's waiter: its ack is not sent
                errors.append(exc)
        return errors

    def _commit(self, rows: Sequence[Row]) -> None:
        try:
            self._insert(rows)
        except OverflowError:
            # An id or sessionId beyond SQLite's 64-bit INTEGER (JSON allows them; orjson reads up to
            # 2^64 - 1): store those as BLOBs of their digits, which stored_ids turns back into ints.
            self._insert([_widen(row) for row in rows])

    def _insert(self, rows: Sequence[Row]) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            done, left = 0, len(rows)
            for k in range(_MAX_ROWS_LOG2, -1, -1):
                size = 1 << k
                sql = _INSERTS[size]
                while left >= size:
                    conn.execute(sql, list(_flatten(rows[done:done + size])))
                    done += size
                    left -= size
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.commits += 1

    async def stored_ids(self, app: str) -> list[EventId]:
        def query() -> list[EventId]:
            reader = sqlite3.connect(self.path, check_same_thread=False)
            try:
                return [_narrow(r[0]) for r in reader.execute(
                    "SELECT id FROM events WHERE app = ? AND id IS NOT NULL", (app,))]
            finally:
                reader.close()

        return await asyncio.get_running_loop().run_in_executor(None, query)

    async def stored_events(self, app: str) -> list[StoredEvent] | None:
        def query() -> list[StoredEvent]:
            reader = sqlite3.connect(self.path, check_same_thread=False)
            try:
                return [(d, _narrow(s), _narrow(i), k, n.decode() if type(n) is bytes else n, t)
                        for d, s, i, k, n, t in reader.execute(
                            "SELECT device, session, id, type, name, CASE WHEN dated THEN event_ms END "
                            "FROM events WHERE app = ? AND id IS NOT NULL", (app,))]
            finally:
                reader.close()

        return await asyncio.get_running_loop().run_in_executor(None, query)

    async def close(self) -> None:
        """Wait for every queued batch to commit, then stop the writer and close the file."""
        thread = self._thread
        if thread is None:
            self._conn.close()
            return
        self._queue.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        self._thread = None
