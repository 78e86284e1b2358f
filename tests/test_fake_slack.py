"""The fake Slack server answers the real slack_sdk client, and scripted failures are retried."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError

from bot.config import load_config
from bot.slack.client import make_web_client
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


def test_persistent_server_error_reaches_the_caller(fake_slack):
    fake_slack.script("chat.postMessage", *[Reply(500)] * 5)
    with pytest.raises(SlackApiError):
        _client(fake_slack).chat_postMessage(channel="C1", text="hello")
    assert len(fake_slack.calls_to("chat.postMessage")) == 4
