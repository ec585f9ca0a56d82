"""Debian's headless Chromium, driven over the DevTools protocol on a pipe (shared by the browser tests).

Chromium is started with ``--remote-debugging-pipe`` (it reads commands on its fd 3 and writes replies and
events on its fd 4, each a JSON text ended by a NUL byte), so no port is opened. It also runs with a proxy
at a closed port: a request to anywhere but the loopback (or, ``loopback_too``, anywhere at all) fails
rather than reach anything.

``DevTools`` is the browser process and its pipe; ``Tab`` one page in it, with the few things the tests
ask of a page: navigate, evaluate an expression, wait until an expression is true, a screenshot, and the
console errors and uncaught exceptions seen so far.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from timeouts import PROCESS_TIMEOUT_S, TIMEOUT_S

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1280, 2000
#: How often ``Tab.wait_for`` asks the page again.
POLL_S = 0.1


def flags(profile: Path, *, loopback_too: bool = True, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    """Headless, no sandbox (root), nothing fetched of its own; a request of the page goes to a dead proxy
    (the loopback's too when ``loopback_too``, else the loopback is reached directly)."""
    proxy = ["--proxy-server=127.0.0.1:9"] + (["--proxy-bypass-list=<-loopback>"] if loopback_too else [])
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}",
            *proxy, f"--window-size={width},{height}", "--remote-debugging-pipe", "about:blank"]


def _above_four(fd: int) -> int:
    """``fd`` moved to a number above 10, so that putting the pipe ends on fds 3 and 4 cannot overwrite
    one of them (a fresh interpreter's first pipe is fds 3 and 4)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class DevTools:
    """A Chromium process and its DevTools pipe: send a command, wait for its reply, keep the events."""

    def __init__(self, profile: Path, *, loopback_too: bool = True) -> None:
        to_child, self._write = os.pipe()   # our commands -> its fd 3
        self._read, from_child = os.pipe()  # its fd 4 -> our replies and events
        to_child, from_child = _above_four(to_child), _above_four(from_child)
        # bash (dash takes one-digit fds only) puts the pipe ends on fds 3 and 4, then becomes Chromium
        script = f'exec "$0" "$@" 3<&{to_child} 4>&{from_child} {to_child}<&- {from_child}>&-'
        profile.mkdir(parents=True, exist_ok=True)
        self._log = profile / "chromium.log"  # a file, not a pipe: its chatter can never block it
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(["/bin/bash", "-c", script, str(CHROMIUM),
                                          *flags(profile, loopback_too=loopback_too)],
                                         pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                err = self._log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium closed its DevTools pipe:\n{err}")
            self._buf += chunk
        text, _, self._buf = self._buf.partition(b"\0")
        message: dict[str, Any] = json.loads(text)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        """Send one command; its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        """The first event ``method`` of ``session``, kept or still to come."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self.events.append(self._message(deadline))

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)


class Tab:
    """One page of a ``DevTools`` browser, with the network, page, runtime and log domains on."""

    def __init__(self, browser: DevTools, *, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.browser = browser
        self.target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session: str = browser.call("Target.attachToTarget",
                                         {"targetId": self.target, "flatten": True})["sessionId"]
        for method in ("Network.enable", "Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.browser.call(method, params, self.session)

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self.browser.events = [e for e in self.browser.events
                               if not (e.get("method") == "Page.loadEventFired" and e.get("sessionId") ==
                                       self.session)]
        self.call("Page.navigate", {"url": url})
        self.browser.wait_event("Page.loadEventFired", self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values come back as they are)."""
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True})
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:200]}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        """Ask the page ``expression`` until it is truthy (returned), or fail after ``PROCESS_TIMEOUT_S``."""
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(POLL_S)
        raise AssertionError(f"timed out after {PROCESS_TIMEOUT_S:g} s waiting for {what}")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries of this page so far."""
        out = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails'].get('text')} "
                           f"{params['exceptionDetails'].get('exception', {}).get('description', '')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                  for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return out

    def close(self) -> None:
        self.browser.call("Target.closeTarget", {"targetId": self.target})
