"""Fact rules for cases found in the kvmarm archive, on small hand-built threads.

Each test builds the mails it needs (headers + body), runs the pure derivation and checks
one rule.  The archive cases they come from are named in each test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.derive import derive
from ingest.parse import parse_mail
from ingest.subjects import parse_subject
from tests.mailkit import A_C_DIFF

_T0 = datetime(2022, 2, 7, 10, 0, tzinfo=UTC)


def mail(msgid, subject, sender, minutes, body="Text.\n", parent=None, diff=None) -> bytes:
    when = (_T0 + timedelta(minutes=minutes)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    headers = [
        f"From: {sender}",
        f"Subject: {subject}",
        f"Date: {when}",
        f"Message-Id: <{msgid}>",
    ]
    if parent:
        headers += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
    text = body + (A_C_DIFF.format(name=diff) if diff else "")
    return ("\n".join(headers) + "\n\n" + text).encode()


def derived(*raws: bytes):
    return derive([parse_mail(r).message for r in raws])


ANN = "Ann Author <ann@example.org>"
MARC = "Marc Maintainer <marc@example.org>"
SB = "Signed-off-by: Ann Author <ann@example.org>\n"


def test_trailers_answering_a_fixup_are_not_given_to_the_patch() -> None:
    """MTE v17 5/x: Steven Price's Reviewed-by answered Marc's fixup diff, not his own patch."""
    d = derived(
        mail("p1@x", "[PATCH] KVM: arm64: Widget", ANN, 0, "Add.\n\n" + SB, diff="w"),
        mail(
            "fix@x",
            "Re: [PATCH] KVM: arm64: Widget",
            MARC,
            60,
            "How about this?\n",
            "p1@x",
            diff="fixup",
        ),
        mail(
            "r1@x",
            "Re: [PATCH] KVM: arm64: Widget",
            ANN,
            90,
            "Yes, better.\n\nReviewed-by: Ann Author <ann@example.org>\n"
            "Tested-by: Ann Author <ann@example.org>\n",
            "fix@x",
        ),
        mail("r2@x", "Re: [PATCH] KVM: arm64: Widget", MARC, 120, "Applied, thanks.\n", "fix@x"),
    )
    [series] = d.series
    [patch] = series.versions[0].patches
    assert [t.kind for t in patch.trailers] == ["Signed-off-by"]
    assert patch.applied is None  # "Applied" answered the fixup
    assert d.series_of["r1@x"] == series.id  # still part of the series' discussion


def test_nobody_reviews_their_own_patch() -> None:
    d = derived(
        mail("p1@x", "[PATCH] KVM: arm64: Widget", ANN, 0, "Add.\n\n" + SB, diff="w"),
        mail(
            "r1@x",
            "Re: [PATCH] KVM: arm64: Widget",
            ANN,
            30,
            "Reviewed-by: Ann Author <ann@example.org>\n",
            "p1@x",
        ),
    )
    [patch] = d.series[0].versions[0].patches
    assert "Reviewed-by" not in {t.kind for t in patch.trailers}


def test_autosel_backports_to_different_trees_are_not_versions() -> None:
    """Sasha Levin's "[PATCH AUTOSEL 4.19 20/45]" and "[PATCH AUTOSEL 5.2 …]" postings."""
    sasha = "Sasha Levin <sashal@kernel.org>"
    d = derived(
        mail(
            "a@x",
            "[PATCH AUTOSEL 5.2 20/45] KVM: arm/arm64: Only skip MMIO insn once",
            sasha,
            0,
            diff="a",
        ),
        mail(
            "b@x",
            "[PATCH AUTOSEL 4.19 12/30] KVM: arm/arm64: Only skip MMIO insn once",
            sasha,
            5,
            diff="a",
        ),
    )
    assert len(d.series) == 2


def test_unlabelled_resend_is_a_resend_of_the_latest_version() -> None:
    """Mark Brown's "[PATCH RESEND] kselftest: …" after v1..v3."""
    subject = "kselftest: kvm/arm64: Skip tests if we can't create a vgic-v3"
    d = derived(
        mail("v1@x", f"[PATCH] {subject}", ANN, 0, diff="a"),
        mail("v3@x", f"[PATCH v3] {subject}", ANN, 600, diff="b"),
        mail("rs@x", f"[PATCH RESEND] {subject}", ANN, 6000, diff="b"),
    )
    [series] = d.series
    assert [(v.version, v.resend) for v in series.versions] == [(1, False), (3, False), (3, True)]
    assert [v.status for v in series.versions] == ["superseded", "new", "new"]


def test_stable_tree_notice_is_not_a_posting() -> None:
    greg = "gregkh@linuxfoundation.org"
    d = derived(
        mail(
            "n@x",
            'Patch "KVM: arm64: Fix thing" has been added to the 5.4-stable tree',
            f"Greg KH <{greg}>",
            0,
            "This is a note to let you know…\n",
            diff="a",
        ),
    )
    assert d.series == []


def test_subject_missing_its_opening_bracket() -> None:
    s = parse_subject("PATCH v4 00/11] KVM: x86/xen: Add in-kernel Xen event channel delivery")
    assert (s.version, s.counter, s.total, s.title) == (
        4,
        0,
        11,
        "KVM: x86/xen: Add in-kernel Xen event channel delivery",
    )


def test_a_discussion_answered_later_by_a_patch_is_not_its_cover() -> None:
    """Oliver Upton's "Guest ABI changes do not appear rollback-safe" (20 minutes before)."""
    oliver = "Oliver Upton <oupton@google.com>"
    d = derived(
        mail("talk@x", "KVM/arm64: Guest ABI changes do not appear rollback-safe", oliver, 0),
        mail(
            "p@x",
            "[RFC PATCH] KVM: arm64: Allow VMMs to opt-out",
            oliver,
            20,
            parent="talk@x",
            diff="a",
        ),
    )
    [series] = d.series
    assert series.versions[0].cover is None
    assert series.title == "KVM: arm64: Allow VMMs to opt-out"


def test_b4_ty_commit_given_as_a_url() -> None:
    """Will Deacon's b4 ty lists "https://git.kernel.org/arm64/c/32de73e89099"."""
    will = "Will Deacon <will@example.org>"
    d = derived(
        mail("p@x", "[PATCH v2 1/1] arm64: Widget", ANN, 0, "Add.\n\n" + SB, diff="w"),
        mail(
            "ty@x",
            "Re: [PATCH v2 1/1] arm64: Widget",
            will,
            60,
            "Applied to arm64 (for-next/misc), thanks!\n\n[1/1] arm64: Widget\n"
            "      https://git.kernel.org/arm64/c/32de73e89099\n",
            "p@x",
        ),
    )
    [patch] = d.series[0].versions[0].patches
    assert patch.applied.commit == "32de73e89099"
    assert patch.applied.where == "arm64 (for-next/misc)"


def test_a_dependency_link_is_not_a_version_link() -> None:
    """Andrew Scull's "applied on top of the previous panic fix at https://lore…/…"."""
    d = derived(
        mail(
            "fix@x", "[PATCH] KVM: arm64: Fix nVHE hyp panic host context restore", ANN, 0, diff="a"
        ),
        mail(
            "c1@x",
            "[PATCH 0/2] Debug info for nVHE hyp panics",
            ANN,
            60,
            "This applied on top of the previous panic fix at\nhttps://lore.kernel.org/r/fix@x/\n",
        ),
        mail(
            "c2@x",
            "[PATCH v2 0/2] Debug info for nVHE hyp panics",
            ANN,
            600,
            "Changes since v1:\n- more\n\nv1: https://lore.kernel.org/r/c1@x/\n"
            "Depends on the previous fix https://lore.kernel.org/r/fix@x/\n",
        ),
    )
    titles = sorted((s.title, len(s.versions)) for s in d.series)
    assert titles == [
        ("Debug info for nVHE hyp panics", 2),
        ("KVM: arm64: Fix nVHE hyp panic host context restore", 1),
    ]
    [debug] = [s for s in d.series if s.title.startswith("Debug")]
    assert "link" in debug.links


def test_a_retitled_single_patch_v2_follows_its_v1() -> None:
    """linmiaohe, 2019-11: 'Use warpper function …' then v2 'Use wrapper function …'."""
    d = derived(
        mail(
            "a1@x",
            "[PATCH] KVM: vgic: Use warpper function to lock all vcpus",
            ANN,
            0,
            SB,
            diff="a",
        ),
        mail(
            "a2@x",
            "[PATCH v2] KVM: vgic: Use wrapper function to lock all vcpus",
            ANN,
            60,
            SB,
            diff="b",
        ),
    )
    assert [[v.key for v in s.versions] for s in d.series] == [["a1@x", "a2@x"]]
    assert "retitled" in d.series[0].links


def test_a_retitled_v2_with_two_candidates_is_left_alone() -> None:
    """Two v1s of the same author both look like the v2: a guess, so no link."""
    d = derived(
        mail("a1@x", "[PATCH] KVM: arm64: Fix vgic init ordering", ANN, 0, SB, diff="a"),
        mail("b1@x", "[PATCH] KVM: arm64: Fix vgic init ordering again", ANN, 5, SB, diff="b"),
        mail("a2@x", "[PATCH v2] KVM: arm64: Fix the vgic init ordering", ANN, 60, SB, diff="c"),
    )
    assert sorted(len(s.versions) for s in d.series) == [1, 1, 1]


def test_a_cover_sent_alone_joins_its_resend() -> None:
    """A cover letter went out without its patches ("where are the patches?"); the whole
    posting followed the next hour under the same title and version."""
    d = derived(
        mail("c1@x", "[PATCH v3 0/2] KVM: arm64: Widgets", ANN, 0, "Cover.\n"),
        mail("c2@x", "[PATCH v3 0/2] KVM: arm64: Widgets", ANN, 60, "Cover.\n"),
        mail("p1@x", "[PATCH v3 1/2] KVM: arm64: Widget one", ANN, 61, SB, "c2@x", diff="a"),
        mail("p2@x", "[PATCH v3 2/2] KVM: arm64: Widget two", ANN, 62, SB, "c2@x", diff="b"),
    )
    (series,) = d.series
    assert [v.key for v in series.versions] == ["c1@x", "c2@x"]
    assert "cover-only" in series.links
