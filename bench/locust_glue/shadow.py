"""Undo Locust's shadowing of a standard-library package by a locustfile of the same name.

Locust imports a locustfile under its file name and registers it in ``sys.modules`` before running it,
so ``locustfiles/http.py`` becomes ``sys.modules["http"]``: every later ``import http`` (websocket-client's
handshake, ``http.cookies``...) would get the locustfile instead of the standard library's package.
``restore_stdlib("http")``, called first thing in such a locustfile, puts the standard package back;
Locust keeps its own reference to the locustfile module, so nothing of Locust's is affected.

Stdlib only: it runs before anything else in the locustfile.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types


def _already_loaded(name: str, shadow: types.ModuleType | None) -> types.ModuleType | None:
    """The standard package as modules imported earlier hold it (``import http.client`` binds ``http``)."""
    for module in list(sys.modules.values()):
        candidate = getattr(module, name, None)
        if (isinstance(candidate, types.ModuleType) and candidate is not shadow
                and candidate.__name__ == name and hasattr(candidate, "__path__")):
            return candidate
    return None


def _load_fresh(name: str) -> types.ModuleType:
    """Import the standard package from the standard library's own directory (it was never loaded)."""
    spec = importlib.machinery.PathFinder.find_spec(name, [os.path.dirname(os.__file__)])
    if spec is None or spec.loader is None:
        raise ImportError(f"the standard library has no package {name!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def restore_stdlib(name: str) -> None:
    """Make ``sys.modules[name]`` the standard library's package again (no-op when it already is)."""
    current = sys.modules.get(name)
    if current is not None and hasattr(current, "__path__"):
        return
    original = _already_loaded(name, current)
    if original is not None:
        sys.modules[name] = original
    else:
        _load_fresh(name)
