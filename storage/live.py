"""SQL for live Slack: facts → events (once each, by natural key), where each event went,
channel subscriptions and series cards, and the files each series touches.

Events are recorded by diffing the derived facts against the events table: every query
below yields candidate facts with a natural key, and ``INSERT OR IGNORE`` keeps the ones
never seen.  Only facts whose mail is dated within ``HORIZON`` of the newest mail are
candidates, so a backfilled old thread or a re-derivation under new rules does not announce
history as news.  The first recording marks everything as ``baseline`` (never delivered),
unless a channel subscribed or someone turned alerts on before any mail was stored.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from storage.messages import from_iso, iso
from storage.sqlbits import rows_in
from storage.state import get_state, set_state

HORIZON = timedelta(days=30)
EVENT_KINDS = (
    "new_series",
    "new_version",
    "review",
    "applied",
    "pulled",
    "dropped",
    "changes_requested",
    "report",
)
_REVIEW_KINDS = ("Reviewed-by", "Acked-by", "Tested-by")
# versions.evidence kinds → event kinds
_EVIDENCE_EVENTS = {
    "applied": "applied",
    "queued": "applied",
    "pulled": "pulled",
    "dropped": "dropped",
    "reverted": "dropped",
    "respin": "changes_requested",
}


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    key: str
    kind: str
    version_key: str
    anchor: str
    version: int
    msgid: str
    actor_name: str
    actor_email: str
    at: str | None
    detail: dict
    created_at: str


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: int
    target: str
    state: str
    ts: str | None
    channel: str | None
    attempts: int
    at: str


@dataclass(frozen=True, slots=True)
class Subscription:
    channel: str
    filter: str
    created_by: str
    created_at: str
    after_event: int


@dataclass(frozen=True, slots=True)
class Card:
    channel: str
    series_key: str
    state: str
    ts: str | None
    shown: str | None
    at: str


# ---- files touched ------------------------------------------------------------------------


def series_paths(db: sqlite_utils.Database, series_id: str) -> set[str]:
    """Every file any patch of any version of the series touches: the paths the parser
    stored on each patch (``messages.paths``).  A patch parsed before messages kept them
    (PARSE_VERSION < 8, until ``kvmarm reindex``) has "[]" there: its paths are read from
    ``message_paths``, which live delivery filled from the diffs until then (no longer
    written)."""
    rows = db.execute(
        """SELECT m.paths, mp.paths FROM versions v JOIN patches p ON p.version_key = v.key
           JOIN messages m ON m.msgid = p.msgid
           LEFT JOIN message_paths mp ON mp.msgid = p.msgid
           WHERE v.series_id = ?""",
        [series_id],
    ).fetchall()
    return {
        path
        for stored, indexed in rows
        for path in json.loads(indexed if stored == "[]" and indexed else stored)
    }


# ---- facts → events -------------------------------------------------------------------------

_ANCHOR = (
    "coalesce((SELECT msgid FROM patches WHERE version_key = v.key ORDER BY n LIMIT 1), v.key)"
)


def _candidates(db: sqlite_utils.Database, horizon: str) -> Iterator[tuple]:
    """(key, kind, version_key, anchor, version, msgid, name, email, at, detail) per fact."""
    postings = db.execute(
        f"""SELECT v.key, {_ANCHOR}, v.version, v.position, v.sender_name, v.sender_email,
                   v.date, v.total, v.title, v.resend, v.cover
            FROM versions v WHERE v.date >= ?""",
        [horizon],
    )
    for key, anchor, version, position, name, email, date, total, title, resend, cover in postings:
        kind = "new_series" if position == 0 else "new_version"
        detail = {"total": total, "title": title, "resend": bool(resend)}
        yield (f"posting:{anchor}", kind, key, anchor, version, cover or anchor, name, email,
               date, detail)  # fmt: skip
    # From the recent mails to their trailers (CROSS JOIN keeps that order): what is
    # recent, not every trailer of the archive.
    reviews = db.execute(
        f"""SELECT t.version_key, {_ANCHOR}, v.version, t.kind, t.name, t.email, t.msgid,
                   m.date, v.total, group_concat(t.n), max(t.scope)
            FROM messages m CROSS JOIN trailers t ON t.msgid = m.msgid
            JOIN versions v ON v.key = t.version_key
            WHERE t.source IN ('reply', 'cover') AND t.mismatch = 0 AND t.unresolved = 0
              AND t.kind IN ({", ".join("?" * len(_REVIEW_KINDS))}) AND m.date >= ?
            GROUP BY t.version_key, t.kind, t.email, t.msgid""",
        [*_REVIEW_KINDS, horizon],
    )
    for vkey, anchor, version, kind, name, email, msgid, date, total, ns, scope in reviews:
        patches = sorted({int(n) for n in str(ns).split(",")})
        detail = {"trailer": kind, "patches": patches, "total": total}
        if scope:
            detail["scope"] = scope
        yield (f"review:{msgid}:{kind}:{email}:{anchor}", "review", vkey, anchor, version, msgid,
               name, email, date, detail)  # fmt: skip
    kinds = list(_EVIDENCE_EVENTS)
    evidence = db.execute(
        f"""SELECT v.key, {_ANCHOR}, v.version, e.value FROM versions v, json_each(v.evidence) e
            WHERE v.evidence_last >= ?
              AND json_extract(e.value, '$.kind') IN ({", ".join("?" * len(kinds))})
              AND json_extract(e.value, '$.date') >= ?""",
        [horizon, *kinds, horizon],
    ).fetchall()
    names = _names(db, {json.loads(value)["msgid"] for *_rest, value in evidence})
    for vkey, anchor, version, value in evidence:
        e = json.loads(value)
        kind = _EVIDENCE_EVENTS[e["kind"]]
        detail = {"where": e.get("where"), "commit": e.get("commit"), "verb": e["kind"]}
        by = e.get("by") or ""
        yield (f"{kind}:{anchor}:{e['msgid']}", kind, vkey, anchor, version, e["msgid"],
               names.get(e["msgid"], by), by, e.get("date"), detail)  # fmt: skip
    reports = db.execute(
        f"""SELECT b.version_key, {_ANCHOR}, v.version, m.msgid, m.from_name, m.from_email,
                   m.date, m.title
            FROM messages m JOIN memberships b ON b.msgid = m.msgid
            JOIN versions v ON v.key = b.version_key
            WHERE m.is_bot = 1 AND m.date >= ?""",
        [horizon],
    )
    for vkey, anchor, version, msgid, name, email, date, title in reports:
        yield (f"report:{msgid}", "report", vkey, anchor, version, msgid, name, email, date,
               {"title": title})  # fmt: skip


def _names(db: sqlite_utils.Database, msgids: Collection[str]) -> dict[str, str]:
    """Sender names of evidence mails (evidence keeps only the address)."""
    return dict(rows_in(db, "SELECT msgid, from_name FROM messages WHERE msgid IN ({})", msgids))


def newest_mail_date(db: sqlite_utils.Database, now: datetime) -> datetime | None:
    """The newest Date of a stored mail that is not in the future."""
    row = db.execute("SELECT max(date) FROM messages WHERE date <= ?", [iso(now)]).fetchone()
    return from_iso(row[0]) if row and row[0] else None


def record_events(db: sqlite_utils.Database, now: datetime) -> int:
    """Turn facts not seen before into events; returns how many new, deliverable ones."""
    newest = newest_mail_date(db, now)
    if newest is None:
        return 0
    horizon = iso(newest - HORIZON)
    with db.atomic():
        started = get_state(db, "events_started") is not None
        # The first recording is a baseline — unless someone already asked for events
        # (subscribed or turned alerts on before any mail was stored): they get them.
        first = not started and not _anyone_listening(db)
        before = db.execute("SELECT total_changes()").fetchone()[0]
        db.conn.executemany(
            """INSERT OR IGNORE INTO events(key, kind, version_key, anchor, version, msgid,
                   actor_name, actor_email, at, detail, baseline, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (*c[:9], json.dumps(c[9], sort_keys=True), int(first), iso(now))
                for c in _candidates(db, horizon or "")
            ],
        )
        added = db.execute("SELECT total_changes()").fetchone()[0] - before
        if not started:
            set_state(db, "events_started", iso(now))
    return 0 if first else added


def _anyone_listening(db: sqlite_utils.Database) -> bool:
    row = db.execute(
        """SELECT EXISTS (SELECT 1 FROM subscriptions)
                  OR EXISTS (SELECT 1 FROM slack_alerts WHERE enabled = 1)"""
    ).fetchone()
    return bool(row[0])


def pending_events(db: sqlite_utils.Database, after: int = 0) -> list[Event]:
    """Deliverable events with an id above ``after``, oldest first."""
    rows = db.execute(
        """SELECT id, key, kind, version_key, anchor, version, msgid, actor_name, actor_email,
                  at, detail, created_at
           FROM events WHERE baseline = 0 AND id > ? ORDER BY id""",
        [after],
    ).fetchall()
    return [_event(r) for r in rows]


def _event(r: tuple) -> Event:
    (id_, key, kind, version_key, anchor, version, msgid, name, email, at, detail, created) = r
    return Event(id_, key, kind, version_key, anchor, version, msgid, name, email, at,
                 json.loads(detail), created)  # fmt: skip


def count_events(db: sqlite_utils.Database, *, baseline: bool = False) -> dict[str, int]:
    rows = db.execute(
        "SELECT kind, count(*) FROM events WHERE baseline = ? GROUP BY kind", [int(baseline)]
    )
    return dict(rows.fetchall())


def last_event_id(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]


def series_of_event(db: sqlite_utils.Database, event: Event) -> str | None:
    """The series the event's version belongs to now (version keys can change; the first
    patch's Message-ID does not)."""
    row = (
        db.execute(
            """SELECT v.series_id FROM patches p JOIN versions v ON v.key = p.version_key
           WHERE p.msgid = ? ORDER BY v.position DESC LIMIT 1""",
            [event.anchor],
        ).fetchone()
        or db.execute(
            "SELECT series_id FROM versions WHERE key IN (?, ?)", [event.version_key, event.anchor]
        ).fetchone()
    )
    return row[0] if row else None


# ---- deliveries -------------------------------------------------------------------------------


def deliveries_of(
    db: sqlite_utils.Database, event_ids: Sequence[int]
) -> dict[tuple[int, str], Delivery]:
    if not event_ids:
        return {}
    rows = db.execute(
        f"""SELECT event_id, target, state, ts, channel, attempts, at FROM event_deliveries
            WHERE event_id IN ({", ".join("?" * len(event_ids))})""",
        list(event_ids),
    ).fetchall()
    return {(r[0], r[1]): Delivery(*r) for r in rows}


def save_delivery(db: sqlite_utils.Database, delivery: Delivery) -> None:
    """Record a delivery state (committed at once: it must survive a crash right after)."""
    with db.atomic():
        db.execute(
            """INSERT INTO event_deliveries(event_id, target, state, ts, channel, attempts, at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(event_id, target) DO UPDATE SET state = excluded.state,
                 ts = excluded.ts, channel = excluded.channel, attempts = excluded.attempts,
                 at = excluded.at""",
            [delivery.event_id, delivery.target, delivery.state, delivery.ts, delivery.channel,
             delivery.attempts, delivery.at],
        )  # fmt: skip


def delivery_counts(db: sqlite_utils.Database) -> dict[str, int]:
    return dict(
        db.execute("SELECT state, count(*) FROM event_deliveries GROUP BY state").fetchall()
    )


# ---- subscriptions and cards ------------------------------------------------------------------


def add_subscription(
    db: sqlite_utils.Database, channel: str, text: str, user: str, now: datetime
) -> bool:
    """False when the channel already has this filter."""
    with db.atomic():
        cursor = db.execute(
            """INSERT OR IGNORE INTO subscriptions(channel, filter, created_by, created_at,
                   after_event) VALUES (?, ?, ?, ?, (SELECT coalesce(max(id), 0) FROM events))""",
            [channel, text, user, iso(now)],
        )
        return cursor.rowcount == 1


def remove_subscription(db: sqlite_utils.Database, channel: str, text: str) -> bool:
    with db.atomic():
        cursor = db.execute(
            "DELETE FROM subscriptions WHERE channel = ? AND filter = ?", [channel, text]
        )
        return cursor.rowcount > 0


def subscriptions(db: sqlite_utils.Database, channel: str | None = None) -> list[Subscription]:
    sql = "SELECT channel, filter, created_by, created_at, after_event FROM subscriptions"
    params: list[str] = []
    if channel is not None:
        sql += " WHERE channel = ?"
        params.append(channel)
    rows = db.execute(sql + " ORDER BY channel, created_at, filter", params).fetchall()
    return [Subscription(*r) for r in rows]


def card_of(db: sqlite_utils.Database, channel: str, series_id: str) -> Card | None:
    """The card this channel has for the series (under any of its version keys)."""
    row = db.execute(
        """SELECT channel, series_key, state, ts, shown, at FROM series_cards
           WHERE channel = ? AND series_key IN (SELECT key FROM versions WHERE series_id = ?)
           ORDER BY at LIMIT 1""",
        [channel, series_id],
    ).fetchone()
    return Card(*row) if row else None


def save_card(db: sqlite_utils.Database, card: Card) -> None:
    with db.atomic():
        db.execute(
            """INSERT INTO series_cards(channel, series_key, state, ts, shown, at)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(channel, series_key) DO UPDATE SET state = excluded.state,
                 ts = excluded.ts, shown = excluded.shown, at = excluded.at""",
            [card.channel, card.series_key, card.state, card.ts, card.shown, card.at],
        )


# ---- link unfurls ------------------------------------------------------------------------------


def claim_unfurl(db: sqlite_utils.Database, channel: str, msgid: str, now: datetime,
                 quiet: timedelta) -> bool:  # fmt: skip
    """Record an unfurl of ``msgid`` in ``channel`` unless one happened within ``quiet``;
    True when the caller should unfurl (two app instances cannot both claim it)."""
    with db.atomic():
        cursor = db.execute(
            """INSERT INTO unfurls(channel, msgid, at) VALUES (?, ?, ?)
               ON CONFLICT(channel, msgid) DO UPDATE SET at = excluded.at
               WHERE unfurls.at <= ?""",
            [channel, msgid, iso(now), iso(now - quiet)],
        )
        return cursor.rowcount == 1


def version_of_message(db: sqlite_utils.Database, msgid: str) -> tuple[str, str] | None:
    """(series id, version key) of the series version a message belongs to, if any."""
    row = db.execute(
        "SELECT series_id, version_key FROM memberships WHERE msgid = ? AND series_id IS NOT NULL",
        [msgid],
    ).fetchone()
    return (row[0], row[1]) if row else None


def is_posting_mail(db: sqlite_utils.Database, msgid: str) -> bool:
    """The cover or a patch of a version (not a reply)."""
    return (
        db.execute(
            """SELECT 1 FROM versions WHERE key = ? OR cover = ?
               UNION SELECT 1 FROM patches WHERE msgid = ? LIMIT 1""",
            [msgid, msgid, msgid],
        ).fetchone()
        is not None
    )


# ---- people -------------------------------------------------------------------------------------


def link_person(db: sqlite_utils.Database, user: str, email: str, how: str, now: datetime) -> None:
    with db.atomic():
        db.execute(
            "INSERT OR IGNORE INTO slack_people(user, email, how, at) VALUES (?, ?, ?, ?)",
            [user, email.casefold(), how, iso(now)],
        )


def forget_person(db: sqlite_utils.Database, user: str) -> int:
    with db.atomic():
        db.execute("DELETE FROM slack_alerts WHERE user = ?", [user])
        return db.execute("DELETE FROM slack_people WHERE user = ?", [user]).rowcount


def addresses_of(db: sqlite_utils.Database, user: str) -> list[tuple[str, str]]:
    """(address, how) linked to a Slack user, oldest first."""
    rows = db.execute(
        "SELECT email, how FROM slack_people WHERE user = ? ORDER BY at, email", [user]
    )
    return [(r[0], r[1]) for r in rows.fetchall()]


def address_seen(db: sqlite_utils.Database, email: str) -> int:
    """How many stored mails were sent from ``email``."""
    return db.execute(
        "SELECT count(*) FROM messages WHERE from_email = ?", [email.casefold()]
    ).fetchone()[0]


def set_alerts(db: sqlite_utils.Database, user: str, enabled: bool, now: datetime) -> None:
    with db.atomic():
        db.execute(
            """INSERT INTO slack_alerts(user, enabled, after_event, at)
               VALUES (?, ?, (SELECT coalesce(max(id), 0) FROM events), ?)
               ON CONFLICT(user) DO UPDATE SET enabled = excluded.enabled,
                 after_event = excluded.after_event, at = excluded.at""",
            [user, int(enabled), iso(now)],
        )


def alerts_of(db: sqlite_utils.Database, user: str) -> bool:
    row = db.execute("SELECT enabled FROM slack_alerts WHERE user = ?", [user]).fetchone()
    return bool(row and row[0])


def alert_subscribers(db: sqlite_utils.Database) -> list[tuple[str, int, frozenset[str]]]:
    """(user, after_event, addresses) of everyone with alerts on and an address linked."""
    rows = db.execute(
        """SELECT a.user, a.after_event, group_concat(p.email, ' ') FROM slack_alerts a
           JOIN slack_people p ON p.user = a.user WHERE a.enabled = 1 GROUP BY a.user"""
    ).fetchall()
    return [(u, after, frozenset(emails.split())) for u, after, emails in rows]


def reviewers_of_series(db: sqlite_utils.Database, series_id: str, before: int) -> set[str]:
    """Addresses that gave a counted review trailer (in a reply) on a version of the series
    numbered below ``before``."""
    rows = db.execute(
        f"""SELECT DISTINCT t.email FROM trailers t JOIN versions v ON v.key = t.version_key
            WHERE v.series_id = ? AND v.version < ? AND t.mismatch = 0 AND t.unresolved = 0
              AND t.source IN ('reply', 'cover')
              AND t.kind IN ({", ".join("?" * len(_REVIEW_KINDS))})""",
        [series_id, before, *_REVIEW_KINDS],
    ).fetchall()
    return {r[0] for r in rows}


def series_by_authors(
    db: sqlite_utils.Database, emails: Sequence[str], limit: int = 10
) -> list[str]:
    """Ids of series authored (or a version sent) by these addresses, latest activity first."""
    if not emails:
        return []
    marks = ", ".join("?" * len(emails))
    rows = db.execute(
        f"""SELECT id FROM series WHERE author_email IN ({marks})
              OR id IN (SELECT series_id FROM versions WHERE sender_email IN ({marks}))
            ORDER BY last_date DESC LIMIT ?""",
        [*emails, *emails, limit],
    ).fetchall()
    return [r[0] for r in rows]


# ---- one delivery run at a time -----------------------------------------------------------------

LOCK_STALE = timedelta(minutes=30)


def claim_delivery_lock(
    db: sqlite_utils.Database, owner: str, now: datetime, alive: Callable[[str], bool]
) -> str | None:
    """Take the delivery lock for ``owner``; returns the live holder when someone else has
    it (a holder that died, or older than LOCK_STALE, is replaced)."""
    with db.atomic():
        held = get_state(db, "delivery_lock")
        if held and held["owner"] != owner:
            fresh = (from_iso(held["at"]) or now) > now - LOCK_STALE
            if fresh and alive(held["owner"]):
                return held["owner"]
        set_state(db, "delivery_lock", {"owner": owner, "at": iso(now)})
    return None


def release_delivery_lock(db: sqlite_utils.Database, owner: str) -> None:
    with db.atomic():
        held = get_state(db, "delivery_lock")
        if held and held["owner"] == owner:
            db.execute("DELETE FROM state WHERE key = 'delivery_lock'")


def replies_after_author(
    db: sqlite_utils.Database, version_key: str, authors: Sequence[str]
) -> list[tuple[str, str, str, str]]:
    """(msgid, sender name, date, own words) of replies to a version by others (not bots)
    dated after the last mail its authors sent in that version's thread, oldest first."""
    if not authors:
        return []
    marks = ", ".join("?" * len(authors))
    rows = db.execute(
        f"""SELECT g.msgid, g.from_name, g.date, g.body FROM memberships m
            JOIN messages g ON g.msgid = m.msgid
            WHERE m.version_key = ? AND g.is_reply = 1 AND g.is_bot = 0
              AND g.from_email NOT IN ({marks}) AND g.date > coalesce((
                SELECT max(a.date) FROM memberships am JOIN messages a ON a.msgid = am.msgid
                WHERE am.version_key = ? AND a.from_email IN ({marks})), '')
            ORDER BY g.date""",
        [version_key, *authors, version_key, *authors],
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def settled_events(db: sqlite_utils.Database) -> int:
    """Every event with an id up to this reached all the targets it ever will."""
    return int(get_state(db, "events_settled", 0))


def set_settled_events(db: sqlite_utils.Database, event_id: int) -> None:
    with db.atomic():
        set_state(db, "events_settled", max(event_id, 0))


# ---- the review queue, per person ---------------------------------------------------------------


def posting_raw(db: sqlite_utils.Database, version_key: str) -> bytes | None:
    """The raw bytes of a version's cover letter, else of its first patch."""
    row = db.execute(
        """SELECT c.raw FROM versions v JOIN message_content c
             ON c.msgid = coalesce(v.cover, v.key) WHERE v.key = ?""",
        [version_key],
    ).fetchone()
    return zlib.decompress(row[0]) if row else None


def repliers_of_version(db: sqlite_utils.Database, version_key: str) -> set[str]:
    """Addresses that sent a reply in a version's thread."""
    rows = db.execute(
        """SELECT DISTINCT g.from_email FROM memberships m JOIN messages g ON g.msgid = m.msgid
           WHERE m.version_key = ? AND g.is_reply = 1""",
        [version_key],
    ).fetchall()
    return {r[0] for r in rows}
