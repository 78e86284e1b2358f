"""Small SQL helpers for statements over many values (SQLite limits the number of ``?``)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

import sqlite_utils

CHUNK = 500


def chunked(items: list, size: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def marks(items: Sequence) -> str:
    """``?, ?, …`` for ``items``."""
    return ", ".join("?" * len(items))


def rows_in(db: sqlite_utils.Database, sql: str, values: Collection) -> list[tuple]:
    """Rows of ``sql`` (with one ``IN ({})``) over ``values``, a chunk at a time."""
    out: list[tuple] = []
    for chunk in chunked(sorted(set(values))):
        out.extend(db.execute(sql.format(marks(chunk)), chunk).fetchall())
    return out


def select_in(db: sqlite_utils.Database, sql: str, values: Collection) -> list:
    """The first column of ``rows_in``."""
    return [row[0] for row in rows_in(db, sql, values)]


def delete_in(db: sqlite_utils.Database, sql: str, values: Collection) -> None:
    for chunk in chunked(sorted(set(values))):
        db.execute(sql.format(marks(chunk)), chunk)
