"""The Locust side of nucleus-bench: device-fleet users, exact latencies across workers, CI gates.

Importing this package loads neither locust nor gevent: ``perf`` (run from ``make perf``), ``gates``,
``options``, ``runstate``, ``messages``, ``roster``, ``shadow``, ``detail``, ``live``, ``tab`` and ``form``
stay usable in an asyncio process. The modules that do (``plugin``, ``users``, ``devices``, ``wsclient``,
``collect``, ``joining``, ``webui``) are imported by the locustfiles only, because ``import locust``
monkey-patches the whole process with gevent (STYLE.md, point 8).

Modules:
    options: the custom command-line arguments (``--scenario``, ``--app-id``, ``--check-*`` ...).
    gates: ``--check-*`` thresholds evaluated on a summary.
    runstate: one test run in one Locust process: its spec, the plan, device numbering, the books.
    messages: the worker -> master result messages, their exact merge, and the summary header of a run.
    detail: latency per event type and rejections by reason, beside the ack tracker's books.
    live: the run's figures while it runs: worker snapshots, merged exactly on the master.
    tab: the rows of the web UI's Nucleus tab (pure), from summary-schema blocks.
    form: the web UI's start form, checked before Locust starts anything.
    roster: the master's roll of a run's workers: who ran users, who was lost and when.
    joining: who may join a run (same user classes, locustfile and version as the master).
    wsclient: one device's WebSocket connection (websocket-client) and its receiver greenlet.
    devices: ``WsDevice`` and ``HttpDevice``: a device following its plan, reporting to the tracker.
    users: ``WsDeviceUser`` and ``HttpDeviceUser``, the abstract user classes locustfiles subclass.
    collect: the drain at the end of a run, the once-a-second housekeeping, a worker's watch on its master.
    plugin: ``install()``, the Locust event listeners that tie everything together.
    webui: the Nucleus tab, honest sub-millisecond columns and the checked form in Locust's web UI.
    shadow: undoes Locust's shadowing of the standard ``http`` package by ``locustfiles/http.py``.
    perf: events per client CPU-second of Locust users (runs locust as a child process).
"""
