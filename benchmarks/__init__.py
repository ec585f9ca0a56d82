"""Benchmarks of nucleus-bench's own parts: commands that print figures, never tests (see README.md here).

Not installed with the package: run them from the repository root, ``python -m benchmarks.<name>``.
"""
