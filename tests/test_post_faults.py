"""Posting against a Slack that misbehaves on purpose (the loopback fake, the real slack_sdk):
5xx and 502, accept-then-500, lost connections, a slow or unreachable Slack, the chart
refused, missing scopes and channel membership.  Each (period, channel, part) must end up in
Slack exactly once, or be reported as open — never twice, never silently missing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.config import load_config
from bot.digest import period_for_week
from bot.slack.client import make_web_client
from bot.slack.post import PostError, post_digest
from storage import digests as store
from storage.digests import CHART_PART
from tests.digest_support import NOW, WEEK, fixture_db
from tests.fake_slack import FakeSlack, Reply

CHANNEL = "C0DIGEST1"
ROOT = Path(__file__).resolve().parents[1]
MANIFEST_SCOPES = frozenset(
    yaml.safe_load((ROOT / "manifest.yml").read_text())["oauth_config"]["scopes"]["bot"]
)
WITHOUT_HISTORY = MANIFEST_SCOPES - {"channels:history", "groups:history"}
REPLIES = [1, 2, 3]  # the fixture week renders a parent and three replies (one per bucket)


@pytest.fixture
def db(tmp_path):
    database = fixture_db(tmp_path)
    yield database
    database.close()


@pytest.fixture
def slack():
    with FakeSlack(scopes=MANIFEST_SCOPES, members=()) as server:
        yield server


def client_for(server: FakeSlack | str, timeout: int = 30):
    url = server if isinstance(server, str) else server.api_url
    return make_web_client(
        load_config({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": url}), timeout=timeout
    )


def post(db, server, **kwargs):
    client = kwargs.pop("client", None) or client_for(server)
    return post_digest(
        db,
        client,
        CHANNEL,
        period_for_week(WEEK),
        now=NOW,
        allowed_channels=[CHANNEL],
        retry_delays=(0.0, 0.0, 0.0),
        **kwargs,
    )


def parents(server: FakeSlack) -> list[dict]:
    return server.parents(CHANNEL)


def thread_parts(server: FakeSlack, parent_ts: str) -> list[int]:
    """The digest parts a reader sees in the thread, in order."""
    return [
        m["metadata"]["event_payload"]["part"]
        for m in server.thread(parent_ts)
        if m.get("metadata")
    ]


def thread_files(server: FakeSlack, parent_ts: str) -> list[str]:
    return [f["id"] for m in server.thread(parent_ts) for f in m.get("files") or []]


def assert_posted_once(server: FakeSlack, *, chart: bool = True, in_order: bool = True) -> str:
    """Exactly one parent, each reply once in its thread, the chart once (when wanted)."""
    [parent] = parents(server)
    shown = thread_parts(server, parent["ts"])
    assert (shown if in_order else sorted(shown)) == REPLIES
    assert len(thread_files(server, parent["ts"])) == (1 if chart else 0)
    return parent["ts"]


def run_state(db) -> str:
    run = store.latest_post_run(db, WEEK, CHANNEL)
    assert run is not None
    return run.state


# ---- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_retried_after_a_lookup(db, slack, status):
    slack.script("chat.postMessage", Reply(), Reply(status))  # the first reply fails once
    result = post(db, slack)
    assert result.complete and run_state(db) == "done"
    assert assert_posted_once(slack) == result.parent_ts
    assert len(slack.calls_to("chat.postMessage")) == 5  # 4 parts + 1 retry
    assert len(slack.calls_to("conversations.replies")) == 1  # looked before re-sending


def test_accept_then_500_on_the_parent_posts_one_parent(db, slack):
    slack.script("chat.postMessage", Reply(500, accept=True))
    result = post(db, slack)
    assert len(slack.calls_to("chat.postMessage")) == 4  # the parent was not sent again
    assert len(slack.calls_to("conversations.history")) == 1
    assert assert_posted_once(slack) == result.parent_ts and result.complete


def test_accept_then_502_on_a_reply_posts_it_once(db, slack):
    slack.script("chat.postMessage", Reply(), Reply(), Reply(502, accept=True))
    result = post(db, slack)
    assert len(slack.calls_to("chat.postMessage")) == 4
    assert assert_posted_once(slack) == result.parent_ts


def test_a_history_without_metadata_is_matched_by_text(db):
    with FakeSlack(scopes=MANIFEST_SCOPES, members=(), drop_metadata=True) as slack:
        slack.script("chat.postMessage", Reply(500, accept=True), Reply(502, accept=True))
        result = post(db, slack)
        assert result.complete and len(slack.calls_to("chat.postMessage")) == 4
        [parent] = parents(slack)
        assert len(slack.thread(parent["ts"])) == 4  # 3 replies + the chart


def test_a_connection_lost_after_the_post_does_not_post_twice(db, slack):
    slack.script("chat.postMessage", Reply(drop=True, accept=True))
    result = post(db, slack)
    assert len(slack.calls_to("chat.postMessage")) == 4
    assert assert_posted_once(slack) == result.parent_ts


def test_rate_limit_is_waited_for_by_the_client(db, slack):
    slack.script("chat.postMessage", Reply(429, headers={"Retry-After": "0"}))
    result = post(db, slack)
    assert len(slack.calls_to("chat.postMessage")) == 5
    assert assert_posted_once(slack) == result.parent_ts


def test_a_slow_slack_times_out_then_the_post_is_found(db, slack):
    slack.script("chat.postMessage", Reply(delay=3, accept=True))
    result = post(db, slack, client=client_for(slack, timeout=1))
    assert len(slack.calls_to("chat.postMessage")) == 4
    assert assert_posted_once(slack) == result.parent_ts


def test_persistent_500s_stop_the_run_and_the_next_run_finishes_it(db, slack):
    slack.script("chat.postMessage", Reply(), Reply(), *[Reply(500)] * 4)
    with pytest.raises(PostError, match=r"reply 2 .* after 4 tries; run again later"):
        post(db, slack)
    assert run_state(db) != "done"
    result = post(db, slack)
    assert result.resumed and result.complete
    assert assert_posted_once(slack) == result.parent_ts


# ---- the chart --------------------------------------------------------------------------------


def test_four_chart_500s_leave_the_week_open_and_the_next_run_uploads_it(db, slack):
    slack.script("files.completeUploadExternal", *[Reply(500)] * 4)
    result = post(db, slack)
    assert not result.complete and result.missing == ("the chart",)
    assert any("the chart may be missing" in w for w in result.warnings)
    assert result.chart_file is None and run_state(db) != "done"
    assert len(slack.calls_to("files.completeUploadExternal")) == 4
    assert assert_posted_once(slack, chart=False) == result.parent_ts
    again = post(db, slack)  # the next run: only the chart, the same upload shared
    assert again.resumed and again.complete and again.chart_file
    assert len(slack.calls_to("files.getUploadURLExternal")) == 1
    assert run_state(db) == "done"
    assert assert_posted_once(slack) == result.parent_ts
    assert len(slack.calls_to("chat.postMessage")) == 4
    third = post(db, slack)
    assert third.already_posted and len(slack.calls_to("files.completeUploadExternal")) == 5


def test_an_expired_upload_is_uploaded_anew_once(db, slack):
    expired = Reply(body={"ok": False, "error": "file_not_found"})
    slack.script("files.completeUploadExternal", *[Reply(500)] * 4, expired)
    assert not post(db, slack).complete
    result = post(db, slack)
    assert result.complete and len(slack.calls_to("files.getUploadURLExternal")) == 2
    assert thread_files(slack, result.parent_ts) == [result.chart_file]


def test_four_500s_getting_the_upload_url_leave_the_chart_open(db, slack):
    slack.script("files.getUploadURLExternal", *[Reply(500)] * 4)  # the client retries this one
    result = post(db, slack)
    assert result.missing == ("the chart",) and run_state(db) != "done"
    assert len(slack.calls_to("files.getUploadURLExternal")) == 4
    assert post(db, slack).complete
    assert_posted_once(slack)


def test_accept_then_500_on_the_chart_shares_it_once(db, slack):
    slack.script("files.completeUploadExternal", Reply(500, accept=True))
    result = post(db, slack)
    assert result.complete and result.chart_file
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
    assert thread_files(slack, result.parent_ts) == [result.chart_file]


def test_a_chart_the_thread_does_not_show_is_found_by_files_info(db):
    with FakeSlack(scopes=MANIFEST_SCOPES, members=(), hide_files_in_threads=True) as slack:
        slack.script("files.completeUploadExternal", Reply(500, accept=True))
        result = post(db, slack)
        assert result.complete and len(slack.calls_to("files.completeUploadExternal")) == 1
        assert len(slack.calls_to("files.info")) == 1


def test_without_files_read_an_unseen_chart_is_shared_again_not_uploaded_again(db):
    """The thread hides it and files.info is refused: the same upload is completed again
    (one file), never a second upload."""
    scopes = MANIFEST_SCOPES - {"files:read"}
    with FakeSlack(scopes=scopes, members=(), hide_files_in_threads=True) as slack:
        slack.script("files.completeUploadExternal", Reply(500, accept=True))
        result = post(db, slack)
        assert result.complete
        assert len(slack.calls_to("files.getUploadURLExternal")) == 1
        completed = {c.params["files"] for c in slack.calls_to("files.completeUploadExternal")}
        assert len(completed) == 1


def test_no_chart_run_after_a_failed_chart_closes_the_week(db, slack):
    slack.script("files.completeUploadExternal", *[Reply(500)] * 4)
    assert not post(db, slack).complete
    assert post(db, slack, chart=False).complete  # the operator said: no chart
    assert run_state(db) == "done"


# ---- scopes and membership ------------------------------------------------------------------


def test_the_bot_joins_the_channel_before_posting(db, slack):
    assert slack.members == set()
    post(db, slack)
    first = slack.calls[0]
    assert first.method == "conversations.join" and first.params["channel"] == CHANNEL
    assert len(slack.calls_to("conversations.join")) == 1
    assert_posted_once(slack)


def test_without_channels_join_the_chart_is_refused_and_says_invite(db):
    with FakeSlack(scopes=MANIFEST_SCOPES - {"channels:join"}, members=()) as slack:
        result = post(db, slack)
        assert result.missing == ("the chart",)
        assert any("/invite @kvmarm" in w for w in result.warnings)
        assert_posted_once(slack, chart=False)


def test_a_private_channel_without_the_bot_says_invite(db):
    with FakeSlack(scopes=MANIFEST_SCOPES, private=[CHANNEL], members=()) as slack:
        with pytest.raises(PostError, match="/invite @kvmarm"):
            post(db, slack)
        assert slack.posted == [] and slack.members is not None
        slack.members.add(CHANNEL)  # someone invited the bot
        result = post(db, slack)
        assert result.complete
        assert_posted_once(slack)


def test_a_private_channel_is_looked_up_with_groups_history(db):
    with FakeSlack(scopes=MANIFEST_SCOPES, private=[CHANNEL], members=[CHANNEL]) as slack:
        slack.script("chat.postMessage", Reply(500, accept=True), Reply(), Reply(502, accept=True))
        result = post(db, slack)
        assert result.complete and len(slack.calls_to("chat.postMessage")) == 4
        assert assert_posted_once(slack) == result.parent_ts


def test_thread_must_be_a_message_ts(db, slack):
    with pytest.raises(PostError, match="--thread wants a message ts"):
        post(db, slack, thread_ts="https://example.slack.com/archives/C1/p1")
    assert slack.calls == []


def test_without_history_a_parent_of_unknown_fate_is_not_reposted(db):
    with FakeSlack(scopes=WITHOUT_HISTORY, members=()) as slack:
        slack.script("chat.postMessage", Reply(500, accept=True))
        with pytest.raises(PostError, match="lacks channels:history") as caught:
            post(db, slack)
        assert "--thread" in str(caught.value) and "--resend-unknown" in str(caught.value)
        assert len(parents(slack)) == 1 and len(slack.calls_to("chat.postMessage")) == 1
        with pytest.raises(PostError, match="--thread"):
            post(db, slack)  # a plain re-run does not guess either
        assert len(slack.calls_to("chat.postMessage")) == 1
        # a person looked: the parent is there; the replies follow in its thread
        result = post(db, slack, thread_ts=parents(slack)[0]["ts"])
        assert result.complete and result.resumed
        assert assert_posted_once(slack) == result.parent_ts


def test_without_history_a_reply_of_unknown_fate_is_reported_not_reposted(db):
    with FakeSlack(scopes=WITHOUT_HISTORY, members=()) as slack:
        slack.script("chat.postMessage", Reply(), Reply(), Reply(500, accept=True))
        result = post(db, slack)
        assert result.missing == ("reply 2",)
        assert any(
            "reply 2 may be missing" in w and "channels:history" in w for w in result.warnings
        )
        # the other replies and the chart were still posted; reply 2 once (it did arrive)
        assert assert_posted_once(slack) == result.parent_ts
        again = post(db, slack)  # still cannot check: still reported, still not re-sent
        assert again.missing == ("reply 2",) and len(slack.calls_to("chat.postMessage")) == 4
        slack.scopes = set(MANIFEST_SCOPES)  # the workspace granted the scope
        final = post(db, slack)
        assert final.complete and run_state(db) == "done"
        assert len(slack.calls_to("chat.postMessage")) == 4


def test_without_history_resend_unknown_sends_what_a_person_found_missing(db):
    with FakeSlack(scopes=WITHOUT_HISTORY, members=()) as slack:
        slack.script("chat.postMessage", Reply(500))  # the parent did not arrive after all
        with pytest.raises(PostError, match="--resend-unknown"):
            post(db, slack)
        assert parents(slack) == []
        slack.script("chat.postMessage", Reply(), Reply(500))  # nor did reply 1
        result = post(db, slack, resend_unknown=True)
        assert result.missing == ("reply 1",)
        assert any("--resend-unknown" in w for w in result.warnings)
        assert post(db, slack, resend_unknown=True).complete
        assert_posted_once(slack, in_order=False)  # reply 1 came after the others


# ---- Slack unreachable ------------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


def test_unreachable_slack_is_one_error_and_the_next_run_posts(db, slack):
    with pytest.raises(PostError) as caught:
        post(db, slack, client=client_for(closed_port_url()))
    assert "cannot be reached" in str(caught.value) and "\n" not in str(caught.value)
    result = post(db, slack)
    assert result.complete
    assert_posted_once(slack)


def test_chart_part_survives_a_change_in_the_number_of_replies(db, slack):
    """The chart is recorded apart from the replies, so a re-run that renders another number
    of replies cannot mistake it for one."""
    slack.script("files.completeUploadExternal", *[Reply(500)] * 4)
    result = post(db, slack)
    run = store.latest_post_run(db, WEEK, CHANNEL)
    assert run is not None
    parts = store.post_parts(db, run)
    assert parts[CHART_PART].kind == "chart" and parts[CHART_PART].state == "pending"
    assert sorted(p for p in parts if p != CHART_PART) == [0, *REPLIES]
    assert result.missing == ("the chart",)


# ---- the real command, killed with SIGKILL while a call is in flight ------------------------


@pytest.fixture
def cli(tmp_path):
    """Run `kvmarm post` as a subprocess against a fixture database."""
    fixture_db(tmp_path).close()
    (tmp_path / "none.toml").write_text("")
    kvmarm = Path(sys.executable).with_name("kvmarm")

    def run(server_url: str, *args: str, wait: bool = True):
        env = {
            **os.environ,
            "KVMARM_DB": str(tmp_path / "digest.db"),
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_API_URL": server_url,
            "KVMARM_CHANNEL": CHANNEL,
            "KVMARM_CONFIG": str(tmp_path / "none.toml"),
        }
        env.pop("OPENAI_API_KEY", None)
        env.pop("OPENAI_BASE_URL", None)
        argv = [str(kvmarm), "post", "--week", WEEK, "--offline", *args]
        if not wait:
            return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    return run


# which call to hold: (method, how many calls of it pass first)
CRASH_POINTS = {
    "parent": ("chat.postMessage", 0),
    "first reply": ("chat.postMessage", 1),
    "last reply": ("chat.postMessage", 3),
    "chart": ("files.completeUploadExternal", 0),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
@pytest.mark.slow
def test_killed_during_a_call_then_rerun_posts_everything_once(cli, slack, point):
    method, before = CRASH_POINTS[point]
    held = Reply(hold=True)  # Slack accepts the call; its answer never reaches the poster
    slack.script(method, *[Reply()] * before, held)
    proc = cli(slack.api_url, wait=False)
    try:
        assert held.arrived.wait(60), proc.communicate(timeout=5)
        proc.kill()  # SIGKILL while the call is in flight
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        held.release()
    assert proc.returncode == -signal.SIGKILL
    rerun = cli(slack.api_url)
    assert rerun.returncode == 0, rerun.stderr
    assert "continued 2023-W10" in rerun.stdout and "Traceback" not in rerun.stderr
    parent_ts = assert_posted_once(slack)
    assert f"parent {parent_ts}" in rerun.stdout
    assert len(slack.calls_to(method)) == (4 if method == "chat.postMessage" else 1)
    again = cli(slack.api_url)
    assert again.returncode == 0 and "already posted" in again.stdout
    assert_posted_once(slack)


@pytest.mark.slow
def test_killed_during_the_parent_without_history_scope_says_what_to_do(cli):
    with FakeSlack(scopes=WITHOUT_HISTORY, members=()) as slack:
        held = Reply(hold=True)
        slack.script("chat.postMessage", held)
        proc = cli(slack.api_url, wait=False)
        try:
            assert held.arrived.wait(60), proc.communicate(timeout=5)
            proc.kill()
            proc.wait(10)
        finally:
            held.release()
        rerun = cli(slack.api_url)
        assert rerun.returncode == 1
        assert len(rerun.stderr.strip().splitlines()) == 1, rerun.stderr
        assert "--thread" in rerun.stderr and "channels:history" in rerun.stderr
        [parent] = parents(slack)
        finish = cli(slack.api_url, "--thread", parent["ts"])
        assert finish.returncode == 0, finish.stderr
        assert assert_posted_once(slack) == parent["ts"]


@pytest.mark.slow
def test_cli_unreachable_slack_is_one_line_exit_1_then_resumable(cli, slack):
    down = cli(closed_port_url())
    assert down.returncode == 1
    assert len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert down.stderr.startswith("Error: ") and "cannot be reached" in down.stderr
    up = cli(slack.api_url)
    assert up.returncode == 0, up.stderr
    assert_posted_once(slack)


@pytest.mark.slow
def test_cli_chart_refused_exits_1_says_so_then_the_next_run_uploads_it(cli, slack):
    slack.script("files.completeUploadExternal", *[Reply(500)] * 4)
    first = cli(slack.api_url)
    assert first.returncode == 1
    assert "the chart may be missing" in first.stderr and "chart still open" in first.stderr
    assert "Traceback" not in first.stderr
    second = cli(slack.api_url)
    assert second.returncode == 0, second.stderr
    assert "continued" in second.stdout and "chart F" in second.stdout
    assert_posted_once(slack)


# ---- the Slack app's weekly job ---------------------------------------------------------------


@pytest.mark.slow
def test_weekly_job_retries_a_week_whose_chart_failed(tmp_path, slack, caplog):
    from datetime import timedelta

    from bot.digest.extractive import ExtractiveSummariser
    from bot.slack.digest import DigestGlue
    from bot.slack.schedule import parse_schedule, run_schedule
    from storage.db import open_db

    fixture_db(tmp_path).close()
    config = load_config(
        {
            "KVMARM_DB": str(tmp_path / "digest.db"),
            "KVMARM_CHANNEL": CHANNEL,
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_API_URL": slack.api_url,
        }
    )
    glue = DigestGlue(
        config,
        client_for(slack),
        ExtractiveSummariser(),
        lambda: open_db(tmp_path / "digest.db"),
        now=lambda: NOW,
    )
    slack.script("files.completeUploadExternal", *[Reply(500)] * 4)

    class Clock:
        now = NOW.replace(day=12)  # Sunday; the job runs Monday 2023-03-13 for 2023-W10

        def __call__(self):
            return self.now

        def sleep(self, seconds):
            self.now += timedelta(seconds=seconds)

    clock = Clock()
    run_schedule(
        parse_schedule("MON 09:00 UTC"),
        glue.weekly_job((CHANNEL,)),
        now=clock,
        sleep=clock.sleep,
        runs=1,
        retry_delay=timedelta(minutes=10),
        retries=2,
    )
    assert "not completely posted" in caplog.text  # the first try left the chart open
    assert len(slack.calls_to("files.completeUploadExternal")) == 5  # 4 refused, then shared
    assert_posted_once(slack)
