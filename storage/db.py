"""Opening the one SQLite file: WAL, foreign keys, migrations applied on open."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from storage.migrations import MIGRATIONS

# What callers outside storage/ name the database by: sqlite_utils is used only in storage/.
Database = sqlite_utils.Database


class StorageError(Exception):
    """The database cannot be opened or written (path, permissions, corruption)."""


def open_db(path: str | Path, *, readonly: bool = False) -> Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    ``":memory:"`` gives a private in-memory database (tests).
    """
    try:
        if str(path) == ":memory:":
            conn = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            p = Path(path).expanduser()
            if not readonly:
                p.parent.mkdir(parents=True, exist_ok=True)
            uri = f"file:{p}?mode=ro" if readonly else str(p)
            conn = sqlite3.connect(uri, uri=readonly, check_same_thread=False, timeout=30)
        db = sqlite_utils.Database(conn)
        if not readonly:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        if not readonly:
            MIGRATIONS.apply(db)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    return db


@contextmanager
def transaction(db: Database) -> Iterator[None]:
    """One write transaction: committed when the block ends, rolled back if it raises.

    Nested uses join the outer transaction (as savepoints), so storage functions that open
    their own can be called inside one.  The only way code outside storage/ groups writes.
    """
    with db.atomic():
        yield
