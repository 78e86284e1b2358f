"""The machine-readable views (`kvmarm series|threads|status --json`), as plain dicts.

Windows select by the Date header in UTC, half-open [since, until).  A series or thread is in
the window when any of its messages (versions or replies) is.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime

import sqlite_utils

from storage.derived import set_aside_reasons
from storage.messages import iso, quarantine_reasons
from storage.queue import idle_series
from storage.state import get_state


def _window_sql(since: datetime | None, until: datetime | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("g.date >= ?")
        params.append(iso(since))
    if until is not None:
        clauses.append("g.date < ?")
        params.append(iso(until))
    return (" AND ".join(clauses) or "1"), params


def series_in_window(
    db: sqlite_utils.Database, since: datetime | None = None, until: datetime | None = None
) -> list[str]:
    where, params = _window_sql(since, until)
    sql = f"""
        SELECT DISTINCT m.series_id FROM memberships m JOIN messages g ON g.msgid = m.msgid
        WHERE m.series_id IS NOT NULL AND {where}
    """
    return [r[0] for r in db.execute(sql, params)]


_FEW = 200  # SQLite allows 32766 parameters; stay far below and keep plans simple


def series_json(
    db: sqlite_utils.Database,
    since: datetime | None = None,
    until: datetime | None = None,
    ids: list[str] | None = None,
    as_of: datetime | None = None,
) -> list[dict]:
    """Series (with every version, patch and trailer) active in the window, oldest first.

    ``as_of`` (the CLI and answers pass now): a series whose latest version is idle then
    (storage/queue.py) gets ``"status": "idle"`` and ``"idle_since"``, and so does that
    version's ``idle_since``; without it ``idle_since`` is null — idle depends on time.
    """
    wanted = set(ids if ids is not None else series_in_window(db, since, until))
    if not wanted:
        return []
    if len(wanted) <= _FEW:  # a handful (a slash command): read just those
        marks = ", ".join("?" * len(wanted))
        where = f"WHERE series_id IN ({marks})"
        params = sorted(wanted)
        in_versions = f"WHERE version_key IN (SELECT key FROM versions {where})"
        rows = fetch_rows(db, f"SELECT * FROM series WHERE id IN ({marks})", params)
    else:  # most of the database: one pass over each table is cheaper
        where = in_versions = ""
        params = []
        rows = fetch_rows(db, "SELECT * FROM series")
    versions = _grouped(
        db, f"SELECT * FROM versions {where} ORDER BY series_id, position", "series_id", params
    )
    patches = _grouped(
        db, f"SELECT * FROM patches {in_versions} ORDER BY version_key, n", "version_key", params
    )
    trailers = _grouped(
        db,
        f"SELECT * FROM trailers {in_versions} ORDER BY version_key, n, position",
        "version_key",
        params,
    )
    rows.sort(key=lambda s: (s["first_date"] or "", s["id"]))
    out = [
        _series_dict(s, versions.get(s["id"], []), patches, trailers)
        for s in rows
        if s["id"] in wanted
    ]
    if as_of is not None:
        _mark_idle(db, out, as_of)
    return out


def _mark_idle(db: sqlite_utils.Database, series: list[dict], as_of: datetime) -> None:
    idle = idle_series(db, [s["id"] for s in series], as_of)
    for s in series:
        since = idle.get(s["id"])
        if since is None:
            continue
        s["status"], s["idle_since"] = "idle", since
        dated = [v for v in s["versions"] if v["date"] is None or v["date"] < (iso(as_of) or "")]
        if dated:
            dated[-1]["idle_since"] = since


def threads_json(
    db: sqlite_utils.Database, since: datetime | None = None, until: datetime | None = None
) -> list[dict]:
    """Threads with a message in the window; ``messages`` lists the window's messages."""
    where, params = _window_sql(since, until)
    sql = f"""
        SELECT m.thread_root, m.series_id, g.msgid, g.date, g.from_name, g.from_email, g.subject
        FROM memberships m JOIN messages g ON g.msgid = m.msgid
        WHERE {where}
        ORDER BY g.date, g.msgid
    """
    by_root: dict[str, dict] = {}
    for root, series_id, msgid, date, name, email, subject in db.execute(sql, params):
        entry = by_root.setdefault(root, {"messages": [], "series": []})
        entry["messages"].append(
            {
                "msgid": msgid,
                "date": date,
                "from": {"name": name, "email": email},
                "subject": subject,
            }
        )
        if series_id and series_id not in entry["series"]:
            entry["series"].append(series_id)
    info = {
        r["root"]: r
        for r in fetch_rows(
            db, "SELECT root, subject, first_date, last_date, n_messages, missing FROM threads"
        )
    }
    categories = thread_categories(db)
    out = []
    for root, entry in by_root.items():
        t = info.get(root, {})
        category, tags = categories.get(root, ("Other", []))
        out.append(
            {
                "root": root,
                "subject": t.get("subject", ""),
                "category": category,
                "tags": tags,
                "first_date": t.get("first_date"),
                "last_date": t.get("last_date"),
                "total_messages": t.get("n_messages", len(entry["messages"])),
                "missing_parents": json.loads(t.get("missing", "[]")),
                "messages": entry["messages"],
                "series": entry["series"],
            }
        )
    out.sort(key=lambda t: (t["messages"][0]["date"] or "", t["root"]))
    return out


def thread_categories(db: sqlite_utils.Database) -> dict[str, tuple[str, list[str]]]:
    """Thread root → (PATCH | RFC | PULL | Other, project tags): from the thread's first
    series version; a thread without one is Other (tags from its root's subject, if any)."""
    out: dict[str, tuple[str, list[str]]] = {}
    sql = "SELECT thread_root, category, tags FROM versions ORDER BY date DESC, key DESC"
    for root, category, tags in db.execute(sql):
        out[root] = (category, json.loads(tags))
    sql = """
        SELECT t.root, m.subject_info FROM threads t JOIN messages m ON m.msgid = t.root
        WHERE t.root NOT IN (SELECT thread_root FROM versions WHERE thread_root IS NOT NULL)
    """
    for root, info in db.execute(sql):
        out[root] = ("Other", json.loads(info)[9])
    return out


def status_json(db: sqlite_utils.Database, db_path: str) -> dict:
    def count(sql: str) -> int:
        return db.execute(sql).fetchone()[0]

    first, last = db.execute("SELECT min(date), max(date) FROM messages").fetchone()
    return {
        "db": db_path,
        "messages": count("SELECT count(*) FROM messages"),
        "threads": count("SELECT count(*) FROM threads"),
        "series": count("SELECT count(*) FROM series"),
        "versions": count("SELECT count(*) FROM versions"),
        "quarantined": count("SELECT count(*) FROM quarantine"),
        "with_problems": count("SELECT count(*) FROM messages WHERE problems != '[]'"),
        "undated": count("SELECT count(*) FROM messages WHERE date IS NULL"),
        "first_date": first,
        "last_date": last,
        "last_sync": get_state(db, "last_sync"),
        "last_ingest": get_state(db, "last_ingest"),
        "quarantine": quarantine_reasons(db),
        "set_aside": count("SELECT count(*) FROM derive_set_aside"),
        "set_aside_list": set_aside_reasons(db),
        "facts_pending": count("SELECT count(*) FROM derive_queue"),
    }


def fetch_rows(db: sqlite_utils.Database, sql: str, params=()) -> list[dict]:
    """Rows of a query as dicts (column name → value)."""
    cur = db.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur]


def _grouped(db: sqlite_utils.Database, sql: str, key: str, params=()) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for row in fetch_rows(db, sql, params):
        out[row[key]].append(row)
    return out


def _series_dict(s: dict, versions: list[dict], patches, trailers) -> dict:
    return {
        "id": s["id"],
        "title": s["title"],
        "author": {"name": s["author_name"], "email": s["author_email"]},
        "change_id": s["change_id"],
        "status": s["status"],
        "idle_since": None,
        "first_date": s["first_date"],
        "last_date": s["last_date"],
        "linked_by": json.loads(s["links"]),
        "versions": [_version_dict(v, patches.get(v["key"], []), trailers) for v in versions],
    }


def _version_dict(v: dict, patches: list[dict], trailers) -> dict:
    evidence = json.loads(v["evidence"])
    applied = next(
        (e for e in evidence if v["status"] in ("applied", "partially-applied", "pulled")), None
    )
    by_slot: dict[int, list[dict]] = defaultdict(list)
    for t in trailers.get(v["key"], []):
        by_slot[t["n"]].append(t)
    return {
        "key": v["key"],
        "version": v["version"],
        "date": v["date"],
        "sender": {"name": v["sender_name"], "email": v["sender_email"]},
        "title": v["title"],
        "cover": v["cover"],
        "total": v["total"],
        "category": v["category"],
        "prefixes": json.loads(v["prefixes"]),
        "tags": json.loads(v["tags"]),
        "resend": bool(v["resend"]),
        "partial_reroll_of": v["partial_reroll_of"],
        "status": v["status"],
        "idle_since": None,
        "evidence": evidence,
        "applied": applied,
        "thread": v["thread_root"],
        "patches": [_patch_dict(p, by_slot.get(p["n"], [])) for p in patches],
    }


def _patch_dict(p: dict, trailers: list[dict]) -> dict:
    def trailer(t: dict) -> dict:
        out = {
            "type": t["kind"],
            "name": t["name"],
            "email": t["email"],
            "msgid": t["msgid"],
            "source": t["source"],
            "from_version": t["from_version"],
        }
        if t.get("scope"):
            out["scope"] = t["scope"]
        return out

    return {
        "n": p["n"],
        "msgid": p["msgid"],
        "subject": p["subject"],
        "patch_id": p["patch_id"],
        "from_version": p["from_version"],
        "applied": json.loads(p["applied"]) if p["applied"] else None,
        "pulled": json.loads(p["pulled"]) if p["pulled"] else None,
        "trailers": [trailer(t) for t in trailers if not t["mismatch"] and not t.get("unresolved")],
        "mismatched_trailers": [trailer(t) for t in trailers if t["mismatch"]],
        # scope words named but not mapped to patches: shown with the phrase, never counted
        "scoped_trailers": [
            trailer(t) for t in trailers if t.get("unresolved") and not t["mismatch"]
        ],
    }
