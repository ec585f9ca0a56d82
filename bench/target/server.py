"""Run the reference target: open the store, listen, announce the URL, serve until a signal, drain, flush."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable

from aiohttp import web

from bench.protocol.errors import UsageError
from bench.target.app import TargetState, build_app, install_request_log
from bench.target.config import TargetConfig
from bench.target.gate import Gate, GatedSite
from bench.target.limits import Limits, connection_cap
from bench.target.store import MemoryStore, SqliteStore, Store

_WILDCARDS = {"", "0.0.0.0", "::"}

#: The cyclic garbage collector's first threshold in the target (Python's default is 700). The target keeps
#: a few thousand rows alive between a message and its commit; at 700 net allocations the collector ran
#: every dozen messages and walked them each time: 3-4 % of the target's CPU at full speed, against under
#: 0.5 % at 10,000 (docs/performance.md, 2026-12-06). Little lives in cycles here, so little waits longer.
GC_THRESHOLD = 10_000


def open_store(config: TargetConfig) -> Store:
    """The store ``--store`` names. Raises ``UsageError`` when the SQLite file cannot be opened."""
    if config.in_memory:
        return MemoryStore()
    return SqliteStore(config.store, sync=config.sync)


def base_url(host: str, port: int) -> str:
    """``http://HOST:PORT`` a client can connect to (loopback for a wildcard address)."""
    if host in _WILDCARDS:
        host = "127.0.0.1" if host != "::" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _cap(limits: Limits) -> int:
    """The connection cap (``limits.connection_cap``) under this process's open-file limit; says so on
    standard error when the limit lowers an explicit ``--max-connections``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_files = sys.maxsize if soft == resource.RLIM_INFINITY else soft
    cap = connection_cap(limits.max_connections, open_files)
    if limits.max_connections > cap:
        print(f"nucleus-bench target: --max-connections {limits.max_connections} is more than the open-file "
              f"limit ({soft}) leaves room for: serving at most {cap} at once", file=sys.stderr, flush=True)
    return cap


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when standard input reaches end of file (the parent process is gone)."""

    def watch() -> None:
        # os.read on the raw descriptor: a buffered reader's lock would still be held by this daemon
        # thread when the interpreter finalizes, which aborts the process.
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


async def serve(config: TargetConfig, announce: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully.

    The store is opened (and, for an existing SQLite file, read into the stats) before ``announce`` gets
    the base URL, so a client that reads the URL finds the target ready.

    Raises:
        UsageError: the store cannot be opened or the address cannot be bound.
    """
    loop = asyncio.get_running_loop()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    store = open_store(config)
    state = TargetState(config, store, time.monotonic_ns())
    since_ms = (time.time() - config.dedup_window_s) * 1000.0
    state.ingest.restore(store.snapshot(recent_since_ms=since_ms, max_recent=config.dedup_max_keys // 2,
                                        max_sessions=config.max_sessions // 2,
                                        max_devices=config.max_devices + 1))
    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False,
                           shutdown_timeout=config.shutdown_timeout_s)
    uninstall_log = install_request_log(state)
    await runner.setup()
    try:
        assert runner.server is not None  # set up
        state.gate = gate = Gate(runner.server, cap=_cap(config.limits),
                                 header_timeout_s=config.limits.header_timeout_s)
        site = GatedSite(runner, config.host, config.port, gate, backlog=4096)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if config.stop_on_stdin_eof:
            _watch_stdin(loop, stop)
        announce(base_url(config.host, runner.addresses[0][1]))
        await stop.wait()
    finally:
        await runner.cleanup()
        uninstall_log()
