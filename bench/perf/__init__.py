"""Benchmarks of nucleus-bench's own parts (``make perf-target``, ``make perf``): figures, never tests."""
