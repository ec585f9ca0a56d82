"""Capacity search: the most load a target serves within a latency objective, no loss, and who the limit is.

``nucleus-bench capacity SCENARIO --slo-p99 250ms`` steps the load up (devices of the scenario, or its fleet's
events/s), each step a whole ``run_transport`` against the same target, narrows in on the knee and reports,
per transport, the highest load that met the objective, the step where it broke and why (latency, loss,
errors, or the generator itself: then the generator is the limit and no server figure is given).

- ``search``: the strategy, pure (steps so far in, next load or the knee out);
- the verdict of each step is ``bench.results.verdict`` (shared with ``run``);
- ``axis``: what a load means in devices and events/s, pure;
- ``report``: ``capacity.json`` (schema ``nucleus-bench/capacity/1``) and the terminal's lines and table;
- ``app``: the driver (target, steps, files); ``cli``: the flags.
"""
