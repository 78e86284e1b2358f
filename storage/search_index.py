"""The search index (``search_fts``, created by migration m004_search), rebuilt in bulk.

Derived tables are rewritten as a whole by ``storage.derived.save_derived``; filling the
index with three INSERT … SELECT statements afterwards is several times cheaper than a
trigger per row (migration m005 dropped m004's triggers).  One row per version (title,
sender), per patch (title: FEAT_ names live there) and per thread (subject, first sender).
"""

from __future__ import annotations

import re

import sqlite_utils

PATCH_ROWS = 1 << 40  # rowid ranges: versions, patches, threads
THREAD_ROWS = 2 << 40
NOTHING = 1 << 39  # a rowid mark past every row of a table: refresh_search_rows skips it

_FILL = (
    """INSERT INTO search_fts(rowid, kind, ref, title, people)
       SELECT rowid, 'series', series_id, title, sender_name || ' ' || sender_email
       FROM versions""",
    f"""INSERT INTO search_fts(rowid, kind, ref, title, people)
       SELECT p.rowid + {PATCH_ROWS}, 'patch', v.series_id, coalesce(m.title, p.subject), ''
       FROM patches p JOIN versions v ON v.key = p.version_key
       LEFT JOIN messages m ON m.msgid = p.msgid""",
    f"""INSERT INTO search_fts(rowid, kind, ref, title, people)
       SELECT t.rowid + {THREAD_ROWS}, 'thread', t.root, coalesce(m.title, t.subject),
              coalesce(m.from_name || ' ' || m.from_email, '')
       FROM threads t LEFT JOIN messages m ON m.msgid = t.root""",
)


def refresh_search_index(db: sqlite_utils.Database) -> None:
    """Make search_fts match the derived tables (call inside the rewriting transaction)."""
    db.execute("DELETE FROM search_fts")
    for sql in _FILL:
        db.execute(sql)
    _spell_out_braces(db)
    # Deleting every row leaves the index full of tombstones, which every search then reads
    # past (slash commands at 10x: p50 22 ms instead of 5 ms); merge it into one segment.
    db.execute("INSERT INTO search_fts(search_fts) VALUES('optimize')")


_BRACES_RE = re.compile(r"(\w*)\{([^{}]{1,80})\}(\w*)")


def spelled_out(title: str) -> list[str]:
    """Names a title writes with braces, spelled out: "KVM_{GET,SET}_CLOCK" →
    KVM_GET_CLOCK, KVM_SET_CLOCK; "kvm_{un}share_hyp" → kvm_unshare_hyp, kvm_share_hyp."""
    out: list[str] = []
    for m in _BRACES_RE.finditer(title):
        head, tail = m.group(1), m.group(3)
        options = [o.strip() for o in m.group(2).split(",")]
        if len(options) == 1:
            options.append("")
        out.extend(head + o + tail for o in options if head + o + tail)
    return out


def _spell_out_braces(
    db: sqlite_utils.Database, where: str = "1", params: list | None = None
) -> None:
    """Index rows whose title has "{a,b}" also match each spelled-out name (the rows
    ``where`` selects: all, or those just written)."""
    sql = f"SELECT rowid, title FROM search_fts WHERE title LIKE '%{{%}}%' AND ({where})"
    rows = db.execute(sql, params or []).fetchall()
    for rowid, title in rows:
        if names := spelled_out(title):
            db.execute(
                "UPDATE search_fts SET title = ? WHERE rowid = ?",
                [title + " " + " ".join(names), rowid],
            )


def refresh_search_rows(
    db: sqlite_utils.Database, after_version: int, after_patch: int, after_thread: int
) -> None:
    """Index the derived rows written after these rowids (the search rows of the rows they
    replace were deleted with them): what an incremental derivation wrote.  A mark past
    every row of its table (``NOTHING``) leaves that table alone."""
    marks = (after_version, after_patch, after_thread)
    offsets = (0, PATCH_ROWS, THREAD_ROWS)
    ends = (PATCH_ROWS, THREAD_ROWS, None)
    for sql, mark, alias, offset, end in zip(
        _FILL, marks, ("", "p.", "t."), offsets, ends, strict=True
    ):
        if mark >= NOTHING:
            continue
        db.execute(f"{sql} WHERE {alias}rowid > ?", [mark])
        # One rowid range per statement: FTS5 answers a range from its index, an OR of
        # ranges by reading every row.
        if end is None:
            _spell_out_braces(db, "rowid > ?", [offset + mark])
        else:
            _spell_out_braces(db, "rowid > ? AND rowid < ?", [offset + mark, end])
