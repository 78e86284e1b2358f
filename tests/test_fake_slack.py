"""The fake Slack server answers the real slack_sdk client, and scripted failures are retried."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError

from bot.config import load_config
from bot.slack.client import SAFE_TO_REPEAT, api_method, make_web_client
from tests.fake_slack import Reply


def _client(fake_slack):
    return make_web_client(
        load_config({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": fake_slack.api_url})
    )


def test_post_message_is_recorded(fake_slack):
    response = _client(fake_slack).chat_postMessage(channel="C1", text="hello")
    assert response["ok"] and response["ts"]
    [call] = fake_slack.calls_to("chat.postMessage")
    assert call.params["channel"] == "C1"
    assert call.headers["Authorization"] == "Bearer xoxb-test"


def test_rate_limit_is_retried_after_retry_after(fake_slack):
    fake_slack.script("chat.postMessage", Reply(429, headers={"Retry-After": "1"}))
    response = _client(fake_slack).chat_postMessage(channel="C1", text="hello")
    assert response["ok"]
    calls = fake_slack.calls_to("chat.postMessage")
    assert len(calls) == 2


def test_a_write_is_never_repeated_by_the_client_itself(fake_slack):
    """Slack posted the message, then answered 500: the SDK must not post it again."""
    fake_slack.script("chat.postMessage", Reply(500, accept=True))
    with pytest.raises(SlackApiError):
        _client(fake_slack).chat_postMessage(channel="C1", text="hello")
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(fake_slack.posted) == 1  # it is there, once; bot.slack.post looks it up


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_read_is_retried_on_server_errors(fake_slack, status):
    fake_slack.script("conversations.history", Reply(status), Reply(status))
    response = _client(fake_slack).conversations_history(channel="C1")
    assert response["ok"]
    assert len(fake_slack.calls_to("conversations.history")) == 3


def test_persistent_server_error_on_a_read_reaches_the_caller(fake_slack):
    fake_slack.script("conversations.history", *[Reply(500)] * 5)
    with pytest.raises(SlackApiError):
        _client(fake_slack).conversations_history(channel="C1")
    assert len(fake_slack.calls_to("conversations.history")) == 4


def test_api_method_of_a_url():
    assert api_method("https://slack.com/api/chat.postMessage") == "chat.postMessage"
    assert api_method("http://127.0.0.1:5/api/conversations.join?x=1") == "conversations.join"
    assert "chat.postMessage" not in SAFE_TO_REPEAT
    assert "files.completeUploadExternal" not in SAFE_TO_REPEAT


@pytest.mark.parametrize("wait", ["3600", "1.5", "soon"])
def test_a_long_or_odd_retry_after_is_not_waited_for_inside_the_call(fake_slack, wait):
    fake_slack.script("chat.postMessage", Reply(429, headers={"Retry-After": wait}))
    with pytest.raises(SlackApiError):
        _client(fake_slack).chat_postMessage(channel="C1", text="hello")
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
