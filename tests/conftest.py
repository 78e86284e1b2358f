"""Fixtures shared by all tests: the fake Slack Web API, an empty database, the archive."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.db import Database, open_db
from tests.archive import archive_db_path
from tests.fake_openai import FakeOpenAI
from tests.fake_slack import FakeSlack


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """One temporary root per test run.

    pytest's default root (/tmp/pytest-of-USER) keeps only the last three runs, so runs from
    two checkouts on one machine delete each other's directories (and the lore servers in
    them) mid-run.  Each run gets its own root, named after the checkout and the pid; roots
    of runs that have ended are removed.
    """
    if config.option.basetemp is not None:
        return
    parent = Path(tempfile.gettempdir()) / "kvmarm-pytest"
    tag = hashlib.sha1(str(config.rootpath).encode()).hexdigest()[:10]
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob(f"{tag}-*"):
        if not _alive(int(old.name.rsplit("-", 1)[1])):
            shutil.rmtree(old, ignore_errors=True)
    config.option.basetemp = str(parent / f"{tag}-{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py)."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_db(tmp_path / "kvmarm.db")
    yield database
    database.close()


@pytest.fixture(scope="session")
def archive_path() -> Path:
    """The whole shared archive in one database (tests/archive.py), built once per run."""
    return archive_db_path()


@pytest.fixture(scope="session")
def archive_db(archive_path: Path) -> Iterator[Database]:
    """The archive database opened read-only, once per run: tests that only read share it."""
    database = open_db(archive_path, readonly=True)
    yield database
    database.close()
