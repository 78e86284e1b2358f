"""The digest's buckets on small fixture weeks built for each edge: applied on the last day
of the period, v2 posted and applied in one week, a waiting series turning idle, a bot
report linked to its series — and every entry in exactly one bucket."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.digest import build_digest, period_for_week, render_markdown, render_slack
from bot.digest.buckets import BUCKETS, is_report_title
from bot.digest.render_slack import notification_text
from tests.mailkit import ANN, BOB, MARC, OLIVER, ROBOT, SYZBOT, MailKit, at

WEEK = "2022-W06"  # Mon 2022-02-07 .. Mon 2022-02-14
NEXT = "2022-W07"


def digest(db, week: str = WEEK, lang: str = "en") -> dict:
    model = build_digest(db, period_for_week(week), lang=lang, now=at("2022-06-01"))
    assert_one_bucket_each(model)
    return model


def assert_one_bucket_each(model: dict) -> None:
    assert list(model["buckets"]) == list(BUCKETS)
    listed = Counter(k for keys in model["buckets"].values() for k in keys)
    assert len(model["entries"]) == len(listed)
    assert set(listed) == {e["key"] for e in model["entries"]}
    assert max(listed.values(), default=1) == 1
    for name, keys in model["buckets"].items():
        numbers = [next(e for e in model["entries"] if e["key"] == k)["number"] for k in keys]
        assert numbers == list(range(1, len(keys) + 1)), name


def bucket_of(model: dict, title_part: str) -> str:
    [entry] = [e for e in model["entries"] if title_part in e["title"]]
    return entry["bucket"]


def entry(model: dict, title_part: str) -> dict:
    [found] = [e for e in model["entries"] if title_part in e["title"]]
    return found


@pytest.fixture
def week_db(tmp_path):
    kit = MailKit()
    # Applied on the last day of the period (Sunday 23:50 UTC).
    _c, a1 = kit.posting("late", "KVM: arm64: Applied late on Sunday", ANN, at("2022-02-01"), 1)
    kit.reply(
        "late-ty@example.org",
        a1,
        "[PATCH 1/1] KVM: arm64: Applied late on Sunday part 1",
        MARC,
        at("2022-02-13", 23, 50),
        "Applied to next, thanks!\n",
    )
    # Applied one minute after the period: not applied as of its end.
    _c, b1 = kit.posting("early", "KVM: arm64: Applied on Monday", ANN, at("2022-02-01"), 1)
    kit.reply(
        "early-ty@example.org",
        b1,
        "[PATCH 1/1] KVM: arm64: Applied on Monday part 1",
        MARC,
        at("2022-02-14", 0, 1),
        "Applied to next, thanks!\n",
    )
    kit.reply(
        "early-q@example.org",
        b1,
        "[PATCH 1/1] KVM: arm64: Applied on Monday part 1",
        OLIVER,
        at("2022-02-09"),
        "Does this handle the VHE case?\n",
    )
    # v1 and v2 posted and v2 applied in the same week.
    kit.posting("fast", "KVM: arm64: Quick fix series", BOB, at("2022-02-07", 9), 2)
    _c2, f1, _f2 = kit.posting(
        "fast", "KVM: arm64: Quick fix series", BOB, at("2022-02-09", 9), 2, version=2
    )
    kit.reply(
        "fast-ty@example.org",
        f1,
        "[PATCH v2 1/2] KVM: arm64: Quick fix series part 1",
        MARC,
        at("2022-02-11"),
        "Applied to fixes, thanks!\n",
    )
    # A v2 carrying Marc's review over from v1, 20 days after v1.
    kit.posting("carry", "KVM: arm64: Carried reviews", BOB, at("2022-01-17"), 2)
    kit.posting(
        "carry",
        "KVM: arm64: Carried reviews",
        BOB,
        at("2022-02-08"),
        2,
        version=2,
        trailers={1: "Reviewed-by: Marc Zyngier <maz@kernel.org>\n"},
    )
    # Waiting: posted 12 days before the period end, quiet this week, one patch reviewed.
    _c, w1, _w2, _w3 = kit.posting(
        "wait", "KVM: arm64: Waiting widget", OLIVER, at("2022-02-02"), 3
    )
    kit.reply(
        "wait-rb@example.org",
        w1,
        "[PATCH 1/3] KVM: arm64: Waiting widget part 1",
        MARC,
        at("2022-02-03"),
        "Reviewed-by: Marc Zyngier <maz@kernel.org>\n",
    )
    # Idle: v1 in 2021, v2 in 2021, a late reply to v1 this week — v2 is idle, never "new".
    c1 = kit.posting("idle", "KVM: arm64: Abandoned feature", ANN, at("2021-09-01"), 1)[0]
    kit.posting("idle", "KVM: arm64: Abandoned feature", ANN, at("2021-10-01"), 1, version=2)
    kit.reply(
        "idle-late@example.org",
        c1,
        "[PATCH 0/1] KVM: arm64: Abandoned feature",
        BOB,
        at("2022-02-10"),
        "Is anyone still working on this?\n",
    )
    # A robot's build report naming patch 2 of the waiting series; a syzbot splat about nothing
    # we know; a person's regression report.
    kit.mail(
        "lkp-1@intel.com",
        "[kvmarm:next 2/3] arch/arm64/kvm/wait.c:12:5: warning: unused variable 'x'",
        ROBOT,
        at("2022-02-12"),
        "tree: kvmarm next\ncommit: 0123456789ab [2/3] KVM: arm64: Waiting widget part 2\n"
        "config: arm64-defconfig\n",
    )
    kit.mail(
        "syz-1@example.org",
        "[syzbot] WARNING in kvm_vcpu_ioctl",
        SYZBOT,
        at("2022-02-12", 11),
        "HEAD commit: deadbeef\nWARNING: CPU: 1 PID: 1 at arch/arm64/kvm/arm.c:1\n",
    )
    kit.mail(
        "regr-1@example.org",
        "REGRESSION: guests hang after the timer rework",
        OLIVER,
        at("2022-02-10", 15),
        "Since the timer rework guests hang at boot.\n",
    )
    # Plain discussion.
    kit.mail(
        "talk-1@example.org",
        "How should we expose the widget to userspace?",
        BOB,
        at("2022-02-08", 12),
        "Thoughts welcome.\n",
    )
    db = kit.store(tmp_path / "week.db", at("2022-06-01"))
    yield db
    db.close()


def test_applied_on_the_last_day_of_the_period(week_db):
    model = digest(week_db)
    assert bucket_of(model, "Applied late on Sunday") == "applied"
    monday = entry(model, "Applied on Monday")
    assert monday["bucket"] == "waiting"  # applied 00:01 after the period: not yet then
    assert monday["status"]["evidence"][0]["after_period"] is True


def test_v2_posted_and_applied_in_one_week_is_applied(week_db):
    model = digest(week_db)
    quick = entry(model, "Quick fix series")
    assert quick["bucket"] == "applied"
    assert quick["version"]["number"] == 2 and quick["previous_version"]["number"] == 1


def test_new_version_says_how_many_patches_carry_reviews_over(week_db):
    model = digest(week_db)
    carried = entry(model, "Carried reviews")
    assert carried["bucket"] == "new_versions"
    assert carried["carried_over"] == 1 and carried["review"]["patches"] == 2
    text = render_markdown(model, "en")
    assert "1 of 2 carry reviews over from v1" in text


def test_waiting_series_is_in_the_queue_then_turns_idle(tmp_path):
    kit = MailKit()
    _c, w1, _w2 = kit.posting("q", "KVM: arm64: Queue me", OLIVER, at("2022-01-03"), 2)
    kit.reply(
        "q-rb@example.org",
        w1,
        "[PATCH 1/2] KVM: arm64: Queue me part 1",
        MARC,
        at("2022-01-04"),
        "Reviewed-by: Marc Zyngier <maz@kernel.org>\n",
    )
    kit.mail("other-w2@example.org", "Unrelated question one", BOB, at("2022-01-12"), "Hm?\n")
    kit.mail("other-w16@example.org", "Unrelated question two", BOB, at("2022-04-20"), "Hm?\n")
    db = kit.store(tmp_path / "idle.db", at("2022-06-01"))
    early = digest(db, "2022-W02")  # 2022-01-10 .. 01-17: 7+ days after posting
    queued = entry(early, "Queue me")
    assert queued["bucket"] == "waiting" and queued["mails_this_week"] == 0
    assert queued["waiting"] == {"days": 13, "since": "2022-01-03T10:00:00Z", "unreviewed": 1}
    assert queued["summary"] is None
    assert "1 of 2 patches unreviewed" in render_markdown(early, "en")
    late = digest(db, "2022-W16")  # 2022-04-18 .. 04-25: 100+ days after its last mail
    assert [e["title"] for e in late["entries"]] == ["Unrelated question two"]
    db.close()


def test_idle_series_shows_idle_since_never_new(week_db):
    model = digest(week_db)
    abandoned = entry(model, "Abandoned feature")
    assert abandoned["bucket"] == "discussion"
    assert abandoned["status"]["state"] == "idle"
    assert abandoned["status"]["idle_since"] == abandoned["idle_since"] == "2021-10-01"
    for lang, words in (("en", "idle since 2021-10-01"), ("zh", "自 2021-10-01 起无进展")):
        text = render_markdown(digest(week_db, lang=lang), lang)
        assert words in text
    slack = str(render_slack(model))
    assert "idle since 2021-10-01" in slack


def test_reports_are_linked_to_their_series_when_known(week_db):
    model = digest(week_db)
    robot = entry(model, "warning: unused variable")
    assert robot["bucket"] == "reports"
    assert robot["about"]["title"] == "KVM: arm64: Waiting widget"
    assert robot["about"]["bucket"] == "waiting"
    syz = entry(model, "WARNING in kvm_vcpu_ioctl")
    assert syz["bucket"] == "reports" and syz["about"] is None
    assert bucket_of(model, "REGRESSION: guests hang") == "reports"
    assert bucket_of(model, "expose the widget to userspace") == "discussion"
    reply = next(m for m in render_slack(model)[1:] if "Reports" in m["blocks"][0]["text"]["text"])
    assert "About: <" in str(reply) and "(Waiting for review #" in str(reply)


def test_notification_text_says_what_matters(week_db):
    model = digest(week_db)
    counts = {name: len(keys) for name, keys in model["buckets"].items()}
    assert counts == {
        "applied": 2,
        "new_series": 0,
        "new_versions": 1,
        "waiting": 2,
        "discussion": 2,
        "reports": 3,
    }
    assert notification_text(model) == (
        "kvmarm 2022-W06 — 2 applied, 1 new version, 2 waiting for review, 2 discussions, 3 reports"
    )
    assert render_slack(model)[0]["text"] == notification_text(model)
    zh = digest(week_db, lang="zh")
    assert notification_text(zh).startswith("kvmarm 2022-W06 — 合入 2 个，新版本 1 个")


def test_json_lists_entry_ids_per_bucket_and_keeps_totals(week_db):
    model = digest(week_db)
    assert model["buckets"]["applied"] == [
        entry(model, "Quick fix series")["key"],
        entry(model, "Applied late on Sunday")["key"],
    ]  # in the order they were applied
    totals = model["totals"]
    assert totals["entries"] == sum(1 for e in model["entries"] if e["mails_this_week"])
    assert set(totals["categories"]) >= {"PATCH", "RFC", "PULL", "Other"}


def test_markdown_overview_first_then_sections_numbered_within(week_db):
    text = render_markdown(digest(week_db), "en")
    overview = text.index("## Overview")
    assert overview < text.index("## 📌 PATCH") < text.index("## 📌 Other")
    patch = text[text.index("## 📌 PATCH") : text.index("## 📌 Other")]
    other = text[text.index("## 📌 Other") :]
    assert "### 1. " in patch and "### 1. " in other
    assert "→ PATCH #1" in text[overview:]


@pytest.mark.parametrize(
    ("title", "report"),
    [
        ("[kvmarm:next 29/32] arch/arm64/kvm/sys_regs.c:1544:13: warning: initializer", True),
        ("BUG: KASAN: slab-out-of-bounds in kvm_pmu_get_canonical_pmc", True),
        ("kvm-unit-tests: psci_cpu_on_test FAILed", True),
        ("REGRESSION: Upgrading host kernel from 5.11 to 5.13 breaks QEMU guests", True),
        ("KVM/arm64: Guest ABI changes do not appear rollback-safe", False),
        ("KVM: arm64: Emulate the OS Lock", False),
    ],
)
def test_report_titles(title, report):
    assert is_report_title(title) is report


def test_quiet_queue_entries_need_mail_in_the_period(tmp_path):
    """A week without any mail is a missed sync, not a quiet week: no entries at all."""
    kit = MailKit()
    kit.posting("q", "KVM: arm64: Queue me", OLIVER, at("2022-01-03"), 2)
    db = kit.store(tmp_path / "empty.db", at("2022-06-01"))
    model = digest(db, "2022-W03")
    assert model["entries"] == [] and all(v == [] for v in model["buckets"].values())
    db.close()


def test_days_waiting_counts_from_the_posting(tmp_path):
    kit = MailKit()
    kit.posting("d", "KVM: arm64: Count the days", OLIVER, at("2022-01-31", 12), 1)
    kit.mail("x@example.org", "Something else", BOB, at("2022-02-08"), "Hm?\n")
    db = kit.store(tmp_path / "days.db", at("2022-06-01"))
    e = entry(digest(db), "Count the days")
    assert e["waiting"]["days"] == (at("2022-02-14", 0) - at("2022-01-31", 12)).days == 13
    db.close()


def test_a_report_names_its_series_by_a_prefixed_title_not_by_a_generic_phrase(tmp_path):
    kit = MailKit()
    kit.posting("cul", "KVM: arm64: Expose the culprit to the guest", ANN, at("2022-02-01"), 1)
    kit.posting("gen", "Remove unneeded semicolon", BOB, at("2022-02-02"), 1)
    kit.mail(
        "lkp-2@intel.com",
        "[PATCH] KVM: arm64: fix semicolon.cocci warnings",
        ROBOT,
        at("2022-02-09"),
        " Remove unneeded semicolon.\n\n"
        'Fixes: d43583b890e7 ("KVM: arm64: Expose the culprit to the guest part 1")\n',
    )
    db = kit.store(tmp_path / "fixes.db", at("2022-06-01"))
    report = entry(digest(db), "semicolon.cocci")
    assert report["bucket"] == "reports"
    assert report["about"]["title"] == "KVM: arm64: Expose the culprit to the guest"
    db.close()
