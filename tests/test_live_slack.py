"""Channel subscriptions end to end: signed slash commands → the real Bolt app →
subscriptions stored; real February mail ingested; `kvmarm notify` → the real slack_sdk
against the loopback fake Slack: one card per series, later events in its thread, cards
updated, nothing twice across runs, interrupted deliveries looked up before re-sending."""

from __future__ import annotations

import json
import re
import time

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.slack.app import create_app, per_thread
from bot.slack.client import make_web_client
from storage import live as store
from storage.db import open_db
from tests.fake_slack import Reply
from tests.live_support import FEB_SPLIT, ingest, january_db, month
from tests.slack_requests import (
    CHANNEL,
    app_config,
    command_body,
    dispatch,
    mention_body,
    wait_for,
)

VGIC = "path:arch/arm64/kvm/vgic/*"
CLEAN_ENV = {"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None, "KVMARM_CONFIG": "/dev/null"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("live-slack")


@pytest.fixture
def db_path(tmp_path, workdir):
    return january_db(tmp_path, workdir)


@pytest.fixture
def app(fake_slack, db_path):
    config = app_config(fake_slack, db_path)
    return create_app(
        config,
        client=make_web_client(config),
        db_factory=per_thread(lambda: open_db(db_path)),
        token_verification_enabled=False,
    )


def slash(app, fake_slack, text: str, n: int) -> dict:
    url = f"{fake_slack.base_url}/commands/T0000001/{n}/hook"
    reply = dispatch(app, command_body(text, url))
    assert reply.status == 200
    if reply.body:  # usage errors are answered in the ack
        return json.loads(reply.body)
    calls = wait_for(fake_slack, "response", n)
    return calls[n - 1].params


def notify(db_path, fake_slack):
    env = {**CLEAN_ENV, "SLACK_BOT_TOKEN": "xoxb-t", "SLACK_API_URL": fake_slack.api_url}
    return CliRunner().invoke(main, ["--db", str(db_path), "notify"], env=env)


def posted(fake_slack, channel: str = CHANNEL) -> list:
    return [c for c in fake_slack.calls_to("chat.postMessage") if c.params["channel"] == channel]


def mrkdwn(call) -> str:
    blocks = call.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return "\n".join(b["text"]["text"] for b in blocks if b.get("text"))


def test_subscribe_list_unsubscribe(app, fake_slack, db_path):
    said = slash(app, fake_slack, f"subscribe {VGIC} -author:syzbot", 1)
    assert said["response_type"] == "ephemeral"
    assert "Subscribed this channel to `path:arch/arm64/kvm/vgic/* -author:syzbot`" in said["text"]
    [info] = fake_slack.calls_to("conversations.info")
    assert info.params["channel"] == CHANNEL
    again = slash(app, fake_slack, f"subscribe {VGIC}  -author:syzbot", 2)
    assert "already subscribed" in again["text"]
    listing = slash(app, fake_slack, "subscriptions", 3)
    assert "`path:arch/arm64/kvm/vgic/* -author:syzbot`" in listing["text"]
    missing = slash(app, fake_slack, "unsubscribe vgic", 4)
    assert "has no subscription `vgic`" in missing["text"]
    gone = slash(app, fake_slack, f"unsubscribe {VGIC} -author:syzbot", 5)
    assert "Unsubscribed" in gone["text"]
    db = open_db(db_path)
    assert store.subscriptions(db) == []


def test_subscribe_only_where_the_bot_is(app, fake_slack, db_path):
    fake_slack.script(
        "conversations.info",
        Reply(body={"ok": True, "channel": {"id": CHANNEL, "is_member": False}}),
    )
    said = slash(app, fake_slack, "subscribe all", 1)
    assert "I am not in this channel" in said["text"]
    fake_slack.script("conversations.info", Reply(body={"ok": False, "error": "missing_scope"}))
    said = slash(app, fake_slack, "subscribe all", 2)
    assert "I cannot see this channel (missing_scope)" in said["text"]
    assert store.subscriptions(open_db(db_path)) == []


def test_bad_filter_gets_usage_in_the_ack(app, fake_slack):
    said = slash(app, fake_slack, "subscribe all events:bogus", 1)
    assert "unknown event kind `bogus`" in json.dumps(said)
    assert "Usage: /kvmarm" in json.dumps(said)


def test_subscription_gets_one_card_per_series_threads_and_updates(app, fake_slack, db_path):
    assert "Subscribed" in slash(app, fake_slack, "subscribe all", 1)["text"]
    feb = month("2022-02")
    ingest(db_path, feb[:FEB_SPLIT])
    first = notify(db_path, fake_slack)
    assert first.exit_code == 0, first.output
    cards = [c for c in posted(fake_slack) if not c.params.get("thread_ts")]
    assert len(cards) >= 10, first.output
    titles = [mrkdwn(c).split("\n")[0] for c in cards]
    assert len(set(titles)) >= len(titles) - 3  # stable backports share a title, not a card

    ingest(db_path, feb[FEB_SPLIT:])
    second = notify(db_path, fake_slack)
    assert second.exit_code == 0, second.output
    calls = posted(fake_slack)
    parents = {c.params["channel"] + ":" + _ts(c) for c in calls if not c.params.get("thread_ts")}
    replies = [c for c in calls if c.params.get("thread_ts")]
    assert len(replies) >= 10, second.output
    assert all(CHANNEL + ":" + r.params["thread_ts"] in parents for r in replies)
    updates = fake_slack.calls_to("chat.update")
    assert updates, second.output  # a card whose series moved on (new version, applied, …)
    assert all(CHANNEL + ":" + u.params["ts"] in parents for u in updates)
    # review is not in the default kinds: no review reply
    assert not any(":mag:" in mrkdwn(r) for r in replies)
    for call in calls:
        text = mrkdwn(call)
        assert "<@" not in text and "<!" not in text
        assert all(
            m.startswith("<https://lore.kernel.org/kvmarm/") for m in re.findall(r"<[^ ]*", text)
        )
        assert call.params["unfurl_links"] is False
        meta = call.params["metadata"]
        meta = json.loads(meta) if isinstance(meta, str) else meta
        assert meta["event_type"] == "kvmarm_event"

    count = len(fake_slack.calls_to("chat.postMessage"))
    db = open_db(db_path)
    assert store.settled_events(db) == store.last_event_id(db)  # nothing is read again
    store.set_settled_events(db, 0)  # even when everything is read again:
    third = notify(db_path, fake_slack)  # a restart: nothing twice
    assert third.exit_code == 0 and "0 messages sent" in third.stdout
    assert len(fake_slack.calls_to("chat.postMessage")) == count
    db = open_db(db_path)
    states = store.delivery_counts(db)
    assert states.get("pending", 0) == 0 and states["sent"] >= len(replies)


def _ts(call) -> str:
    return (call.answer or {}).get("ts") or ""


def test_interrupted_delivery_is_looked_up_before_resending(app, fake_slack, db_path):
    slash(app, fake_slack, "subscribe all", 1)
    ingest(db_path, month("2022-02"))
    assert notify(db_path, fake_slack).exit_code == 0
    db = open_db(db_path)
    sent = [d for d in _deliveries(db) if d.state == "sent"]
    threaded = [d for d in sent if _in_thread(fake_slack, d.ts)]
    assert len(threaded) >= 3
    found, unknowable, absent = threaded[:3]
    store.set_settled_events(db, 0)  # as if the process died during the Slack calls:
    for d in (found, unknowable, absent):  # the run never settled, these stayed pending
        store.save_delivery(db, store.Delivery(d.event_id, d.target, "pending", None,
                                               d.target, 0, d.at))  # fmt: skip
    before = len(fake_slack.calls_to("chat.postMessage"))
    message = {"ts": found.ts, "metadata": {"event_type": "kvmarm_event",
               "event_payload": {"event": found.event_id, "part": "reply"}}}  # fmt: skip
    fake_slack.script(
        "conversations.replies",
        Reply(body={"ok": True, "messages": [message]}),
        Reply(body={"ok": False, "error": "missing_scope"}),
        Reply(body={"ok": True, "messages": []}),
    )
    result = notify(db_path, fake_slack)
    assert result.exit_code == 0, result.output
    assert "1 messages sent" in result.stdout and "1 of unknown outcome" in result.stdout
    assert len(fake_slack.calls_to("chat.postMessage")) == before + 1
    states = {(d.event_id, d.target): d.state for d in _deliveries(db)}
    assert states[(found.event_id, found.target)] == "sent"
    assert states[(unknowable.event_id, unknowable.target)] == "unknown"
    assert states[(absent.event_id, absent.target)] == "sent"


def _deliveries(db) -> list[store.Delivery]:
    events = store.pending_events(db)
    return sorted(store.deliveries_of(db, [e.id for e in events]).values(),
                  key=lambda d: d.event_id)  # fmt: skip


def _in_thread(fake_slack, ts: str | None) -> bool:
    return any(c.params.get("thread_ts") and _ts(c) == ts for c in fake_slack.calls)


def test_refused_deliveries_fail_and_nothing_goes_to_a_channel_the_bot_left(
    app, fake_slack, db_path
):
    slash(app, fake_slack, "subscribe all", 1)
    ingest(db_path, month("2022-02"))
    fake_slack.script(
        "conversations.info",
        Reply(body={"ok": True, "channel": {"id": CHANNEL, "is_member": False}}),
    )
    result = notify(db_path, fake_slack)
    assert result.exit_code == 0 and f"not a member of {CHANNEL}" in result.stdout
    assert posted(fake_slack) == []
    assert store.delivery_counts(open_db(db_path)).get("skipped", 0) > 10


def test_notify_with_nothing_pending_exits_0(fake_slack, db_path):
    result = notify(db_path, fake_slack)
    assert result.exit_code == 0 and "0 events to deliver" in result.stdout
    assert fake_slack.calls_to("chat.postMessage") == []


def test_mention_in_a_thread_is_answered_there_for_everyone(app, fake_slack):
    body = mention_body("<@U0BOT0001> who reviewed vgic pending state", thread_ts="1.2")
    assert dispatch(app, body).status == 200
    [call] = wait_for(fake_slack, "chat.postMessage")
    assert call.params["channel"] == CHANNEL and call.params["thread_ts"] == "1.2"
    assert "Reviewed-by" in json.dumps(call.params)
    assert "kvmarm_share" not in json.dumps(call.params)  # already public
    time.sleep(0.2)
    assert fake_slack.calls_to("chat.postEphemeral") == []


# ---- lore link unfurls ---------------------------------------------------------------------

REPLY_URL = "https://lore.kernel.org/kvmarm/20220105145855.ca7vxeu3ubytdkna@gator/"
PATCH_URL = "https://patch.msgid.link/20220103180507.2190429-1-maz@kernel.org"


def link_shared_body(*urls: str, channel: str = CHANNEL, ts: str = "1700000001.000100") -> str:
    event = {
        "type": "link_shared",
        "channel": channel,
        "user": "U0ASKER001",
        "message_ts": ts,
        "unfurl_id": "C123456.123456789.987501.1b90fa1278528ce6",
        "source": "conversations_history",
        "links": [{"domain": u.split("/")[2], "url": u} for u in urls],
        "event_ts": ts,
    }
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": "T0000001",
            "api_app_id": "A0KVMARM",
            "event": event,
            "type": "event_callback",
            "event_id": f"EvLink{ts.replace('.', '')}{channel}",  # each share its own event
            "event_time": 1700000001,
        }
    )


def test_lore_links_unfurl_into_the_series_card_once_per_half_hour(app, fake_slack):
    body = link_shared_body(REPLY_URL, PATCH_URL, "https://lore.kernel.org/kvmarm/nope@x/")
    assert dispatch(app, body).status == 200
    [call] = wait_for(fake_slack, "chat.unfurl")
    assert call.params["channel"] == CHANNEL and call.params["ts"] == "1700000001.000100"
    unfurls = call.params["unfurls"]
    unfurls = json.loads(unfurls) if isinstance(unfurls, str) else unfurls
    assert sorted(unfurls) == sorted([REPLY_URL, PATCH_URL])  # mail we do not have: nothing
    reply = unfurls[REPLY_URL]["blocks"][0]["text"]["text"]
    assert "hw/arm/virt: KVM: Enable PAuth when supported by the host" in reply
    assert "v3 (2 versions on the list)" in reply and "by Marc Zyngier" in reply
    assert "R-b 1/1" in reply and "last activity 2022-01-11" in reply
    assert "reply by Andrew Jones, 2022-01-05" in reply
    assert "reply by" not in unfurls[PATCH_URL]["blocks"][0]["text"]["text"]
    # the same links again in the same channel within 30 minutes: no second unfurl
    assert dispatch(app, link_shared_body(REPLY_URL, ts="1700000002.000100")).status == 200
    time.sleep(0.5)
    assert len(fake_slack.calls_to("chat.unfurl")) == 1
    # another channel does get it
    dispatch(app, link_shared_body(REPLY_URL, channel="C0OTHER001", ts="1700000003.000100"))
    calls = wait_for(fake_slack, "chat.unfurl", 2)
    assert calls[1].params["channel"] == "C0OTHER001"


# ---- who you are, mine, personal alerts ----------------------------------------------------


def test_iam_mine_and_forget(app, fake_slack, db_path):
    assert "I do not know your list address" in slash(app, fake_slack, "mine", 1)["text"]
    linked = slash(app, fake_slack, "iam <mailto:MAZ@kernel.org|MAZ@kernel.org>", 2)
    assert re.search(
        r"Linked you to maz@kernel.org \(\d+ mails from it on the list\)", linked["text"]
    )
    assert slash(app, fake_slack, "iam", 3)["text"] == "You are maz@kernel.org on the list."
    mine = slash(app, fake_slack, "mine", 4)
    assert mine["text"].startswith("*Your series* (maz@kernel.org)")
    said = json.dumps(mine["blocks"])
    assert "KVM: arm64: ARMv8.3/8.4 Nested Virtualization support" in said
    assert "v1: " in said and "R-b " in said and "last activity 2022-01-" in said
    series = [b for b in mine["blocks"][1:]]
    assert 1 <= len(series) <= 10
    forgot = slash(app, fake_slack, "iam --forget", 5)
    assert forgot["text"].startswith("Forgot 1 address")
    assert store.addresses_of(open_db(db_path), "U0ASKER001") == []


def test_iam_links_the_slack_profile_address_when_it_is_on_the_list(app, fake_slack, db_path):
    fake_slack.script("users.info", Reply(body={"ok": False, "error": "missing_scope"}))
    assert "I do not know your list address" in slash(app, fake_slack, "iam", 1)["text"]
    profile = {"ok": True, "user": {"id": "U0ASKER001", "profile": {"email": "drjones@redhat.com"}}}
    fake_slack.script("users.info", Reply(body=profile))
    said = slash(app, fake_slack, "iam", 2)["text"]
    assert said == "You are drjones@redhat.com (from your Slack profile) on the list."
    assert store.addresses_of(open_db(db_path), "U0ASKER001") == [("drjones@redhat.com", "profile")]


def test_personal_alerts_are_sent_once_and_never_about_your_own_mail(app, fake_slack, db_path):
    assert "I do not know your list address" in slash(app, fake_slack, "notify on", 1)["text"]
    slash(app, fake_slack, "iam maz@kernel.org", 2)
    assert "Personal alerts are on" in slash(app, fake_slack, "notify on", 3)["text"]
    assert slash(app, fake_slack, "notify", 4)["text"].startswith("Personal alerts are on.")
    ingest(db_path, month("2022-02"))
    result = notify(db_path, fake_slack)
    assert result.exit_code == 0, result.output
    dms = posted(fake_slack, "U0ASKER001")
    assert len(dms) >= 10, result.output
    texts = [mrkdwn(c) for c in dms]
    assert any(":mag: Reviewed-by from Alexandru Elisei on v6" in t for t in texts)
    assert any("KVM: arm64: ARMv8.3/8.4 Nested Virtualization support" in t for t in texts)
    assert not any("by Marc Zyngier" in t.split("\n")[1] for t in texts)  # not his own mail
    assert all("<@" not in t and "<!" not in t for t in texts)
    again = notify(db_path, fake_slack)
    assert again.exit_code == 0 and len(posted(fake_slack, "U0ASKER001")) == len(dms)
    mine = json.dumps(slash(app, fake_slack, "mine", 5)["blocks"])
    assert "waits on you: questions not answered yet" in mine
    assert "|Alexandru Elisei 2022-02-25>" in mine  # a question on v6 of nested virt, unanswered
    assert "Personal alerts are off" in slash(app, fake_slack, "notify off", 6)["text"]


def test_a_reviewer_hears_about_the_next_version(app, fake_slack, db_path):
    slash(app, fake_slack, "iam skhan@linuxfoundation.org", 1)
    slash(app, fake_slack, "notify on", 2)
    ingest(db_path, month("2022-02"))
    assert notify(db_path, fake_slack).exit_code == 0
    texts = [mrkdwn(c) for c in posted(fake_slack, "U0ASKER001")]
    assert any(":new: new version: v3" in t and "Skip tests if we can" in t for t in texts), texts


def test_manifest_declares_the_live_features():
    from pathlib import Path

    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parents[1] / "manifest.yml").read_text())
    assert manifest["features"]["unfurl_domains"] == ["lore.kernel.org", "patch.msgid.link"]
    assert "link_shared" in manifest["settings"]["event_subscriptions"]["bot_events"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"links:read", "links:write", "channels:read", "users:read.email"} <= scopes


# ---- App Home --------------------------------------------------------------------------------


_HOME_OPENED = iter(range(1, 1_000_000))


def home_opened_body(user: str = "U0ASKER001") -> str:
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME0001", "tab": "home",
             "event_ts": "1700000005.000100"}  # fmt: skip
    return json.dumps({"token": "legacy-verification-token", "team_id": "T0000001",
                       "api_app_id": "A0KVMARM", "event": event, "type": "event_callback",
                       "event_id": f"EvHome{next(_HOME_OPENED)}",
                       "event_time": 1700000005})  # fmt: skip


def test_app_home_is_published_from_the_database(app, fake_slack):
    assert dispatch(app, home_opened_body()).status == 200
    [first] = wait_for(fake_slack, "views.publish")
    assert first.params["user_id"] == "U0ASKER001"
    assert "I do not know your list address" in json.dumps(first.params["view"])
    slash(app, fake_slack, "iam maz@kernel.org", 1)
    slash(app, fake_slack, "notify on", 2)
    slash(app, fake_slack, "subscribe path:arch/arm64/kvm/vgic/*", 3)
    dispatch(app, home_opened_body())
    second = wait_for(fake_slack, "views.publish", 2)[1]
    view = second.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    said = json.dumps(view)
    assert "Your series (maz@kernel.org)" in said
    assert "KVM: arm64: ARMv8.3/8.4 Nested Virtualization support" in said
    assert "Waiting on you" in said and "Personal alerts: *on*" in said
    assert f"<#{CHANNEL}>: `path:arch/arm64/kvm/vgic/*`" in said
    assert "<@" not in said and "<!" not in said


# ---- failures: Slack unreachable, two deliverers -------------------------------------------------


def test_slack_unreachable_is_one_line_and_nothing_is_lost(app, fake_slack, db_path):
    import socket

    slash(app, fake_slack, "subscribe all", 1)
    ingest(db_path, month("2022-02"))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/api/"
    env = {**CLEAN_ENV, "SLACK_BOT_TOKEN": "xoxb-t", "SLACK_API_URL": dead}
    result = CliRunner().invoke(main, ["--db", str(db_path), "notify"], env=env)
    assert result.exit_code == 1
    assert "Slack cannot be reached" in result.output and "Traceback" not in result.output
    assert store.delivery_counts(open_db(db_path)) == {}
    ok = notify(db_path, fake_slack)  # Slack is back: everything is delivered
    assert ok.exit_code == 0 and len(posted(fake_slack)) > 30


def test_one_deliverer_at_a_time(app, fake_slack, db_path):
    import os
    import socket
    from datetime import UTC, datetime

    slash(app, fake_slack, "subscribe all", 1)
    ingest(db_path, month("2022-02"))
    db = open_db(db_path)
    other = f"{socket.gethostname()}:{os.getppid()}"  # a live process
    assert store.claim_delivery_lock(db, other, datetime.now(UTC), lambda _h: True) is None
    busy = notify(db_path, fake_slack)
    assert busy.exit_code == 1 and f"being delivered by process {other}" in busy.output
    assert posted(fake_slack) == []
    store.release_delivery_lock(db, other)
    assert notify(db_path, fake_slack).exit_code == 0 and posted(fake_slack)


def test_when_slack_does_not_say_posting_decides(app, fake_slack, db_path):
    """A workspace answering conversations.info without membership (or not knowing the
    method): subscribing works and chat.postMessage's own answer decides."""
    fake_slack.script("conversations.info", Reply(body={"ok": False, "error": "unknown_method"}))
    assert "Subscribed" in slash(app, fake_slack, "subscribe all", 1)["text"]
    ingest(db_path, month("2022-02"))
    fake_slack.script("conversations.info", Reply(body={"ok": True, "channel": {"id": CHANNEL}}))
    fake_slack.script("chat.postMessage", Reply(body={"ok": False, "error": "not_in_channel"}))
    first = notify(db_path, fake_slack)
    assert first.exit_code == 1 and "not_in_channel" in first.output  # refused: tried again
    second = notify(db_path, fake_slack)
    assert second.exit_code == 0 and len(posted(fake_slack)) > 30


def test_subscribing_before_any_mail_gets_the_first_month(fake_slack, tmp_path):
    """A fresh database: subscribe first, then ingest — the first recording is no baseline
    (bounded by the 30-day horizon), so the channel gets the month's cards."""
    path = tmp_path / "fresh.db"
    open_db(path).close()
    config = app_config(fake_slack, path)
    app = create_app(config, client=make_web_client(config),
                     db_factory=per_thread(lambda: open_db(path)),
                     token_verification_enabled=False)  # fmt: skip
    assert "Subscribed" in slash(app, fake_slack, f"subscribe {VGIC}", 1)["text"]
    ingest(path, month("2022-02"))
    result = notify(path, fake_slack)
    assert result.exit_code == 0, result.output
    cards = [c for c in posted(fake_slack) if not c.params.get("thread_ts")]
    assert len(cards) == 6, [mrkdwn(c).split("\n")[0] for c in cards]
    assert any("vgic: Read HW interrupt pending state from the HW" in mrkdwn(c) for c in cards)


@pytest.mark.slow
def test_killed_during_a_slack_call_then_rerun_sends_nothing_twice(fake_slack, db_path, tmp_path):
    """A real crash: `kvmarm notify` is SIGKILLed while Slack is answering a thread reply.
    Slack did post it; the rerun finds it by its metadata and does not send it again."""
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    db = open_db(db_path)
    store.add_subscription(db, CHANNEL, "all", "U0ASKER001", datetime.now(UTC))
    db.close()
    ingest(db_path, month("2022-02"))
    fake_slack.script("chat.postMessage", *[Reply() for _ in range(5)], Reply(delay=30))
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-t", "SLACK_API_URL": fake_slack.api_url,
           "KVMARM_CONFIG": "/dev/null"}  # fmt: skip
    kvmarm = Path(sys.executable).with_name("kvmarm")
    proc = subprocess.Popen([str(kvmarm), "--db", str(db_path), "notify"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(fake_slack.calls_to("chat.postMessage")) < 6:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "notify did not reach the sixth message"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    killed = fake_slack.calls_to("chat.postMessage")[5]
    meta = killed.params["metadata"]
    meta = json.loads(meta) if isinstance(meta, str) else meta
    arrived = {"ok": True, "messages": [{"ts": "1799999999.000100", "metadata": meta}]}
    fake_slack.script("conversations.history", Reply(body=arrived))
    fake_slack.script("conversations.replies", Reply(body=arrived))
    rerun = notify(db_path, fake_slack)
    assert rerun.exit_code == 0, rerun.output
    same = [
        c
        for c in fake_slack.calls_to("chat.postMessage")
        if c.params["metadata"] == killed.params["metadata"]
    ]
    assert len(same) == 1  # the message Slack got before the kill is not sent again
    lookups = fake_slack.calls_to("conversations.history") + fake_slack.calls_to(
        "conversations.replies"
    )
    assert len(lookups) == 1 and lookups[0].params["include_all_metadata"] in (True, "true", "1")
    db = open_db(db_path)
    states = store.delivery_counts(db)
    assert states.get("pending", 0) == 0 and states.get("unknown", 0) == 0, states
    assert store.settled_events(db) == store.last_event_id(db)


def test_serve_delivers_after_each_pull(fake_slack, db_path):
    """serve's sync loop: a pull that brings February, then the subscribed channel's cards."""
    from datetime import UTC, datetime

    from bot.slack.serve import sync_and_notify

    db = open_db(db_path)
    store.add_subscription(db, CHANNEL, VGIC, "U0ASKER001", datetime.now(UTC))
    config = app_config(fake_slack, db_path)
    pulled: list[int] = []

    def pull(database, cfg) -> None:  # stands in for the lore sync (tests/test_sync.py)
        pulled.append(1)
        ingest(db_path, month("2022-02"))

    sync_and_notify(db, config, make_web_client(config), pull=pull)
    cards = [c for c in posted(fake_slack) if not c.params.get("thread_ts")]
    assert pulled == [1] and len(cards) == 6
    sync_and_notify(db, config, make_web_client(config), pull=lambda database, cfg: None)
    assert len([c for c in posted(fake_slack) if not c.params.get("thread_ts")]) == 6


# ---- the review queue ----------------------------------------------------------------------------


@pytest.fixture
def app_in_march(fake_slack, db_path):
    from datetime import UTC, datetime

    config = app_config(fake_slack, db_path)
    return create_app(
        config,
        client=make_web_client(config),
        db_factory=per_thread(lambda: open_db(db_path)),
        now=lambda: datetime(2022, 3, 1, tzinfo=UTC),
        token_verification_enabled=False,
    )


def test_waiting_lists_the_review_queue_and_what_waits_on_a_person(
    app_in_march, fake_slack, db_path
):
    app = app_in_march
    ingest(db_path, month("2022-02"))
    queue = slash(app, fake_slack, "waiting all", 1)
    assert queue["text"].startswith("*Review queue*: 7 versions wait for review")
    entries = [b["text"]["text"] for b in queue["blocks"][1:]]
    assert len(entries) == 7
    found = [re.search(r"\n(\d+) days waiting", e) for e in entries]
    days = [int(m.group(1)) for m in found if m is not None]
    assert len(days) == len(entries), entries
    assert days == sorted(days, reverse=True) and days[0] == 41
    assert "KVM: arm64: mixed-width check should be skipped for uninitialized vCPUs" in entries[0]
    assert "1/2 patches reviewed (not yet: 1)" in entries[0]
    maz = slash(app, fake_slack, "waiting maz@kernel.org", 2)
    said = json.dumps(maz["blocks"])
    assert maz["text"].startswith("*Waiting on maz@kernel.org*: 3 versions")
    assert "arm64: implement read-only page tables" in said and "To/Cc" in said
    drew = slash(app, fake_slack, "waiting Andrew Jones", 3)
    assert drew["text"].startswith("*Waiting on Andrew Jones*: 1 versions")
    assert "reviewed an earlier version" in json.dumps(drew["blocks"])
    slash(app, fake_slack, "iam will@kernel.org", 4)
    mine = slash(app, fake_slack, "waiting", 5)
    assert mine["text"].startswith("*Waiting on will@kernel.org*: 6 versions")
    nobody = slash(app, fake_slack, "waiting Nobody Atall", 6)
    assert "Nobody called Nobody Atall gave a review" in nobody["text"]
    dispatch(app, home_opened_body())  # App Home shows the same under "Waiting on you"
    [home] = wait_for(fake_slack, "views.publish")
    view = json.dumps(home.params["view"])
    assert "Waiting on you" in view and "arm64: implement read-only page tables" in view


def test_ask_waiting_in_a_terminal(db_path):
    result = CliRunner().invoke(
        main, ["--db", str(db_path), "ask", "waiting", "all"], env=CLEAN_ENV
    )
    assert result.exit_code == 0, result.output
    # as of today the January 2022 mail is long idle: nothing waits
    assert result.output.startswith("Review queue: 0 versions")


# ---- faults of one call: the same Slack-call layer and lookup as the digest's posting -----------


def _meta(message_or_call) -> str:
    meta = (
        message_or_call["metadata"]
        if isinstance(message_or_call, dict)
        else (message_or_call.params["metadata"])
    )
    return json.dumps(json.loads(meta) if isinstance(meta, str) else meta, sort_keys=True)


def test_writes_answered_500_after_slack_took_them_are_looked_up_not_resent(
    app, fake_slack, db_path
):
    """Slack posts the first six messages (cards and thread replies) but answers 500: the run
    says so, and the next runs find them by their metadata instead of posting them again."""
    slash(app, fake_slack, f"subscribe {VGIC}", 1)
    ingest(db_path, month("2022-02"))
    fake_slack.script("chat.postMessage", *[Reply(status=500, accept=True) for _ in range(6)])
    first = notify(db_path, fake_slack)
    assert first.exit_code == 1 and "internal_error (HTTP 500)" in first.output, first.output
    assert notify(db_path, fake_slack).exit_code == 0
    assert notify(db_path, fake_slack).exit_code == 0
    metas = [_meta(m) for m in fake_slack.posted if m["channel"] == CHANNEL]
    assert len(metas) > 6
    assert len(metas) == len(set(metas))  # nothing Slack took is posted again
    threads = [m for m in fake_slack.posted if m.get("thread_ts")]
    assert threads and all(
        any(p["ts"] == m["thread_ts"] for p in fake_slack.posted) for m in threads
    )
    states = store.delivery_counts(open_db(db_path))
    assert states.get("pending", 0) == 0 and states.get("unknown", 0) == 0, states


def test_the_lookup_of_an_interrupted_reply_reads_every_page(app, fake_slack, db_path):
    slash(app, fake_slack, "subscribe all", 1)
    ingest(db_path, month("2022-02"))
    assert notify(db_path, fake_slack).exit_code == 0
    db = open_db(db_path)
    [d] = [d for d in _deliveries(db) if d.state == "sent" and _in_thread(fake_slack, d.ts)][:1]
    store.set_settled_events(db, 0)
    store.save_delivery(db, store.Delivery(d.event_id, d.target, "pending", None,
                                           d.target, 0, d.at))  # fmt: skip
    before = len(fake_slack.calls_to("chat.postMessage"))
    other = {"ts": "1.1", "metadata": {"event_type": "kvmarm_event",
             "event_payload": {"event": -1, "part": "reply"}}}  # fmt: skip
    mine = {"ts": d.ts, "metadata": {"event_type": "kvmarm_event",
            "event_payload": {"event": d.event_id, "part": "reply"}}}  # fmt: skip
    fake_slack.script(
        "conversations.replies",
        Reply(
            body={"ok": True, "messages": [other], "response_metadata": {"next_cursor": "page2"}}
        ),
        Reply(body={"ok": True, "messages": [mine]}),
    )
    result = notify(db_path, fake_slack)
    assert result.exit_code == 0 and "0 messages sent" in result.stdout, result.output
    assert len(fake_slack.calls_to("chat.postMessage")) == before
    pages = fake_slack.calls_to("conversations.replies")
    assert [p.params.get("cursor") for p in pages[-2:]] == [None, "page2"]
    states = {(x.event_id, x.target): x.state for x in _deliveries(db)}
    assert states[(d.event_id, d.target)] == "sent"


def test_a_rate_limited_delivery_fails_and_goes_out_next_run(app, fake_slack, db_path):
    slash(app, fake_slack, f"subscribe {VGIC}", 1)
    ingest(db_path, month("2022-02"))
    limited = Reply(status=429, body={"ok": False, "error": "ratelimited"},
                    headers={"Retry-After": "0"})  # fmt: skip
    fake_slack.script("chat.postMessage", *[limited for _ in range(5)])
    first = notify(db_path, fake_slack)
    assert first.exit_code == 1 and "rate limited (HTTP 429)" in first.output, first.output
    assert store.delivery_counts(open_db(db_path)).get("failed", 0) >= 1
    assert notify(db_path, fake_slack).exit_code == 0
    metas = [_meta(m) for m in fake_slack.posted if m["channel"] == CHANNEL]
    assert len(metas) == len(set(metas)) and len(metas) >= 6
    states = store.delivery_counts(open_db(db_path))
    assert states.get("failed", 0) == 0 and states.get("pending", 0) == 0, states
