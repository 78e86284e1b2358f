"""The review queue and idle series, as of a moment: one home for both rules.

Both depend on time, so they are computed when read, from an ``as_of`` the caller passes
(the period end for the digest, now for answers and ``series --json``), never stored.  Only
facts dated before ``as_of`` count: mail, versions, trailers and status evidence dated later
are left out, so the queue of an old week reads the same later.

- **idle**: a series whose latest version (as of ``as_of``) had no mail — its posting or a
  reply in its thread — for ≥ ``IDLE_DAYS`` and is not applied, pulled, dropped or
  superseded as of then is ``idle since <date of that version's last mail>``.
- **waiting**: the latest version of a series, posted ≥ ``WAIT_DAYS`` before ``as_of``, not
  done as of then (see ``DONE_STATES``), not a pull request, not idle (mail in its thread
  within the last ``IDLE_DAYS``), and with patches that carry no counted
  Reviewed/Acked/Tested-by (a trailer counts when it is not ``mismatch``ed, its scope was
  resolved to patches, and it was given in a mail dated before ``as_of``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlite_utils

from ingest.records import REVIEW_KINDS
from storage.messages import iso

IDLE_DAYS = 90
WAIT_DAYS = 7
# A version in one of these states (as of ``as_of``) waits for nobody and is never idle.
DONE_STATES = frozenset({"applied", "pulled", "superseded", "dropped"})


@dataclass(frozen=True, slots=True)
class WaitingVersion:
    """One version in the review queue as of a moment."""

    series_id: str
    title: str
    version: int
    version_key: str  # Message-ID of its cover (or first patch)
    author_name: str
    author_email: str
    date: str  # when this version was posted (ISO UTC)
    last_mail: str  # the newest mail in this version's thread before as_of
    status: str  # its status as of as_of (new, changes-requested, partially-applied, …)
    patches: int  # patches of this version we hold
    unreviewed: tuple[int, ...]  # patch numbers without a counted review trailer
    days_waiting: int  # whole days from ``date`` to as_of

    @property
    def reviewed(self) -> int:
        return self.patches - len(self.unreviewed)

    def as_dict(self) -> dict:
        return {
            "series_id": self.series_id,
            "title": self.title,
            "version": self.version,
            "version_key": self.version_key,
            "author": {"name": self.author_name, "email": self.author_email},
            "date": self.date,
            "last_mail": self.last_mail,
            "status": self.status,
            "patches": self.patches,
            "reviewed": self.reviewed,
            "unreviewed": list(self.unreviewed),
            "days_waiting": self.days_waiting,
        }


def idle_since(last_mail: str | None, state: str, as_of: datetime) -> str | None:
    """The date (YYYY-MM-DD) a series went quiet, when it is idle as of ``as_of``; else None.

    ``last_mail`` is its newest mail dated before ``as_of``; ``state`` its latest version's
    status as of then (see ``status_as_of``).
    """
    if not last_mail or state in DONE_STATES:
        return None
    if _at(last_mail) > as_of - timedelta(days=IDLE_DAYS):
        return None
    return last_mail[:10]


def status_as_of(state: str, evidence: Sequence[dict], as_of: datetime) -> str:
    """A version's status as it stood at ``as_of``: a decision whose every evidence is dated
    at or after ``as_of`` had not happened yet (the version was ``new`` then).

    A stored ``idle`` (derivation's view as of the end of the data) is not a decision: it
    reads as what lies under it — ``changes-requested`` when such evidence is dated before
    ``as_of``, else ``new`` — and idleness as of ``as_of`` is this module's rule.
    """
    if state == "idle":  # derivation marks only new or changes-requested versions idle
        asked = [e for e in evidence if e.get("kind") != "idle"]
        if asked and status_as_of("changes-requested", asked, as_of) == "changes-requested":
            return "changes-requested"
        return "new"
    if state == "new" or not evidence:
        return state
    cut = iso(as_of) or ""
    if any((e.get("date") or "") < cut for e in evidence if e.get("date")):
        return state
    if all(e.get("date") for e in evidence):
        return "new"
    return state  # undated evidence: keep what we know


def last_mails(
    db: sqlite_utils.Database, version_keys: Sequence[str], as_of: datetime
) -> dict[str, str]:
    """Version key → date of the newest mail in its thread (its posting and the replies to
    it) dated before ``as_of``; versions without one are absent."""
    out: dict[str, str] = {}
    for part in _chunks(list(dict.fromkeys(version_keys))):
        sql = f"""SELECT m.version_key, max(g.date) FROM memberships m
                  JOIN messages g ON g.msgid = m.msgid
                  WHERE m.version_key IN ({_marks(part)}) AND g.date < ?
                  GROUP BY m.version_key"""
        out.update((key, last) for key, last in db.execute(sql, [*part, iso(as_of)]) if last)
    return out


def idle_series(
    db: sqlite_utils.Database, series_ids: Sequence[str], as_of: datetime
) -> dict[str, str]:
    """Series id → ``idle since`` date, for those of ``series_ids`` whose latest version (as
    of ``as_of``) is idle then."""
    latest = _latest_versions(db, series_ids, as_of)
    last = last_mails(db, [v["key"] for v in latest.values()], as_of)
    out: dict[str, str] = {}
    for sid, v in latest.items():
        state = status_as_of(v["status"], v["evidence"], as_of)
        since = idle_since(last.get(v["key"]), state, as_of)
        if since:
            out[sid] = since
    return out


def waiting_versions(
    db: sqlite_utils.Database,
    as_of: datetime,
    *,
    series_ids: Sequence[str] | None = None,
    min_days: int = WAIT_DAYS,
) -> list[WaitingVersion]:
    """The review queue as of ``as_of``, longest waiting first (module docstring: the rule).

    ``series_ids`` limits it to those series (default: every series with mail in the last
    ``IDLE_DAYS``).
    """
    ids = _active_series(db, as_of) if series_ids is None else list(series_ids)
    latest = _latest_versions(db, ids, as_of)
    last = last_mails(db, [v["key"] for v in latest.values()], as_of)
    fresh = as_of - timedelta(days=IDLE_DAYS)
    cutoff = iso(as_of - timedelta(days=min_days)) or ""
    candidates = {
        sid: v
        for sid, v in latest.items()
        if v["date"]
        and v["date"] <= cutoff
        and v["key"] in last
        and _at(last[v["key"]]) > fresh
        and v["category"] != "PULL"
        and status_as_of(v["status"], v["evidence"], as_of) not in DONE_STATES
    }
    keys = [v["key"] for v in candidates.values()]
    slots = patch_numbers(db, keys)
    reviewed = reviewed_patches(db, keys, as_of)
    authors = _authors(db, sorted(candidates))
    out = []
    for sid, v in candidates.items():
        numbers = slots.get(v["key"], [])
        unreviewed = tuple(n for n in numbers if n not in reviewed.get(v["key"], set()))
        if not numbers or not unreviewed:
            continue
        name, email = authors.get(sid, (v["sender_name"], v["sender_email"]))
        out.append(
            WaitingVersion(
                series_id=sid,
                title=v["title"],
                version=v["version"],
                version_key=v["key"],
                author_name=name,
                author_email=email,
                date=v["date"],
                last_mail=last[v["key"]],
                status=status_as_of(v["status"], v["evidence"], as_of),
                patches=len(numbers),
                unreviewed=unreviewed,
                days_waiting=(as_of - _at(v["date"])).days,
            )
        )
    return sorted(out, key=lambda w: (w.date, w.series_id))


def patch_numbers(db: sqlite_utils.Database, version_keys: Sequence[str]) -> dict[str, list[int]]:
    """Version key → the numbers of its patches we hold (the cover, 0, is not a patch)."""
    out: dict[str, list[int]] = defaultdict(list)
    for part in _chunks(list(dict.fromkeys(version_keys))):
        sql = f"""SELECT version_key, n FROM patches WHERE version_key IN ({_marks(part)})
                  AND n >= 1 ORDER BY version_key, n"""
        for key, n in db.execute(sql, part):
            out[key].append(n)
    return dict(out)


def reviewed_patches(
    db: sqlite_utils.Database, version_keys: Sequence[str], as_of: datetime
) -> dict[str, set[int]]:
    """Version key → patch numbers carrying a counted Reviewed/Acked/Tested-by as of ``as_of``."""
    out: dict[str, set[int]] = defaultdict(set)
    kinds = list(REVIEW_KINDS)
    for part in _chunks(list(dict.fromkeys(version_keys))):
        sql = f"""SELECT DISTINCT t.version_key, t.n FROM trailers t
                  LEFT JOIN messages g ON g.msgid = t.msgid
                  WHERE t.version_key IN ({_marks(part)}) AND t.mismatch = 0
                    AND t.unresolved = 0 AND t.kind IN ({_marks(kinds)})
                    AND (g.date IS NULL OR g.date < ?)"""
        for key, n in db.execute(sql, [*part, *kinds, iso(as_of)]):
            out[key].add(n)
    return dict(out)


# ---- helpers -------------------------------------------------------------------------------


def _active_series(db: sqlite_utils.Database, as_of: datetime) -> list[str]:
    """Series with mail in the ``IDLE_DAYS`` before ``as_of``."""
    sql = """SELECT DISTINCT m.series_id FROM messages g
             JOIN memberships m ON m.msgid = g.msgid
             WHERE g.date >= ? AND g.date < ? AND m.series_id IS NOT NULL"""
    since = iso(as_of - timedelta(days=IDLE_DAYS))
    return sorted(sid for (sid,) in db.execute(sql, [since, iso(as_of)]))


def _latest_versions(
    db: sqlite_utils.Database, series_ids: Sequence[str], as_of: datetime
) -> dict[str, dict]:
    """Series id → its latest version posted before ``as_of`` (evidence decoded)."""
    out: dict[str, dict] = {}
    cut = iso(as_of) or ""
    for part in _chunks(list(dict.fromkeys(series_ids))):
        sql = f"""SELECT series_id, key, version, date, title, sender_name, sender_email,
                         category, status, evidence FROM versions
                  WHERE series_id IN ({_marks(part)}) ORDER BY series_id, position"""
        cur = db.execute(sql, part)
        cols = [c[0] for c in cur.description]
        for row in cur:
            v = dict(zip(cols, row, strict=True))
            if v["date"] is not None and v["date"] >= cut:
                continue
            v["evidence"] = json.loads(v["evidence"])
            out[v["series_id"]] = v
    return out


def _authors(db: sqlite_utils.Database, series_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for part in _chunks(list(series_ids)):
        sql = f"SELECT id, author_name, author_email FROM series WHERE id IN ({_marks(part)})"
        out.update((sid, (name, email)) for sid, name, email in db.execute(sql, part))
    return out


def _at(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _marks(items: Sequence) -> str:
    return ", ".join("?" * len(items))
