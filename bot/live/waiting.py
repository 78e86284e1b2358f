"""`/kvmarm waiting [person|all]`: the review queue — the latest versions with unreviewed
patches, longest waiting first, by the digest's rules (storage/queue.py).  For a person:
the versions they were sent (To/Cc of the cover, else the first patch) or whose earlier
version they reviewed, that they have not replied to and did not write."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from bot.links import lore_link
from bot.live.cards import _ranges
from bot.mrkdwn import escape_mrkdwn
from ingest.recipients import recipients
from storage.db import Database
from storage.live import posting_raw, repliers_of_version, reviewers_of_series
from storage.queue import WaitingVersion, waiting_versions
from storage.search import find_reviewers

MAX_SHOWN = 15


@dataclass(frozen=True, slots=True)
class Waiting:
    item: WaitingVersion
    why: str  # for a person: "To/Cc" | "reviewed v2"; "" for the whole queue


def waiting_for(db: Database, as_of: datetime, emails: Collection[str] | None) -> list[Waiting]:
    """The queue as of ``as_of``; with ``emails``, only what waits on that person."""
    queue = waiting_versions(db, as_of)
    if emails is None:
        return [Waiting(w, "") for w in queue]
    wanted = {e.casefold() for e in emails}
    out = []
    for w in queue:
        if w.author_email.casefold() in wanted or wanted & repliers_of_version(db, w.version_key):
            continue
        raw = posting_raw(db, w.version_key)
        if raw is not None and wanted & recipients(raw):
            out.append(Waiting(w, "To/Cc"))
        elif wanted & reviewers_of_series(db, w.series_id, w.version):
            out.append(Waiting(w, "reviewed an earlier version"))
    return out


def waiting_line(entry: Waiting, lore_url: str) -> str:
    w = entry.item
    title = escape_mrkdwn(w.title).replace("|", "¦")
    link = lore_link(lore_url, w.version_key)
    unreviewed = _ranges(list(w.unreviewed))
    why = f" · {entry.why}" if entry.why else ""
    return (
        f"*<{link}|{title}>* v{w.version} by {escape_mrkdwn(w.author_name or w.author_email)}\n"
        f"{w.days_waiting} days waiting · {w.reviewed}/{w.patches} patches reviewed "
        f"(not yet: {unreviewed}){why}"
    )


def waiting_lines(entries: list[Waiting], lore_url: str) -> list[str]:
    lines = [waiting_line(e, lore_url) for e in entries[:MAX_SHOWN]]
    if len(entries) > MAX_SHOWN:
        lines.append(f"… and {len(entries) - MAX_SHOWN} more.")
    return lines


def person_addresses(db: Database, who: str) -> tuple[str, list[str]]:
    """(display name, addresses) of a person named by address or name; ("", []) if unknown."""
    if "@" in who:
        address = who.strip("<>").casefold()
        return address, [address]
    found = find_reviewers(db, who, limit=1)
    if not found:
        return "", []
    return found[0].name, [found[0].email]
