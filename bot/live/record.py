"""After every ingest: record the files new patches touch, then turn new facts into events."""

from __future__ import annotations

from datetime import datetime

from ingest.diffpaths import paths_of_diff
from storage.db import Database
from storage.live import record_events, save_paths, unindexed_patch_diffs

PATH_BATCH = 512


def index_paths(db: Database) -> int:
    """Store the touched files of every patch not indexed yet; returns how many."""
    batch: list[tuple[str, tuple[str, ...]]] = []
    count = 0
    for msgid, diff in list(unindexed_patch_diffs(db)):
        batch.append((msgid, paths_of_diff(diff)))
        if len(batch) >= PATH_BATCH:
            save_paths(db, batch)
            count, batch = count + len(batch), []
    if batch:
        save_paths(db, batch)
        count += len(batch)
    return count


def record_live_facts(db: Database, now: datetime) -> int:
    """Paths, then events; returns the number of new deliverable events."""
    index_paths(db)
    return record_events(db, now)
