"""Applied / queued / dropped / stable notices on the real archive, against a hand-read gold set.

tests/fixtures/facts/applied_gold.json lists every status statement found in the 35 archive
months plus look-alikes (testers, authors, "applied locally"), each with the phrase that decides
it.  Parsing must read each as the gold set says; deriving must let exactly the counted ones
change a status (a notice that counts leaves evidence naming it; one that does not, none).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ingest.parse import parse_mail
from storage.messages import get_raw
from storage.views import series_json

GOLD = json.loads(
    (Path(__file__).parent / "fixtures" / "facts" / "applied_gold.json").read_text("utf-8")
)["notices"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evidence_msgids(archive_db) -> set[str]:
    """Message-IDs that some posting's status or some patch's applied mark rests on."""
    found: set[str] = set()
    for s in series_json(archive_db):
        for v in s["versions"]:
            found |= {e["msgid"] for e in v["evidence"]}
            found |= {p["applied"]["msgid"] for p in v["patches"] if p.get("applied")}
    return found


def test_gold_set_covers_every_rule() -> None:
    rules = Counter(rule for case in GOLD for rule in case["rules"])
    for rule in (
        "b4-ty",
        "named-tree",
        "known-applier",
        "tentative",
        "partial",
        "whole-series-on-one-patch",
        "taken-back",
        "stable-tree",
        "not-an-applier",
        "look-alike",
    ):
        assert rules[rule] > 0, rule
    assert len(GOLD) > 300


def test_notices_read_as_the_gold_set_says(archive_db) -> None:
    wrong = []
    for case in GOLD:
        raw = get_raw(archive_db, case["msgid"])
        assert raw is not None, case["msgid"]
        notice = parse_mail(raw).message.applied
        got = None
        if notice is not None:
            got = {
                "verb": notice.verb,
                "where": notice.where,
                "counters": list(notice.counters),
                "excluded": list(notice.excluded),
                "tentative": notice.tentative,
            }
        want = None
        if case["verb"] is not None:
            want = {
                "verb": case["verb"],
                "where": case.get("where"),
                "counters": case.get("counters", []),
                "excluded": case.get("excluded", []),
                "tentative": case.get("tentative", False),
            }
        if got != want:
            wrong.append((case["msgid"], case["phrase"], want, got))
    assert not wrong, wrong[:5]


def test_only_counted_notices_change_a_status(archive_db, evidence_msgids: set[str]) -> None:
    # names_absent: it counts, but the patches it names never reached this list.
    decided = [c for c in GOLD if c["counted"] is not None and not c.get("names_absent")]
    assert len(decided) > 300
    wrong = [
        (c["msgid"], c["phrase"], c["counted"])
        for c in decided
        if (c["msgid"] in evidence_msgids) != c["counted"]
    ]
    assert not wrong, wrong[:5]


def _version_of(db, msgid: str) -> dict:
    for s in series_json(db):
        for v in s["versions"]:
            if msgid in {v["key"], v["cover"]} | {p["msgid"] for p in v["patches"]}:
                return v
    raise AssertionError(msgid)


def test_dropped_series_goes_back_and_keeps_evidence(archive_db) -> None:
    """maz, on 1/3: "I've now dropped this series from my tree until Mark has a chance to"."""
    v = _version_of(archive_db, "20191220150549.31948-1-mark.rutland@arm.com")
    assert v["status"] == "dropped"
    assert v["evidence"][0]["msgid"] == "86zhfbgnzf.wl-maz@kernel.org"
    assert not any(p["applied"] for p in v["patches"])


def test_whole_series_said_on_one_patch_minus_one(archive_db) -> None:
    """catalin, on 12/18: "I queued this series for 5.7, apart from patch 12"."""
    v = _version_of(archive_db, "20200218195842.34156-1-broonie@kernel.org")
    done = sorted(p["n"] for p in v["patches"] if p["applied"])
    assert v["status"] == "partially-applied"
    assert done == [n for n in range(1, v["total"] + 1) if n != 12]
    assert {p["applied"]["kind"] for p in v["patches"] if p["applied"]} == {"queued"}


def test_stable_tree_notice_marks_that_posting(archive_db) -> None:
    """gregkh: 'Patch "KVM: arm64: Fix exclusive limit for IPA size" has been added to the
    4.14-stable tree', in reply to the 4.14 backport."""
    v = _version_of(archive_db, "20210315110833.4135927-1-maz@kernel.org")
    assert v["status"] == "applied"
    assert v["applied"]["where"] == "4.14-stable"
