"""Socket Mode end to end: the real Bolt SocketModeHandler (slack_sdk's built-in WebSocket
client) gets its URL from the fake Web API's ``apps.connections.open``, connects to a
loopback WebSocket server and is sent a slash command, an @-mention and a button click; each
envelope is acknowledged by envelope_id and answered (response_url / chat.postEphemeral).
A ``disconnect`` (refresh_requested) makes it fetch a new URL, reconnect and keep answering;
a retried event is acknowledged and not answered twice."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from bot.slack.blocks import SHARE_ACTION
from bot.slack.serve import socket_mode_handler
from storage.db import open_db
from tests.fake_socket_mode import FakeSocketMode
from tests.slack_requests import (
    APP_TOKEN,
    action_body,
    app_config,
    build_app,
    command_body,
    mention_body,
    wait_for,
)
from tests.test_serve_http import Stderr


def _form(body: str) -> dict:
    return dict(urllib.parse.parse_qsl(body))


@pytest.fixture
def socket(fake_slack):
    with FakeSocketMode() as server:
        fake_slack.socket_mode_url = server.url
        yield server


@pytest.fixture
def handler(fake_slack, socket, tmp_path):
    open_db(tmp_path / "kvmarm.db").close()
    app = build_app(
        app_config(fake_slack, tmp_path / "kvmarm.db"), token_verification_enabled=False
    )
    handler = socket_mode_handler(app, APP_TOKEN)
    handler.connect()  # apps.connections.open, then the WebSocket
    yield handler
    handler.close()


def _hook(fake_slack, n: int) -> str:
    return f"{fake_slack.base_url}/commands/T0000001/{n}/hook"


def _command(fake_slack, envelope_id: str, n: int) -> dict:
    payload = _form(command_body("status", _hook(fake_slack, n)))
    return {
        "envelope_id": envelope_id,
        "type": "slash_commands",
        "payload": payload,
        "accepts_response_payload": True,
    }


def _mention(event_id: str, retry: int = 0) -> dict:
    payload = json.loads(mention_body("<@U0BOT0001> status").replace("Ev0001", event_id))
    return {
        "envelope_id": f"env-{event_id}-{retry}",
        "type": "events_api",
        "payload": payload,
        "accepts_response_payload": False,
        "retry_attempt": retry,
        "retry_reason": "timeout" if retry else "",
    }


def test_socket_mode_acks_and_answers_and_survives_a_refresh(fake_slack, socket, handler, caplog):
    caplog.set_level(logging.INFO, logger="bot.slack.dedupe")
    socket.wait_connected()
    assert len(fake_slack.calls_to("apps.connections.open")) == 1
    [opened] = fake_slack.calls_to("apps.connections.open")
    assert opened.headers["Authorization"] == f"Bearer {APP_TOKEN}"

    # a slash command: acked by envelope_id, answered through its response_url
    socket.send(_command(fake_slack, "env-cmd-1", 1))
    assert socket.wait_ack("env-cmd-1")["envelope_id"] == "env-cmd-1"
    [answer] = wait_for(fake_slack, "response", 1)
    assert answer.path == "/commands/T0000001/1/hook"
    assert "mails" in json.dumps(answer.params)

    # an @-mention: acked, answered ephemerally to who asked
    socket.send(_mention("EvS1"))
    socket.wait_ack("env-EvS1-0")
    [ephemeral] = wait_for(fake_slack, "chat.postEphemeral", 1)
    assert ephemeral.params["user"] == "U0ASKER001"

    # Slack's retry of the same event: acked, not answered again
    socket.send(_mention("EvS1", retry=1))
    socket.wait_ack("env-EvS1-1")
    assert "event EvS1 already handled (retry 1, reason timeout)" in caplog.text

    # a button (block_actions): acked, the answer shared in the channel
    payload = json.loads(
        _form(action_body(SHARE_ACTION, "status", _hook(fake_slack, 2)))["payload"]
    )
    socket.send({"envelope_id": "env-act-1", "type": "interactive", "payload": payload})
    socket.wait_ack("env-act-1")
    shared = wait_for(fake_slack, "response", 3)[1:]
    assert shared[0].params["response_type"] == "in_channel"
    assert shared[1].params["delete_original"] is True

    # Slack asks the app to reconnect: a new URL, a new connection, still answering
    socket.send({"type": "disconnect", "reason": "refresh_requested", "debug_info": {}})
    socket.wait_connected()
    wait_for(fake_slack, "apps.connections.open", 2)
    socket.send(_command(fake_slack, "env-cmd-2", 3))
    socket.wait_ack("env-cmd-2")
    answers = wait_for(fake_slack, "response", 4)
    assert answers[-1].path == "/commands/T0000001/3/hook"
    socket.send(_mention("EvS2"))
    socket.wait_ack("env-EvS2-0")
    wait_for(fake_slack, "chat.postEphemeral", 2)
    assert len(fake_slack.calls_to("chat.postEphemeral")) == 2  # EvS1 once, EvS2 once


def test_kvmarm_serve_says_it_is_in_socket_mode_and_connected(fake_slack, socket, tmp_path):
    open_db(tmp_path / "kvmarm.db").close()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": fake_slack.api_url,
        "KVMARM_DB": str(tmp_path / "kvmarm.db"),
        "KVMARM_CONFIG": "/dev/null",
    }
    kvmarm = Path(sys.executable).with_name("kvmarm")
    process = subprocess.Popen(
        [str(kvmarm), "serve", "--sync-every", "0"], env=env, stderr=subprocess.PIPE
    )
    err = Stderr(process.stderr)
    try:
        err.wait_for("kvmarm serve: Socket Mode, connecting to Slack")
        socket.wait_connected()
        err.wait_for("kvmarm serve: Socket Mode, connected (session ")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    assert "xapp" not in err.text and "WARNING" not in err.text
