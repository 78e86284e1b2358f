"""Find the shared real-mail data (DESIGN.md, "Tests and data")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data_dir() -> Path:
    """$KVMARM_SHARED_DATA or <repo>/../shared/data; skip if absent, but fail under CI=true."""
    path = Path(os.environ.get("KVMARM_SHARED_DATA", _DEFAULT))
    if not path.is_dir():
        message = f"shared test data not found at {path} (set KVMARM_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
