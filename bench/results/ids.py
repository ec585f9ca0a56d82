"""The appId a run's events go to when none is given: one fresh id per transport, so that reconciliation
can tell each transport's stored events apart (contract.md, "Endpoints")."""

from __future__ import annotations

import secrets


def new_app_id() -> str:
    """A fresh appId shaped like real ones: 24 lowercase hex characters (contract.md, "Endpoints")."""
    return secrets.token_hex(12)
