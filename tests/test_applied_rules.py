"""Applied only on authority, with the full life cycle — on small hand-built threads.

The phrases are the ones found in the kvmarm archive (tests/fixtures/facts/applied_gold.json
has the real mails); the senders are made up so each rule is seen on its own.
"""

from __future__ import annotations

import pytest

from ingest.notices import find_applied_notice, find_stable_notice
from tests.test_fact_rules import ANN, MARC, SB, derived, mail

TESTER = "Tim Tester <tim@example.org>"
PULL = (
    "The following changes since commit 1111:\n\n  Linux 5.16\n\n"
    "are available in the Git repository at:\n\n"
    "  git://git.kernel.org/pub/scm/linux/kernel/git/kvmarm/kvmarm.git tags/kvmarm-5.17\n\n"
    "for you to fetch changes up to 2222:\n\n"
    "Ann Author (1):\n      KVM: arm64: Something else\n"
)


def _series(*replies: bytes, patches: int = 2, sender: str = ANN):
    mails = [mail("c@x", f"[PATCH 0/{patches}] KVM: arm64: Widgets", sender, 0, "Cover.\n")]
    for n in range(1, patches + 1):
        mails.append(
            mail(
                f"p{n}@x",
                f"[PATCH {n}/{patches}] KVM: arm64: Widget {n}",
                sender,
                n,
                "Add.\n\n" + SB,
                parent="c@x",
                diff=f"w{n}",
            )
        )
    # Marc is known to apply patches: he sent a pull request somewhere in the archive.
    mails.append(mail("pr@x", "[GIT PULL] KVM/arm64 updates for 5.17", MARC, 500, PULL))
    d = derived(*mails, *replies)
    (series,) = [s for s in d.series if s.versions[0].cover == "c@x"]
    return series.versions[0]


@pytest.mark.parametrize(
    "text",
    [
        "I applied the series and tested it on my Ampere box, all good.",
        "Applied this series on top of v5.16-rc8 and ran kvm-unit-tests: no regressions.",
        "I have the fix applied locally, and ready to fly in v4 :)",
        "queued for v3 already, so stay tuned ... :)",
        "Sure, will drop it from the series if the above explanation is fine.",
        "Applied to kvmarm/next and boot-tested on my Juno, no issues.",
    ],
)
def test_testers_and_authors_do_not_announce_applies(text: str) -> None:
    assert find_applied_notice(text) is None


def test_a_tester_saying_applied_leaves_the_series_new() -> None:
    v = _series(
        mail("t@x", "Re: [PATCH 0/2] KVM: arm64: Widgets", TESTER, 60, "Applied, thanks!\n", "c@x")
    )
    assert v.status == "new"


def test_the_author_picking_it_up_is_not_an_apply() -> None:
    v = _series(
        mail("a@x", "Re: [PATCH 1/2] KVM: arm64: Widget 1", ANN, 60, "Picked up, thanks.\n", "p1@x")
    )
    assert v.status == "new"
    assert all(p.applied is None for p in v.patches)


def test_a_known_applier_without_a_tree_counts() -> None:
    v = _series(
        mail("m@x", "Re: [PATCH 0/2] KVM: arm64: Widgets", MARC, 60, "Applied, thanks.\n", "c@x")
    )
    assert v.status == "applied"
    assert v.evidence[0].msgid == "m@x"


def test_a_notice_naming_a_tree_counts_from_anyone_but_the_author() -> None:
    body = "Ok, I applied this one to the s390 tree. Thanks!\n"
    other = "Hal Heiko <hal@example.org>"
    v = _series(mail("h@x", "Re: [PATCH 0/2] KVM: arm64: Widgets", other, 60, body, "c@x"))
    assert v.status == "applied"
    assert v.evidence[0].where == "s390 tree"


def test_whole_series_said_on_one_patch_minus_one() -> None:
    """catalin.marinas on 12/18: "I queued this series for 5.7, apart from patch 12."."""
    body = "I queued this series for 5.7, apart from patch 2. I'll try to fix any conflicts.\n"
    v = _series(
        mail("q@x", "Re: [PATCH 2/3] KVM: arm64: Widget 2", MARC, 60, body, "p2@x"), patches=3
    )
    assert v.status == "partially-applied"
    assert [p.n for p in v.patches if p.applied] == [1, 3]
    assert v.patches[0].applied is not None and v.patches[0].applied.kind == "queued"


def test_tentative_then_firm() -> None:
    """pbonzini: "Queued, thanks." then maz: "Applied to kvmarm/next": the firm one stays."""
    v = _series(
        mail("q@x", "Re: [PATCH 0/2] KVM: arm64: Widgets", MARC, 60, "Queued, thanks.\n", "c@x"),
        mail("a@x", "Re: [PATCH 0/2] KVM: arm64: Widgets", MARC, 90, "Applied to next.\n", "c@x"),
    )
    assert v.status == "applied"
    assert {p.applied.kind for p in v.patches if p.applied} == {"applied"}
    assert [e.msgid for e in v.evidence] == ["a@x", "q@x"]


def test_dropped_after_apply_goes_back_and_keeps_the_apply() -> None:
    """maz on 1/3: "I've now dropped this series from my tree until Mark has a chance to …"."""
    v = _series(
        mail("a@x", "Re: [PATCH 0/2] KVM: arm64: Widgets", MARC, 60, "Applied to next.\n", "c@x"),
        mail(
            "d@x",
            "Re: [PATCH 1/2] KVM: arm64: Widget 1",
            MARC,
            90,
            "I've now dropped this series from my tree until Mark has a chance to look.\n",
            "p1@x",
        ),
    )
    assert v.status == "dropped"
    assert [e.msgid for e in v.evidence] == ["d@x", "a@x"]
    assert all(p.applied is None for p in v.patches)


def test_b4_ty_naming_one_patch_marks_only_that_one() -> None:
    body = (
        "Applied to next, thanks!\n\n[2/2] KVM: arm64: Widget 2\n      commit: 0123456789ab\n\n"
        "Best regards,\n"
    )
    v = _series(mail("ty@x", "Re: [PATCH 0/2] KVM: arm64: Widgets", MARC, 60, body, "c@x"))
    assert v.status == "partially-applied"
    assert [p.n for p in v.patches if p.applied] == [2]


def test_stable_tree_notice_marks_the_posting_it_answers() -> None:
    greg = "Greg KH <gregkh@example.org>"
    subject = 'Patch "KVM: arm64: Widget 1" has been added to the 5.10-stable tree'
    body = "This is a note to let you know that I've just added the patch titled\n"
    mails = [
        mail("s@x", "[PATCH 5.10] KVM: arm64: Widget 1", ANN, 0, "Add.\n\n" + SB, diff="w"),
        mail("g@x", subject, greg, 60, body, "s@x"),
    ]
    (s,) = [s for s in derived(*mails).series if s.versions[0].key == "s@x"]
    assert s.versions[0].status == "applied"
    assert s.versions[0].evidence[0].kind == "stable"
    assert s.versions[0].evidence[0].where == "5.10-stable"


def test_stable_subject_is_read_exactly() -> None:
    assert find_stable_notice('Re: Patch "X" has been added to the 5.10-stable tree') is None
    notice = find_stable_notice('Patch "KVM: x" has been added to the 4.4-stable tree')
    assert notice is not None and notice.where == "4.4-stable"


def test_pull_shortlog_matches_a_subject_folded_with_double_spaces() -> None:
    """A folded Subject header leaves two spaces ("KVM: arm64:  Widget 1"); git's shortlog
    has one.  Both are compared with whitespace collapsed."""
    shortlog = PULL.replace("KVM: arm64: Something else", "KVM: arm64: Widget 1")
    mails = [
        mail("w1@x", "[PATCH] KVM: arm64:\n  Widget 1", ANN, 0, "Add.\n\n" + SB, diff="w1"),
        mail("pr@x", "[GIT PULL] KVM/arm64 updates for 5.17", MARC, 500, shortlog),
    ]
    (s,) = [s for s in derived(*mails).series if s.versions[0].key == "w1@x"]
    assert s.versions[0].status == "pulled"
    assert s.versions[0].patches[0].pulled is not None


def test_a_maintainer_queuing_for_testing_is_tentative_not_a_tester() -> None:
    notice = find_applied_notice("Applied to kvm-arm64/next for wider testing in -next.")
    assert notice is not None and notice.tentative and notice.where == "kvm-arm64/next"
    queued = find_applied_notice(
        "Queued to https://gitlab.com/x/kvm-unit-tests/-/commits/arm/queue"
    )
    assert queued is not None and queued.verb == "queued"


def test_idle_is_decided_when_read_not_when_derived() -> None:
    """DESIGN: idle = no mail for 90 days, not applied or superseded — as of the day asked
    about (storage/queue.py, tests/test_queue.py).  Derivation stores the waiting status and
    the series' last mail; it never bakes in "idle as of when the data ended", which would
    make a fact depend on unrelated later mail."""
    later = 60 * 24 * 100  # 100 days, in minutes
    quiet = mail("q1@x", "[PATCH] KVM: arm64: Quiet widget", ANN, 0, "Add.\n\n" + SB, diff="q")
    busy = mail(
        "b1@x", "[PATCH] KVM: arm64: Busy widget", ANN, later - 60, "Add.\n\n" + SB, diff="b"
    )
    chatter = [mail(f"t{i}@x", f"Talk {i}", TESTER, later + i, "Hello.\n") for i in range(5)]
    series = {s.id: s for s in derived(quiet, busy, *chatter).series}
    assert len(series) == 2
    assert [v.status for s in series.values() for v in s.versions] == ["new", "new"]
    assert series["q1@x"].last_activity == series["q1@x"].versions[0].date
    assert series["b1@x"].last_activity > series["q1@x"].last_activity
