"""nucleus-bench: load generator and benchmark harness for Nucleus-compatible tracking APIs."""

__version__ = "0.1.0"
