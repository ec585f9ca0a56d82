"""Locust: a device fleet posting condensed HTTP batches, one Locust user per device.

    locust -f locustfiles/http.py                     # web UI; starts the embedded target without --host
    locust -f locustfiles/http.py --headless -u 50 -r 10 -t 1m --scenario scenarios/smoke.toml \\
        --host http://127.0.0.1:8000 --check-lost-ratio 0

Each user keeps its device's events in memory and posts them every ``http_flush`` of the scenario (30 s
by default, as the Tracking API advises), backs off on 429 by Retry-After, and records both the request
latency and each event's delivery delay (created -> acknowledged). The logic lives in bench.locust_glue.
"""

from bench.locust_glue.shadow import restore_stdlib

# Locust registers this file as module "http", hiding the standard library's http package from every
# import that follows; put the standard one back before anything imports it.
restore_stdlib("http")

from bench.locust_glue import plugin  # noqa: E402
from bench.locust_glue.users import HttpDeviceUser  # noqa: E402

plugin.install()


class HttpDevice(HttpDeviceUser):
    """One desktop device on the HTTP batch endpoint."""
