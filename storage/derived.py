"""Derived facts (threads, series, versions, patches, trailers) in SQLite.

They are a pure function of the stored messages, so they are rewritten as a whole in one
transaction after messages change; readers never see a half-written state.

Whether they are current is known from the database itself: storing mail queues its
Message-ID in ``derive_queue`` in the same transaction, and writing the facts empties the
queue (and records the derivation rules' version) in the same transaction as the facts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from ingest.components import Keys
from ingest.records import Derived, Evidence, GivenTrailer, PatchSlot, Posting, Series, Thread
from storage.db import transaction
from storage.levels import clear_levels
from storage.messages import iso
from storage.search_index import (
    NOTHING,
    PATCH_ROWS,
    THREAD_ROWS,
    refresh_search_index,
    refresh_search_rows,
)
from storage.sqlbits import delete_in, marks, rows_in, select_in
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


def set_aside_msgids(db: sqlite_utils.Database) -> set[str]:
    return {r[0] for r in db.execute("SELECT msgid FROM derive_set_aside")}


def save_derived(
    db: sqlite_utils.Database,
    derived: Derived,
    *,
    version: int,
    now: datetime,
    set_aside: dict[str, str] | None = None,
    components: Components | None = None,
) -> dict[str, str]:
    """Replace every derived fact; mark the facts current (same transaction).

    ``components`` (every stored mail's unit and keys) enables incremental derivation
    afterwards, with what the caller keeps (storage/levels.py) in the same transaction.
    Returns the hash of each version's rows (``write_series``)."""
    rows, hashes = derived_rows(derived)
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
        clear_levels(db)
        if components is not None:
            save_components(db, components)
        set_state(db, COMPONENTS_KEY, components is not None)
        return hashes


@dataclass(frozen=True)
class VersionRows:
    """One version's rows (versions, patches, trailers) and a hash of them all."""

    key: str
    row: dict
    patches: list[dict]
    trailers: list[dict]
    hash: str


def series_rows(s: Series) -> tuple[dict, list[VersionRows]]:
    return _series_row(s), [version_rows(s, pos, v) for pos, v in enumerate(s.versions)]


def version_rows(s: Series, pos: int, v: Posting) -> VersionRows:
    row = _version_row(s, v, pos)
    patches = [_patch_row(v, p) for p in v.patches]
    trailers = [_trailer_row(v, p, i, t) for p in v.patches for i, t in enumerate(p.trailers)]
    return VersionRows(v.key, row, patches, trailers, version_hash(s, pos, v))


def version_hash(s: Series, pos: int, v: Posting) -> str:
    """A hash of everything a version's rows are made of: its series, its place there and
    the posting (the repr of frozen records of plain values: the same in every run)."""
    return hashlib.blake2b(repr((s.id, pos, v)).encode(), digest_size=16).hexdigest()


def finish_part(db: sqlite_utils.Database, part: Collection[str]) -> None:
    """The part's mails leave the derive queue."""
    delete_in(db, "DELETE FROM derive_queue WHERE msgid IN ({})", part)


def _index_rows_after(
    db: sqlite_utils.Database,
    versions: int = NOTHING,
    patches: int = NOTHING,
    threads: int = NOTHING,
) -> None:
    refresh_search_rows(db, versions, patches, threads)


def replace_threads(
    db: sqlite_utils.Database,
    part: Collection[str],
    threads: list[Thread],
    memberships: list[tuple[str, str, str | None, str | None]],
    *,
    set_aside: dict[str, str],
    now: datetime,
) -> None:
    """The threads and memberships of the mails ``part`` (whole units, re-derived):
    ``memberships`` is (msgid, thread root, series id, posting key) for each.  Rows that
    did not change are left alone (with their search rows)."""
    sql = "SELECT msgid, thread_root, series_id, version_key FROM memberships WHERE msgid IN ({})"
    before = {row[0]: tuple(row) for row in rows_in(db, sql, part)}
    roots = {row[1] for row in before.values()}
    sql = "SELECT root, subject, first_date, last_date, n_messages, missing FROM threads "
    old_threads = {row[0]: row for row in rows_in(db, sql + "WHERE root IN ({})", roots)}
    rows = [_thread_row(t) for t in threads]
    new_threads = {r["root"]: tuple(r.values()) for r in rows}
    stale = {root for root, row in old_threads.items() if new_threads.get(root) != row}
    _delete_search_rows(db, [], stale)
    delete_in(db, "DELETE FROM threads WHERE root IN ({})", stale)
    mark = _max_rowid(db, "threads")
    _insert_rows(
        db, "threads", [r for r in rows if old_threads.get(r["root"]) != new_threads[r["root"]]]
    )
    _index_rows_after(db, threads=mark)
    now_in = {row[0] for row in memberships}
    delete_in(db, "DELETE FROM memberships WHERE msgid IN ({})", before.keys() - now_in)
    db.conn.executemany(
        "INSERT OR REPLACE INTO memberships(msgid, thread_root, series_id, version_key) "
        "VALUES (?, ?, ?, ?)",
        [row for row in memberships if before.get(row[0]) != row],
    )
    delete_in(db, "DELETE FROM derive_set_aside WHERE msgid IN ({})", part)
    _insert_set_aside(db, set_aside, now)


def write_series(
    db: sqlite_utils.Database,
    series_list: list[Series],
    *,
    old_hashes: dict[str, str],
    old_series: Collection[str],
    same: Collection[str] = (),
) -> dict[str, str]:
    """Write re-derived series, rewriting only the versions whose rows changed (by hash;
    ``old_hashes``: the stored hash of each version key these series held before).
    Versions and series (of ``old_series``) no longer there are deleted.  Returns the hash
    of every version written or kept."""
    hashes: dict[str, str] = {}
    changed: list[VersionRows] = []
    series_out = []
    for s in series_list:
        series_out.append(_series_row(s))
        for pos, v in enumerate(s.versions):
            if v.key in same:  # known unchanged (the caller says why): keep the rows
                hashes[v.key] = old_hashes[v.key]
                continue
            hashes[v.key] = digest = version_hash(s, pos, v)
            if old_hashes.get(v.key) != digest:
                changed.append(version_rows(s, pos, v))
    if series_out:
        columns = list(series_out[0])
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "id")
        db.conn.executemany(
            f"INSERT INTO series ({', '.join(columns)}) VALUES ({marks(columns)}) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}",
            [tuple(r[c] for c in columns) for r in series_out],
        )
    stale = [k for k in old_hashes if k not in hashes] + [v.key for v in changed]
    _delete_search_rows(db, stale, set())
    delete_in(db, "DELETE FROM trailers WHERE version_key IN ({})", stale)
    delete_in(db, "DELETE FROM patches WHERE version_key IN ({})", stale)
    delete_in(db, "DELETE FROM versions WHERE key IN ({})", stale)
    after = (_max_rowid(db, "versions"), _max_rowid(db, "patches"))
    _insert_rows(db, "versions", [v.row for v in changed])
    _insert_rows(db, "patches", [p for v in changed for p in v.patches])
    _insert_rows(db, "trailers", [t for v in changed for t in v.trailers])
    _index_rows_after(db, versions=after[0], patches=after[1])
    gone = set(old_series) - {s.id for s in series_list}
    delete_in(db, "DELETE FROM series WHERE id IN ({})", gone)
    return hashes


def touch_last_activity(db: sqlite_utils.Database, last: dict[str, datetime]) -> None:
    """Series whose newest mail is now later (and nothing else changed)."""
    db.conn.executemany(
        "UPDATE series SET last_date = ? WHERE id = ? AND (last_date IS NULL OR last_date < ?)",
        [(iso(when), sid, iso(when)) for sid, when in sorted(last.items())],
    )


def move_memberships(db: sqlite_utils.Database, series_of: dict[str, str]) -> None:
    """Mails of postings (by key) now in another series."""
    db.conn.executemany(
        "UPDATE memberships SET series_id = ? WHERE version_key = ?",
        [(sid, key) for key, sid in sorted(series_of.items())],
    )


def _delete_search_rows(db: sqlite_utils.Database, keys: list[str], roots: set[str]) -> None:
    rowids = select_in(db, "SELECT rowid FROM versions WHERE key IN ({})", keys)
    rowids += [
        r + PATCH_ROWS
        for r in select_in(db, "SELECT rowid FROM patches WHERE version_key IN ({})", keys)
    ]
    rowids += [
        r + THREAD_ROWS
        for r in select_in(db, "SELECT rowid FROM threads WHERE root IN ({})", roots)
    ]
    delete_in(db, "DELETE FROM search_fts WHERE rowid IN ({})", rowids)


def _insert_rows(db: sqlite_utils.Database, table: str, rows: list[dict]) -> None:
    """Plain executemany: several times cheaper than sqlite-utils' insert_all per row."""
    if not rows:
        return
    columns = list(rows[0])
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks(columns)})"
    db.conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])


def _max_rowid(db: sqlite_utils.Database, table: str) -> int:
    return db.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()[0]


def _insert_set_aside(db: sqlite_utils.Database, set_aside: dict[str, str], now: datetime) -> None:
    stamp = iso(now)
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_set_aside(msgid, reason, at) VALUES (?, ?, ?)",
        [(msgid, reason, stamp) for msgid, reason in sorted(set_aside.items())],
    )


def derived_rows(derived: Derived) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """The rows of every derived table for ``derived``, and the hash of each version's
    rows (``series_rows``)."""
    series, versions, patches, trailers = [], [], [], []
    hashes = {}
    for s in derived.series:
        row, rows = series_rows(s)
        series.append(row)
        for v in rows:
            versions.append(v.row)
            patches.extend(v.patches)
            trailers.extend(v.trailers)
            hashes[v.key] = v.hash
    memberships = [
        {
            "msgid": msgid,
            "thread_root": root,
            "series_id": derived.series_of.get(msgid),
            "version_key": derived.posting_of.get(msgid),
        }
        for msgid, root in derived.thread_of.items()
    ]
    tables = {
        "threads": [_thread_row(t) for t in derived.threads],
        "series": series,
        "versions": versions,
        "patches": patches,
        "trailers": trailers,
        "memberships": memberships,
    }
    return tables, hashes


def _thread_row(t: Thread) -> dict:
    return {
        "root": t.root,
        "subject": t.subject,
        "first_date": iso(t.first_date),
        "last_date": iso(t.last_date),
        "n_messages": len(t.msgids),
        "missing": json.dumps(t.missing),
    }


def _patch_row(v: Posting, p: PatchSlot) -> dict:
    return {
        "version_key": v.key,
        "n": p.n,
        "msgid": p.msgid,
        "subject": p.subject,
        "patch_id": p.patch_id,
        "from_version": p.from_version,
        "applied": evidence_json(p.applied),
        "pulled": evidence_json(p.pulled),
    }


def _trailer_row(v: Posting, p: PatchSlot, i: int, t: GivenTrailer) -> dict:
    return {
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
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_keys(key, comp, strong) VALUES (?, ?, ?)",
        sorted(_held(components)),
    )


def _held(components: Components) -> set[tuple[str, str, int]]:
    """(key, unit, strong) rows: a key held strongly by any mail of a unit is strong."""
    held: dict[tuple[str, str], int] = {}
    for msgid, keys in components.keys.items():
        comp = components.comp_of[msgid]
        for key in keys.strong:
            held[(key, comp)] = 1
        for key in keys.weak:
            held.setdefault((key, comp), 0)
    return {(k, c, strong) for (k, c), strong in held.items()}


def replace_components(
    db: sqlite_utils.Database, units: Collection[str], part: Collection[str], new: Components
) -> None:
    """The units of the mails ``part`` (the old ``units``) become ``new``; only the rows
    that change are written."""
    sql = "SELECT msgid, comp FROM derive_components WHERE msgid IN ({})"
    old_comp = dict(rows_in(db, sql, part))
    delete_in(
        db, "DELETE FROM derive_components WHERE msgid IN ({})", old_comp.keys() - new.comp_of
    )
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_components(msgid, comp) VALUES (?, ?)",
        sorted((m, c) for m, c in new.comp_of.items() if old_comp.get(m) != c),
    )
    sql = "SELECT key, comp, strong FROM derive_keys WHERE comp IN ({})"
    old_keys = set(rows_in(db, sql, units))
    held = _held(new)
    db.conn.executemany(
        "DELETE FROM derive_keys WHERE key = ? AND comp = ?",
        sorted((k, c) for k, c, _s in old_keys - held),
    )
    db.conn.executemany(
        "INSERT OR REPLACE INTO derive_keys(key, comp, strong) VALUES (?, ?, ?)",
        sorted(held - old_keys),
    )


def touched_components(db: sqlite_utils.Database, keys: Iterable[Keys]) -> set[str]:
    """Components holding a strong key of these (any holder), or a weak one strongly."""
    strong: set[str] = set()
    weak: set[str] = set()
    for k in keys:
        strong |= k.strong
        weak |= k.weak
    comps = set(select_in(db, "SELECT comp FROM derive_keys WHERE key IN ({})", strong))
    sql = "SELECT comp FROM derive_keys WHERE strong = 1 AND key IN ({})"
    comps |= set(select_in(db, sql, weak))
    return comps


def component_members(db: sqlite_utils.Database, comps: Collection[str]) -> list[str]:
    return select_in(db, "SELECT msgid FROM derive_components WHERE comp IN ({})", comps)


def components_of(db: sqlite_utils.Database, msgids: Collection[str]) -> set[str]:
    return set(select_in(db, "SELECT comp FROM derive_components WHERE msgid IN ({})", msgids))


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
        "evidence_last": max((d for e in v.evidence if (d := iso(e.when))), default=None),
        "thread_root": v.thread_root,
    }


CONTEXT_KEY = "derive_context"


def comps_of_notices_by(db: sqlite_utils.Database, senders: Collection[str]) -> set[str]:
    """Components holding an applied/queued/dropped notice sent by one of ``senders``."""
    sql = """SELECT DISTINCT c.comp FROM messages g
             JOIN derive_components c ON c.msgid = g.msgid
             WHERE g.applied IS NOT NULL AND g.from_email IN ({})"""
    return set(select_in(db, sql, senders))
