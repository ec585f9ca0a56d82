"""The report of one run or several: one self-contained HTML file and a Markdown summary beside it.

``nucleus-bench report RESULT...`` reads only the files a run left behind (results/README.md), never the
live run, so it works on a run of the hot path, a Locust run, a run that stopped early, or a folder copied
from another machine. The parts, from the files up:

Modules:
    load: the one I/O of reading: a run directory into ``RunFiles`` (summary and results through
        bench.results.read, meta, capacity), every bad file one line naming it.
    model: pure: ``RunFiles`` into a ``Report`` (headline figures, verdicts, spectra, capacity curves).
    tables: pure: the report's tables as rows of strings, shared by the HTML and the Markdown.
    plots: the plots, drawn with matplotlib (no pyplot, no display) into inline SVG.
    html: the HTML page, one file: CSS and SVG inline, nothing fetched, no script.
    markdown: report.md, the summary for CI job pages.
    write: the library call: directories in, report.html and report.md out.
    cli: ``nucleus-bench report``.
"""
