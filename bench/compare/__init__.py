"""Compare two runs (or two sets of repeated runs): per metric, a verdict with confidence, not a difference
of two numbers.

``nucleus-bench compare BASELINE NEW`` reads the result files of both sides (bench.results.read), resamples
their seconds (a seeded block bootstrap, bench.compare.stats) and, for each metric of each transport, says
whether NEW regressed beyond the allowance, improved, did not change, or cannot be told apart
(bench.compare.verdict). Import the submodules directly.

Modules:
    stats: the bootstrap over per-second samples and its percentile intervals (pure numpy).
    samples: what a side holds for one transport: per-second samples and whole-run figures.
    verdict: the metrics, their directions and allowances, and the verdict of an interval.
    report: a whole comparison, rendered as a terminal table and as Markdown.
    cli: the subcommand.
"""
