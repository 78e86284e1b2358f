"""Fixtures shared by all tests: the fake Slack Web API, an empty database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage.db import open_db
from tests.fake_slack import FakeSlack


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "kvmarm.db")
    yield database
    database.close()
