"""b4's own follow-up-trailer cases (b4_trailer_expectations.json) through our whole pipeline.

Each case's mbox is ingested into a fresh database and the latest version's trailers per
patch (the `series --json` contract) are compared with what b4 produces.  b4's expectations
are `b4 am` output, which adds things that are presentation options, not facts; the test
applies the same options to our facts:
- addmysob / copyccs / addlink (and linktrailermask): lines b4 adds for the person applying
  the patch (their Signed-off-by — moved to the end for chain of custody —, Cc: from
  headers, Link: to the patch) are not trailers anyone gave, so they are left out;
- sloppytrailers: our mismatched follow-up trailers are included;
- trailer-order: b4 reorders lines, so the comparison is as a multiset;
- trailers-ignore-from: a user's b4 setting; trailers given by that address are removed
  from our side;
- "  # comment" extinfo is stripped (we keep who gave what, not comments).
Two cases (non-git-patch, stripped-lines) list no trailers in the JSON because its extractor
needs a "---" line; b4's own reference output (the -ref-defaults.txt file) shows the trailer
block, and we compare with that reference instead.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from bot.sync.pipeline import ingest_mails
from ingest.sources import iter_raw_mails
from storage.db import open_db
from storage.views import series_json
from tests.shared import shared_data_dir

_MYSOB = "Signed-off-by: Test Override <test-override@example.com>"


def _cases():
    data = shared_data_dir() / "fixtures" / "b4"
    spec = json.loads((data / "b4_trailer_expectations.json").read_text())
    return data / "samples", spec


def _case_ids() -> list[str]:
    try:
        _samples, spec = _cases()
    except pytest.skip.Exception:
        return ["shared-data-missing"]
    return [f"{c['input']}-{c['reference']}" for c in spec["followup_trailers"]]


def _latest_version(tmp_path: Path, mbox: Path) -> dict:
    db = open_db(tmp_path / "b4.db")
    ingest_mails(db, iter_raw_mails(mbox))
    series = series_json(db)
    newest = max(
        (v for s in series for v in s["versions"]), key=lambda v: (v["version"], v["date"])
    )
    return newest


def _line(t: dict) -> str:
    if not t["email"]:
        return f"{t['type']}: {t['name']}"
    if t["name"] == t["email"]:
        return f"{t['type']}: {t['email']}"
    return f"{t['type']}: {t['name']} <{t['email']}>"


def _title(subject: str) -> str:
    return re.sub(r"^\[[^]]*\]\s*", "", subject)


def _strip_comment(line: str) -> str:
    return re.sub(r"\s+#[^#]*$", "", line)


def _reference_trailers(ref: Path) -> list[list[str]]:
    """Trailer blocks of b4's reference output, for the cases the JSON could not extract."""
    blocks = []
    for mail in ref.read_text().split("\nFrom git@z ")[0:]:
        body = mail.split("\n\n", 1)[1]
        message = re.split(r"(?m)^---$|^--- a/", body)[0].rstrip()
        last = message.rsplit("\n\n", 1)[-1]
        blocks.append([ln for ln in last.splitlines() if re.match(r"^[\w-]+: \S", ln)])
    return blocks


@pytest.mark.parametrize("case_id", _case_ids())
def test_followup_trailers_match_b4(case_id: str, tmp_path: Path) -> None:
    samples, spec = _cases()
    case = next(c for c in spec["followup_trailers"] if f"{c['input']}-{c['reference']}" == case_id)
    version = _latest_version(tmp_path, samples / case["input"])
    expected = [p["trailers_in_order"] for p in case["expected_patches"]]
    if all(not e for e in expected):
        expected = _reference_trailers(samples / case["reference"])
    amargs, serargs, cfg = case["amargs"], case["serargs"], case["b4cfg"]
    # b4 renames a partial reroll's borrowed patches to the new version; we keep the
    # message's own subject (and say which version it came from), so compare titles.
    assert [_title(p["subject"]) for p in version["patches"]] == [
        _title(p["subject"]) for p in case["expected_patches"]
    ]
    for patch, want in zip(version["patches"], expected, strict=True):
        ours = [
            t
            for t in patch["trailers"]
            if not (amargs.get("noaddtrailers") and t["source"] != "inline")
        ]
        if serargs.get("sloppytrailers"):
            ours += patch["mismatched_trailers"]
        if ignored := cfg.get("trailers-ignore-from"):
            ours = [t for t in ours if t["source"] == "inline" or t["email"] != ignored]
        got = [_line(t) for t in ours]
        inline = set(got)
        want = [_strip_comment(w) for w in want]
        if amargs.get("addmysob"):
            # b4 appends (or, for chain of custody, moves to the end) the applier's own
            # Signed-off-by: a b4 am action, not a trailer anyone gave on the list.
            got = [g for g in got if g != _MYSOB]
            want = [w for w in want if w != _MYSOB]
        if amargs.get("copyccs"):
            want = [w for w in want if not w.startswith("Cc: ") or w in inline]
        if amargs.get("addlink"):
            msgid = patch["msgid"]
            want = [
                w
                for w in want
                if w not in (f"Link: https://patch.msgid.link/{msgid}", f"Message-ID: <{msgid}>")
            ]
        if "trailer-order" in cfg:
            assert Counter(got) == Counter(want)
        else:
            assert got == want


def test_partial_reroll_borrows_patch_and_cover_trailers(tmp_path: Path) -> None:
    samples, _spec = _cases()
    version = _latest_version(tmp_path, samples / "trailers-followup-partial-reroll.mbox")
    assert version["version"] == 3 and version["partial_reroll_of"] == 2
    first, second = version["patches"]
    assert first["msgid"] == "patch-1-message@example.com" and first["from_version"] == 2
    assert second["msgid"] == "patch-v3-2-message@example.com" and second["from_version"] is None
    # Followup Reviewer1 reviewed v2's 2/2, which v3 changed: that review does not carry over.
    assert "followup-reviewer1@example.com" in {t["email"] for t in second["trailers"]}
    assert all(t["name"] != "Followup Reviewer1" for t in second["trailers"])


def test_mismatched_followup_is_flagged_not_counted(tmp_path: Path) -> None:
    samples, spec = _cases()
    mismatch = spec["trailer_mismatch"]["trailers-followup-already-present.mbox"]
    version = _latest_version(tmp_path, samples / "trailers-followup-already-present.mbox")
    [patch] = version["patches"]
    assert (
        sorted({t["type"] for t in patch["mismatched_trailers"]})
        == mismatch["mismatched_trailer_names"]
    )
    counted = Counter((t["type"], t["email"]) for t in patch["trailers"])
    assert all(n == 1 for n in counted.values()), "a restated trailer is not counted twice"


@pytest.mark.parametrize("name", ["naked-cover-single.mbox", "naked-cover-bugreport.mbox"])
def test_naked_cover_detection(name: str, tmp_path: Path) -> None:
    samples, spec = _cases()
    want = spec["naked_cover_detection"][name]
    db = open_db(tmp_path / "naked.db")
    ingest_mails(db, iter_raw_mails(samples / name))
    versions = [v for s in series_json(db) for v in s["versions"] if v["patches"]]
    covers = [v for v in versions if v["cover"]]
    assert bool(covers) == want["has_cover"]
    if want["has_cover"]:
        assert covers[0]["title"] == want["cover_subject"]


def test_parse_trailers_samples() -> None:
    """b4's trailer parsing cases (type, name, value, extinfo) on its sample texts."""
    from ingest.b4rules import find_trailers
    from ingest.parse import parse_mail

    samples, spec = _cases()
    for sample, expected in spec["parse_trailers"].items():
        if sample.startswith("_"):
            continue
        [raw] = iter_raw_mails(samples / sample)
        message = parse_mail(raw.data).content.body.split("\n\n---\n")[0]
        got = find_trailers(message.rsplit("\n\n", 1)[-1])
        assert [(t.type, t.name, t.value, t.extinfo) for t in got] == [tuple(e) for e in expected]
