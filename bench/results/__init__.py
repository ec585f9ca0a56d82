"""Results: what a run measured, how runs merge, and the files and lines that report them.

The floor below both front ends: ``nucleus-bench run`` (bench.runner, the asyncio hot path) and the Locust
plugin (bench.locust_glue) build the same ``TransportResult``, merge it the same way and write the same
``summary.json`` (schema in results/README.md) through these modules. Nothing here runs an event loop, a
greenlet or a socket during the load; reconciliation alone speaks HTTP, once, after it. Import the
submodules directly.

Modules:
    transport: ``TransportResult``, one transport's measurements, and its pure, exact merge (``merge_all``).
    saturation: the limits past which the generator could not keep its plan, and the reasons it gives.
    verdict: a run judged against an objective (``run --slo-p99``, ``[objective]``, each capacity step).
    reconcile: what the server stored, compared with what it acknowledged.
    summary: the shape of summary.json: ``RunHeader`` (the header both front ends write), the
        per-transport block and ``build_summary``.
    files: the run directory and every file in it (summary, histograms, series, results, meta).
    terminal: the end-of-run lines and the side-by-side table.
    ids: a fresh appId for a transport's events.
    shards: a shard's identity (``run --shard I/N``), and the checks and exact merge of a run's shards.
    merge_cli: ``nucleus-bench merge DIR...``, which writes the merged run directory.
"""
