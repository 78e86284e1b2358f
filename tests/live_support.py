"""Two real archive months for the live-Slack tests: January 2022 stored (its facts become
the baseline), February 2022 to ingest next, split in two halves by position."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from bot.sync.pipeline import ingest_mails
from ingest.sources import RawMail, iter_raw_mails
from storage.db import open_db
from tests.shared import shared_data_dir

_lock = threading.Lock()
_jan: dict[str, Path] = {}
FEB_SPLIT = 280  # mails of February in the first half (dates up to about 2022-02-15)


def month(name: str) -> list[RawMail]:
    return list(iter_raw_mails(shared_data_dir() / "kvmarm-archive" / f"kvmarm-{name}.mbox.gz"))


def january_db(tmp_path: Path, workdir: Path) -> Path:
    """A fresh copy of a database holding January 2022 (built once per test process)."""
    with _lock:
        if "path" not in _jan:
            path = workdir / "jan.db"
            db = open_db(path)
            ingest_mails(db, month("2022-01"))
            db.close()
            _jan["path"] = path
    dest = tmp_path / "kvmarm.db"
    shutil.copy(_jan["path"], dest)
    return dest


def ingest(path: Path, mails: list[RawMail]) -> None:
    db = open_db(path)
    ingest_mails(db, mails)
    db.close()
