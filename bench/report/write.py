"""The report as a library call: run directories in, report.html and report.md written, their paths out."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from bench.protocol.errors import UsageError
from bench.report import html, markdown
from bench.report.load import read_run
from bench.report.model import build_report
from bench.report.plots import draw

HTML_NAME = "report.html"


def default_out(run_dirs: Sequence[Path]) -> Path:
    """One run: its own directory's report.html; several: report.html in the current directory."""
    return run_dirs[0] / HTML_NAME if len(run_dirs) == 1 else Path(HTML_NAME)


def _write(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all (a reader never sees half a report); missing folders are made."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UsageError(f"{path}: the report cannot be written there: {exc.strerror or exc}") from None


def write_report(run_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None
                 ) -> tuple[Path, Path]:
    """Read the runs, build the report, write the HTML page and the Markdown summary beside it.

    Args:
        run_dirs: run directories, reported side by side in this order.
        out: the HTML file (default ``default_out``); the summary goes beside it, suffix ``.md``.

    Returns:
        The paths of the HTML page and the Markdown summary.

    Raises:
        UsageError: a run directory or one of its files is missing or broken, or the report cannot be
            written (one line naming which).
    """
    dirs = [Path(d) for d in run_dirs]
    html_path = Path(out) if out is not None else default_out(dirs)
    if html_path.suffix.lower() == ".md":
        raise UsageError(f"--out {html_path}: name the HTML file; the Markdown summary is written beside it")
    md_path = html_path.with_suffix(".md")
    report = build_report([read_run(d) for d in dirs])
    sources = [str(d) for d in dirs]
    page = html.render(report, draw(report), sources)
    summary = markdown.render(report, html_path.name, sources)
    _write(html_path, page)
    _write(md_path, summary)
    return html_path, md_path
