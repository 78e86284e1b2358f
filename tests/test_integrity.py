"""Crash safety and concurrency of writers, through real `kvmarm` processes on real mail.

kill -9 at several points of an ingest into an existing database, then any writing command
→ the same facts as a clean run; two writers at once → both succeed, one after the other.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.lock import write_lock
from tests.shared import shared_data_dir

KVMARM = Path(sys.executable).parent / "kvmarm"
BASE = ("kvmarm-2020-12.mbox.gz",)
# More than one SQLite batch (pipeline.BATCH = 2048 mails): a kill can fall between batches.
MORE = tuple(f"kvmarm-2021-0{m}.mbox.gz" for m in (1, 2, 3, 4))


def months(*names: str) -> list[str]:
    folder = shared_data_dir() / "kvmarm-archive"
    return [str(folder / n) for n in names]


def _env(tmp: Path) -> dict[str, str]:
    (tmp / "none.toml").write_text("")
    env = dict(os.environ, KVMARM_CONFIG=str(tmp / "none.toml"))
    env.pop("KVMARM_DB", None)
    return env


def kvmarm(db: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(KVMARM), "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=_env(db.parent),
        timeout=600,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def start(db: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [str(KVMARM), "--db", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=kw.pop("stderr", subprocess.PIPE),
        text=True,
        env=_env(db.parent),
        **kw,
    )


def facts(db: Path) -> dict:
    """What a maintainer reads: series and threads as JSON, and the status counts."""
    status = json.loads(kvmarm(db, "status", "--json").stdout)
    counts = {k: status[k] for k in ("messages", "threads", "series", "versions", "quarantined")}
    return {
        "series": json.loads(kvmarm(db, "series", "--json").stdout),
        "threads": json.loads(kvmarm(db, "threads", "--json").stdout),
        "counts": counts,
        "facts": status["facts"],
    }


def query(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return -1
    finally:
        conn.close()


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, f"the ingest finished before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("base") / "base.db"
    kvmarm(db, "ingest", *months(*BASE))
    return db


@pytest.fixture(scope="module")
def clean(base_db: Path, tmp_path_factory) -> dict:
    """The reference: the base database plus the next months, in one uninterrupted run."""
    db = tmp_path_factory.mktemp("clean") / "k.db"
    shutil.copy(base_db, db)
    kvmarm(db, "ingest", *months(*MORE))
    result = facts(db)
    assert result["counts"]["messages"] > 2048 + 434 and result["counts"]["series"] > 100
    assert result["facts"] == "current"
    return result


def _copy(base_db: Path, tmp_path: Path) -> Path:
    db = tmp_path / "k.db"
    shutil.copy(base_db, db)
    return db


@pytest.mark.slow
@pytest.mark.parametrize("point", ["first-batch-stored", "all-mail-stored", "at-start"])
def test_kill_9_during_ingest_then_rerun_equals_a_clean_run(base_db, clean, tmp_path, point):
    db = _copy(base_db, tmp_path)
    before = query(db, "SELECT count(*) FROM messages")
    final = clean["counts"]["messages"]
    proc = start(db, "ingest", *months(*MORE))
    if point == "first-batch-stored":  # some of the new mail committed, the rest not read
        kill_when(proc, lambda: before < query(db, "SELECT count(*) FROM messages") < final, point)
    elif point == "all-mail-stored":  # every mail committed; derivation under way
        kill_when(proc, lambda: query(db, "SELECT count(*) FROM messages") == final, point)
    else:
        kill_when(proc, lambda: (db.parent / "k.db.lock").exists(), point)
    stored = query(db, "SELECT count(*) FROM messages")
    if stored > before:
        assert facts(db)["facts"] == "out of date"
    kvmarm(db, "ingest", *months(*MORE))
    assert facts(db) == clean


@pytest.mark.slow
def test_after_a_kill_an_ingest_with_nothing_new_still_rebuilds(base_db, tmp_path):
    """'0 new' used to leave the facts stale: the queue in the database says otherwise."""
    db = _copy(base_db, tmp_path)
    before = query(db, "SELECT count(*) FROM messages")
    proc = start(db, "ingest", *months(*MORE))
    kill_when(proc, lambda: query(db, "SELECT count(*) FROM messages") > before, "mail stored")
    assert query(db, "SELECT count(*) FROM derive_queue") > 0
    again = json.loads(kvmarm(db, "ingest", "--json", *months(*BASE)).stdout)
    assert again["added"] == 0
    repaired = facts(db)
    assert repaired["facts"] == "current"
    # The same stored mail derived from scratch gives the same facts.
    full = tmp_path / "full.db"
    shutil.copy(db, full)
    kvmarm(full, "reindex")
    assert facts(full) == repaired


@pytest.mark.slow
def test_two_ingests_at_once_on_a_fresh_db_equal_one_clean_run(tmp_path):
    first, second = months(*BASE, *MORE[:1]), months(*MORE[:2])
    reference = tmp_path / "ref" / "k.db"
    reference.parent.mkdir()
    kvmarm(reference, "ingest", *first)
    kvmarm(reference, "ingest", *second)
    db = tmp_path / "both" / "k.db"
    db.parent.mkdir()
    a, b = start(db, "ingest", *first), start(db, "ingest", *second)
    outs = [p.communicate(timeout=600) for p in (a, b)]
    assert (a.returncode, b.returncode) == (0, 0), outs
    assert all("Traceback" not in err and "locked" not in err for _out, err in outs)
    assert facts(db) == facts(reference)


@pytest.mark.slow
def test_ingest_and_reindex_at_once_wait_for_each_other(base_db, clean, tmp_path):
    db = _copy(base_db, tmp_path)
    a, b = start(db, "ingest", *months(*MORE)), start(db, "reindex")
    outs = [p.communicate(timeout=600) for p in (a, b)]
    assert (a.returncode, b.returncode) == (0, 0), outs
    assert facts(db) == clean


def test_a_waiting_writer_says_whom_it_waits_for_on_a_terminal(tmp_path):
    db = tmp_path / "k.db"
    kvmarm(db, "status")
    master, slave = pty.openpty()
    with write_lock(db, "kvmarm test-holder"):
        proc = start(db, "ingest", *months(*BASE), stderr=slave)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 60
        while b"waiting for another" not in seen and time.monotonic() < deadline:
            seen += os.read(master, 1024)
        assert proc.poll() is None  # still waiting: nothing written yet
        assert query(db, "SELECT count(*) FROM messages") == 0
    assert proc.wait(timeout=300) == 0
    os.close(master)
    text = seen.decode(errors="replace")
    assert f"waiting for another kvmarm test-holder (pid {os.getpid()})" in text
    assert query(db, "SELECT count(*) FROM messages") > 400


def test_a_waiting_writer_is_silent_off_a_terminal(tmp_path):
    db = tmp_path / "k.db"
    kvmarm(db, "status")
    with write_lock(db, "kvmarm test-holder"):
        proc = start(db, "ingest", *months(*BASE))
        time.sleep(1.0)
        assert proc.poll() is None
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "waiting" not in err


def test_a_database_named_through_a_symlink_finds_the_same_lock(tmp_path):
    """SQLite names the file by its real path; the CLI by what it was given.  Both must
    take one lock, or the ingest would wait for itself."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    db = tmp_path / "link" / "k.db"
    done = kvmarm(
        db,
        "ingest",
        str(Path(__file__).parent / "fixtures" / "status" / "applied-one-of-three.mbox"),
    )
    assert "new" in done.stdout
    assert (tmp_path / "real" / "k.db.lock").exists()


def test_readers_do_not_wait_for_a_writer(tmp_path):
    """A writer holding the lock and an open write transaction: status and series still
    answer at once (WAL), from the last committed state."""
    db = tmp_path / "k.db"
    kvmarm(
        db,
        "ingest",
        str(Path(__file__).parent / "fixtures" / "status" / "applied-one-of-three.mbox"),
    )
    conn = sqlite3.connect(db)
    with write_lock(db, "kvmarm test-holder"):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM series")
        started = time.monotonic()
        status = json.loads(kvmarm(db, "status", "--json").stdout)
        series = json.loads(kvmarm(db, "series", "--json").stdout)
        assert time.monotonic() - started < 20
        conn.rollback()
    conn.close()
    assert status["series"] == len(series) == 1
