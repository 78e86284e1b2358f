"""SQL for Slack Events API deliveries already handled (table ``slack_events``, m026), so a
retried delivery is recognised — also after a restart."""

from __future__ import annotations

from datetime import datetime, timedelta

from storage.db import Database, transaction
from storage.messages import iso

KEEP = timedelta(days=1)  # Slack retries within minutes; a day is plenty


def first_delivery(db: Database, event_id: str, now: datetime) -> bool:
    """Record ``event_id``; True the first time, False when it was recorded before.

    Atomic (INSERT OR IGNORE): of two concurrent deliveries exactly one is first.  Rows older
    than ``KEEP`` are dropped on the way.
    """
    with transaction(db):
        cur = db.execute(
            "INSERT OR IGNORE INTO slack_events (event_id, received_at) VALUES (?, ?)",
            [event_id, iso(now)],
        )
        db.execute("DELETE FROM slack_events WHERE received_at < ?", [iso(now - KEEP)])
    return cur.rowcount == 1
