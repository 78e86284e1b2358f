"""The series a maintainer means comes first: queries from the archive, hand-checked.

tests/fixtures/facts/search_gold.json: each query with the series it should find first and
why (exact title over stable/AUTOSEL copies and pull requests, spelled-out names, a match only
in one mail's text said as such).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.commands.answers import Sources, answer
from bot.commands.grammar import parse_command
from bot.commands.results import SeriesHistory, WhoReviewed
from storage.search import find_targets

GOLD = json.loads(
    (Path(__file__).parent / "fixtures" / "facts" / "search_gold.json").read_text("utf-8")
)["queries"]

pytestmark = pytest.mark.slow


def test_gold_queries_find_the_series_meant_first(archive_db) -> None:
    assert len(GOLD) >= 15
    wrong = []
    for case in GOLD:
        found = find_targets(archive_db, case["q"], series_only=True)
        first = found[0].id if found else None
        if first != case["series"]:
            wrong.append((case["q"], case["series"], first, case["why"]))
    assert not wrong, wrong


def test_a_match_only_in_mail_text_says_so(archive_db) -> None:
    cases = [c for c in GOLD if c.get("note")]
    assert cases
    for case in cases:
        result = answer(archive_db, parse_command(f"who reviewed {case['q']}"), Sources())
        assert isinstance(result, WhoReviewed), case
        assert result.note is not None and result.note.startswith(case["note"]), result.note
    title_hit = answer(archive_db, parse_command("series SYSTEM_RESET2"), Sources())
    assert isinstance(title_hit, SeriesHistory)
    assert title_hit.note is None
