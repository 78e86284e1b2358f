"""Schema versions: a database from a newer kvmarm-bot is refused and left untouched; an
older one is migrated, under the write lock."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from bot.cli import main
from storage.db import SchemaTooNew, open_db, schema_version
from storage.lock import write_lock
from storage.migrations import MIGRATIONS


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _newer(tmp_path: Path, how: str) -> Path:
    path = tmp_path / "newer.db"
    open_db(path).close()
    conn = sqlite3.connect(path)
    if how == "migration":
        conn.execute(
            "INSERT INTO _sqlite_migrations(migration_set, name, applied_at) "
            "VALUES ('kvmarm', 'm999_from_the_future', '2030-01-01 00:00:00+00:00')"
        )
    else:
        conn.execute(f"PRAGMA user_version={schema_version() + 1}")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("how", ["migration", "stamp"])
@pytest.mark.parametrize("command", [["status"], ["series", "--json"], ["reindex"]])
def test_a_newer_database_is_refused_with_one_line_and_left_untouched(tmp_path, how, command):
    path = _newer(tmp_path, how)
    before = _digest(path)
    result = CliRunner().invoke(main, ["--db", str(path), *command])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "written by a newer kvmarm-bot" in lines[0], result.output
    assert "Traceback" not in result.output
    assert _digest(path) == before


def test_open_db_raises_schema_too_new(tmp_path):
    path = _newer(tmp_path, "migration")
    with pytest.raises(SchemaTooNew, match="m999_from_the_future"):
        open_db(path)


def _older(tmp_path: Path) -> Path:
    path = tmp_path / "older.db"
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before="m006_derive_queue")
    db.close()
    return path


def test_an_older_database_is_migrated_once_the_write_lock_is_free(tmp_path):
    path = _older(tmp_path)
    assert "derive_queue" not in sqlite_utils.Database(path).table_names()
    opened: list[sqlite_utils.Database] = []
    with write_lock(path, "kvmarm test-holder"):
        opener = threading.Thread(target=lambda: opened.append(open_db(path)))
        opener.start()
        time.sleep(0.5)
        assert opened == []  # the migration waits for the writer
        # (same process: the lock's in-process guard makes the thread wait)
    opener.join(timeout=30)
    [db] = opened
    assert {"derive_queue", "derive_set_aside"} <= set(db.table_names())
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema_version()
    assert not MIGRATIONS.pending(db)
