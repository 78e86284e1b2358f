"""Messages in and out of SQLite.  Writes are upserts on Message-ID: storing twice is a no-op."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, overload

import sqlite_utils

from ingest.records import (
    AppliedNotice,
    Message,
    ParsedMail,
    Person,
    PullRequest,
    Quarantined,
    Scope,
    Subject,
    Trailer,
)
from storage.db import transaction

# Lists whose copy of a mail we keep when the same Message-ID also arrives via another list.
PREFERRED_LISTS = ("kvmarm.lists.linux.dev", "kvmarm.lists.cs.columbia.edu")


@overload
def iso(when: datetime) -> str: ...
@overload
def iso(when: None) -> None: ...
def iso(when: datetime | None) -> str | None:
    """UTC datetime → '2022-03-07T18:49:35Z' (the only date format we store and print)."""
    if when is None:
        return None
    w = when.astimezone(UTC)  # not strftime: its %Y gives "1-01-01" for the year 1
    return f"{w.year:04d}-{w.month:02d}-{w.day:02d}T{w.hour:02d}:{w.minute:02d}:{w.second:02d}Z"


@overload
def from_iso(value: str) -> datetime: ...
@overload
def from_iso(value: str | None) -> datetime | None: ...
def from_iso(value: str | None) -> datetime | None:
    """'2022-03-07T18:49:35Z' (as stored) → aware UTC datetime; None or '' → None."""
    if not value:
        return None
    if len(value) == 20 and value[-1] == "Z":  # ours: fromisoformat is ~20x strptime
        return datetime.fromisoformat(value)
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class KnownMessages:
    """Message-ID → List-Id of the stored messages, for skipping duplicates before parsing.

    Looked up one Message-ID at a time as asked (an indexed lookup): reading every stored
    Message-ID up front would cost what the database holds, not what the new mail
    brings.  What this run stores is remembered (``known[msgid] = list_id``)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._conn = db.conn
        self._found: dict[str, str | None] = {}
        self._absent: set[str] = set()

    def __contains__(self, msgid: object) -> bool:
        return isinstance(msgid, str) and self._lookup(msgid)

    def __getitem__(self, msgid: str) -> str | None:
        if not self._lookup(msgid):
            raise KeyError(msgid)
        return self._found[msgid]

    def __setitem__(self, msgid: str, list_id: str | None) -> None:
        self._found[msgid] = list_id
        self._absent.discard(msgid)

    def _lookup(self, msgid: str) -> bool:
        if msgid in self._found:
            return True
        if msgid in self._absent:
            return False
        row = self._conn.execute("SELECT list_id FROM messages WHERE msgid = ?", [msgid]).fetchone()
        if row is None:
            self._absent.add(msgid)
            return False
        self._found[msgid] = row[0]
        return True


def known_messages(db: sqlite_utils.Database) -> KnownMessages:
    return KnownMessages(db)


def any_messages(db: sqlite_utils.Database) -> bool:
    return bool(db.execute("SELECT EXISTS(SELECT 1 FROM messages)").fetchone()[0])


def known_quarantine(db: sqlite_utils.Database) -> set[str]:
    return {row[0] for row in db.execute("SELECT sha256 FROM quarantine")}


def prefer_copy(existing_list: str | None, new_list: str | None, preferred=PREFERRED_LISTS) -> bool:
    """True when a duplicate's new copy should replace the stored one (b4's listid preference)."""
    return new_list in preferred and existing_list not in preferred


@dataclass(frozen=True, slots=True)
class StoredMail:
    """A parsed mail ready to store: facts, own text, compressed diff and raw bytes."""

    message: Message
    body: str
    diff_z: bytes
    raw_z: bytes
    origin: str
    diff: str = ""  # uncompressed, only while patch-ids are computed


def stored_mail(parsed: ParsedMail, origin: str) -> StoredMail:
    return StoredMail(
        message=parsed.message,
        body=parsed.content.body,
        diff_z=zlib.compress(parsed.content.diff.encode("utf-8", "surrogatepass"), 1),
        raw_z=zlib.compress(parsed.content.raw, 1),
        origin=origin,
    )


_COLUMNS = (
    "msgid",
    "subject",
    "title",
    "subject_key",
    "from_name",
    "from_email",
    "date",
    "received",
    "list_id",
    "in_reply_to",
    "refs",
    "is_reply",
    "is_bot",
    "has_diff",
    "has_diffstat",
    "subject_info",
    "trailers",
    "change_id",
    "version_links",
    "applied",
    "respin",
    "pull",
    "patch_id",
    "send_id",
    "problems",
    "body",
    "origin",
    "ingested_at",
    "author",
    "paths",
)
_INSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


_FTS_COLUMNS = "subject, body, from_name, from_email"
_FTS_INSERT_AFTER = (
    f"INSERT INTO messages_fts(rowid, {_FTS_COLUMNS}) "
    f"SELECT rowid, {_FTS_COLUMNS} FROM messages WHERE rowid > ?"
)
_FTS_DELETE = (
    f"INSERT INTO messages_fts(messages_fts, rowid, {_FTS_COLUMNS}) "
    f"SELECT 'delete', rowid, {_FTS_COLUMNS} FROM messages WHERE msgid = ?"
)


def save_messages(db: sqlite_utils.Database, mails: Sequence[StoredMail], now: datetime) -> None:
    """Insert messages, replacing stored ones with the same Message-ID (one transaction),
    and index them for full-text search (a replaced copy is removed from the index first).
    They are queued for derivation in the same transaction (storage.derived).
    """
    stamp = iso(now)
    ids = [m.message.msgid for m in mails]
    with transaction(db):
        existing = _existing(db, ids)
        if existing:
            db.conn.executemany(_FTS_DELETE, [(i,) for i in existing])
            db.conn.executemany("DELETE FROM messages WHERE msgid = ?", [(i,) for i in existing])
        last = db.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]
        db.conn.executemany(
            _INSERT_MESSAGE, [_message_row(m.message, m.body, m.origin, stamp) for m in mails]
        )
        db.execute(_FTS_INSERT_AFTER, [last])
        db.conn.executemany(
            "INSERT INTO message_content(msgid, diff, raw) VALUES (?, ?, ?)",
            [(m.message.msgid, m.diff_z, m.raw_z) for m in mails],
        )
        # Same transaction as the mail: facts are known to be stale until derived again.
        db.conn.executemany(
            "INSERT OR IGNORE INTO derive_queue(msgid) VALUES (?)", [(i,) for i in ids]
        )


def _existing(db: sqlite_utils.Database, ids: list[str]) -> list[str]:
    found: list[str] = []
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        sql = f"SELECT msgid FROM messages WHERE msgid IN ({', '.join('?' * len(part))})"
        found.extend(r[0] for r in db.execute(sql, part))
    return found


def save_quarantined(db: sqlite_utils.Database, items: Iterable[Quarantined], now: datetime) -> int:
    rows = [
        {
            "sha256": hashlib.sha256(q.raw).hexdigest(),
            "origin": q.origin,
            "reason": q.reason,
            "raw": zlib.compress(q.raw, 1),
            "at": iso(now),
        }
        for q in items
    ]
    with transaction(db):
        db.table("quarantine").insert_all(rows, pk="sha256", ignore=True)
    return len(rows)


def quarantine_reasons(db: sqlite_utils.Database, limit: int = 20) -> list[dict]:
    sql = "SELECT origin, reason, at FROM quarantine ORDER BY at DESC, origin LIMIT ?"
    return [dict(zip(("origin", "reason", "at"), r, strict=True)) for r in db.execute(sql, [limit])]


_LOAD_COLUMNS = (
    "msgid, subject, title, subject_key, from_name, from_email, date, received, list_id, "
    "in_reply_to, refs, is_reply, is_bot, has_diff, has_diffstat, subject_info, trailers, "
    "change_id, version_links, applied, respin, pull, patch_id, send_id, problems, author, "
    "paths"
)


def load_messages(db: sqlite_utils.Database) -> Iterator[Message]:
    """Every stored message as a records.Message (without bodies), for derivation."""
    for row in db.execute(f"SELECT {_LOAD_COLUMNS} FROM messages"):
        yield _row_message(row)


def load_messages_by_id(db: sqlite_utils.Database, msgids: Iterable[str]) -> list[Message]:
    """The stored messages with these Message-IDs (those stored), for partial derivation."""
    ids = sorted(set(msgids))
    out: list[Message] = []
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        sql = f"SELECT {_LOAD_COLUMNS} FROM messages WHERE msgid IN ({', '.join('?' * len(part))})"
        out.extend(_row_message(row) for row in db.execute(sql, part))
    return out


def load_notice_messages(db: sqlite_utils.Database) -> list[Message]:
    """The messages that can make their sender someone who applies patches: pull requests,
    AUTOSEL picks and applied/queued/dropped notices (ingest.applies.find_appliers)."""
    sql = (
        f"SELECT {_LOAD_COLUMNS} FROM messages WHERE applied IS NOT NULL OR pull IS NOT NULL "
        "OR subject_info LIKE '%autosel%'"
    )
    return [_row_message(row) for row in db.execute(sql)]


def iter_raw(db: sqlite_utils.Database) -> Iterator[tuple[bytes, str]]:
    """(raw mail, origin) of every message stored when called, for re-parsing.

    The Message-IDs are read first: re-parsed mails are written back (new rowids) while
    this is still being consumed, and a live cursor over the table would meet them again.
    """
    ids = [r[0] for r in db.execute("SELECT msgid FROM messages ORDER BY rowid")]
    sql = (
        "SELECT c.raw, m.origin FROM messages m JOIN message_content c ON c.msgid = m.msgid "
        "WHERE m.msgid = ?"
    )
    for msgid in ids:
        row = db.execute(sql, [msgid]).fetchone()
        if row is not None:
            yield zlib.decompress(row[0]), row[1] or ""


def count_messages(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT count(*) FROM messages").fetchone()[0]


def get_body(db: sqlite_utils.Database, msgid: str) -> str | None:
    row = db.execute("SELECT body FROM messages WHERE msgid = ?", [msgid]).fetchone()
    return row[0] if row else None


def get_raw(db: sqlite_utils.Database, msgid: str) -> bytes | None:
    row = db.execute("SELECT raw FROM message_content WHERE msgid = ?", [msgid]).fetchone()
    return zlib.decompress(row[0]) if row else None


# ---- row mapping ------------------------------------------------------------------------


def _message_row(m: Message, body: str, origin: str, stamp: str | None) -> tuple:
    """One messages row, in _COLUMNS order."""
    s = m.subject
    info = [
        s.prefixes,
        s.version,
        s.version_explicit,
        s.counter,
        s.total,
        s.rfc,
        s.resend,
        s.patch,
        s.pull,
        s.tags,
    ]
    applied = m.applied
    return (
        m.msgid,
        s.full,
        s.title,
        s.key,
        m.sender.name,
        m.sender.email,
        iso(m.date),
        iso(m.received),
        m.list_id,
        m.in_reply_to,
        json.dumps(m.references),
        int(s.is_reply),
        int(m.is_bot),
        int(m.has_diff),
        int(m.has_diffstat),
        json.dumps(info),
        json.dumps([_trailer_row(t) for t in m.trailers]),
        m.change_id,
        json.dumps(m.version_links),
        json.dumps(
            [
                applied.where,
                applied.items,
                applied.counters,
                applied.verb,
                applied.tentative,
                applied.whole,
                applied.excluded,
            ]
        )
        if applied
        else None,
        m.respin,
        json.dumps([m.pull.url, m.pull.shortlog]) if m.pull else None,
        m.patch_id,
        m.send_id,
        json.dumps(m.problems),
        body,
        origin,
        stamp,
        json.dumps([m.author.name, m.author.email]) if m.author else None,
        json.dumps(m.paths),
    )


def _row_message(row: tuple) -> Message:
    (
        msgid,
        subject,
        title,
        key,
        from_name,
        from_email,
        date,
        received,
        list_id,
        irt,
        refs,
        is_reply,
        is_bot,
        has_diff,
        has_diffstat,
        info,
        trailers,
        change_id,
        version_links,
        applied,
        respin,
        pull,
        patch_id,
        send_id,
        problems,
        author,
        paths,
    ) = row
    prefixes, version, explicit, counter, total, rfc, resend, patch, is_pull, tags = json.loads(
        info
    )
    # Positional (records.Message / Subject field order; mypy checks the types): this runs
    # for every mail an incremental derivation reads.
    return Message(
        msgid,
        Subject(
            subject,
            title,
            key,
            tuple(prefixes),
            bool(is_reply),
            version,
            explicit,
            counter,
            total,
            rfc,
            resend,
            patch,
            is_pull,
            tuple(tags),
        ),
        Person(from_name, from_email),
        from_iso(date),
        from_iso(received),
        list_id,
        irt,
        _tuple(refs),
        bool(has_diff),
        bool(has_diffstat),
        bool(is_bot),
        tuple(_row_trailer(t) for t in json.loads(trailers)) if trailers != "[]" else (),
        change_id,
        _tuple(version_links),
        _applied(applied),
        respin,
        _pull(pull),
        patch_id,
        send_id,
        Person(*json.loads(author)) if author else None,
        _tuple(paths),
        _tuple(problems),
    )


def _tuple(value: str) -> tuple:
    """A JSON list column as a tuple (most are empty: no JSON to read)."""
    return () if value == "[]" else tuple(json.loads(value))


def _trailer_row(t: Trailer) -> list:
    row: list = [t.kind, t.name, t.email, t.mismatch]
    if t.scope is not None:
        row.append({k: v for k, v in asdict(t.scope).items() if v not in (False, (), 0, None)})
    return row


def _row_trailer(row: list) -> Trailer:
    kind, name, email, mismatch = row[:4]
    scope = None
    if len(row) > 4 and row[4]:
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in row[4].items()
        }
        scope = Scope(**fields)
    return Trailer(kind, name, email, bool(mismatch), scope)


def _applied(value: str | None) -> AppliedNotice | None:
    if not value:
        return None
    where, items, counters, verb, *flags = json.loads(value)
    tentative, whole, excluded = [*flags, False, False, []][:3]  # older rows: fewer
    return AppliedNotice(
        where=where,
        items=tuple(tuple(i) for i in items),
        counters=tuple(counters),
        verb=verb,
        tentative=bool(tentative),
        whole=bool(whole),
        excluded=tuple(excluded),
    )


def _pull(value: str | None) -> PullRequest | None:
    if not value:
        return None
    url, shortlog = json.loads(value)
    return PullRequest(url=url, shortlog=tuple(tuple(e) for e in shortlog))
