"""Trailers and status on a small hand-written thread (tests/fixtures/status/)."""

from __future__ import annotations

from pathlib import Path

from bot.sync.pipeline import ingest_mails
from ingest.sources import iter_raw_mails
from storage.views import series_json

FIXTURES = Path(__file__).parent / "fixtures" / "status"


def _version(db, name: str) -> dict:
    ingest_mails(db, iter_raw_mails(FIXTURES / name))
    [series] = series_json(db)
    [version] = series["versions"]
    return version


def _reviews(patch: dict) -> set[tuple[str, str, str]]:
    return {
        (t["type"], t["email"], t["source"])
        for t in patch["trailers"]
        if t["type"] != "Signed-off-by"
    }


def test_applied_reply_to_one_patch_marks_only_that_patch(db) -> None:
    v = _version(db, "applied-one-of-three.mbox")
    applied = {p["n"]: p["applied"] for p in v["patches"]}
    assert applied[1] == {
        "kind": "applied",
        "msgid": "mark-1@example.org",
        "by": "mark@example.org",
        "where": "kvmarm/fixes",
        "commit": None,
        "date": "2022-02-09T16:00:00Z",
    }
    assert applied[2] is None and applied[3] is None
    assert v["status"] == "partially-applied"


def test_cover_trailer_applies_to_every_patch_and_quotes_do_not_count(db) -> None:
    v = _version(db, "applied-one-of-three.mbox")
    for p in v["patches"]:
        assert ("Reviewed-by", "rita@example.org", "cover") in _reviews(p)
        assert all(t["email"] != "quoted@example.org" for t in p["trailers"])


def test_reply_to_reply_reaches_the_patch_and_mismatches_are_flagged(db) -> None:
    v = _version(db, "applied-one-of-three.mbox")
    third = v["patches"][2]
    assert ("Tested-by", "tom@example.org", "reply") in _reviews(third)
    assert [(t["type"], t["email"]) for t in third["mismatched_trailers"]] == [
        ("Acked-by", "else@example.org")
    ]
    assert all(
        ("Tested-by", "tom@example.org", "reply") not in _reviews(p) for p in v["patches"][:2]
    )
