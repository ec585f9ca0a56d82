"""Export a run's histograms to formats other tools read.

``nucleus-bench export RESULT --hdr`` writes the latency histograms of a run in the HdrHistogram interval log
format (``.hlog``), so HistogramLogAnalyzer, HistogramLogProcessor and the HdrHistogram libraries read our
runs.
Reads only result files (bench.results.read). Import the submodules directly.

Modules:
    hdr: our histograms as HdrHistogram ones, and the log's lines (pure).
    cli: the subcommand.
"""
