"""The HTML report in a real browser: Debian's headless Chromium renders it whole, and no request leaves it.

Skipped, saying why, where /usr/bin/chromium is missing (``make test`` installs Debian's ``chromium`` where
apt-get can).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from report_browser import HEIGHT, WIDTH, Visit, open_pages
from report_helpers import write_known_run

from bench.cli import main
from bench.report.plots import PALETTE

PLOT_IDS = {"plot-spectrum", "plot-timeline", "plot-transports", "plot-capacity"}


def _pixels(visit: Visit) -> np.ndarray:
    image = np.asarray(imread(io.BytesIO(visit.png), format="png"))
    assert image.shape[:2] == (HEIGHT, WIDTH)
    return image[:, :, :3]


def _share_of(region: np.ndarray, colour: str) -> float:
    """The share of ``region``'s pixels within a small distance of ``colour`` (#rrggbb)."""
    rgb = np.array([int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5)])
    return float((np.abs(region - rgb).max(axis=2) < 0.08).mean())


def test_report_renders_whole_and_requests_nothing(tmp_path: Path, chromium: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The report of a run with a capacity search loads with its own file as its only request, lays out its
    four plots, and its screenshot is no blank page: a dark header, the columns' colours drawn in the
    spectrum's box. A page that does name an address is caught by the same check (its request is seen, and
    fails at the dead proxy), so the check can fail."""
    run_dir = write_known_run(tmp_path / "run", capacity=True)
    assert main(["report", str(run_dir)]) == 0
    capsys.readouterr()
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><html><body><img src="http://192.0.2.1/x.png">'
                     '<img src="https://example.invalid/y.png"></body></html>')
    report_page = run_dir / "report.html"
    visit, control = open_pages([report_page, leaky], tmp_path / "profile")

    assert visit.requests == [report_page.resolve().as_uri()] and visit.failed == []
    assert visit.state["readyState"] == "complete" and visit.state["images"] == 0
    assert visit.state["overflow"] <= 0  # nothing wider than the window: no sideways scrolling
    plots = {p["id"]: p for p in visit.state["plots"]}
    assert set(plots) == PLOT_IDS
    assert all(p["width"] > 600 and p["height"] > 150 for p in plots.values()), plots

    pixels = _pixels(visit)
    assert pixels.std() > 0.1 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    assert pixels[:40].mean() < 0.3  # the dark header band
    box = plots["plot-spectrum"]
    top, left = int(box["top"]), int(box["left"])
    spectrum = pixels[top:min(HEIGHT, top + int(box["height"])), left:left + int(box["width"])]
    drawn = _share_of(spectrum, PALETTE[0]) + _share_of(spectrum, PALETTE[1])
    assert drawn > 0.001  # the curves are drawn, not only laid out (0.004 here; 0 with empty SVGs)

    assert [u for u in control.requests if u.startswith("http")] == ["http://192.0.2.1/x.png",
                                                                     "https://example.invalid/y.png"]
    assert len(control.failed) == 2
