"""After every ingest: turn new facts into events (storage/live.py).  The files a patch
touches, for ``path:`` subscriptions, are the ones the parser stored with it
(``messages.paths``)."""

from __future__ import annotations

from datetime import datetime

from storage.db import Database
from storage.live import record_events


def record_live_facts(db: Database, now: datetime) -> int:
    """Record the events of new facts; returns the number of new deliverable events."""
    return record_events(db, now)
