"""The Locust user classes of a device fleet: one user is one device (bench.locust_glue.devices).

They are abstract: a locustfile subclasses one and adds nothing (``class WsDevice(WsDeviceUser): ...``).
Each user has one task, ``tick`` (send whatever its plan says is due), and a ``wait_time`` that sleeps
until its next intended send, so Locust's own scheduling executes the plan.

Locust request events: ``WS``/``HTTP`` rows named by event type (ack latency over WebSocket, delivery
delay over HTTP), ``WS connect``, and the failures ``rejected`` and ``lost``; the HTTP batches themselves
are ``POST /app/[appId]/track`` rows (request latency) recorded by ``FastHttpUser``'s client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, User, task
from locust.exception import StopUser

from bench.locust_glue import plugin
from bench.locust_glue.devices import IDLE_S, HttpDevice, HttpReply, WsDevice
from bench.protocol.errors import UsageError

logger = logging.getLogger(__name__)
_JSON = {"Content-Type": "application/json"}
#: The name of HTTP batch rows in Locust's statistics (the appId changes every run).
HTTP_ROW = "/app/[appId]/track"


def _reporter(user: User) -> Callable[[str, str, float, BaseException | None], None]:
    fire = user.environment.events.request.fire

    def report(request_type: str, name: str, ms: float, exc: BaseException | None) -> None:
        fire(request_type=request_type, name=name, response_time=ms, response_length=0, exception=exc,
             context={})

    return report


def _make(build: Callable[[], Any]) -> Any:
    """Build a user's device, or None with one log line when the run cannot give it one.

    The user's task then stops it (``StopUser`` from a task ends the user quietly; from ``on_start``
    Locust would log a traceback).
    """
    try:
        return build()
    except UsageError as exc:
        logger.error("nucleus-bench: %s", exc)
        return None


class WsDeviceUser(User):
    """One device streaming events over WebSocket (websocket-client, a receiver greenlet per device)."""

    abstract = True
    nucleus_transport = "ws"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.device: WsDevice | None = None

    def on_start(self) -> None:
        run = plugin.current_run()
        if run is not None:
            self.device = _make(lambda: WsDevice(run, str(self.host), _reporter(self)))

    @task
    def tick(self) -> None:
        if self.device is None:
            raise StopUser()
        self.device.tick()

    def wait_time(self) -> float:
        return self.device.wait_s() if self.device is not None else IDLE_S

    def on_stop(self) -> None:
        if self.device is not None:
            self.device.close()


class HttpDeviceUser(FastHttpUser):
    """One device posting condensed batches of events over HTTP (geventhttpclient)."""

    abstract = True
    nucleus_transport = "http"
    connection_timeout = 10.0
    network_timeout = 30.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.device: HttpDevice | None = None

    def on_start(self) -> None:
        run = plugin.current_run()
        if run is not None:
            self.device = _make(lambda: HttpDevice(run, str(self.host), self._post, _reporter(self)))

    def _post(self, body: bytes, handle: Callable[[HttpReply], str | None]) -> None:
        assert self.device is not None
        data: Any = body  # geventhttpclient sends bytes as they are; locust's annotation says str
        with self.client.post(self.device.url, data=data, headers=_JSON, name=HTTP_ROW,
                              catch_response=True) as resp:
            headers = resp.headers
            reply = HttpReply(status=int(resp.status_code or 0), body=bytes(resp.content or b""),
                              retry_after=headers.get("Retry-After") if headers is not None else None)
            problem = handle(reply)
            if problem is None:
                resp.success()
            else:
                resp.failure(problem)

    @task
    def tick(self) -> None:
        if self.device is None:
            raise StopUser()
        self.device.tick()

    def wait_time(self) -> float:
        return self.device.wait_s() if self.device is not None else IDLE_S
