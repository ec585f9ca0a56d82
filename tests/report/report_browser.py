"""Open a page in Debian's headless Chromium, driven over the DevTools protocol on a pipe.

Chromium is started with ``--remote-debugging-pipe`` (it reads commands on its fd 3 and writes replies and
events on its fd 4, each a JSON text ended by a NUL byte), so no port is opened. ``open_pages`` loads each
file in a fresh tab with the network domain enabled, and returns every request the page made (any that
is not ``file:`` or ``data:`` left the file), whether each plot was laid out, and a PNG screenshot.
Chromium also runs with a proxy at a closed port and the loopback not bypassed: a request that did try
to leave would fail rather than reach anything.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timeouts import PROCESS_TIMEOUT_S, TIMEOUT_S

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1280, 2000

#: What the page reports of itself once loaded: its state and the laid-out size of each plot.
_PROBE = """JSON.stringify({
  readyState: document.readyState,
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  plots: [...document.querySelectorAll('figure.plot')].map(f => {
    const svg = f.querySelector('svg'); const r = svg ? svg.getBoundingClientRect() : null;
    return {id: f.id, top: r ? r.top : 0, left: r ? r.left : 0, width: r ? r.width : 0,
            height: r ? r.height : 0};
  }),
  images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length
})"""


def flags(profile: Path) -> list[str]:
    """Headless, no sandbox (root), nothing fetched of its own; a request of the page goes to a dead proxy."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}",
            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-pipe", "about:blank"]


def _above_four(fd: int) -> int:
    """``fd`` moved to a number above 10, so that putting the pipe ends on fds 3 and 4 cannot overwrite
    one of them (a fresh interpreter's first pipe is fds 3 and 4)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@dataclass
class Visit:
    """What one page load showed: the requests it made, its own report of its plots, the screenshot."""

    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    png: bytes = b""


class DevTools:
    """A Chromium process and its DevTools pipe: send a command, wait for its reply, keep the events."""

    def __init__(self, profile: Path) -> None:
        to_child, self._write = os.pipe()   # our commands -> its fd 3
        self._read, from_child = os.pipe()  # its fd 4 -> our replies and events
        to_child, from_child = _above_four(to_child), _above_four(from_child)
        # bash (dash takes one-digit fds only) puts the pipe ends on fds 3 and 4, then becomes Chromium
        script = f'exec "$0" "$@" 3<&{to_child} 4>&{from_child} {to_child}<&- {from_child}>&-'
        profile.mkdir(parents=True, exist_ok=True)
        self._log = profile / "chromium.log"  # a file, not a pipe: its chatter can never block it
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(["/bin/bash", "-c", script, str(CHROMIUM), *flags(profile)],
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


def _visit(browser: DevTools, page: Path) -> Visit:
    """Load ``page`` in a new tab of ``browser``: what it requested, its plots' layout, a screenshot."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for method in ("Network.enable", "Page.enable", "Runtime.enable"):
        browser.call(method, session=session)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session)
    browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
    browser.wait_event("Page.loadEventFired", session)
    probe = browser.call("Runtime.evaluate", {"expression": _PROBE, "returnByValue": True}, session)
    shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
    visit = Visit(state=json.loads(probe["result"]["value"]), png=base64.b64decode(shot["data"]))
    for event in browser.events:
        if event.get("sessionId") != session:
            continue
        if event.get("method") == "Network.requestWillBeSent":
            visit.requests.append(event["params"]["request"]["url"])
        elif event.get("method") == "Network.loadingFailed":
            visit.failed.append(str(event["params"].get("errorText")))
    browser.call("Target.closeTarget", {"targetId": target})
    return visit


def open_pages(pages: list[Path], profile: Path) -> list[Visit]:
    """Load each page in its own tab of one fresh headless Chromium (stopped at the end)."""
    browser = DevTools(profile)
    try:
        return [_visit(browser, page) for page in pages]
    finally:
        browser.close()
