"""Locust: a device fleet streaming events over WebSocket, one Locust user per device.

    locust -f locustfiles/ws.py                       # web UI; starts the embedded target without --host
    locust -f locustfiles/ws.py --headless -u 50 -r 10 -t 1m --scenario scenarios/smoke.toml \\
        --host http://127.0.0.1:8000 --check-p99-ms 250 --check-lost-ratio 0

Each user follows its device's plan from the scenario (``--scenario``, default
scenarios/desktop-fleet.toml): init, events, heartbeats, errors, userid and props. Exact µs latencies are
merged over every worker and written to ``results/<UTC time>-locust-<scenario>/summary.json``.
The logic lives in bench.locust_glue; this file only declares the user.
"""

from bench.locust_glue import plugin
from bench.locust_glue.users import WsDeviceUser

plugin.install()


class WsDevice(WsDeviceUser):
    """One desktop device on the WebSocket endpoint."""
