"""The whole shared kvmarm archive in one SQLite file, built once per test process.

Tests that check facts against real mail, and the Slack app tests, read it through the
session fixtures ``archive_db`` (opened read-only once) and ``archive_path`` in
tests/conftest.py; nothing writes to it (tests that write copy it first with
``copy_archive_db``).
"""

from __future__ import annotations

import atexit
import email
import email.policy
import shutil
import tempfile
import threading
from pathlib import Path

from bot.sync.pipeline import default_workers, ingest_mails
from ingest.sources import count_bytes, iter_raw_mails
from storage.db import Database, open_db
from storage.messages import get_raw
from tests.shared import shared_data_dir

_lock = threading.Lock()
_built: Path | None = None


def archive_db_path() -> Path:
    """Path of the archive database (skips, or fails under CI, without ../shared/data)."""
    global _built
    archive = shared_data_dir() / "kvmarm-archive"
    with _lock:
        if _built is None:
            workdir = Path(tempfile.mkdtemp(prefix="kvmarm-archive-"))
            atexit.register(shutil.rmtree, workdir, True)
            path = workdir / "archive.db"
            files = sorted(archive.glob("*.mbox.gz"))
            db = open_db(path)
            total = sum(count_bytes(f) for f in files)
            ingest_mails(
                db,
                (m for f in files for m in iter_raw_mails(f)),
                workers=default_workers(total),
            )
            db.close()
            _built = path
    return _built


def copy_archive_db(dest: Path) -> Path:
    shutil.copy(archive_db_path(), dest)
    return dest


def stored_raw(db: Database, msgid: str) -> bytes:
    """The raw bytes of a stored mail; fails the test if it is not stored."""
    raw = get_raw(db, msgid)
    assert raw is not None, f"{msgid} is not stored"
    return raw


def mail_text(db: Database, msgid: str) -> str:
    """The decoded text part of a stored mail, as its sender wrote it (quotes included)."""
    msg = email.message_from_bytes(stored_raw(db, msgid), policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain",)) or msg
    return part.get_content() if not part.is_multipart() else ""


def own_trailer_lines(text: str) -> set[str]:
    """``Kind: Name <email>`` lines written by the sender (not quoted), whitespace squeezed."""
    return {
        " ".join(line.split())
        for line in text.splitlines()
        if not line.lstrip().startswith(">") and ":" in line
    }
