"""Opening the one SQLite file: WAL, foreign keys, migrations applied on open.

Migrations run under the write lock (storage/lock.py), so two commands opening a new file
at once do not both create its tables.  A database written by a newer kvmarm-bot (it has
migrations this version does not know) is refused and left untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from storage.lock import LockError, LockHolder, write_lock
from storage.migrations import MIGRATIONS

# What callers outside storage/ name the database by: sqlite_utils is used only in storage/.
Database = sqlite_utils.Database


class StorageError(Exception):
    """The database cannot be opened or written (path, permissions, corruption)."""


class SchemaTooNew(StorageError):
    """The database was written by a newer kvmarm-bot; this version must not touch it."""


BUSY_TIMEOUT_MS = 30_000


def open_db(
    path: str | Path,
    *,
    readonly: bool = False,
    command: str = "kvmarm",
    on_wait: Callable[[LockHolder], None] | None = None,
) -> Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    ``":memory:"`` gives a private in-memory database (tests).  ``readonly`` opens an
    existing file without writing anything (a read-only file or directory is fine);
    its schema must then already be current.  ``command`` and ``on_wait`` name this
    process in the lock file and report waiting for another writer (migrations).
    """
    try:
        db = _connect(path, readonly)
        refuse_newer_schema(db, path)
        if not readonly:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        if readonly:
            db.execute("PRAGMA query_only=ON")  # what is_read_only() reads
        db.execute("PRAGMA foreign_keys=ON")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not readonly and MIGRATIONS.pending(db):
            with write_lock(path, command, on_wait=on_wait):
                refuse_newer_schema(db, path)
                MIGRATIONS.apply(db)  # applies only what is still pending under the lock
                db.execute(f"PRAGMA user_version={schema_version()}")
        elif readonly and MIGRATIONS.pending(db):
            raise StorageError(
                f"database {path} needs an upgrade but is read-only: "
                "run a writing command (e.g. `kvmarm status` with write access) first"
            )
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    except LockError as exc:
        raise StorageError(f"cannot upgrade database {path}: {exc}") from exc
    return db


@contextmanager
def transaction(db: Database) -> Iterator[None]:
    """One write transaction: committed when the block ends, rolled back if it raises.

    It holds SQLite's write lock from its first statement (``BEGIN IMMEDIATE``), so it
    waits for another writer (busy timeout) instead of failing when it upgrades from
    reading to writing.  Nested uses join the outer transaction (as savepoints), so storage
    functions that open their own can be called inside one.  The only way code outside
    storage/ groups writes.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()


def is_read_only(db: Database) -> bool:
    """``db`` was opened read-only (callers skip optional writes such as caches)."""
    return bool(db.execute("PRAGMA query_only").fetchone()[0])


def database_file(db: Database) -> str:
    """The file behind ``db`` (``":memory:"`` for an in-memory database)."""
    for _seq, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return file or ":memory:"
    return ":memory:"


@contextmanager
def writing(db: Database, command: str) -> Iterator[Database]:
    """Hold ``db``'s write lock (storage/lock.py) and one write transaction inside."""
    with write_lock(database_file(db), command), transaction(db):
        yield db


def schema_version() -> int:
    """This version's schema stamp (PRAGMA user_version): the number of its migrations."""
    return len(known_migrations())


def known_migrations() -> list[str]:
    return [m.name for m in MIGRATIONS.pending(Database(memory=True))]


def refuse_newer_schema(db: Database, path: str | Path) -> None:
    """Raise SchemaTooNew when ``db`` has migrations or a schema stamp we do not know."""
    known = set(known_migrations())
    unknown = [m.name for m in MIGRATIONS.applied(db) if m.name not in known]
    stamp = db.execute("PRAGMA user_version").fetchone()[0]
    if unknown or stamp > len(known):
        what = ", ".join(unknown) if unknown else f"schema version {stamp} > {len(known)}"
        raise SchemaTooNew(
            f"database {path} was written by a newer kvmarm-bot ({what}); "
            "upgrade kvmarm-bot to use it (it was left untouched)"
        )


def _connect(path: str | Path, readonly: bool) -> Database:
    if str(path) == ":memory:":
        return Database(sqlite3.connect(":memory:", check_same_thread=False))
    p = Path(path).expanduser()
    if readonly:
        if not p.is_file():
            raise StorageError(f"cannot open database {path}: no such file")
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # WAL in a read-only directory without its -shm file: read the file as it is.
            conn.close()
            conn = sqlite3.connect(f"file:{p}?immutable=1", uri=True, check_same_thread=False)
        return Database(conn)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the directory of {path}: {exc.strerror}") from exc
    conn = sqlite3.connect(str(p), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    return Database(conn)
