"""Errors of the metrics package, placed in the one exception tree of ``bench.protocol.errors``.

::

    UsageError (bench.protocol.errors)
    └── MetricsFormatError     a metrics JSON document (histogram, series, tracker result) is wrong, or
                               two values of different layouts were merged

A result file is the user's input as soon as it is read back (``report``, ``compare``), so a broken or
mismatched one is printed as one line by the front door. It is also a ``ValueError`` for callers that
validate in-memory values.
"""

from __future__ import annotations

from typing import Any

from bench.protocol.errors import UsageError


class MetricsFormatError(UsageError, ValueError):
    """A metrics document is malformed, or two layouts differ (message names what and where)."""


def req_int(obj: dict[str, Any], key: str, where: str, *, minimum: int = 0) -> int:
    """``obj[key]`` as an int >= ``minimum`` (bools refused), or ``MetricsFormatError``."""
    value = obj.get(key)
    if type(value) is not int or value < minimum:
        raise MetricsFormatError(f"{where}: {key!r} must be an integer >= {minimum}, not {value!r}")
    return value


def req_dict(obj: Any, where: str) -> dict[str, Any]:
    """``obj`` when it is a JSON object, else ``MetricsFormatError``."""
    if not isinstance(obj, dict):
        raise MetricsFormatError(f"{where}: expected a JSON object, not {type(obj).__name__}")
    return obj


def req_int_list(obj: dict[str, Any], key: str, where: str) -> list[int]:
    """``obj[key]`` as a list of ints >= 0, or ``MetricsFormatError``."""
    value = obj.get(key)
    if not isinstance(value, list) or any(type(v) is not int or v < 0 for v in value):
        raise MetricsFormatError(f"{where}: {key!r} must be a list of integers >= 0")
    return value
