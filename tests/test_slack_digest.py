"""The digest in Slack: `/kvmarm digest` previews with a Post button, the button posts once per
(week, channel) and only to allowed channels, and the scheduled weekly job does the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.digest import build_digest, period_for_week, render_slack
from bot.digest.extractive import ExtractiveSummariser
from bot.digest.render_slack import DETAILS_ACTION
from bot.slack.app import create_app, per_thread
from bot.slack.blocks import POST_DIGEST_ACTION
from bot.slack.client import make_web_client
from bot.slack.digest import DigestGlue
from bot.slack.schedule import parse_schedule, run_schedule
from storage.db import open_db
from tests.archive import copy_archive_db
from tests.fake_slack import Reply
from tests.slack_requests import (
    CHANNEL,
    action_body,
    app_config,
    command_body,
    dispatch,
    wait_for,
)
from tests.test_digest_slack import raw_mentions

NOW = datetime(2022, 2, 23, 12, 0, tzinfo=UTC)  # a Wednesday in 2022-W08
OTHER_CHANNEL = "C0NOTALLOWD"


@pytest.fixture(scope="module")
def archive_copy(tmp_path_factory):
    """A writable copy: digests cache their summaries and record what was posted."""
    return copy_archive_db(tmp_path_factory.mktemp("digest") / "archive.db")


def _glue(fake_slack, path, now=NOW) -> DigestGlue:
    config = app_config(fake_slack, path)
    return DigestGlue(
        config,
        make_web_client(config),
        ExtractiveSummariser(),
        per_thread(lambda: open_db(path)),
        lambda: now,
    )


@pytest.fixture
def app(fake_slack, archive_copy):
    config = app_config(fake_slack, archive_copy)
    glue = _glue(fake_slack, archive_copy)
    return create_app(
        config,
        client=glue.client,
        db_factory=glue.db_factory,
        digest=glue,
        token_verification_enabled=False,
    )


def _url(fake_slack, n: int = 1) -> str:
    return f"{fake_slack.base_url}/commands/T1/{n}/hook"


def _buttons(message: dict) -> list[dict]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def test_digest_preview_has_a_post_button_in_an_allowed_channel(app, fake_slack):
    reply = dispatch(app, command_body("digest 2022-W07", _url(fake_slack)))
    assert reply.status == 200 and reply.body == ""
    [call] = wait_for(fake_slack, "response", timeout=60)
    assert call.params["response_type"] == "ephemeral"
    said = json.dumps(call.params, ensure_ascii=False)
    assert "2022-W07" in said
    [button] = _buttons(call.params)
    assert button["action_id"] == POST_DIGEST_ACTION
    assert json.loads(button["value"]) == {"week": "2022-W07", "lang": "en"}
    assert len(call.params["blocks"]) <= 50
    assert fake_slack.calls_to("chat.postMessage") == []  # a preview posts nothing


def test_digest_words_are_weeks_relative_to_now(fake_slack, archive_copy):
    glue = _glue(fake_slack, archive_copy)
    from bot.commands.grammar import parse_command

    last = glue.reply(parse_command("digest"), CHANNEL)
    assert json.loads(_buttons(last)[0]["value"])["week"] == "2022-W07"
    this = glue.reply(parse_command("digest this"), CHANNEL)
    assert json.loads(_buttons(this)[0]["value"])["week"] == "2022-W08"
    empty = glue.reply(parse_command("digest 2030-W01"), CHANNEL)
    assert "No mail dated in 2030-W01" in empty["text"] and not _buttons(empty)
    bad = glue.reply(parse_command("digest 2021-W53"), CHANNEL)
    assert "Not a week" in bad["text"]


def test_no_post_button_where_digests_may_not_go(fake_slack, archive_copy):
    from bot.commands.grammar import parse_command

    reply = _glue(fake_slack, archive_copy).reply(parse_command("digest 2022-W07"), OTHER_CHANNEL)
    assert not _buttons(reply)
    assert "may not receive digests" in json.dumps(reply)


def test_post_button_posts_once(app, fake_slack):
    value = json.dumps({"week": "2022-W06", "lang": "en"})
    dispatch(app, action_body(POST_DIGEST_ACTION, value, _url(fake_slack, 2)))
    [done] = wait_for(fake_slack, "response", timeout=60)
    assert done.params["replace_original"] is True
    assert "The digest of 2022-W06 is posted in this channel" in done.params["text"]
    posts = fake_slack.calls_to("chat.postMessage")
    assert posts and all(p.params["channel"] == CHANNEL for p in posts)
    parent = posts[0]
    assert "thread_ts" not in parent.params
    assert all(p.params.get("thread_ts") for p in posts[1:])
    # clicking again (or a second user) posts nothing new
    dispatch(app, action_body(POST_DIGEST_ACTION, value, _url(fake_slack, 3)))
    again = wait_for(fake_slack, "response", 2, timeout=60)[1]
    assert "was already posted here" in again.params["text"]
    assert len(fake_slack.calls_to("chat.postMessage")) == len(posts)


def test_details_button_answers_ephemerally_with_the_whole_entry(app, fake_slack, archive_copy):
    """A card's Details button, clicked through a signed interactive request: the full entry
    (trailers per patch, every mail with its time and link) for the clicker only."""
    db = open_db(archive_copy)
    model = build_digest(db, period_for_week("2022-W06"), now=NOW)
    db.close()
    messages = render_slack(model)
    cards = [
        b["accessory"]
        for m in messages[1:]
        for b in m["blocks"]
        if b.get("accessory", {}).get("action_id") == DETAILS_ACTION
    ]
    assert len(cards) >= 10
    sme = next(e for e in model["entries"] if e["title"].startswith("arm64/sme"))
    [button] = [c for c in cards if json.loads(c["value"])["e"] == sme["key"]]
    dispatch(app, action_body(DETAILS_ACTION, button["value"], _url(fake_slack, 7)))
    [shown] = wait_for(fake_slack, "response", timeout=60)
    assert shown.params["response_type"] == "ephemeral"
    assert shown.params["replace_original"] is False
    text = json.dumps(shown.params["blocks"], ensure_ascii=False)
    assert len(sme["mails"]) == 82
    # every mail's link is there (up to Slack's 50 blocks), with its UTC time
    shown_links = [m["link"] for m in sme["mails"] if m["link"] in text]
    assert len(shown_links) == len(sme["mails"])
    assert "`02-07 15:21`" in text
    # trailers per patch: patch 3 carries Catalin's and Suzuki's Reviewed-by
    assert "3. <" in text and "Reviewed Catalin Marinas" in text
    assert len(shown.params["blocks"]) <= 50
    assert raw_mentions([shown.params]) == []


def test_details_button_for_an_unknown_entry_says_so(app, fake_slack):
    value = json.dumps({"p": "2022-W06", "e": "thread:nope@example.org", "l": "en"})
    dispatch(app, action_body(DETAILS_ACTION, value, _url(fake_slack, 8)))
    [shown] = wait_for(fake_slack, "response", timeout=60)
    assert "no longer in the digest of 2022-W06" in shown.params["text"]


@pytest.mark.slow
def test_post_button_says_the_chart_is_still_open_and_a_second_press_finishes(app, fake_slack):
    fake_slack.script("files.completeUploadExternal", *[Reply(500)] * 4)
    value = json.dumps({"week": "2022-W03", "lang": "en"})
    dispatch(app, action_body(POST_DIGEST_ACTION, value, _url(fake_slack, 2)))
    [partly] = wait_for(fake_slack, "response", timeout=60)
    assert "except the chart" in partly.params["text"] and "Press again" in partly.params["text"]
    posts = len(fake_slack.calls_to("chat.postMessage"))
    dispatch(app, action_body(POST_DIGEST_ACTION, value, _url(fake_slack, 3)))
    done = wait_for(fake_slack, "response", 2, timeout=60)[1]
    assert "The digest of 2022-W03 is posted in this channel" in done.params["text"]
    assert len(fake_slack.calls_to("chat.postMessage")) == posts  # only the chart was sent
    assert len(fake_slack.calls_to("files.completeUploadExternal")) == 5


def test_post_button_refuses_other_channels(app, fake_slack):
    value = json.dumps({"week": "2022-W05", "lang": "en"})
    body = action_body(POST_DIGEST_ACTION, value, _url(fake_slack, 4), channel=OTHER_CHANNEL)
    dispatch(app, body)
    [refused] = wait_for(fake_slack, "response", timeout=60)
    assert "Not posted" in refused.params["text"]
    assert "may not receive digests" in refused.params["text"]
    assert fake_slack.calls_to("chat.postMessage") == []


def test_scheduled_job_posts_last_week_once_across_restarts(fake_slack, archive_copy):
    schedule = parse_schedule("MON 09:00 Asia/Shanghai")
    start = datetime(2022, 1, 30, 12, tzinfo=UTC)  # Sunday: next run Mon 2022-01-31 01:00 UTC

    class Clock:
        now = start

        def __call__(self):
            return self.now

        def sleep(self, seconds):
            self.now += timedelta(seconds=seconds)

    clock = Clock()
    glue = _glue(fake_slack, archive_copy, now=NOW)
    job = glue.weekly_job((CHANNEL,))
    run_schedule(schedule, job, now=clock, sleep=clock.sleep, runs=1)
    posts = fake_slack.calls_to("chat.postMessage")
    assert posts, "nothing posted"
    assert "2022-W04" in json.dumps(posts[0].params, ensure_ascii=False)
    # a restart two hours later catches up on the same slot: nothing is posted twice
    clock.now = datetime(2022, 1, 31, 3, tzinfo=UTC)
    run_schedule(schedule, job, now=clock, sleep=clock.sleep, runs=1)
    assert len(fake_slack.calls_to("chat.postMessage")) == len(posts)


# ---- thread summaries by the digest's LLM summariser ------------------------------------------


def test_thread_gets_an_llm_summary_as_a_follow_up(fake_slack, archive_copy):
    from bot.commands.summary import llm_summarise
    from bot.digest import make_summariser
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as llm:
        config = app_config(
            fake_slack, archive_copy, OPENAI_BASE_URL=llm.base_url, KVMARM_LLM_MODEL="fake-model"
        )
        summariser = make_summariser(config)
        app = create_app(
            config,
            client=make_web_client(config),
            db_factory=per_thread(lambda: open_db(archive_copy)),
            summarise=llm_summarise(config, summariser=summariser),
            token_verification_enabled=False,
        )
        reply = dispatch(app, command_body("thread FEAT_CCIDX", _url(fake_slack)))
        assert reply.status == 200
        answer, note = wait_for(fake_slack, "response", 2, timeout=60)
        assert "KVM: arm64: Support FEAT_CCIDX" in json.dumps(answer.params)
        said = json.dumps(note.params, ensure_ascii=False)
        assert "Summary:" in said and "LLM summary by fake-model of all 4 mails" in said
        asked = len(llm.requests)
        assert asked >= 1
        # asked again: the summary comes from the cache, not from the LLM
        dispatch(app, command_body("thread FEAT_CCIDX", _url(fake_slack, 2)))
        wait_for(fake_slack, "response", 4, timeout=60)
        assert len(llm.requests) == asked


def test_no_llm_no_follow_up(fake_slack, archive_copy):
    from bot.commands.summary import llm_summarise

    config = app_config(fake_slack, archive_copy)
    assert llm_summarise(config) is None
