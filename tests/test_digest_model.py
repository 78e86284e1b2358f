"""The digest model on a small fixture week (tests/fixtures/digest/week.mbox, 2023-W10).

The fixture: a two-patch series whose v1 was posted the week before and whose v2 is posted,
reviewed (Reviewed-by on 1/2, Tested-by on 2/2, Acked-by on the cover), reported on by a bot
and applied this week; a quoted "> Reviewed-by:" that must not count; a reviewer writing from
two display names; a kvmtool patch; a discussion outside any series whose reply is dated
Sunday 23:30 -0800 (Monday in UTC, so next week); a reply dated the week before but received
in this one.
"""

from __future__ import annotations

import json

import pytest

from bot.digest import build_digest, period_for_week
from bot.digest.extractive import ExtractiveSummariser
from bot.digest.summary import Summary, SummaryRequest
from tests.digest_support import NOW, WEEK, fixture_db


@pytest.fixture
def model(tmp_path):
    db = fixture_db(tmp_path)
    yield build_digest(db, period_for_week(WEEK), now=NOW)
    db.close()


def _entry(model, title_part):
    [entry] = [e for e in model["entries"] if title_part in e["title"]]
    return entry


def test_totals_count_by_date_in_utc(model):
    t = model["totals"]
    # 8 mails of the series (3 v2 postings, 4 replies, 1 bot), 1 kvmtool, 1 question.
    assert t["mails"] == 10
    assert t["bot_mails"] == 1
    assert t["threads"] == 3
    assert t["series"] == 2
    assert t["new_series"] == 1  # kvmtool; the widget series started the week before
    assert t["new_versions"] == 1  # widget v2
    # alice, bob (two display names, one address), carol, marc, frank, dave; not the bot,
    # not eve (her reply is Monday 07:30 UTC, next week).
    assert t["participants"] == 6
    assert {p["email"] for p in model["participants"]} == {
        "alice@example.org",
        "bob@example.com",
        "carol@example.net",
        "maz@example.org",
        "frank@example.com",
        "dave@example.com",
    }
    assert sum(e["mails_this_week"] for e in model["entries"]) == t["mails"]
    cats = t["categories"]
    assert cats["PATCH"] == {"entries": 1, "mails": 8}
    assert cats["kvmtool"] == {"entries": 1, "mails": 1}
    assert cats["Other"] == {"entries": 1, "mails": 1}


def test_period_and_generation_time(model):
    assert model["period"]["since"] == "2023-03-06T00:00:00Z"
    assert model["period"]["until"] == "2023-03-13T00:00:00Z"
    assert model["period"]["iso_week"] == WEEK
    assert model["generated_at"] == "2023-03-14T09:00:00Z"


def test_entries_most_active_first(model):
    counts = [e["mails_this_week"] for e in model["entries"]]
    assert counts == sorted(counts, reverse=True)
    assert [e["rank"] for e in model["entries"]] == [1, 2, 3]


def test_series_version_links_and_counts(model):
    e = _entry(model, "Frobnicate")
    assert e["kind"] == "series"
    assert e["version"]["number"] == 2
    assert e["previous_version"]["number"] == 1
    assert e["previous_version"]["link"].endswith("/20230227100000.1234-1-alice@example.org/")
    assert e["link"] == "https://lore.kernel.org/kvmarm/20230307080000.5678-1-alice@example.org/"
    assert e["patches"] == 2
    assert e["mails_this_week"] == 8
    assert e["mails_total"] == 13  # 4 of v1's week + the late reply + 8
    assert e["first_post"] == "2023-02-27T10:00:00Z"
    # 09:00 +0100 is shown in UTC
    assert e["mails"][0]["date"] == "2023-03-07T08:00:00Z"


def test_trailers_per_patch_with_who_and_where(model):
    e = _entry(model, "Frobnicate")
    by_patch = {p["n"]: {(t["type"], t["email"]) for t in p["trailers"]} for p in e["trailers"]}
    assert by_patch == {
        1: {("Reviewed-by", "bob@example.com"), ("Acked-by", "carol@example.net")},
        2: {("Tested-by", "bob@example.com"), ("Acked-by", "carol@example.net")},
    }
    everyone = [t for p in e["trailers"] for t in p["trailers"]]
    assert not any("mallory" in t["email"] for t in everyone)  # quoted, not given
    acked = next(t for t in everyone if t["type"] == "Acked-by")
    assert acked["msgid"] == "carol-v2-cover@example.net" and acked["source"] == "cover"
    assert all(t["this_week"] for t in everyone)


def test_status_with_evidence(model):
    status = _entry(model, "Frobnicate")["status"]
    assert status["state"] == "applied"
    [ev] = status["evidence"]
    assert ev["by_name"] == "Marc Maint" and ev["where"] == "next"
    assert ev["commit"].startswith("0123456789ab")
    assert ev["in_period"] and not ev["after_period"]
    assert ev["link"].endswith("/maz-applied@example.org/")


def test_late_mail_is_flagged_not_counted(model):
    [late] = model["late_mails"]
    assert late["msgid"] == "bob-late@example.com"
    assert late["reason"] == "dated before the period"
    assert late["received"] == "2023-03-07T07:00:00Z"
    listed = {m["msgid"] for e in model["entries"] for m in e["mails"]}
    assert "bob-late@example.com" not in listed
    assert model["totals"]["late_mails"] == 1


def test_background_only_from_earlier_mail(model):
    widget = _entry(model, "Frobnicate")["summary"]
    assert widget["background"].startswith("First posted on 2023-02-27 by Alice Author (v1)")
    kvmtool = _entry(model, "FDT")["summary"]
    assert kvmtool["background"] is None  # nothing before this week: never invented
    question = _entry(model, "stage-2")["summary"]
    assert question["background"] is None


def test_extractive_summary_states_facts_and_never_quotes_outsiders(model):
    s = _entry(model, "Frobnicate")["summary"]
    assert s["source"] == "extractive" and s["note"] is None
    text = s["this_week"]
    assert "Alice Author posted v2 (2 patches) on 2023-03-07, following v1." in text
    assert "Reviewed-by: Bob Reviewer (v2: 1)." in text
    assert "Acked-by: Carol Maintainer (v2: whole series)." in text
    assert "Tested-by: Bob Reviewer (v2: 2)." in text
    assert "Applied by Marc Maint to next." in text
    assert "Why not use a static key" in text  # a question raised
    assert "Linus" not in text  # Carol's sentence naming a non-participant is not quoted
    assert "maz-applied@example.org" in s["cited"]


def test_thread_outside_series(model):
    e = _entry(model, "stage-2")
    assert e["kind"] == "thread" and e["section"] == "Other"
    assert e["version"] is None and e["status"] is None
    assert [m["msgid"] for m in e["mails"]] == ["dave-question@example.com"]


def test_same_week_twice_is_identical_and_cached(tmp_path):
    db = fixture_db(tmp_path)
    period = period_for_week(WEEK)
    calls: list[str] = []

    class Counting(ExtractiveSummariser):
        def summarise(self, request: SummaryRequest, *, deadline: float | None = None) -> Summary:
            calls.append(request.entry_key)
            return super().summarise(request, deadline=deadline)

    first = build_digest(db, period, now=NOW, summariser=Counting())
    assert len(calls) == 3
    second = build_digest(db, period, now=NOW, summariser=Counting())
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert len(calls) == 3  # the second run took every summary from the cache


def test_zh_summary_is_chinese(tmp_path):
    db = fixture_db(tmp_path)
    model = build_digest(db, period_for_week(WEEK), lang="zh", now=NOW)
    text = _entry(model, "Frobnicate")["summary"]["this_week"]
    assert "Alice Author 于 2023-03-07 发布 v2（2 个补丁），上一版为 v1。" in text
    assert "已由 Marc Maint 合入 next。" in text


def test_empty_week(tmp_path):
    db = fixture_db(tmp_path)
    model = build_digest(db, period_for_week("2023-W20"), now=NOW)
    assert model["entries"] == [] and model["totals"]["mails"] == 0
