"""Shared by the digest tests: a small fixture week, a fixed clock, a real-archive week."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.sync.pipeline import ingest_mails
from ingest.sources import iter_raw_mails
from storage.db import open_db

FIXTURES = Path(__file__).parent / "fixtures" / "digest"
WEEK = "2023-W10"  # tests/fixtures/digest/week.mbox: Mon 2023-03-06 .. Mon 2023-03-13 UTC
NOW = datetime(2023, 3, 14, 9, 0, tzinfo=UTC)

# The golden week of the shared archive (a busy one: 151 mails), digested from the whole
# archive so earlier versions and their reviews are known, as in production.
REAL_WEEK = "2022-W06"
REAL_NOW = datetime(2022, 3, 1, 8, 0, tzinfo=UTC)


def ingest_files(path: Path, files, *, workers: int = 0):
    db = open_db(path)
    mails = (mail for f in files for mail in iter_raw_mails(Path(f)))
    ingest_mails(db, mails, now=lambda: NOW, workers=workers)  # one derivation at the end
    return db


def archive_files(shared: Path) -> list[Path]:
    return sorted((shared / "kvmarm-archive").glob("kvmarm-*.mbox.gz"))


def fixture_db(tmp_path: Path):
    """A database holding tests/fixtures/digest/week.mbox."""
    return ingest_files(tmp_path / "digest.db", [FIXTURES / "week.mbox"])
