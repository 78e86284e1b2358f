"""How the digest words what it knows, on a small fixture week (2022-W06): a status decided
after the period says so, counts of one patch read as English, and an applied version does
not nag about the patches it went in without reviews for — in Markdown (en, zh) and Slack."""

from __future__ import annotations

import json

import pytest

from bot.digest import build_digest, period_for_week, render_markdown, render_slack
from bot.digest.chart import review_rows
from bot.digest.labels import labels
from bot.digest.render_slack import render_details
from tests.mailkit import ANN, BOB, MARC, OLIVER, MailKit, at

WEEK = "2022-W06"  # Mon 2022-02-07 .. Mon 2022-02-14


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    kit = MailKit()
    # Waiting and quiet this week; v2 posted a week after the period supersedes it.
    kit.posting("later", "KVM: arm64: Superseded later", ANN, at("2022-01-20"), 2)
    kit.posting("later", "KVM: arm64: Superseded later", ANN, at("2022-02-21"), 2, version=2)
    # One patch, reviewed before the period, discussed in it.
    _c, one = kit.posting("one", "KVM: arm64: Single reviewed patch", BOB, at("2022-02-01"), 1)
    kit.reply(
        "one-rb@example.org",
        one,
        "[PATCH 1/1] KVM: arm64: Single reviewed patch part 1",
        MARC,
        at("2022-02-02"),
        "Reviewed-by: Marc Zyngier <maz@kernel.org>\n",
    )
    kit.reply(
        "one-q@example.org",
        one,
        "[PATCH 1/1] KVM: arm64: Single reviewed patch part 1",
        OLIVER,
        at("2022-02-08"),
        "Does this need a stable tag?\n",
    )
    # One patch, posted this week, nobody reviewed it.
    kit.posting("bare", "KVM: arm64: Single bare patch", BOB, at("2022-02-09"), 1)
    # Three patches, Oliver reviewed patch 1, applied this week.
    cover, p1, _p2, _p3 = kit.posting(
        "done", "KVM: arm64: Applied with one review", ANN, at("2022-01-31"), 3
    )
    kit.reply(
        "done-rb@example.org",
        p1,
        "[PATCH 1/3] KVM: arm64: Applied with one review part 1",
        OLIVER,
        at("2022-02-01"),
        "Reviewed-by: Oliver Upton <oupton@google.com>\n",
    )
    kit.reply(
        "done-ty@example.org",
        cover,
        "[PATCH 0/3] KVM: arm64: Applied with one review",
        MARC,
        at("2022-02-10"),
        "Applied to next, thanks!\n",
    )
    # One patch, no review, applied this week.
    _c, q1 = kit.posting("plain", "KVM: arm64: Applied bare", ANN, at("2022-02-07"), 1)
    kit.reply(
        "plain-ty@example.org",
        q1,
        "[PATCH 1/1] KVM: arm64: Applied bare part 1",
        MARC,
        at("2022-02-11"),
        "Applied to next, thanks!\n",
    )
    database = kit.store(tmp_path_factory.mktemp("wording") / "week.db", at("2022-06-01"))
    yield database
    database.close()


@pytest.fixture(scope="module")
def models(db) -> dict[str, dict]:
    period = period_for_week(WEEK)
    return {
        lang: build_digest(db, period, lang=lang, now=at("2022-06-01")) for lang in ("en", "zh")
    }


def entry(model: dict, title_part: str) -> dict:
    [found] = [e for e in model["entries"] if title_part in e["title"]]
    return found


def overview_line(text: str, title_part: str) -> str:
    """The entry's line in the Markdown overview (before the full entries)."""
    overview = text.split("\n---\n", 1)[0]
    [line] = [x for x in overview.splitlines() if title_part in x and x[:1].isdigit()]
    return line


def slack_text(model: dict) -> str:
    return json.dumps(render_slack(model), ensure_ascii=False)


def test_a_status_decided_after_the_period_says_so(models):
    later = entry(models["en"], "Superseded later")
    assert (later["bucket"], later["mails_this_week"]) == ("waiting", 0)
    assert later["status"]["state"] == "superseded" and later["status"]["after_period"] is True
    en = overview_line(render_markdown(models["en"], "en"), "Superseded later")
    assert "· superseded (after this period) ·" in en and "waiting " in en
    zh = overview_line(render_markdown(models["zh"], "zh"), "Superseded later")
    assert "已被新版本取代（发生在本周期之后）" in zh
    applied = entry(models["en"], "Applied bare")
    assert applied["status"]["after_period"] is False  # decided in the period: no mark
    assert "applied (after" not in render_markdown(models["en"], "en")


def test_slack_shows_a_later_status_in_words_and_the_state_then_as_emoji(models):
    text = slack_text(models["en"])
    later = entry(models["en"], "Superseded later")
    lines = [x for x in text.split("\\n") if f"{later['link']}|KVM: arm64: Superseded" in x]
    assert len(lines) >= 2  # the parent's item and the reply's card
    assert all("🔁" not in x for x in lines)  # not superseded as of the period end
    assert all("⏳" in x for x in lines)
    card = render_details(later, models["en"])["blocks"][0]["text"]["text"]
    assert "superseded (after this period)" in card
    assert "(after this period))" not in card  # said once, not again on its proof
    zh = render_details(entry(models["zh"], "Superseded later"), models["zh"])
    assert "已被新版本取代（发生在本周期之后）" in zh["blocks"][0]["text"]["text"]


def test_one_patch_counts_read_as_english(models):
    text = render_markdown(models["en"], "en")
    assert "the patch is reviewed" in overview_line(text, "Single reviewed patch")
    assert "the patch is unreviewed" in overview_line(text, "Single bare patch")
    assert "of 1 patches" not in text and "all 1 patches" not in text
    assert "2 of 2 patches unreviewed" in overview_line(text, "Superseded later")
    assert "- **PATCH**: 4 entries (7 mails)" in text
    assert "0 new versions" in text
    zh = render_markdown(models["zh"], "zh")
    assert "该补丁已审阅" in overview_line(zh, "Single reviewed patch")
    assert "该补丁尚无审阅" in overview_line(zh, "Single bare patch")
    assert "全部 1 个" not in zh and "1 个补丁中" not in zh
    slack = slack_text(models["en"])
    assert "the patch is reviewed" in slack and "of 1 patches" not in slack


def test_an_applied_version_shows_who_reviewed_and_no_unreviewed_count(models):
    text = render_markdown(models["en"], "en")
    reviewed = overview_line(text, "Applied with one review")
    assert "· applied · Reviewed-by: Oliver Upton ·" in reviewed
    assert "unreviewed" not in reviewed
    bare = overview_line(text, "Applied bare")
    assert "· applied · 3 mails" in bare and "review" not in bare.split("·", 1)[1]
    zh = render_markdown(models["zh"], "zh")
    assert "尚无审阅" not in overview_line(zh, "Applied with one review")
    slack = render_slack(models["en"])
    [applied] = [m for m in slack[1:] if "Applied" in m["blocks"][0]["text"]["text"]]
    cards = [b["text"]["text"] for b in applied["blocks"][1:] if "accessory" in b]
    assert len(cards) == 2
    for card in cards:
        assert "unreviewed" not in card and "R-b" not in card
        assert "no review trailers yet" not in card
    assert any("Reviewed-by: Oliver Upton (1)" in c for c in cards)
    parent = json.dumps(slack[0], ensure_ascii=False)
    assert "Applied with one review" in parent and "R-b 1/3" not in parent
    assert "R-b 0/1" in parent  # the unreviewed single patch not yet applied keeps its count


def test_the_chart_leaves_applied_versions_out(models):
    labels = [label for label, _done, _left in review_rows(models["en"])]
    assert len(labels) == 3
    assert not any("Applied" in label for label in labels)


def test_other_counts_of_one_read_as_english():
    en, zh = labels("en"), labels("zh")
    assert en["category_line"](1, 1) == "1 entry (1 mail)"
    assert en["series_detail"](1, 0, 1) == "1 active — 0 new, 1 new version"
    assert en["untrailed"]([3], "3", 5) == "Without review trailers: patch 3 (of 5)"
    assert en["fallbacks"](1) == "1 LLM summary replaced by extractive one (see notes)"
    assert en["out_of_time"](1).endswith("1 entry summarised extractively")
    assert en["carried"](1, 1, "v2") == "the patch carries reviews over from v2"
    assert en["carried"](0, 3, "v2") == "0 of 3 carry reviews over from v2"
    assert en["unreviewed"](1, 1, 5) == "the one patch of 5 on this list is unreviewed"
    assert en["all_reviewed"](4, 5) == "all 4 patches reviewed (4 of 5 on this list)"
    assert zh["category_line"](1, 2) == "1 thread (2 邮件)"
    assert zh["all_reviewed"](1, 1) == "该补丁已审阅"
