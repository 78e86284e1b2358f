"""Answers on the whole shared archive, checked against what the mails themselves say.

Every Reviewed-by/Acked-by/Tested-by an answer lists must be written, unquoted, by the
person it names in the message it cites; version dates must be the cover letters' Date
headers; "added"/"dropped" patches must really be missing from the other version.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from datetime import UTC

import pytest

from bot.commands.answers import Sources, answer
from bot.commands.grammar import parse_command
from bot.commands.render_text import render_text
from bot.commands.results import (
    NoMatch,
    PlainThread,
    Reviews,
    SeriesHistory,
    SeriesThread,
    Status,
    WhoReviewed,
)
from storage.search import Target, find_targets, fts_phrase, msgid_in, query_words
from tests.archive import mail_text, stored_raw

MTE_V17 = "20210621111716.37157-1-steven.price@arm.com"
ECV_V8 = "20210916181510.963449-1-oupton@google.com"
STOLEN_TIME = "20190802145017.42543-1-steven.price@arm.com"


def ask(db, text: str):
    return answer(db, parse_command(text), Sources(db_path="archive.db"))


def _own_lines(db, msgid: str) -> list[str]:
    return [
        " ".join(line.split())
        for line in mail_text(db, msgid).splitlines()
        if line.strip() and not line.lstrip().startswith(">")
    ]


def _sender(db, msgid: str) -> str:
    msg = email.message_from_bytes(stored_raw(db, msgid), policy=email.policy.compat32)
    return email.utils.parseaddr(str(msg["From"]))[1].lower()


def _gave(db, msgid: str, kind: str, address: str) -> bool:
    pattern = re.compile(rf"^{re.escape(kind)}:.*<{re.escape(address)}>", re.IGNORECASE)
    return any(pattern.match(line) for line in _own_lines(db, msgid))


def _subject_title(db, msgid: str) -> str:
    msg = email.message_from_bytes(stored_raw(db, msgid), policy=email.policy.default)
    subject = " ".join(str(msg["Subject"]).split())
    return re.sub(r"^(\s*\[[^\]]*\]\s*)+", "", subject).strip()


def _check_every_trailer_is_in_its_mail(db, result: WhoReviewed) -> int:
    checked = 0
    for posting in result.latest:
        for patch in posting.patches:
            for t in patch.trailers:
                assert _gave(db, t.msgid, t.kind, t.email), (t, patch.title)
                if t.source in ("reply", "cover"):  # given by the reviewer's own mail
                    assert _sender(db, t.msgid) == t.email, t
                checked += 1
    return checked


# ---- who reviewed -----------------------------------------------------------------------


def test_who_reviewed_mte_v17_lists_catalin_on_every_patch(archive_db):
    result = ask(archive_db, "who reviewed MTE support for KVM guest")
    assert isinstance(result, WhoReviewed)
    assert result.title == "MTE support for KVM guest"
    [posting] = result.latest
    assert posting.version.version == 17 and posting.version.key == MTE_V17
    assert [p.n for p in posting.patches] == [1, 2, 3, 4, 5, 6]
    for patch in posting.patches:
        names = {(t.kind, t.name, t.source) for t in patch.trailers}
        assert ("Reviewed-by", "Catalin Marinas", "inline") in names
        # the posted patch itself carries the line
        assert _gave(archive_db, patch.msgid, "Reviewed-by", "catalin.marinas@arm.com")
    assert _check_every_trailer_is_in_its_mail(archive_db, result) >= 6
    # Fuad Tabba and Marc Zyngier discussed v17 without giving a trailer on it
    assert {"tabba@google.com", "maz@kernel.org"} <= {p.email for p in result.without_trailer}


def test_who_reviewed_feat_ecv_finds_reiji_reply_on_patch_5(archive_db):
    result = ask(archive_db, "who reviewed FEAT_ECV")
    assert isinstance(result, WhoReviewed)
    postings = {p.version.key: p for p in result.latest}
    assert ECV_V8 in postings
    patch5 = next(p for p in postings[ECV_V8].patches if p.n == 5)
    assert patch5.title == "arm64: cpufeature: Enumerate support for FEAT_ECV >= 0x2"
    given = {(t.kind, t.name, t.source, t.msgid) for t in patch5.trailers}
    assert (
        "Reviewed-by",
        "Reiji Watanabe",
        "reply",
        "CAAeT=Fwuy2TT75KmBMgHXkxt++BAc30EUaybkU_V-zix+2Q9zw@mail.gmail.com",
    ) in given
    assert _check_every_trailer_is_in_its_mail(archive_db, result) >= 15
    # the reviewer names an earlier version's trailers came from
    earlier = {name for e in result.earlier for _, names in e.by_kind for name in names}
    assert {"Andrew Jones", "Ricardo Koller", "David Matlack"} <= earlier


@pytest.mark.parametrize(
    "query",
    ["ptp_kvm", "Stolen time support", "vgic ITS translation cache", "PMU event filtering"],
)
def test_who_reviewed_every_trailer_is_written_in_the_cited_mail(archive_db, query):
    result = ask(archive_db, f"who reviewed {query}")
    assert isinstance(result, WhoReviewed)
    _check_every_trailer_is_in_its_mail(archive_db, result)


def test_inline_trailers_are_exactly_the_patch_own_lines(archive_db):
    result = ask(archive_db, f"who reviewed {MTE_V17}")
    for patch in result.latest[0].patches:
        written = {
            (m.group(1).capitalize(), m.group(2).lower())
            for line in _own_lines(archive_db, patch.msgid)
            if (m := re.match(r"^(Reviewed-by|Acked-by|Tested-by):.*<([^>]+)>", line, re.I))
        }
        listed = {(t.kind, t.email) for t in patch.trailers if t.source == "inline"}
        assert listed == written, patch.title


# ---- thread -----------------------------------------------------------------------------


def test_thread_feat_ccidx(archive_db):
    result = ask(archive_db, "thread FEAT_CCIDX")
    assert isinstance(result, SeriesThread)
    assert result.title == "KVM: arm64: Support FEAT_CCIDX"
    [v] = result.versions
    assert v.category == "RFC" and v.total == 1
    assert result.author.email == "zhangshaokun@hisilicon.com"
    assert {p.email for p in result.participants} == {
        "zhangshaokun@hisilicon.com",
        "maz@kernel.org",
    }
    assert result.messages == 4
    assert result.reviews == ()
    assert result.b4 == "b4 shazam 1618042597-59294-1-git-send-email-zhangshaokun@hisilicon.com"
    assert result.link.endswith("/1618042597-59294-1-git-send-email-zhangshaokun@hisilicon.com/")
    assert result.summary and "CCSIDR_EL1" in result.summary.text


def test_thread_mte_status_is_applied_with_the_b4_ty_evidence(archive_db):
    result = ask(archive_db, "thread MTE support for KVM guest")
    assert isinstance(result, SeriesThread)
    [latest] = result.latest
    assert latest.version == 17 and latest.status == "applied"
    texts = " | ".join(e.text for e in latest.evidence)
    assert "applied to next by Marc Zyngier" in texts
    assert "commit 69e3b846d8a7" in texts
    ty = "162437105102.29544.14666831489362675099.b4-ty@kernel.org"
    assert ty in {e.msgid for e in latest.evidence}
    assert "Applied to next, thanks!" in mail_text(archive_db, ty)
    assert "commit: 69e3b846d8a753f9f279f29531ca56b0f7563ad0" in mail_text(archive_db, ty)
    tally = {t.kind: t for t in result.reviews}
    assert "Catalin Marinas" in tally["Reviewed-by"].people
    assert tally["Reviewed-by"].patches == tally["Reviewed-by"].total == 6
    assert result.summary and result.summary.source == "from the v17 cover letter"
    assert "Memory Tagging" in result.summary.text


def test_thread_by_message_id_and_lore_url_of_a_reply(archive_db):
    reply = "CAAeT=Fwuy2TT75KmBMgHXkxt++BAc30EUaybkU_V-zix+2Q9zw@mail.gmail.com"
    by_id = ask(archive_db, f"thread <{reply}>")
    by_url = ask(
        archive_db, f"thread https://lore.kernel.org/kvmarm/{reply.replace('@', '%40')}/T/#u"
    )
    assert isinstance(by_id, SeriesThread) and isinstance(by_url, SeriesThread)
    assert by_id.series_id == by_url.series_id
    assert ECV_V8 in {v.key for v in by_id.versions}


def test_thread_of_a_discussion_without_a_series(archive_db):
    targets: list[Target | None] = [
        t
        for t in find_targets(archive_db, "KVM/arm64 fixes for 5.16, take #1")
        if t.kind == "thread"
    ]
    [target] = targets or [None]
    if target is None:  # pull requests are series here; pick any non-series thread instead
        root = archive_db.execute(
            "SELECT root FROM threads WHERE root NOT IN "
            "(SELECT msgid FROM memberships WHERE series_id IS NOT NULL) "
            "AND n_messages > 3 ORDER BY root LIMIT 1"
        ).fetchone()[0]
    else:
        root = target.id
    result = ask(archive_db, f"thread {root}")
    assert isinstance(result, PlainThread)
    assert result.root == root
    assert result.messages > 3
    assert result.b4 == f"b4 mbox {root}"


def test_thread_by_author_address_prefers_recent_activity(archive_db):
    result = ask(archive_db, "thread maz@kernel.org")
    assert isinstance(result, SeriesThread)
    assert result.author.email == "maz@kernel.org"
    assert result.last_date is not None and result.last_date >= "2022-02-01"


# ---- series -----------------------------------------------------------------------------


def test_series_stolen_time_history_matches_the_cover_letters(archive_db):
    result = ask(archive_db, f"series {STOLEN_TIME}")
    assert isinstance(result, SeriesHistory)
    assert result.title == "arm64: Stolen time support"
    versions = [v for step in result.steps for v in step.versions]
    assert [v.version for v in versions] == [1, 2, 3, 4, 5, 6, 7]
    for v in versions:
        msg = email.message_from_bytes(stored_raw(archive_db, v.key), policy=email.policy.compat32)
        sent = email.utils.parsedate_to_datetime(msg["Date"]).astimezone(UTC)
        assert v.date == sent.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert "Stolen time support" in str(msg["Subject"])
        assert f"v{v.version}" in str(msg["Subject"]) or v.version == 1
    assert result.steps[0].change is None


def test_series_changes_are_real_differences(archive_db):
    result = ask(archive_db, f"series {MTE_V17}")
    assert isinstance(result, SeriesHistory)
    previous: set[str] | None = None
    changes = 0
    for step in result.steps:
        titles = {
            _subject_title(archive_db, key)
            for v in step.versions
            for key in _patch_msgids(archive_db, v.key)
        }
        if step.change is not None and previous is not None:
            for title in step.change.added:
                assert title in titles and title not in previous, title
            for title in step.change.dropped:
                assert title in previous and title not in titles, title
            changes += len(step.change.added) + len(step.change.dropped)
        previous = titles
    assert changes > 0
    v15 = next(s for s in result.steps if s.versions[0].version == 15)
    assert v15.change is not None
    assert "arm64: Handle MTE tags zeroing in __alloc_zeroed_user_highpage()" in v15.change.dropped


def _patch_msgids(db, version_key: str) -> list[str]:
    return [
        r[0] for r in db.execute("SELECT msgid FROM patches WHERE version_key = ?", [version_key])
    ]


# ---- reviews <person> ---------------------------------------------------------------------


def test_reviews_by_andrew_jones_are_his_own_mails(archive_db):
    result = ask(archive_db, "reviews Andrew Jones")
    assert isinstance(result, Reviews)
    assert result.emails == ("drjones@redhat.com",)
    assert len(result.items) >= 10
    dates = [i.date for i in result.items if i.date is not None]
    assert len(dates) == len(result.items)
    assert dates == sorted(dates, reverse=True)
    for item in result.items[:8]:
        assert _sender(archive_db, item.msgid) == "drjones@redhat.com"
        assert _gave(archive_db, item.msgid, item.kind, "drjones@redhat.com")
    first = result.items[0]
    assert first.msgid == "20220127075120.5ntwadlgf2ncd2ua@gator"
    assert first.series_title == "kvm: selftests: aarch64: some fixes for vgic_irq"
    assert first.version == 2 and first.patches == (5,)


def test_reviews_by_name_gathers_every_address_of_that_name(archive_db):
    result = ask(archive_db, "reviews Marc Zyngier")
    assert isinstance(result, Reviews)
    assert set(result.emails) == {"maz@kernel.org", "marc.zyngier@arm.com"}


def test_reviews_of_nobody(archive_db):
    result = ask(archive_db, "reviews Nobody Atall")
    assert isinstance(result, NoMatch) and result.what == "reviewer"


# ---- no match, status, search safety ------------------------------------------------------------


def test_no_match_suggests_close_titles(archive_db):
    result = ask(archive_db, "thread stollen tyme")
    assert isinstance(result, NoMatch)
    assert "arm64: Stolen time support" in result.suggestions
    text = render_text(result)
    assert "No series or thread matches" in text and "Usage:" in text


def test_status_counts(archive_db):
    result = ask(archive_db, "status")
    assert isinstance(result, Status)
    assert result.facts["messages"] == 16652
    assert result.facts["series"] > 700


@pytest.mark.parametrize(
    "text",
    ['"', "a OR b", "NEAR(x y)", "foo*", "(((", "col:thing", "^start", "AND", "-x", "'"],
)
def test_fts_syntax_in_queries_is_just_text(archive_db, text):
    find_targets(archive_db, text)  # never raises
    for word in query_words(text):
        assert fts_phrase(word).startswith('"') and fts_phrase(word).endswith('"')


def test_message_ids_and_urls_are_recognised():
    assert msgid_in("<a.b@c>") == "a.b@c"
    assert msgid_in("https://lore.kernel.org/r/x%40y") == "x@y"
    assert msgid_in("https://patch.msgid.link/x@y") == "x@y"
    assert msgid_in("https://lore.kernel.org/kvmarm/x@y/T/#u") == "x@y"
    assert msgid_in("https://example.com/x@y") is None
    assert msgid_in("words") is None


def test_every_answer_renders_as_text(archive_db):
    for text in (
        "thread FEAT_ECV",
        "series ptp_kvm",
        "who reviewed vgic",
        "reviews maz",
        "status",
        "help",
        "thread zzzzqqqq",
    ):
        assert render_text(ask(archive_db, text)).strip()
