"""Posting to the fake Slack Web API with the real slack_sdk: parent + thread replies, once
per (week, channel) — across re-runs, failures half-way and a killed process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.config import load_config
from bot.digest import period_for_week
from bot.slack.client import make_web_client
from bot.slack.post import EVENT_TYPE, PostError, post_digest
from storage import digests as store
from tests.digest_support import NOW, WEEK, fixture_db
from tests.fake_slack import FakeSlack, Reply
from tests.test_digest_slack import assert_within_limits, raw_mentions

CHANNEL = "C0DIGEST1"


@pytest.fixture
def slack():
    with FakeSlack() as server:
        yield server


@pytest.fixture
def db(tmp_path):
    database = fixture_db(tmp_path)
    yield database
    database.close()


def _client(server: FakeSlack):
    config = load_config({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": server.api_url})
    return make_web_client(config)


def _post(db, server, **kwargs):
    kwargs.setdefault("allowed_channels", [CHANNEL])
    kwargs.setdefault("retry_delays", (0.0, 0.0, 0.0))
    client = kwargs.pop("client", None) or _client(server)
    return post_digest(db, client, CHANNEL, period_for_week(WEEK), now=NOW, **kwargs)


def _posts(server: FakeSlack) -> list[dict]:
    return [c.params for c in server.calls_to("chat.postMessage")]


def _parents(server: FakeSlack) -> list[dict]:
    return [p for p in _posts(server) if not p.get("thread_ts")]


def _parts_in_thread(server: FakeSlack, parent_ts: str) -> list[int]:
    """The part numbers of the digest replies the thread shows (what a reader sees)."""
    return [
        m["metadata"]["event_payload"]["part"]
        for m in server.thread(parent_ts)
        if m.get("metadata")
    ]


def _files_in_thread(server: FakeSlack, parent_ts: str) -> list[str]:
    return [f["id"] for m in server.thread(parent_ts) for f in m.get("files") or []]


def test_parent_then_replies_in_its_thread(db, slack):
    result = _post(db, slack)
    posts = _posts(slack)
    parent, *replies = posts
    assert "thread_ts" not in parent
    assert result.parent_ts and all(r["thread_ts"] == result.parent_ts for r in replies)
    assert len(replies) == len(result.replies) == 3  # applied, new series, discussion
    for p in posts:
        assert p["channel"] == CHANNEL
        assert p["unfurl_links"] is False and p["unfurl_media"] is False
        assert "link_names" not in p
        assert p["metadata"]["event_type"] == EVENT_TYPE
    assert_within_limits([{"text": p["text"], "blocks": p["blocks"]} for p in posts])
    assert raw_mentions([p["blocks"] for p in posts] + [p["text"] for p in posts]) == []
    # the chart went into the thread
    [complete] = slack.calls_to("files.completeUploadExternal")
    assert complete.params["thread_ts"] == result.parent_ts
    assert complete.params["channel_id"] == CHANNEL
    assert len(slack.calls_to("upload")) == 1
    assert result.chart_file and not result.already_posted and not result.resumed


def test_second_run_posts_nothing(db, slack):
    first = _post(db, slack)
    calls = len(slack.calls)
    second = _post(db, slack)
    assert second.already_posted and second.parent_ts == first.parent_ts
    assert len(slack.calls) == calls


def test_force_posts_a_new_parent(db, slack):
    first = _post(db, slack)
    again = _post(db, slack, force=True)
    assert again.run == first.run + 1 and again.parent_ts != first.parent_ts
    assert len(_parents(slack)) == 2


def test_rate_limit_is_honoured_then_posted(db, slack):
    slack.script("chat.postMessage", Reply(429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    result = _post(db, slack, chart=False)
    assert time.monotonic() - started >= 1.0
    assert len(_parents(slack)) == 2  # the refused attempt and the accepted one
    assert result.parent_ts and len(result.replies) == 3


def test_failure_after_the_parent_then_rerun_continues_the_thread(db, slack):
    slack.script("chat.postMessage", Reply(), *[Reply(400, body={"ok": False, "error": "x"})])
    with pytest.raises(PostError, match="re-run to continue"):
        _post(db, slack, chart=False)
    [parent] = _parents(slack)
    result = _post(db, slack, chart=False)
    assert result.resumed
    assert len(_parents(slack)) == 1
    parent_ts = slack.posted[0]["ts"]
    assert result.parent_ts == parent_ts
    assert all(p["thread_ts"] == parent_ts for p in _posts(slack)[1:])
    assert parent["metadata"]["event_payload"]["part"] == 0


def test_server_errors_leave_the_reply_pending_and_the_rerun_looks_before_posting(db, slack):
    slack.script("chat.postMessage", Reply(), *[Reply(500)] * 4)  # 4 tries, looked up between
    with pytest.raises(PostError, match="after 4 tries"):
        _post(db, slack, chart=False)
    assert len(slack.calls_to("chat.postMessage")) == 5
    assert len(slack.calls_to("conversations.replies")) == 3
    run = store.latest_post_run(db, WEEK, CHANNEL)
    assert run is not None
    assert store.post_parts(db, run)[1].state == "pending"
    result = _post(db, slack, chart=False)
    assert len(slack.calls_to("conversations.replies")) == 4
    assert result.parent_ts == slack.posted[0]["ts"] and len(_parents(slack)) == 1
    assert _parts_in_thread(slack, result.parent_ts) == [1, 2, 3]


def test_pending_parent_is_found_in_the_channel_not_reposted(db, slack):
    run = store.start_post_run(db, WEEK, CHANNEL, NOW)
    store.save_post_part(db, run, store.PostPart(0, "parent", "pending", None), NOW)
    # Slack got it before the crash:
    payload = {"period": WEEK, "run": run.run, "part": 0}
    slack.posted.append(
        {
            "ts": "1799999999.000100",
            "channel": CHANNEL,
            "metadata": {"event_type": EVENT_TYPE, "event_payload": payload},
        }
    )
    result = _post(db, slack, chart=False)
    assert result.parent_ts == "1799999999.000100" and result.resumed
    assert _parents(slack) == []


def test_pending_parent_without_history_access_is_not_reposted(db, slack):
    run = store.start_post_run(db, WEEK, CHANNEL, NOW)
    store.save_post_part(db, run, store.PostPart(0, "parent", "pending", None), NOW)
    slack.script("conversations.history", Reply(body={"ok": False, "error": "missing_scope"}))
    with pytest.raises(PostError, match=r"--thread <its ts>.*--resend-unknown"):
        _post(db, slack)
    assert _posts(slack) == []


def test_channel_not_allowed_is_refused(db, slack):
    with pytest.raises(PostError, match="may not receive digests"):
        _post(db, slack, allowed_channels=["C0OTHER"])
    assert slack.calls == []


def test_empty_week_is_refused(db, slack):
    with pytest.raises(PostError, match="nothing posted"):
        post_digest(db, _client(slack), CHANNEL, period_for_week("2023-W20"), now=NOW)
    assert slack.calls == []


def test_killed_after_the_parent_then_rerun_posts_no_second_parent(tmp_path, slack):
    """A real crash: `kvmarm post` is SIGKILLed while Slack is answering its first reply."""
    db_path = tmp_path / "digest.db"
    fixture_db(tmp_path).close()
    slack.script("chat.postMessage", Reply(), Reply(delay=30))
    env = {
        **os.environ,
        "KVMARM_DB": str(db_path),
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_API_URL": slack.api_url,
        "KVMARM_CHANNEL": CHANNEL,
        "KVMARM_CONFIG": str(tmp_path / "none.toml"),
    }
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    (tmp_path / "none.toml").write_text("")
    kvmarm = Path(sys.executable).with_name("kvmarm")
    proc = subprocess.Popen(
        [str(kvmarm), "post", "--week", WEEK, "--offline", "--no-chart"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 60
        while len(slack.calls_to("chat.postMessage")) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "kvmarm post did not reach the first reply"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    rerun = subprocess.run(
        [str(kvmarm), "post", "--week", WEEK, "--offline", "--no-chart"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "continued 2023-W10" in rerun.stdout
    parents = _parents(slack)
    assert len(parents) == 1
    parent_ts = slack.posted[0]["ts"]
    replies = _posts(slack)[1:]
    assert all(r["thread_ts"] == parent_ts for r in replies)
    # the reply that was in flight when the process died was found, not sent twice
    assert _parts_in_thread(slack, parent_ts) == [1, 2, 3]
    again = subprocess.run(
        [str(kvmarm), "post", "--week", WEEK, "--offline"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and "already posted" in again.stdout
    assert len(_posts(slack)) == 4
    assert json.loads(json.dumps(parents[0]["metadata"]))["event_payload"]["run"] == 1


def test_two_threads_post_the_week_once(db, slack):
    """The Slack app's scheduler and a button press at the same moment."""
    results, errors = [], []

    def post() -> None:
        try:
            results.append(_post(db, slack, chart=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_parents(slack)) == 1
    assert sorted(r.already_posted for r in results) == [False, True]


def test_a_run_held_by_a_live_process_is_not_taken_over(db, slack):
    import socket

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = f"{socket.gethostname()}:{sleeper.pid}"
        store.start_post_run(db, WEEK, CHANNEL, NOW, owner)
        with pytest.raises(PostError, match="right now"):
            _post(db, slack)
        assert slack.calls == []
    finally:
        sleeper.kill()
        sleeper.wait()
    result = _post(db, slack, chart=False)  # its owner is gone: continue its run
    assert result.resumed and result.run == 1 and len(_parents(slack)) == 1
