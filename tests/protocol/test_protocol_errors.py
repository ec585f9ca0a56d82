"""One exception tree: every exception class of ``bench`` joins ``BenchError``, save the documented ones."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

from bench.protocol import errors

ROOT = Path(__file__).resolve().parents[2]
#: Outside the tree on purpose, as bench/protocol/errors.py's docstring says why.
OUTSIDE = {"bench/scenario.py:_Bad"}
_BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                       if isinstance(value, type) and issubclass(value, BaseException)}


def exception_classes() -> dict[str, list[str]]:
    """``path:Class`` -> its base names, for every class of ``bench`` with an exception among its bases."""
    tree_names = {name for name, value in vars(errors).items()
                  if isinstance(value, type) and issubclass(value, errors.BenchError)}
    found: dict[str, list[str]] = {}
    for path in sorted(ROOT.glob("bench/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
                if any(b in _BUILTIN_EXCEPTIONS or b in tree_names for b in bases):
                    found[f"{path.relative_to(ROOT)}:{node.name}"] = bases
    return found


def test_every_exception_class_joins_the_tree() -> None:
    """A class deriving from a builtin exception also derives from a class of the tree (or is documented)."""
    tree_names = {name for name, value in vars(errors).items()
                  if isinstance(value, type) and issubclass(value, errors.BenchError)}
    outside = {where for where, bases in exception_classes().items()
               if not set(bases) & tree_names and where != "bench/protocol/errors.py:BenchError"}
    assert outside == OUTSIDE


def test_server_failures_are_measurements_not_usage_errors() -> None:
    """What Locust is handed for a failed send is a ``ServerFailure``: not a usage or a protocol error."""
    for cls in (errors.EventRejected, errors.EventLost, errors.ConnectFailed):
        assert issubclass(cls, errors.ServerFailure)
        assert not issubclass(cls, errors.UsageError | errors.ProtocolError)
    assert issubclass(errors.TargetStartError, errors.BenchError)
