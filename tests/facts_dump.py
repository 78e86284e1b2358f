"""Every derived table of a database, for comparing an incremental derivation with a full
one (tests/test_incremental.py, tests/test_poison.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.sync.pipeline import rebuild_derived
from storage.db import Database, open_db
from storage.views import series_json, threads_json

_DUMPS = {
    "threads": "SELECT * FROM threads",
    "series": "SELECT * FROM series",
    "versions": "SELECT * FROM versions",
    "patches": "SELECT * FROM patches",
    "trailers": "SELECT * FROM trailers",
    "memberships": "SELECT * FROM memberships",
    "set_aside": "SELECT msgid, reason FROM derive_set_aside",
    "search": "SELECT kind, ref, title, people FROM search_fts",
    "components": "SELECT msgid, comp FROM derive_components",
    "keys": "SELECT key, comp, strong FROM derive_keys",
    # what the next incremental derivation starts from must be what a full one leaves
    "drafts": "SELECT * FROM derive_drafts",
    "chain_keys": "SELECT key, draft FROM derive_chain_keys",
    "pull_candidates": "SELECT * FROM derive_pull_candidates",
    "pull_entries": "SELECT * FROM derive_pull_entries",
    "pull_marks": "SELECT * FROM derive_pull_marks",
    "appliers": "SELECT * FROM derive_appliers",
}


def dump(db: Database) -> dict[str, list[str] | list[dict]]:
    out: dict[str, list[str] | list[dict]] = {
        name: sorted(map(repr, db.execute(sql).fetchall())) for name, sql in _DUMPS.items()
    }
    out["series_json"] = series_json(db)
    out["threads_json"] = threads_json(db)
    return out


def assert_same_as_full(db: Database, path: Path, label: str = "") -> int:
    """Every table of ``db`` (at ``path``) equals what a full derivation of the same stored
    mail makes, derived in a copy; returns the number of series (asserted > 0)."""
    db.execute("PRAGMA wal_checkpoint(FULL)")
    copy = path.with_name(path.stem + "-full.db")
    shutil.copy(path, copy)
    full = open_db(copy)
    total = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert rebuild_derived(full, full=True) == total
    incremental, complete = dump(db), dump(full)
    assert len(complete["series_json"]) > 0
    for name in complete:
        assert incremental[name] == complete[name], f"{label}: {name} differs"
    full.close()
    copy.unlink()
    return len(complete["series_json"])
