"""The web UI's start form, checked before Locust starts anything: one line naming the bad field, or None.

Locust's ``POST /swarm`` copies the form's fields into the parsed options and starts the users; a bad
scenario path or appId was only found at ``test_start``, after the page had switched to a running test,
which then stopped at once with an empty table and the reason in the terminal. ``check_form`` runs the
checks the run itself would make, on the values the form carries, before Locust sees them:
bench.locust_glue.webui answers a bad form with ``{"success": false, "message": ...}``, which the page
shows under the form, and the state stays READY.

The checks: the options as the run will parse them (``GlueOptions.from_parsed``: appId, endpoint); the
scenario file read and validated; the host a base URL (or empty while the embedded target serves); the
results folder writable (or creatable). A field the form does not carry (Locust's Edit form) keeps the
value already parsed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.locust_glue.options import GlueOptions
from bench.protocol.errors import UsageError
from bench.scenario import load_scenario

#: The form's fields (Locust posts each option under its ``dest``) and how the message names them.
FIELDS = {"scenario": "--scenario", "app_id": "--app-id", "endpoint": "--endpoint",
          "results_dir": "--results-dir"}


def merged_options(parsed: Any, form: Mapping[str, str]) -> SimpleNamespace:
    """The parsed options as the form would leave them (Locust's own copy is not touched)."""
    values = dict(vars(parsed)) if parsed is not None else {}
    values.update({k: v for k, v in form.items() if k in FIELDS})
    return SimpleNamespace(**values)


def results_dir_problem(path: str) -> str | None:
    """Why a run could not write its results under ``path`` (None: it can, or can create it)."""
    target = Path(path).expanduser()
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"--results-dir {path}: {probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"--results-dir {path}: {probe} is not writable"
    return None


def check_form(parsed: Any, form: Mapping[str, str], *, embedded: bool,
               check_host: Callable[[str | None], object]) -> str | None:
    """The first problem with the start form's values, in one line; None when the run may start.

    Args:
        parsed: Locust's parsed options (``environment.parsed_options``), the values the form overrides.
        form: the posted form fields.
        embedded: the embedded reference target serves, so an empty host field is fine.
        check_host: raises UsageError for a host that is no base URL (``devices.check_base_url``: passed in,
            so that this module loads no network library).
    """
    for key in ("app_id", "endpoint"):  # the form's fields that the options' own parsing checks
        if key in form:
            try:
                GlueOptions.from_parsed(SimpleNamespace(**{key: form[key]}))
            except argparse.ArgumentTypeError as exc:
                return str(exc) if str(exc).startswith("--") else f"{FIELDS[key]}: {exc}"
    try:
        opts = GlueOptions.from_parsed(merged_options(parsed, form))
        load_scenario(opts.scenario)
    except argparse.ArgumentTypeError as exc:
        return str(exc)
    except UsageError as exc:
        return f"--scenario: {exc}"
    host = str(form.get("host", "") or "")
    if "host" in form and (host or not embedded):
        try:
            check_host(host or None)
        except UsageError as exc:
            return str(exc)
    return results_dir_problem(opts.results_dir)
