"""Small key/value facts: last sync, last ingest, derivation version, high-water marks."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils


def get_state(db: sqlite_utils.Database, key: str, default: Any = None) -> Any:
    row = db.execute("SELECT value FROM state WHERE key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else default


def set_state(db: sqlite_utils.Database, key: str, value: Any) -> None:
    db.execute(
        "INSERT INTO state(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, json.dumps(value, sort_keys=True)],
    )
