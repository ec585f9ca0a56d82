"""The reference target: a Nucleus-compatible tracking server to benchmark the harness against.

Run it with ``nucleus-bench target`` (or ``python -m bench.target``), or from Python with
``bench.target.embedded.EmbeddedTarget``. It follows contract.md: WebSocket at ``/app/{appId}/track`` and
``/{appId}/``, HTTP ``POST /app/{appId}/track``, ``{"reportedIds": [...]}`` sent only once the events are
durably stored, duplicates acknowledged again and stored once, sessions and orphans counted, limits and
seeded faults as flags, and ``/stats``, ``/app/{appId}/stats`` and ``/app/{appId}/stored-ids`` for the
harness's reconciliation (api.md).

Floors, bottom up (a module imports only from those above it in this list)::

    limits, faults, ingest    pure: values in, values out; time passed in (monotonic ns)
    heads                     pure: where a connection's bytes stand among its request heads
    config                    the frozen configuration
    store                     MemoryStore, SqliteStore (group-commit writer thread)
    gate                      the listening socket's door: connection cap, header timeout
    app                       aiohttp handlers, the ROUTES table, life-cycle hooks
    server                    open store, listen, announce the URL, serve until a signal, drain, flush
    cli, __main__             flags -> TargetConfig -> server.serve
    embedded                  the target as a child process (stdlib only)

This package imports nothing heavy itself: ``bench/cli.py`` imports ``bench.target.cli`` to build --help.
"""
