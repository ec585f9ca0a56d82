"""Open a report in Debian's headless Chromium (tests/support/chromium.py drives it over its DevTools pipe).

``open_pages`` loads each file in a fresh tab with the network domain enabled, and returns every request the
page made (any that is not ``file:`` or ``data:`` left the file), whether each plot was laid out, and a PNG
screenshot. Chromium runs with a proxy at a closed port and the loopback not bypassed: a request that did
try to leave would fail rather than reach anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chromium import CHROMIUM, HEIGHT, WIDTH, DevTools, Tab

__all__ = ["CHROMIUM", "HEIGHT", "WIDTH", "Visit", "open_pages"]

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


@dataclass
class Visit:
    """What one page load showed: the requests it made, its own report of its plots, the screenshot."""

    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    png: bytes = b""


def _visit(browser: DevTools, page: Path) -> Visit:
    """Load ``page`` in a new tab of ``browser``: what it requested, its plots' layout, a screenshot."""
    tab = Tab(browser)
    tab.navigate(page.resolve().as_uri())
    visit = Visit(state=json.loads(tab.evaluate(_PROBE)), png=tab.screenshot())
    for event in browser.events:
        if event.get("sessionId") != tab.session:
            continue
        if event.get("method") == "Network.requestWillBeSent":
            visit.requests.append(event["params"]["request"]["url"])
        elif event.get("method") == "Network.loadingFailed":
            visit.failed.append(str(event["params"].get("errorText")))
    tab.close()
    return visit


def open_pages(pages: list[Path], profile: Path) -> list[Visit]:
    """Load each page in its own tab of one fresh headless Chromium (stopped at the end)."""
    browser = DevTools(profile)
    try:
        return [_visit(browser, page) for page in pages]
    finally:
        browser.close()
