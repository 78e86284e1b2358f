"""Derived facts (threads, series, versions, patches, trailers) in SQLite.

They are a pure function of the stored messages, so they are rewritten as a whole in one
transaction after messages change; readers never see a half-written state.

Whether they are current is known from the database itself: storing mail queues its
Message-ID in ``derive_queue`` in the same transaction, and writing the facts empties the
queue (and records the derivation rules' version) in the same transaction as the facts.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from ingest.components import Keys
from ingest.records import Derived, Evidence, Posting, Series
from storage.db import transaction
from storage.messages import from_iso, iso
from storage.search_index import (
    PATCH_ROWS,
    THREAD_ROWS,
    refresh_search_index,
    refresh_search_rows,
)
from storage.state import get_state, set_state

DERIVE_VERSION_KEY = "derive_version"

_TABLES = ("trailers", "patches", "versions", "series", "threads", "memberships")
_TABLES_IN_ORDER = ("threads", "series", "versions", "patches", "trailers", "memberships")
COMPONENTS_KEY = "components_ready"


def facts_outdated(db: sqlite_utils.Database, version: int) -> bool:
    """Stored mail is not yet reflected in the derived tables, or they were derived by
    other rules than ``version``."""
    queued = db.execute("SELECT EXISTS(SELECT 1 FROM derive_queue)").fetchone()[0]
    return bool(queued) or get_state(db, DERIVE_VERSION_KEY) != version


def set_aside_reasons(db: sqlite_utils.Database, limit: int = 20) -> list[dict]:
    """Mails left out of derivation, with the reason (for `kvmarm status`)."""
    sql = "SELECT msgid, reason, at FROM derive_set_aside ORDER BY at DESC, msgid LIMIT ?"
    return [dict(zip(("msgid", "reason", "at"), r, strict=True)) for r in db.execute(sql, [limit])]


def save_derived(
    db: sqlite_utils.Database,
    derived: Derived,
    *,
    version: int,
    now: datetime,
    set_aside: dict[str, str] | None = None,
    components: Components | None = None,
) -> None:
    """Replace every derived fact; mark the facts current (same transaction).

    ``components`` (every stored mail's component and keys) enables incremental
    derivation afterwards (``replace_derived_part``)."""
    rows = derived_rows(derived)
    with transaction(db):
        for table in _TABLES:
            db.execute(f"DELETE FROM {table}")
        db.execute("DELETE FROM derive_queue")
        db.execute("DELETE FROM derive_set_aside")
        _insert_set_aside(db, set_aside or {}, now)
        set_state(db, DERIVE_VERSION_KEY, version)
        for table in _TABLES_IN_ORDER:
            _insert_rows(db, table, rows[table])
        refresh_search_index(db)
        db.execute("DELETE FROM derive_components")
        db.execute("DELETE FROM derive_keys")
        if components is not None:
            save_components(db, components)
        set_state(db, COMPONENTS_KEY, components is not None)


def replace_derived_part(
    db: sqlite_utils.Database,
    derived: Derived,
    *,
    part: Collection[str],
    replaced: Collection[str],
    components: Components,
    now: datetime,
    set_aside: dict[str, str] | None = None,
) -> None:
    """Replace the facts of the mails ``part`` (whole components, re-derived into
    ``derived``): the old components ``replaced`` give way to ``components``, and the part's
    mails leave the derive queue.  One transaction."""
    rows = derived_rows(derived)
    with transaction(db):
        _delete_part(db, part)
        _delete_in(db, "DELETE FROM derive_set_aside WHERE msgid IN ({})", part)
        _insert_set_aside(db, set_aside or {}, now)
        marks = {t: _max_rowid(db, t) for t in ("versions", "patches", "threads")}
        for table in _TABLES_IN_ORDER:
            _insert_rows(db, table, rows[table])
        refresh_search_rows(db, marks["versions"], marks["patches"], marks["threads"])
        _delete_in(db, "DELETE FROM derive_queue WHERE msgid IN ({})", part)
        _delete_in(db, "DELETE FROM derive_keys WHERE comp IN ({})", replaced)
        _delete_in(db, "DELETE FROM derive_components WHERE msgid IN ({})", part)
        save_components(db, components)


def _delete_part(db: sqlite_utils.Database, msgids: Collection[str]) -> None:
    """Delete the threads, series (with versions, patches, trailers) and memberships that
    the given mails belong to, and their search rows."""
    roots: set[str] = set()
    series: set[str] = set()
    for chunk in _chunked(list(msgids)):
        sql = "SELECT thread_root, series_id FROM memberships WHERE msgid IN ({})"
        for root, sid in db.execute(sql.format(_marks(chunk)), chunk):
            roots.add(root)
            if sid is not None:
                series.add(sid)
    keys = _select_in(db, "SELECT key FROM versions WHERE series_id IN ({})", series)
    _delete_search_rows(db, keys, roots)
    _delete_in(db, "DELETE FROM trailers WHERE version_key IN ({})", keys)
    _delete_in(db, "DELETE FROM patches WHERE version_key IN ({})", keys)
    _delete_in(db, "DELETE FROM versions WHERE series_id IN ({})", series)
    _delete_in(db, "DELETE FROM series WHERE id IN ({})", series)
    _delete_in(db, "DELETE FROM threads WHERE root IN ({})", roots)
    _delete_in(db, "DELETE FROM memberships WHERE msgid IN ({})", msgids)


def _delete_search_rows(db: sqlite_utils.Database, keys: list[str], roots: set[str]) -> None:
    rowids = _select_in(db, "SELECT rowid FROM versions WHERE key IN ({})", keys)
    rowids += [
        r + PATCH_ROWS
        for r in _select_in(db, "SELECT rowid FROM patches WHERE version_key IN ({})", keys)
    ]
    rowids += [
        r + THREAD_ROWS
        for r in _select_in(db, "SELECT rowid FROM threads WHERE root IN ({})", roots)
    ]
    _delete_in(db, "DELETE FROM search_fts WHERE rowid IN ({})", rowids)


def _insert_rows(db: sqlite_utils.Database, table: str, rows: list[dict]) -> None:
    """Plain executemany: several times cheaper than sqlite-utils' insert_all per row."""
    if not rows:
        return
    columns = list(rows[0])
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(columns)})"
    db.conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])


def _max_rowid(db: sqlite_utils.Database, table: str) -> int:
    return db.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()[0]


def _insert_set_aside(db: sqlite_utils.Database, set_aside: dict[str, str], now: datetime) -> None:
    stamp = iso(now)
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_set_aside(msgid, reason, at) VALUES (?, ?, ?)",
        [(msgid, reason, stamp) for msgid, reason in sorted(set_aside.items())],
    )


def _chunked(items: list, size: int = 500) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _marks(items: Sequence) -> str:
    return ", ".join("?" * len(items))


def _select_in(db: sqlite_utils.Database, sql: str, values: Collection) -> list:
    out: list = []
    for chunk in _chunked(list(values)):
        out.extend(r[0] for r in db.execute(sql.format(_marks(chunk)), chunk))
    return out


def _delete_in(db: sqlite_utils.Database, sql: str, values: Collection) -> None:
    for chunk in _chunked(list(values)):
        db.execute(sql.format(_marks(chunk)), chunk)


def derived_rows(derived: Derived) -> dict[str, list[dict]]:
    """The rows of every derived table for ``derived``."""
    threads = [
        {
            "root": t.root,
            "subject": t.subject,
            "first_date": iso(t.first_date),
            "last_date": iso(t.last_date),
            "n_messages": len(t.msgids),
            "missing": json.dumps(t.missing),
        }
        for t in derived.threads
    ]
    series, versions, patches, trailers = [], [], [], []
    for s in derived.series:
        series.append(_series_row(s))
        for pos, v in enumerate(s.versions):
            versions.append(_version_row(s, v, pos))
            for p in v.patches:
                patches.append(
                    {
                        "version_key": v.key,
                        "n": p.n,
                        "msgid": p.msgid,
                        "subject": p.subject,
                        "patch_id": p.patch_id,
                        "from_version": p.from_version,
                        "applied": evidence_json(p.applied),
                        "pulled": evidence_json(p.pulled),
                    }
                )
                for i, t in enumerate(p.trailers):
                    trailers.append(
                        {
                            "version_key": v.key,
                            "n": p.n,
                            "kind": t.kind,
                            "name": t.name,
                            "email": t.email,
                            "msgid": t.msgid,
                            "source": t.source,
                            "from_version": t.from_version,
                            "mismatch": int(t.mismatch),
                            "position": i,
                            "scope": t.scope,
                            "unresolved": int(t.unresolved),
                        }
                    )
    memberships = [
        {
            "msgid": msgid,
            "thread_root": root,
            "series_id": derived.series_of.get(msgid),
            "version_key": derived.posting_of.get(msgid),
        }
        for msgid, root in derived.thread_of.items()
    ]
    return {
        "threads": threads,
        "series": series,
        "versions": versions,
        "patches": patches,
        "trailers": trailers,
        "memberships": memberships,
    }


# ---- components (ingest/components.py) ---------------------------------------------------


@dataclass(frozen=True)
class Components:
    comp_of: dict[str, str]  # msgid → component id (for the mails written)
    keys: dict[str, Keys]  # msgid → its keys


def components_ready(db: sqlite_utils.Database) -> bool:
    """Every stored mail's component is known (a full derivation wrote them)."""
    return bool(get_state(db, COMPONENTS_KEY, False))


def save_components(db: sqlite_utils.Database, components: Components) -> None:
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_components(msgid, comp) VALUES (?, ?)",
        sorted(components.comp_of.items()),
    )
    held: dict[tuple[str, str], int] = {}
    for msgid, keys in components.keys.items():
        comp = components.comp_of[msgid]
        for key in keys.strong:
            held[(key, comp)] = 1
        for key in keys.weak:
            held.setdefault((key, comp), 0)
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_keys(key, comp, strong) VALUES (?, ?, ?)",
        [(k, c, s) for (k, c), s in sorted(held.items())],
    )


def touched_components(db: sqlite_utils.Database, keys: Iterable[Keys]) -> set[str]:
    """Components holding a strong key of these (any holder), or a weak one strongly."""
    strong: set[str] = set()
    weak: set[str] = set()
    for k in keys:
        strong |= k.strong
        weak |= k.weak
    comps = set(_select_in(db, "SELECT comp FROM derive_keys WHERE key IN ({})", strong))
    sql = "SELECT comp FROM derive_keys WHERE strong = 1 AND key IN ({})"
    comps |= set(_select_in(db, sql, weak))
    return comps


def component_members(db: sqlite_utils.Database, comps: Collection[str]) -> list[str]:
    return _select_in(db, "SELECT msgid FROM derive_components WHERE comp IN ({})", comps)


def components_of(db: sqlite_utils.Database, msgids: Collection[str]) -> set[str]:
    return set(_select_in(db, "SELECT comp FROM derive_components WHERE msgid IN ({})", msgids))


def queued_msgids(db: sqlite_utils.Database) -> list[str]:
    return [r[0] for r in db.execute("SELECT msgid FROM derive_queue ORDER BY msgid")]


def evidence_json(e: Evidence | None) -> str | None:
    return json.dumps(evidence_dict(e)) if e is not None else None


def evidence_dict(e: Evidence) -> dict:
    return {
        "kind": e.kind,
        "msgid": e.msgid,
        "by": e.by,
        "where": e.where,
        "commit": e.commit,
        "date": iso(e.when),
    }


def _series_row(s: Series) -> dict:
    latest = s.versions[-1]
    return {
        "id": s.id,
        "title": s.title,
        "title_key": latest.title.casefold(),
        "author_name": s.author.name,
        "author_email": s.author.email,
        "change_id": s.change_id,
        "links": json.dumps(s.links),
        "first_date": iso(s.versions[0].date),
        "last_date": iso(s.last_activity),
        "n_versions": len(s.versions),
        "latest_version": latest.version,
        "status": latest.status,
    }


def _version_row(s: Series, v: Posting, pos: int) -> dict:
    return {
        "key": v.key,
        "series_id": s.id,
        "position": pos,
        "version": v.version,
        "date": iso(v.date),
        "sender_name": v.sender.name,
        "sender_email": v.sender.email,
        "title": v.title,
        "cover": v.cover,
        "total": v.total,
        "prefixes": json.dumps(v.prefixes),
        "tags": json.dumps(v.tags),
        "category": v.category,
        "change_id": v.change_id,
        "resend": int(v.resend),
        "partial_reroll_of": v.partial_reroll_of,
        "status": v.status,
        "evidence": json.dumps([evidence_dict(e) for e in v.evidence]),
        "thread_root": v.thread_root,
    }


# ---- what derivation takes from the whole archive (ingest.derive.DeriveContext) -----------

CONTEXT_KEY = "derive_context"


def newest_dates(db: sqlite_utils.Database, count: int) -> list[datetime]:
    """The ``count`` newest Dates stored, newest first."""
    sql = "SELECT date FROM messages WHERE date IS NOT NULL ORDER BY date DESC LIMIT ?"
    return [d for (value,) in db.execute(sql, [count]) if (d := from_iso(value)) is not None]


def all_components(db: sqlite_utils.Database) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT comp FROM derive_components")]


def comps_of_series_last_active(db: sqlite_utils.Database, lo: str, hi: str) -> set[str]:
    """Components of the series whose last mail is dated in [lo, hi] (ISO)."""
    sql = """SELECT DISTINCT c.comp FROM series s
             JOIN memberships m ON m.series_id = s.id
             JOIN derive_components c ON c.msgid = m.msgid
             WHERE s.last_date >= ? AND s.last_date <= ?"""
    return {r[0] for r in db.execute(sql, [lo, hi])}


def comps_of_notices_by(db: sqlite_utils.Database, senders: Collection[str]) -> set[str]:
    """Components holding an applied/queued/dropped notice sent by one of ``senders``."""
    sql = """SELECT DISTINCT c.comp FROM messages g
             JOIN derive_components c ON c.msgid = g.msgid
             WHERE g.applied IS NOT NULL AND g.from_email IN ({})"""
    return set(_select_in(db, sql, senders))
