"""Versions whose title changed stay one series: pairs from the archive, read by hand.

tests/fixtures/facts/retitled_gold.json: 'linked' pairs (vN → vN+1 with a new title) must be
in one series; 'apart' pairs (same author, a dependency, a pull request) must not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.db import Database
from storage.views import series_json

GOLD = json.loads(
    (Path(__file__).parent / "fixtures" / "facts" / "retitled_gold.json").read_text("utf-8")
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def series_of(archive_db: Database) -> dict[str, str]:
    found: dict[str, str] = {}
    for s in series_json(archive_db):
        for v in s["versions"]:
            found[v["key"]] = s["id"]
            if v["cover"]:
                found[v["cover"]] = s["id"]
    return found


def test_retitled_versions_are_one_series(series_of: dict[str, str]) -> None:
    pairs = GOLD["linked"]
    assert len(pairs) >= 10
    for pair in pairs:
        assert pair["older"] in series_of and pair["newer"] in series_of, pair
    split = [p["why"] for p in pairs if series_of[p["older"]] != series_of[p["newer"]]]
    assert not split


def test_look_alikes_stay_apart(series_of: dict[str, str]) -> None:
    pairs = GOLD["apart"]
    assert pairs
    for pair in pairs:
        assert pair["older"] in series_of and pair["newer"] in series_of, pair
    joined = [p["why"] for p in pairs if series_of[p["older"]] == series_of[p["newer"]]]
    assert not joined
