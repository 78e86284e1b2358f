"""Incremental derivation equals a full one: months of the real archive added one at a
time, each compared with a full derivation of the same stored mail, table by table."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.sync.pipeline import ingest_mails
from ingest.components import chain_keys
from ingest.derive import chain_postings, derive_context, derive_postings
from ingest.sources import RawMail, iter_raw_mails
from ingest.summaries import unpack
from storage.db import Database, open_db
from storage.messages import load_messages
from storage.views import series_json
from tests.facts_dump import assert_same_as_full
from tests.mailkit import ANN, BOB, MARC, MailKit, at
from tests.shared import shared_data_dir


def _months(first: str, count: int) -> list[Path]:
    files = sorted((shared_data_dir() / "kvmarm-archive").glob("kvmarm-*.mbox.gz"))
    start = [f.name for f in files].index(f"kvmarm-{first}.mbox.gz")
    return files[start : start + count]


def _add_months_and_compare(tmp_path: Path, months: list[Path]) -> list[tuple[int, int]]:
    assert months
    db = open_db(tmp_path / "inc.db")
    figures = []
    for month in months:
        report = ingest_mails(db, iter_raw_mails(month))
        total = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert report.added > 0 and 0 < report.derived <= total
        figures.append((report.derived, total))
        assert_same_as_full(db, tmp_path / "inc.db", month.name)
    db.close()
    return figures


@pytest.mark.slow
def test_every_month_of_the_archive_one_at_a_time_equals_a_full_derivation(tmp_path) -> None:
    """All 35 months, each ingested into what the months before left (as a weekly sync
    would), each time compared with a full derivation table by table (~2 min)."""
    files = sorted((shared_data_dir() / "kvmarm-archive").glob("kvmarm-*.mbox.gz"))
    figures = _add_months_and_compare(tmp_path, files)
    print("derived / stored after each month:", figures)
    assert len(figures) == len(files) == 35
    # After the first month, new mail re-derives only a part of what is stored.
    assert all(derived < total for derived, total in figures[1:])


def test_months_out_of_order_equal_a_full_derivation(tmp_path) -> None:
    """A sync that brings older mail (an earlier month after later ones): earlier versions
    and the threads they start arrive after the series they belong to were derived."""
    later, earlier = _months("2020-11", 2), _months("2020-10", 1)
    figures = _add_months_and_compare(tmp_path, [*later, *earlier])
    assert len(figures) == 3 and figures[2][0] < figures[2][1]


def test_chain_keys_find_every_posting_a_retitled_version_can_chain_to() -> None:
    """ingest.components._retitle_keys keys title words by prefix filtering: any two titles
    that series._is_earlier_version counts as alike (Jaccard ≥ 2/3 over ≥ 2 words) share a
    prefix word.  Checked on every pair of 2,000 random word sets of 2–12 words."""
    import random

    from ingest.components import retitle_word_prefix

    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(14)]
    sets = [frozenset(rng.sample(vocabulary, rng.randint(2, 12))) for _ in range(2000)]
    alike = 0
    for i, a in enumerate(sets):
        pa = set(retitle_word_prefix(a))
        for b in sets[i + 1 :]:
            if len(a & b) * 3 >= len(a | b) * 2:
                alike += 1
                assert pa & set(retitle_word_prefix(b)), (sorted(a), sorted(b))
    assert alike > 1000


def _ingest_and_tell(db: Database, kit: MailKit, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Ingest ``kit``'s mails (all new); what the incremental derivation said it did."""
    caplog.set_level(logging.DEBUG, logger="bot.sync.derivation")
    raws = [RawMail(m, f"kit#{i}") for i, m in enumerate(kit.mails)]
    assert ingest_mails(db, raws).added == len(raws) > 0
    return [r.getMessage() for r in caplog.records if "finished" in r.getMessage()]


def test_a_review_finishes_its_series_again_without_chaining_anything(tmp_path, caplog) -> None:
    """Mail that only answers postings (a Reviewed-by, an "Applied") changes their bodies,
    not what chaining reads: the series is finished again from its stored chaining, no
    chain is re-chained, and the facts equal a full derivation's."""
    kit = MailKit()
    v1 = kit.posting("widget", "KVM: arm64: Add a widget", ANN, at("2022-01-03"), 2)
    v2 = kit.posting("widget", "KVM: arm64: Add a widget", ANN, at("2022-01-10"), 2, version=2)
    kit.posting("gadget", "KVM: arm64: Fix the gadget", BOB, at("2022-01-11"), 3)
    db = kit.store(tmp_path / "inc.db", at("2022-01-12"))
    replies = MailKit()
    replies.reply(
        "r1@x",
        v2[1],
        "[PATCH v2 1/2] KVM: arm64: Add a widget part 1",
        MARC,
        at("2022-01-13"),
        "Reviewed-by: Marc Zyngier <maz@kernel.org>\n",
    )
    replies.reply(
        "r2@x",
        v1[0],
        "[PATCH 0/2] KVM: arm64: Add a widget",
        BOB,
        at("2022-01-14"),
        "Tested-by: Bob Builder <bob@example.org>\n",
    )
    lines = _ingest_and_tell(db, replies, caplog)
    assert lines == [
        "derived 8 mails of 2 units; chained 0 postings of 0 chains, finished 1 series"
    ]
    widget = next(s for s in series_json(db) if s["title"] == "KVM: arm64: Add a widget")
    latest = widget["versions"][-1]
    given = [(t["type"], t["email"]) for t in latest["patches"][0]["trailers"]]
    assert ("Reviewed-by", "maz@kernel.org") in given
    assert_same_as_full(db, tmp_path / "inc.db")


def test_a_reply_that_changes_no_fact_only_moves_the_series_last_activity(tmp_path, caplog):
    """A plain discussion reply changes no trailer, notice or status: nothing is finished
    again, the series' last activity moves to the reply's date, and every table equals a
    full derivation's."""
    kit = MailKit()
    ids = kit.posting("widget", "KVM: arm64: Add a widget", ANN, at("2022-01-03"), 2)
    db = kit.store(tmp_path / "inc.db", at("2022-01-04"))
    replies = MailKit()
    replies.reply(
        "chat@x",
        ids[1],
        "[PATCH 1/2] KVM: arm64: Add a widget part 1",
        BOB,
        at("2022-01-20"),
        "Why not use the existing helper here?\n",
    )
    lines = _ingest_and_tell(db, replies, caplog)
    assert len(lines) == 1 and lines[0].endswith(
        "chained 0 postings of 0 chains, finished 0 series"
    )
    (widget,) = series_json(db)
    assert widget["last_date"].startswith("2022-01-20")
    assert_same_as_full(db, tmp_path / "inc.db")


def test_a_postings_chain_keys_are_the_same_before_and_after_chaining(archive_db) -> None:
    """Incremental derivation looks chains up by the keys of postings not chained yet and
    reuses them for the chained ones: they must be the same.  Chaining numbers unlabelled
    RESENDs (draft_version changes), while series._retitled sees them unnumbered."""
    messages = list(load_messages(archive_db))
    summaries = derive_postings(messages, derive_context(messages)).summaries
    by_key = {s["key"]: s for s in summaries}
    before = {d.first.msgid: d for d in unpack(summaries).drafts}
    after = {d.first.msgid: d for d in chain_postings(summaries).unpacked.drafts}
    assert len(before) == len(after) > 1000
    assert any((d.resend_of or 0) > 1 for d in after.values())  # the case that differed
    for key, d in after.items():
        replied = by_key[key]["replied"].values()
        assert chain_keys(d, replied) == chain_keys(before[key], replied), key
