"""What the lore sync asks the database, and its marks (in the ``state`` table).

- ``lore_mark:<inbox URL>``: what `kvmarm sync` has stored of that inbox, as a received-time
  (lore's ``rt``) range: from where the first sync started to the high-water mark, the
  newest received time of the mail it has stored;
- ``git_mark:<absolute path>``: the last public-inbox commit ingested from that git mirror;
- ``last_sync``: what the last sync did (shown by `kvmarm status`).

Marks are keyed by source so pointing KVMARM_LORE_URL at another server starts afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from storage.messages import from_iso, iso
from storage.state import get_state, set_state

_CHUNK = 500


def stored_msgids(db: sqlite_utils.Database, msgids: Iterable[str]) -> set[str]:
    """The Message-IDs among ``msgids`` that are stored."""
    wanted = list(dict.fromkeys(msgids))
    found: set[str] = set()
    for i in range(0, len(wanted), _CHUNK):
        part = wanted[i : i + _CHUNK]
        sql = f"SELECT msgid FROM messages WHERE msgid IN ({', '.join('?' * len(part))})"
        found.update(row[0] for row in db.execute(sql, part))
    return found


def lowest_version(
    db: sqlite_utils.Database, subject_key: str, change_id: str | None = None
) -> int | None:
    """The lowest version of a series among stored postings (not replies), if any.

    A posting belongs to the series by its normalised title or its b4 change-id.
    """
    sql = """
        SELECT min(json_extract(subject_info, '$[1]')) FROM messages
        WHERE is_reply = 0
          AND (subject_key = :key OR (:change_id IS NOT NULL AND change_id = :change_id))
    """
    row = db.execute(sql, {"key": subject_key, "change_id": change_id}).fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class LoreMark:
    """Mail lore received from ``covered_from`` to ``high_water`` is stored (no gap)."""

    covered_from: datetime
    high_water: datetime


def get_lore_mark(db: sqlite_utils.Database, url: str) -> LoreMark | None:
    value = get_state(db, f"lore_mark:{url}")
    if not value:
        return None
    covered_from, high_water = from_iso(value["covered_from"]), from_iso(value["high_water"])
    assert covered_from is not None and high_water is not None
    return LoreMark(covered_from, high_water)


def set_lore_mark(db: sqlite_utils.Database, url: str, mark: LoreMark) -> None:
    value = {"covered_from": iso(mark.covered_from), "high_water": iso(mark.high_water)}
    set_state(db, f"lore_mark:{url}", value)


def get_git_mark(db: sqlite_utils.Database, path: str) -> str | None:
    value = get_state(db, f"git_mark:{path}")
    return value.get("commit") if value else None


def set_git_mark(db: sqlite_utils.Database, path: str, commit: str) -> None:
    set_state(db, f"git_mark:{path}", {"commit": commit})


def record_sync(db: sqlite_utils.Database, info: dict[str, Any]) -> None:
    """Store what the last sync did (``status --json`` shows it as ``last_sync``)."""
    set_state(db, "last_sync", info)
