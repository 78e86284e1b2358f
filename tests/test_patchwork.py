"""patchwork's own test mail (../shared/data/fixtures/patchwork) through our parser.

A patchwork "Series" is what we call a series version (a posting); we additionally chain
versions into series, which patchwork keeps apart (see README, "How the facts are made").
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from bot.sync.pipeline import ingest_mails
from ingest.derive import derive
from ingest.notices import parse_pull_request
from ingest.parse import parse_mail
from ingest.sources import SourceError, iter_raw_mails
from ingest.subjects import parse_subject
from storage.db import open_db
from tests.shared import shared_data_dir


def _root() -> Path:
    return shared_data_dir() / "fixtures" / "patchwork"


@cache
def _spec() -> dict:
    return json.loads((_root() / "patchwork_series_expectations.json").read_text())


def _names(section: str) -> list[str]:
    try:
        return sorted(_spec()[section])
    except pytest.skip.Exception:
        return ["shared-data-missing"]


def _series_file(name: str, tmp_path: Path) -> Path:
    path = _root() / "series" / name
    if not name.endswith(".template"):
        return path
    text = path.read_text().format(
        depends_token="<dep@example.org>",
        depends_token_1="<dep1@example.org>",
        depends_token_2="<dep2@example.org>",
    )
    out = tmp_path / name.removesuffix(".template")
    out.write_text(text)
    return out


@pytest.mark.parametrize("name", _names("fixtures"))
def test_series_fixture(name: str, tmp_path: Path) -> None:
    expect = _spec()["fixtures"][name]
    messages = [parse_mail(r.data).message for r in iter_raw_mails(_series_file(name, tmp_path))]
    assert len(messages) == expect["n_messages"]
    derived = derive(messages)
    postings = sorted(
        (v for s in derived.series for v in s.versions), key=lambda v: (v.date, v.key)
    )
    index = {}
    for i, v in enumerate(postings):
        index.update({p.msgid: i for p in v.patches})
        if v.cover:
            index[v.cover] = i
    got = [index.get(m["message_id"].strip("<>")) for m in expect["messages"]]
    assert got == [m["expected_series_index"] for m in expect["messages"]]
    if "patches_per_series" in expect:
        assert [len(v.patches) for v in postings] == expect["patches_per_series"]
    if "covers_per_series" in expect:
        assert [int(v.cover is not None) for v in postings] == expect["covers_per_series"]
    if "received_all" in expect:
        complete = [len(v.patches) >= v.total for v in postings]
        assert complete == expect["received_all"]
    for m in expect["messages"]:
        if (
            m["subject_version_label"] is not None
            and index.get(m["message_id"].strip("<>")) is not None
        ):
            assert (
                postings[index[m["message_id"].strip("<>")]].version == m["subject_version_label"]
            )


def test_versions_patchwork_keeps_apart_are_one_series(tmp_path: Path) -> None:
    """Our deliberate difference: v1 and v2 of one series are linked (patchwork: 2 series)."""
    for name in (
        "revision-basic.mbox",
        "revision-threaded-to-cover.mbox",
        "revision-no-cover-letter.mbox",
        "bugs-nocover.mbox",
    ):
        messages = [parse_mail(r.data).message for r in iter_raw_mails(_root() / "series" / name)]
        [series] = derive(messages).series
        assert [v.version for v in series.versions] in ([1, 2], [1, 1]), name


def test_series_names(tmp_path: Path) -> None:
    for name, expect in _spec()["fixtures"].items():
        if "series_name" not in expect:
            continue
        messages = [
            parse_mail(r.data).message for r in iter_raw_mails(_series_file(name, tmp_path))
        ]
        titles = [v.title for s in derive(messages).series for v in s.versions]
        assert titles == expect["series_name"], name


def test_fuzz_and_mail_files_never_crash_and_nothing_is_lost(tmp_path: Path) -> None:
    """Each mail is stored, quarantined with a reason, or a repeat of a stored Message-ID."""
    db = open_db(tmp_path / "fuzz.db")
    seen = added = quarantined = repeats = 0
    for folder in ("fuzz", "mail"):
        for path in sorted((_root() / folder).iterdir()):
            try:
                mails = list(iter_raw_mails(path))
            except SourceError:
                continue
            report = ingest_mails(db, mails)
            seen += report.seen
            added += report.added
            quarantined += report.quarantined
            repeats += report.duplicates
    assert seen == added + quarantined + repeats
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == added
    assert db.execute("SELECT count(*) FROM quarantine").fetchone()[0] == quarantined
    assert added >= 16 and quarantined >= 1
    reasons = [r[0] for r in db.execute("SELECT reason FROM quarantine")]
    assert all(reasons) and all("parser error" not in r for r in reasons)
    # Garbled dates are stored as unknown, with the problem recorded, never guessed.
    undated = db.execute("SELECT problems FROM messages WHERE date IS NULL").fetchall()
    assert undated and all("Date:" in r[0] for r in undated)


@pytest.mark.parametrize(
    "name",
    _names("mail_fixtures")
    and [
        "0001-git-pull-request.mbox",
        "0003-git-pull-request-with-diff.mbox",
        "0012-invalid-header-char.mbox",
        "0013-with-utf8-body.mbox",
        "0014-with-unencoded-utf8-headers.mbox",
        "0015-with-invalid-utf8-headers.mbox",
        "0016-no-subject.mbox",
        "0019-multipart-patch.mbox",
        "0020-multipart-comment.mbox",
    ],
)
def test_mail_fixtures_parse(name: str) -> None:
    mail = _spec()["mail_fixtures"]
    [raw] = iter_raw_mails(_root() / "mail" / name)
    parsed = parse_mail(raw.data)
    if name in mail["diff_and_message_present"] or name in mail["parses_to_exactly_one_patch"]:
        assert parsed.message.has_diff and parsed.content.diff
    if name in mail["pull_request_detected_no_diff"]:
        assert parsed.message.pull is not None and not parsed.message.has_diff
    if name in ("0019-multipart-patch.mbox", "0020-multipart-comment.mbox"):
        assert "<div" not in parsed.content.body and "<div" not in parsed.content.diff


@pytest.mark.parametrize(
    "name",
    _names("mail_fixtures")
    and [
        "0003-git-pull-request-with-diff.mbox",
        "0023-git-pull-request-newline-in-url.mbox",
        "0024-git-pull-request-trailing-space.mbox",
    ],
)
def test_pull_request_urls(name: str) -> None:
    want = _spec()["mail_fixtures"]["pull_url_expected"][name]
    [raw] = iter_raw_mails(_root() / "mail" / name)
    message = parse_mail(raw.data)
    body = message.content.body + "\n" + message.content.diff
    assert parse_pull_request(raw.data.decode("utf-8", "replace")).url == want or (
        parse_pull_request(body).url == want
    )


def test_clean_subject_cases() -> None:
    for raw, (name, prefixes) in _spec()["unit_string_cases"]["clean_subject"]:
        s = parse_subject(raw)
        assert s.title == name.split("] ", 1)[-1] if name.startswith("[") else s.title == name
        ours = [p for p in s.prefixes if p.upper() != "PATCH"]
        if s.counter is not None:
            ours.append(f"{s.counter}/{s.total}")
        assert sorted(ours) == sorted(prefixes), raw


def test_series_marker_and_version_cases() -> None:
    cases = _spec()["unit_string_cases"]
    for prefixes, (counter, total) in cases["parse_series_marker"]:
        s = parse_subject("[" + " ".join(prefixes) + "] subject" if prefixes else "subject")
        assert (s.counter, s.total) == (counter, total), prefixes
    for (title, prefixes), version in cases["parse_version"]:
        raw = ("[" + " ".join(prefixes) + "] " if prefixes else "") + title
        assert parse_subject(raw).version == version, raw
    for raw in cases["is_reply_subject_true"]:
        assert parse_subject(raw).is_reply, raw
